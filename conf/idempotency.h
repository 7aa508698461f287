/*
 * conf/idempotency.h - the answer kept for a POST that came with an
 * Idempotency-Key, and what a second request with that key gets (see
 * core/idempotency.h).
 *
 * An answer owns its strings and body and is freed by
 * conf_idem_answer_clear(); NULL means "none" for the headers.
 */
#ifndef VV_CONF_IDEMPOTENCY_H
#define VV_CONF_IDEMPOTENCY_H

#include <stddef.h>

struct conf_idem_answer {
    int status;
    char *content_type; /* the Content-Type header, or NULL */
    char *location;     /* the Location header, or NULL */
    char *body;         /* body_len bytes, NUL-terminated too; NULL when empty */
    size_t body_len;
};

/* What a request with a key finds. */
enum conf_idem_claim {
    CONF_IDEM_NEW,    /* no live request with this key: it is claimed, run the request */
    CONF_IDEM_DONE,   /* answered before with the same request: the answer is there */
    CONF_IDEM_IN_USE, /* the same request is still being answered */
    CONF_IDEM_REUSED, /* the key came with another request (method, path or body) */
};

/* Frees what a holds (not a) and zeroes it. Accepts NULL. */
void conf_idem_answer_clear(struct conf_idem_answer *a);

#endif
