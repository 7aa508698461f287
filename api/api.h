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

#define API_MAX_PARAMS 4

struct api_request {
    const char *method;
    const char *path;                        /* raw path, as requested */
    const char *params[API_MAX_PARAMS];      /* decoded {placeholders}, in template order */
    size_t n_params;
    json_t *body;                            /* borrowed; NULL when the request had no body */
    /* Returns the decoded value of query parameter key, or NULL. Borrowed. */
    const char *(*query)(const struct api_request *req, const char *key);
    void *transport;                         /* the server's, for query() */
};

struct api_response {
    int status;
    json_t *json;             /* owned; sent as application/json */
    char *text;               /* owned; sent as-is with content_type when json is NULL */
    size_t text_len;
    const char *content_type; /* static */
    char location[512];       /* Location header, or "" */
    bool event_stream;        /* answer with the event stream (text/event-stream) instead */
};

typedef int (*api_handler_fn)(const struct api_request *req, struct api_response *resp);

/* Fills resp with status and json (stolen). Returns 0, or -ENOMEM when json is NULL. */
int api_reply(struct api_response *resp, int status, json_t *json);

/* Fills resp with status and a text body (stolen) of the given static type. */
int api_reply_text(struct api_response *resp, int status, char *text, const char *content_type);

/* Sets the Location header. */
void api_set_location(struct api_response *resp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Unpacks the request body with json_unpack_ex(JSON_STRICT) and fmt. An
 * absent body counts as {}. Returns 0, or -EINVAL with a detail saying what
 * is wrong with the body.
 */
int api_body_unpack(const struct api_request *req, const char *fmt, ...);

/*
 * Reads a boolean query flag: absent -> def; "true"/"1" -> true;
 * "false"/"0" -> false; anything else -EINVAL with a detail.
 */
int api_query_bool(const struct api_request *req, const char *key, bool def, bool *ret);

/*
 * Reads a query parameter that must be one of choices (NULL-terminated);
 * absent -> def. Returns 0 or -EINVAL with a detail.
 */
int api_query_enum(const struct api_request *req, const char *key, const char *const *choices,
                   const char *def, const char **ret);

/* Wraps an array (stolen) as {"items": [...]}. */
json_t *api_list(json_t *items);

/* Resource handlers (one file per resource). */
int api_version_get(const struct api_request *req, struct api_response *resp);
int api_healthz(const struct api_request *req, struct api_response *resp);
int api_readyz(const struct api_request *req, struct api_response *resp);
int api_domains_list(const struct api_request *req, struct api_response *resp);
int api_domain_get(const struct api_request *req, struct api_response *resp);
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
int api_backup_restore(const struct api_request *req, struct api_response *resp);
int api_backup_verify(const struct api_request *req, struct api_response *resp);
/* --- checkpoints --- */
int api_checkpoints_list(const struct api_request *req, struct api_response *resp);
int api_checkpoint_create(const struct api_request *req, struct api_response *resp);
int api_checkpoint_get(const struct api_request *req, struct api_response *resp);
int api_checkpoint_delete(const struct api_request *req, struct api_response *resp);
int api_checkpoints_reconcile(const struct api_request *req, struct api_response *resp);
/* --- end checkpoints --- */

#endif
