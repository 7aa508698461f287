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

/*
 * Builds a new problem object as problem_new() does, with the current
 * thread's err_detail() (util/err.h) as detail; when that error names a
 * field (err_field()), adds "errors": [{"pointer": "/disks/0"} or
 * {"parameter": "limit"}, with "detail": what is wrong with it]. Returns a
 * new reference or NULL.
 */
json_t *problem_from_err(const struct problem_kind *kind, const char *instance);

#endif
