/*
 * conf/audit.h - one record of the audit log: a state-changing request and
 * how it was answered (see core/audit.h).
 *
 * Strings are owned by the record and freed by conf_audit_clear(); NULL
 * means "none" (who is NULL for an anonymous caller, job_id without a job,
 * domain when the path names none).
 */
#ifndef VV_CONF_AUDIT_H
#define VV_CONF_AUDIT_H

#include <stddef.h>
#include <stdint.h>

struct conf_audit {
    int64_t seq;     /* the row's order; set when read back */
    int64_t time_ms; /* milliseconds since the epoch */
    char *who;       /* a token's name or "uid:N"; NULL for anonymous */
    char *remote;    /* the peer's address, "unix" on the Unix socket */
    char *method;
    char *path; /* without the query string */
    int status;
    char *job_id;
    char *domain;
};

/* Which records a listing returns: every field is optional (NULL / 0 = no filter). */
struct conf_audit_filter {
    const char *domain;
    int64_t since_ms;   /* at or after */
    int64_t until_ms;   /* before */
    int64_t before_seq; /* the cursor: only rows older than this; 0 from the newest */
    unsigned limit;     /* at most this many rows; 0: 100 */
};

/* Frees the strings of r (not r). Accepts NULL. */
void conf_audit_clear(struct conf_audit *r);

/* Frees an array of n records. Accepts NULL. */
void conf_audit_list_free(struct conf_audit *list, size_t n);

#endif
