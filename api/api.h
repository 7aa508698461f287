/*
 * api.h - what every resource handler sees: a request already routed,
 * authorised and parsed, and a response to fill. Handlers know nothing of
 * the HTTP library; they return 0 after filling the response, or a negative
 * errno with a detail (err.h) that the server turns into problem+json
 * through problem.c's table.
 */
#ifndef VV_API_H
#define VV_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "conf/idempotency.h"

#define API_MAX_PARAMS   4
#define API_IDEM_KEY_MAX 255 /* bytes of an Idempotency-Key */

struct api_cond;

struct api_request {
    const char *method;
    const char *path;                   /* raw path, as requested */
    const char *params[API_MAX_PARAMS]; /* decoded {placeholders}, in template order */
    size_t n_params;
    json_t *body; /* borrowed; NULL when the request had no body */
    /* Returns the decoded value of query parameter key, or NULL. Borrowed. */
    const char *(*query)(const struct api_request *req, const char *key);
    void *transport;             /* the server's, for query() */
    bool trusted;                /* a valid token came with it (or authentication is off) */
    const struct api_cond *cond; /* a write's preconditions (If-Match...), or NULL */
};

/*
 * A body produced piece by piece (disk data). The server answers Range
 * requests from it (206, multipart/byteranges, 416) when ranges is true.
 * read() fills buf with up to max bytes at pos and returns how many (> 0),
 * or a negative errno; free() releases opaque when the answer is done.
 * Reads come in order within each range. zeros() (optional) passes over up
 * to max bytes at pos that read as zeros without writing them and returns
 * how many, 0 when the bytes at pos are data, or a negative errno: the
 * server then writes the zeros only where its buffer does not hold them yet.
 */
struct api_stream {
    uint64_t size;
    bool ranges;
    const char *content_type; /* static */
    char disposition[1024];   /* the Content-Disposition header, or "" */
    ssize_t (*read)(void *opaque, uint64_t pos, char *buf, size_t max);
    /* Optional: the server is about to read [pos, pos+len) in order (lets it read ahead). */
    void (*prepare)(void *opaque, uint64_t pos, uint64_t len);
    ssize_t (*zeros)(void *opaque, uint64_t pos, size_t max);
    void (*free)(void *opaque);
    void *opaque;
};

struct api_response;

/*
 * The slow half of a request, to run off the HTTP threads (api_defer()).
 * run() fills resp as a handler does and returns 0 or a negative errno with
 * a detail; it must not use the api_request it came from. free() releases
 * ctx, whether run() ran or not.
 */
struct api_work {
    int (*run)(void *ctx, struct api_response *resp);
    void (*free)(void *ctx);
    void *ctx;
};

/*
 * A wait for a job's end (api_wait_job()): the server suspends the request,
 * holding no thread, until the job ends or `seconds` pass, and then answers
 * with what work.run() gives, on an HTTP thread.
 */
struct api_wait {
    char job_id[72]; /* "" for no wait */
    unsigned seconds;
};

struct api_response {
    int status;
    json_t *json; /* owned; sent as application/json */
    char *text;   /* owned; sent as-is with content_type when json is NULL */
    size_t text_len;
    const char *content_type;  /* static */
    char location[512];        /* Location header, or "" */
    bool event_stream;         /* answer with the event stream (text/event-stream) instead */
    struct api_stream *stream; /* owned; sent when json and text are NULL */
    struct api_work work;      /* owned; when run is set, the answer is what work gives */
    struct api_wait wait;      /* with work: answer once the job ended or the time passed */
};

typedef int (*api_handler_fn)(const struct api_request *req, struct api_response *resp);

/* Fills resp with status and json (stolen). Returns 0, or -ENOMEM when json is NULL. */
int api_reply(struct api_response *resp, int status, json_t *json);

/* Fills resp with status and a text body (stolen) of the given static type. */
int api_reply_text(struct api_response *resp, int status, char *text, const char *content_type);

/* Fills resp with a streamed body (stolen; freed through stream->free). */
int api_reply_stream(struct api_response *resp, struct api_stream *stream);

/*
 * Answers later: the server suspends the request and calls handler on a
 * worker thread with a copy of req (path parameters, body, trust, and the
 * query parameters named in keys, a NULL-terminated list) that stays valid
 * while it runs; what handler fills in resp is the answer. Returns 0, or
 * -ENOMEM (nothing is deferred).
 */
int api_defer(const struct api_request *req, struct api_response *resp, api_handler_fn handler,
              const char *const *keys);

/* The longest wait for a job's end a request may ask for, in seconds. */
#define API_WAIT_MAX 300

/*
 * Reads the `wait` query parameter: absent -> 0; else a whole number of
 * seconds from 0 to API_WAIT_MAX. Returns 0 or -EINVAL with a detail.
 */
int api_query_wait(const struct api_request *req, unsigned *ret);

/*
 * Makes resp, a filled answer about job job_id, wait up to `seconds` for
 * the job's end: when it ends in time the answer becomes 200 with the
 * ended job (as GET /v1/jobs/{id} answers it) and resp's Location; when
 * the time passes first it is resp as given, or, with renew, 200 with the
 * job as it stands then. seconds 0 leaves resp alone. Returns 0, or
 * -ENOMEM (resp is left alone).
 */
int api_wait_job(struct api_response *resp, const char *job_id, unsigned seconds, bool renew);

/*
 * Answers 202 with job (taken) and its Location, then waits up to `wait`
 * seconds for its end as api_wait_job() does. Returns api_reply()'s result.
 */
struct conf_job;
int api_reply_job(struct api_response *resp, struct conf_job *job, unsigned wait);

/* Sets the Location header. */
void api_set_location(struct api_response *resp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The members an object of a request body may have, for api_fields_check(). */
enum api_field_type {
    API_FIELD_STRING,
    API_FIELD_BOOL,
    API_FIELD_INTEGER,
    API_FIELD_OBJECT,
    API_FIELD_ARRAY,
};
struct api_field {
    const char *name; /* NULL ends a list */
    enum api_field_type type;
    bool required;
    bool nullable; /* null is allowed too */
};
#define API_NO_FIELDS ((const struct api_field[]){{NULL, API_FIELD_STRING, false, false}})

/*
 * Checks that obj, found at JSON pointer `at` of the body ("" for the body
 * itself), is an object whose members are all in fields, each of its type,
 * with the required ones present. Returns 0, or -EINVAL recorded with
 * err_set_pointer() naming the first member (or obj) that is wrong.
 */
int api_fields_check(const json_t *obj, const char *at, const struct api_field *fields);

/*
 * Checks the request body with api_fields_check() against fields, then
 * unpacks it with json_unpack_ex() and fmt, which must agree with fields
 * (JSON_STRICT; "s?" for the fields that are not required). An absent body
 * counts as {}. Returns 0, or -EINVAL with a detail naming the field.
 */
int api_body_unpack(const struct api_request *req, const struct api_field *fields, const char *fmt,
                    ...);

/*
 * Reads a boolean query flag: absent -> def; "true" -> true; "false" ->
 * false; anything else ("1", "0", "" too) -EINVAL with a detail recorded by
 * err_set_parameter().
 */
int api_query_bool(const struct api_request *req, const char *key, bool def, bool *ret);

/*
 * Reads a boolean filter that may be absent: absent -> -1, else 0 or 1 as
 * api_query_bool() reads it. Returns 0 or -EINVAL with a detail.
 */
int api_query_tristate(const struct api_request *req, const char *key, int *ret);

/*
 * Paging, the same on every list. A page answers at most `limit` items
 * (API_PAGE_LIMIT_DEFAULT when absent, 1 to API_PAGE_LIMIT_MAX) and
 * `next_page_token`, null on the last page. The token is opaque to clients:
 * base64url of "<version>:<list>:<key>", where key is the sort key of the
 * last item answered, as text the list's handler writes and reads (integers
 * joined by ':', then optionally a name). The next page is the items whose
 * key comes strictly after it in the list's order (keyset paging, never
 * offsets), so items added while a client pages never shift the others:
 * each item that existed at the start is answered exactly once. The token
 * holds the position in the order, not the list's filters: a client sends
 * the same filters with every page.
 */
#define API_PAGE_LIMIT_DEFAULT 100
#define API_PAGE_LIMIT_MAX     1000
#define API_PAGE_TOKEN_VERSION 1
#define API_PAGE_TOKEN_MAX     4096 /* characters of a page_token */

struct api_page {
    unsigned limit; /* from 1 to API_PAGE_LIMIT_MAX */
    char *after;    /* the key the page_token held; NULL for the first page. Owned */
};

/* Frees what p owns; p may be reused after. */
void api_page_clear(struct api_page *p);

/*
 * Reads `limit` and `page_token` for the list named list ("jobs",
 * "domains", ...) into *ret (api_page_clear() it). Returns 0, -EINVAL with
 * a detail naming the parameter ("must be a number from 1 to 1000", "is not
 * one this service gave out"), or -ENOMEM.
 */
int api_query_page(const struct api_request *req, const char *list, struct api_page *ret);

/* The page_token of key in list as a new string, or NULL when out of memory. */
char *api_page_token(const char *list, const char *key);

/*
 * Reads token as api_page_token() wrote it for list: its key as a new
 * string in *ret_key. Returns 0, -EINVAL with a detail naming page_token
 * (not base64url, another version or another list's), or -ENOMEM.
 */
int api_page_token_parse(const char *token, const char *list, char **ret_key);

/*
 * Reads a key of n integers joined by ':' ("12:-3") into ret_ints[0..n-1];
 * with ret_rest, a ':' and a non-empty text follow them ("12:name"), and
 * *ret_rest points to it (borrowed from key). Returns 0 or
 * api_page_token_invalid()'s error.
 */
int api_page_key_read(const char *key, size_t n, int64_t *ret_ints, const char **ret_rest);

/* Sets and returns the -EINVAL of a page_token whose key does not read. */
int api_page_token_invalid(void);

/*
 * api_query_page() for a list ordered by a row sequence, newest first (jobs,
 * audit, webhooks): the limit into *ret_limit and the sequence the next page
 * starts below into *ret_before_seq (0 for the first page). With
 * with_cursor (jobs and audit, which had it), the deprecated `cursor`
 * stands in for page_token when that is absent. Returns 0, -EINVAL with a
 * detail naming the parameter, or -ENOMEM.
 */
int api_query_seq_page(const struct api_request *req, const char *list, bool with_cursor,
                       unsigned *ret_limit, int64_t *ret_before_seq);

/*
 * api_page_json() for a list ordered by a row sequence: next is the
 * sequence of the last item answered, 0 on the last page. With with_cursor,
 * also answers the deprecated next_cursor (the same position as a bare
 * number).
 */
json_t *api_seq_page_json(json_t *items, const char *list, bool with_cursor, int64_t next);

/*
 * Reads the deprecated `cursor` query parameter of /v1/jobs and /v1/audit
 * (page_token replaces it), the positive number a page answered as
 * next_cursor: absent -> 0 (the first page). Returns 0 or -EINVAL with a
 * detail.
 */
int api_query_cursor(const struct api_request *req, int64_t *ret);

/*
 * Reads a query parameter that must be one of choices (NULL-terminated);
 * absent -> def. Returns 0 or -EINVAL with a detail.
 */
int api_query_enum(const struct api_request *req, const char *key, const char *const *choices,
                   const char *def, const char **ret);

/* A time in milliseconds since the epoch as RFC 3339 UTC with milliseconds; null for <= 0. */
json_t *api_time_json(int64_t ms);

/* Wraps an array (stolen) as {"items": [...]}. */
json_t *api_list(json_t *items);

/*
 * Wraps an array (stolen) as one page of list: {"items": [...],
 * "next_page_token": api_page_token(list, next_key)}, or null as
 * next_page_token when next_key is NULL (the last page). Returns a new
 * reference, or NULL when out of memory.
 */
json_t *api_page_json(json_t *items, const char *list, const char *next_key);

/*
 * Answers kept for reuse (cache.c). api_cache_get() gives a new copy of the
 * text kept under key when it was kept with this version, else NULL;
 * api_cache_put() keeps a copy of text (up to 1 MiB; 64 slots). Versions only
 * grow: an answer is never replaced by one built from an older version.
 */
char *api_cache_get(const char *key, uint64_t version, size_t *ret_len);
void api_cache_put(const char *key, uint64_t version, const char *text, size_t len);

/* json (stolen) as compact text with a final newline, as JSON answers are sent; NULL on failure. */
char *api_json_text(json_t *json);

/*
 * Conditional requests (conditional.c, RFC 9110 section 13). A route of the
 * table marked conditional answers its 200 GET with an ETag, a strong tag
 * of its representation ('"' + 32 hex digits of the SHA-256 of its JSON
 * with sorted keys, compact; of the bytes for a text answer + '"'), and
 * honours If-None-Match (304) and If-Match (412) on it. Its writes (PUT,
 * PATCH, DELETE) honour If-Match and If-None-Match against the ETag of the
 * JSON answer of the GET handler of the same path, asked again just before
 * the write.
 */
#define API_ETAG_MAX 40 /* an ETag with its quotes and a NUL */

/* The preconditions a write came with; the server fills it for conditional routes. */
struct api_cond {
    api_handler_fn get;        /* the GET handler of the same path: the current representation */
    const char *if_match;      /* the If-Match header (all its fields joined), or NULL */
    const char *if_none_match; /* the If-None-Match header, likewise, or NULL */
};

enum api_cond_result {
    API_COND_PASS,         /* go on: answer or write */
    API_COND_NOT_MODIFIED, /* a GET answers 304 */
    API_COND_FAILED,       /* 412, nothing changed */
};

/*
 * Writes the ETag of a filled 200 answer (its JSON, or its text) into
 * etag. Returns 0; -ENOENT when resp is no 200 with a JSON or text body;
 * -ENOMEM.
 */
int api_etag(const struct api_response *resp, char etag[API_ETAG_MAX]);

/*
 * Whether the If-Match (strong comparison) or If-None-Match (weak
 * comparison) field value list names etag: "*" names any current
 * representation (etag not NULL). header is the field's name, for the
 * detail. Returns 0 and *ret, or -EINVAL with a detail when list is
 * neither "*" nor a comma-separated list of entity tags.
 */
int api_etag_match(const char *header, const char *list, const char *etag, bool weak, bool *ret);

/*
 * Evaluates If-Match then If-None-Match (either NULL when absent) against
 * etag, the current representation's (NULL when there is none), for a
 * safe (GET, HEAD) or a writing method, as RFC 9110 section 13.2.2 orders
 * them. Returns 0 and *ret, or -EINVAL with a detail for a malformed field.
 */
int api_cond_evaluate(const char *if_match, const char *if_none_match, const char *etag, bool safe,
                      enum api_cond_result *ret);

/*
 * Runs handler for req, a write. With req->cond set: claims req->path
 * against other conditional writes of it (-EBUSY with a detail while one is
 * being answered), asks req->cond->get for the current representation
 * (without query parameters), and runs handler only when the
 * preconditions hold; else returns -ESTALE (412 precondition_failed) with
 * a detail, nothing changed. A handler that defers (api_defer) takes
 * req->cond along: its slow half checks again, just before the write.
 * Without req->cond: handler(req, resp).
 */
int api_cond_call(const struct api_request *req, struct api_response *resp, api_handler_fn handler);

/* Resource handlers (one file per resource). */
int api_version_get(const struct api_request *req, struct api_response *resp);
int api_healthz(const struct api_request *req, struct api_response *resp);
int api_retention_simulate(const struct api_request *req, struct api_response *resp);
int api_readyz(const struct api_request *req, struct api_response *resp);
int api_domains_list(const struct api_request *req, struct api_response *resp);
int api_domain_get(const struct api_request *req, struct api_response *resp);
int api_audit_list(const struct api_request *req, struct api_response *resp);
int api_jobs_list(const struct api_request *req, struct api_response *resp);
int api_job_get(const struct api_request *req, struct api_response *resp);
int api_job_cancel(const struct api_request *req, struct api_response *resp);
int api_snapshots_list(const struct api_request *req, struct api_response *resp);
int api_snapshot_create(const struct api_request *req, struct api_response *resp);
int api_snapshot_get(const struct api_request *req, struct api_response *resp);
int api_snapshot_current(const struct api_request *req, struct api_response *resp);
int api_snapshot_delete(const struct api_request *req, struct api_response *resp);
int api_snapshot_revert(const struct api_request *req, struct api_response *resp);

/* --- backups --- */
int api_events_stream(const struct api_request *req, struct api_response *resp);
int api_backups_list(const struct api_request *req, struct api_response *resp);
int api_backup_create(const struct api_request *req, struct api_response *resp);
int api_backup_get(const struct api_request *req, struct api_response *resp);
int api_backup_delete(const struct api_request *req, struct api_response *resp);
int api_backup_patch(const struct api_request *req, struct api_response *resp);
int api_backups_prune(const struct api_request *req, struct api_response *resp);
int api_backup_restore(const struct api_request *req, struct api_response *resp);
int api_backup_instant_recovery(const struct api_request *req, struct api_response *resp);
int api_mount_create(const struct api_request *req, struct api_response *resp);
int api_mounts_list(const struct api_request *req, struct api_response *resp);
int api_mount_get(const struct api_request *req, struct api_response *resp);
int api_mount_delete(const struct api_request *req, struct api_response *resp);
int api_backup_verify(const struct api_request *req, struct api_response *resp);
int api_backup_finish(const struct api_request *req, struct api_response *resp);
int api_backup_extents(const struct api_request *req, struct api_response *resp);
int api_backup_data(const struct api_request *req, struct api_response *resp);
/* --- files inside backups --- */
int api_backup_filesystems(const struct api_request *req, struct api_response *resp);
int api_backup_files_list(const struct api_request *req, struct api_response *resp);
int api_backup_file_content(const struct api_request *req, struct api_response *resp);
int api_files_metrics(FILE *f);
/* --- checkpoints --- */
int api_checkpoints_list(const struct api_request *req, struct api_response *resp);
int api_checkpoint_create(const struct api_request *req, struct api_response *resp);
int api_checkpoint_get(const struct api_request *req, struct api_response *resp);
int api_checkpoint_delete(const struct api_request *req, struct api_response *resp);
int api_checkpoints_reconcile(const struct api_request *req, struct api_response *resp);
/* POST .../checkpoints:adopt (api/offsite_adopt.c) */
int api_checkpoints_adopt(const struct api_request *req, struct api_response *resp);
/* --- end checkpoints --- */
/* --- webhooks --- */
int api_webhooks_list(const struct api_request *req, struct api_response *resp);
int api_webhook_create(const struct api_request *req, struct api_response *resp);
int api_webhook_get(const struct api_request *req, struct api_response *resp);
int api_webhook_update(const struct api_request *req, struct api_response *resp);
int api_webhook_delete(const struct api_request *req, struct api_response *resp);
int api_webhook_deliveries(const struct api_request *req, struct api_response *resp);
/* --- end webhooks --- */
/* --- remotes --- */
int api_remotes_list(const struct api_request *req, struct api_response *resp);
int api_remote_create(const struct api_request *req, struct api_response *resp);
int api_remote_get(const struct api_request *req, struct api_response *resp);
int api_remote_update(const struct api_request *req, struct api_response *resp);
int api_remote_delete(const struct api_request *req, struct api_response *resp);
int api_remote_check(const struct api_request *req, struct api_response *resp);
int api_remote_backups(const struct api_request *req, struct api_response *resp);
int api_remote_restore(const struct api_request *req, struct api_response *resp);
int api_remote_prune(const struct api_request *req, struct api_response *resp);
int api_remote_backup_delete(const struct api_request *req, struct api_response *resp);
int api_backup_copy(const struct api_request *req, struct api_response *resp);
int api_backup_copies(const struct api_request *req, struct api_response *resp);
/* --- end remotes --- */

/* --- policies --- */
int api_policies_list(const struct api_request *req, struct api_response *resp);
int api_policy_create(const struct api_request *req, struct api_response *resp);
int api_policy_get(const struct api_request *req, struct api_response *resp);
int api_policy_put(const struct api_request *req, struct api_response *resp);
int api_policy_delete(const struct api_request *req, struct api_response *resp);
int api_policy_run(const struct api_request *req, struct api_response *resp);

/*
 * Writes the policies' metric families (Prometheus text) to f: last
 * success and overdue per domain, runs by result, the vault's bytes per
 * domain. Returns 0 or a negative errno (f may hold a part).
 */
int api_policy_metrics(FILE *f);

/* Writes the data plane's byte counters to f as Prometheus text. */
void api_data_plane_metrics(FILE *f);
/* --- end policies --- */

/*
 * Records one state-changing request in the audit log and as one log line
 * ("audit {json}"). who is a token's name or "uid:N" (NULL or "" for an
 * anonymous caller), path has no query string, location is the answer's
 * Location header (NULL for none: a "/v1/jobs/ID" names the job it
 * started). Never fails: a record that cannot be stored is logged.
 */
void api_audit_record(const char *who, const char *remote, const char *method, const char *path,
                      int status, const char *location);

/*
 * Idempotency-Key (idempotency.c): a POST that comes with a key is done
 * once per caller and key; its answer is kept for 24 hours and a retry with
 * the same key and the same request gets it again.
 */

/* 0 for a usable Idempotency-Key (1 to 255 printable ASCII characters), else -EINVAL. */
int api_idem_check_key(const char *key);

/*
 * Claims key in scope (the caller: "" without authentication) for the
 * request method path with body (len bytes; NULL when empty), or says what
 * holds it. *ret: CONF_IDEM_NEW (run the request, then api_idem_finish() or
 * api_idem_release()), CONF_IDEM_DONE (*ret_answer is the answer to send
 * again; conf_idem_answer_clear), CONF_IDEM_IN_USE (409) or
 * CONF_IDEM_REUSED (422). Returns 0; -EINVAL with a detail for a bad key;
 * or another negative errno with a detail (nothing claimed).
 */
int api_idem_begin(const char *scope, const char *key, const char *method, const char *path,
                   const char *body, size_t len, enum conf_idem_claim *ret,
                   struct conf_idem_answer *ret_answer);

/*
 * Whether an answer of this status is kept for a key: 2xx, and 4xx but
 * 408, 409, 425 and 429 (refusals that a retry may get past). 5xx are
 * never kept: they must stay retryable.
 */
bool api_idem_keeps(int status);

/*
 * Settles a claimed key with the request's answer (everything borrowed):
 * kept when api_idem_keeps(status) says so (and it is at most 1 MiB), else
 * released. A store that fails is logged and the key released. Call before
 * the answer leaves, so that a client that has it finds it kept.
 */
void api_idem_finish(const char *scope, const char *key, int status, const char *content_type,
                     const char *location, const char *body, size_t len);

/* Releases a claimed key unanswered (the request ended without an answer to keep). */
void api_idem_release(const char *scope, const char *key);

#endif
