/*
 * conf/remote.h - remotes (S3-compatible buckets that hold offsite copies),
 * the copies of backups to them, and the manifest that describes a copied
 * backup in the bucket (core/offsite.h uses them; docs/offsite.md).
 *
 * A struct conf_remote owns its strings (conf_remote_clear). Its secret is
 * NULL in every copy read for an answer: the secret is write-only, kept in
 * a file only the service's user can read (core/offsite.c).
 *
 * A struct conf_manifest is the catalog record of one backup as a bucket
 * keeps it, with what the copy added: the host it came from, the key id
 * and algorithms of its objects, and the object of each disk. It owns its
 * backup record and strings (conf_manifest_free). Its JSON form is parsed
 * here (the one parser of this outside input, fuzzed) with jansson.
 */
#ifndef VV_CONF_REMOTE_H
#define VV_CONF_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/backup.h"
#include "conf/enum.h"

#define CONF_REMOTE_FIELD_MAX     1024 /* bytes of endpoint, bucket, prefix, paths */
#define CONF_REMOTE_KEY_MAX       256  /* bytes of an access key or a secret */
#define CONF_REMOTE_LOCK_DAYS_MAX 36500

struct conf_remote {
    char *name;
    char *endpoint; /* "http[s]://host[:port]" */
    char *region;
    char *bucket;
    char *prefix; /* "" for none; no leading or trailing '/' */
    bool path_style;
    char *access_key;
    char *secret;       /* NULL in copies read for answers */
    char *ca_file;      /* NULL: the system's CAs */
    char *key_file;     /* NULL: copies are not encrypted */
    unsigned lock_days; /* copies locked (object lock, COMPLIANCE) this long; 0: not locked */
    int64_t created_ms;
    int64_t updated_ms;
};

/* Frees the strings of r (not r). Accepts NULL. */
void conf_remote_clear(struct conf_remote *r);

/* Frees an array of n remotes. Accepts NULL. */
void conf_remote_list_free(struct conf_remote *list, size_t n);

enum conf_copy_state {
    CONF_COPY_UPLOADING,
    CONF_COPY_COMPLETED,
    CONF_COPY_FAILED,
    CONF_COPY_STATE_LAST,
};
/* "uploading", "completed", "failed"; parsing: -EINVAL for none. */
CONF_ENUM_DECL(conf_copy_state, enum conf_copy_state);

/* A backup's copy to a remote. */
struct conf_copy {
    char *backup_id;
    char *remote;
    enum conf_copy_state state;
    char *job_id;          /* the job that made (or makes) it, or NULL */
    uint64_t object_bytes; /* what the bucket holds of it */
    char *error;           /* why it failed, or NULL */
    int64_t created_ms;
    int64_t finished_ms; /* 0 until it ended */
};

void conf_copy_clear(struct conf_copy *c);
void conf_copy_list_free(struct conf_copy *list, size_t n);

/* One part of a multipart upload that the bucket confirmed. */
struct conf_copy_part {
    unsigned number;  /* 1-based */
    uint64_t raw_off; /* the image bytes it holds: [raw_off, raw_end) */
    uint64_t raw_end;
    uint64_t bytes; /* its size in the bucket */
    char *etag;
};

void conf_copy_part_list_free(struct conf_copy_part *list, size_t n);

#define CONF_MANIFEST_MAX (4 * 1024 * 1024) /* bytes of a manifest's JSON */

struct conf_manifest {
    struct conf_backup *b; /* disks[].file: the image's path in the vault it came from */
    char *host;            /* the host that copied it */
    char *checkpoint_xml;  /* the checkpoint's full XML, or NULL */
    char *compression;     /* "zstd" */
    char *encryption;      /* "aes-256-gcm" or "none" */
    char *key_id;          /* hex SHA-256 of the key, NULL when not encrypted */
    char **objects;        /* the key of each disk's object (b->n_disks), under the bucket */
    uint64_t *object_bytes;
    int64_t copied_ms;
    int64_t retain_until_ms; /* locked in the bucket until then (object lock); 0: not locked */
};

void conf_manifest_free(struct conf_manifest *m);

/* Frees an array of n manifests and the array. Accepts NULL. */
void conf_manifest_list_free(struct conf_manifest **list, size_t n);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct conf_manifest *, conf_manifest_free);

/*
 * The manifest as JSON text (a new string into *ret). Returns 0 or -ENOMEM.
 */
int conf_manifest_format(const struct conf_manifest *m, char **ret);

/*
 * Parses a manifest's JSON text (len bytes, outside input) into a new
 * *ret. Returns 0, -EBADMSG with a detail (err_set) for text that is not a
 * manifest of this version, or -ENOMEM.
 */
int conf_manifest_parse(const char *text, size_t len, struct conf_manifest **ret);

#endif
