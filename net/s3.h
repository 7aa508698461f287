/*
 * net/s3.h - a small client of the S3 protocol (AWS S3, Ceph RGW, MinIO)
 * for offsite copies, on libcurl with its own SigV4 signing.
 *
 * A struct s3_target names a bucket and the credentials to reach it; it is
 * borrowed by every call and never logged (the secret key least of all).
 * Every request carries x-amz-content-sha256 with the SHA-256 of its body
 * (signed with it). Keys are URL-encoded here (one segment at a time: '/'
 * stays); queries are passed already encoded ("uploadId=...&partNumber=1",
 * empty values written "versioning=").
 *
 * Calls are blocking and thread-safe (one curl handle per call). Each fills
 * a struct s3_result in every case and returns 0 for a 2xx answer, or a
 * negative errno: -ENOENT (404, NoSuchKey/NoSuchUpload/NoSuchBucket),
 * -EACCES (401/403), -EEXIST (409), -EINVAL (other 4xx), -EIO (5xx, or no
 * answer), -ETIMEDOUT; ret->code / ret->message hold S3's error (from its
 * XML body) and ret->error the transport's reason. They set no err detail:
 * the caller says which remote failed (s3_result_describe).
 */
#ifndef VV_NET_S3_H
#define VV_NET_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define S3_XML_MAX       (4 * 1024 * 1024) /* the largest XML answer read */
#define S3_CONNECT_MS    10000
#define S3_LOW_SPEED_S   60 /* a transfer slower than 1 byte/s for this long fails */
#define S3_ETAG_MAX      128
#define S3_UPLOAD_ID_MAX 512
#define S3_KEY_MAX       1024

struct s3_target {
    const char *endpoint; /* "http[s]://host[:port]", no path */
    const char *region;   /* "us-east-1" */
    const char *bucket;
    bool path_style; /* endpoint/bucket/key, else bucket.host/key */
    const char *access_key;
    const char *secret_key;
    const char *ca_file; /* PEM file of CAs for https, or NULL for the system's */
};

struct s3_result {
    int status;             /* HTTP status, 0 when no answer came */
    char code[64];          /* S3's error Code, or "" */
    char message[256];      /* S3's error Message, or "" */
    char error[256];        /* why no answer came, or "" */
    char etag[S3_ETAG_MAX]; /* the ETag header of the answer, quotes included, or "" */
    uint64_t length;        /* Content-Length of a HEAD answer */
};

/* Writes a one-line description of a failed call into buf: status, code, message or error. */
void s3_result_describe(const struct s3_result *res, char *buf, size_t size);

/* Receives a GET's body piece by piece; returns 0, or a negative errno to stop the transfer. */
typedef int (*s3_sink_fn)(void *opaque, const void *data, size_t len);

/*
 * Percent-encodes s as SigV4 wants (unreserved A-Z a-z 0-9 - . _ ~ kept,
 * '/' kept when keep_slash). Returns a new string or NULL (out of memory).
 */
char *s3_uri_encode(const char *s, bool keep_slash);

/*
 * The URL of key (NULL for the bucket itself) with query (NULL or encoded,
 * without '?'): path-style or virtual-host as t says. New string or NULL.
 */
char *s3_url(const struct s3_target *t, const char *key, const char *query);

/*
 * The text of the first <tag>...</tag> in xml[0..len) at or after *pos,
 * with the five XML entities decoded, as a new string into *ret; *pos moves
 * past it. Returns 0, -ENOENT when there is none, -EINVAL for text that is
 * not closed, -ENOMEM. Pure (no I/O): a parser of outside input.
 */
int s3_xml_next(const char *xml, size_t len, const char *tag, size_t *pos, char **ret);

/* Fills code and message from an S3 <Error> body (left "" when absent). */
void s3_error_parse(const char *xml, size_t len, struct s3_result *res);

/* One page of a listing (ListObjectsV2 or ListMultipartUploads). */
struct s3_list {
    char **keys;       /* n keys */
    char **upload_ids; /* ListMultipartUploads: n upload ids, else NULL */
    uint64_t *sizes;   /* ListObjectsV2: n sizes, else NULL */
    size_t n;
    char *next; /* the continuation token / next key marker, NULL on the last page */
};

/* Frees what l owns (not l). Accepts an empty one. */
void s3_list_clear(struct s3_list *l);

/* Parses a ListObjectsV2 answer into *ret. Returns 0, -EINVAL or -ENOMEM. Pure. */
int s3_list_objects_parse(const char *xml, size_t len, struct s3_list *ret);

/* Parses a ListMultipartUploads answer into *ret. Returns 0, -EINVAL or -ENOMEM. Pure. */
int s3_list_uploads_parse(const char *xml, size_t len, struct s3_list *ret);

/*
 * One request. body/body_len: what is sent (NULL, 0 for none). Unless
 * sink, an answer body (at most S3_XML_MAX bytes) is kept into *ret_body
 * (new, NUL-terminated; NULL ret_body drops it). range: "bytes=A-B" or NULL.
 * headers: n extra "Name: value" lines.
 */
int s3_request(const struct s3_target *t, const char *method, const char *key, const char *query,
               const char *const *headers, size_t n, const void *body, size_t body_len,
               const char *range, s3_sink_fn sink, void *opaque, struct s3_result *ret,
               char **ret_body, size_t *ret_len);

/* PUT of a whole object (a small one: a manifest, a probe), with n extra header lines. */
int s3_put(const struct s3_target *t, const char *key, const void *data, size_t len,
           const char *const *headers, size_t n, struct s3_result *ret);

/* GET of a whole object into a new buffer of at most max bytes (-EFBIG beyond). */
int s3_get(const struct s3_target *t, const char *key, size_t max, char **ret_data, size_t *ret_len,
           struct s3_result *ret);

/* GET of an object (range NULL or "bytes=A-B"), its body handed to sink. */
int s3_get_stream(const struct s3_target *t, const char *key, const char *range, s3_sink_fn sink,
                  void *opaque, struct s3_result *ret);

/* HEAD: ret->length holds the size. -ENOENT when there is no such object. */
int s3_head(const struct s3_target *t, const char *key, struct s3_result *ret);

/* DELETE of an object (no error when there is none, as S3 answers 204). */
int s3_delete(const struct s3_target *t, const char *key, struct s3_result *ret);

/* One page of ListObjectsV2 under prefix, from token (NULL: the first). */
int s3_list_objects(const struct s3_target *t, const char *prefix, const char *token,
                    struct s3_list *ret_list, struct s3_result *ret);

/* One page of the unfinished multipart uploads under prefix, from key marker (NULL: first). */
int s3_list_uploads(const struct s3_target *t, const char *prefix, const char *marker,
                    struct s3_list *ret_list, struct s3_result *ret);

/*
 * CreateMultipartUpload with n extra header lines (object lock's, say): the
 * upload id into ret_id (S3_UPLOAD_ID_MAX bytes).
 */
int s3_mpu_create(const struct s3_target *t, const char *key, const char *const *headers, size_t n,
                  char ret_id[S3_UPLOAD_ID_MAX], struct s3_result *ret);

/* UploadPart number part (1..10000): its ETag in ret->etag. */
int s3_mpu_part(const struct s3_target *t, const char *key, const char *upload_id, unsigned part,
                const void *data, size_t len, struct s3_result *ret);

/* CompleteMultipartUpload with n parts numbered 1..n, etags[i] of part i + 1. */
int s3_mpu_complete(const struct s3_target *t, const char *key, const char *upload_id,
                    char *const *etags, size_t n, struct s3_result *ret);

/* AbortMultipartUpload (-ENOENT when there is no such upload). */
int s3_mpu_abort(const struct s3_target *t, const char *key, const char *upload_id,
                 struct s3_result *ret);

/*
 * PutObjectRetention: locks key in COMPLIANCE mode until until (RFC 3339),
 * with Content-MD5 as AWS asks. (A multipart upload does not carry the lock
 * of its creation everywhere: RGW drops it.)
 */
int s3_object_retention(const struct s3_target *t, const char *key, const char *until,
                        struct s3_result *ret);

/* GetBucketVersioning: *ret_enabled true for "Enabled". */
int s3_bucket_versioning(const struct s3_target *t, bool *ret_enabled, struct s3_result *ret);

/*
 * GetObjectLockConfiguration: *ret_enabled true when object lock is on
 * (a bucket without it answers 404 ObjectLockConfigurationNotFoundError:
 * that is false, not an error).
 */
int s3_bucket_object_lock(const struct s3_target *t, bool *ret_enabled, struct s3_result *ret);

#endif
