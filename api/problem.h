/*
 * problem.h - the one table from errors to HTTP answers (RFC 9457
 * problem+json with a stable machine-readable "code").
 */
#ifndef VV_PROBLEM_H
#define VV_PROBLEM_H

#include <jansson.h>

struct problem_kind {
    int err;           /* negative errno, or 0 for kinds raised by code only */
    int status;        /* HTTP status */
    const char *code;  /* stable code, e.g. "not_found" */
    const char *title; /* short summary for people */
};

/* The kind for a negative errno; unknown errnos are "internal" (500). Never NULL. */
const struct problem_kind *problem_for_errno(int err);

/* The kind for a code such as "method_not_allowed"; NULL when unknown. */
const struct problem_kind *problem_for_code(const char *code);

/*
 * Builds a new problem object {type, title, status, detail, code, instance}.
 * detail and instance may be NULL. Returns a new reference or NULL.
 */
json_t *problem_new(const struct problem_kind *kind, const char *detail, const char *instance);

#endif
