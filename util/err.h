/*
 * err.h - one error at a time, per thread.
 *
 * Functions that can fail return 0 or a negative errno. Where the failure
 * arises, err_set() records a sentence for people (the "detail" of the
 * problem+json answer) in thread-local storage and returns the errno it was
 * given, so that "return err_set(-ENOENT, "domain '%s' not found", n);"
 * reports and fails in one statement. The caller that turns the errno into
 * an answer reads it back with err_detail(). A later err_set() overwrites an
 * earlier one; err_clear() forgets it.
 *
 * A failure caused by one field of a request names it: err_set_pointer()
 * records a JSON pointer into the request body (RFC 6901: "/disks/0/target",
 * "" for the whole body), err_set_parameter() the name of a query
 * parameter, each with a short message about that field alone ("must be a
 * string"). The detail then reads "disks[0].target: must be a string" (or
 * "query parameter 'roots': must be true or false"); err_field() gives the
 * field and its message back, for the answer's "errors" list.
 *
 * The errno values carry these meanings throughout the service (the HTTP
 * mapping is api/problem.c's table):
 *   EINVAL     the request is malformed or names something invalid
 *   ENOENT     the object does not exist
 *   EEXIST     an object of that name exists already
 *   ENOTEMPTY  the object has dependents that stop the operation
 *   EBADFD     the object is in a state that does not allow the operation
 *   EBUSY      the domain is busy with another job
 *   ESTALE     a precondition of the request (If-Match...) does not hold
 *   EOPNOTSUPP the driver or the object cannot do this at all
 *   ENOTCONN   the hypervisor cannot be reached right now
 *   EACCES     the hypervisor or the file system refused the operation
 *   ETIMEDOUT  an operation did not finish in time
 *   ENOSPC     the vault or the database ran out of space
 *   EIO, ...   everything else is a fault of the server (500)
 */
#ifndef VV_ERR_H
#define VV_ERR_H

#include <errno.h>
#include <stdbool.h>

/* Records a detail message for the current thread and returns errnum. */
int err_set(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

enum err_field_kind {
    ERR_FIELD_NONE,      /* the error names no field */
    ERR_FIELD_POINTER,   /* a JSON pointer into the request body */
    ERR_FIELD_PARAMETER, /* a query parameter's name */
};

/*
 * Like err_set(), about the body field at JSON pointer `pointer` (already
 * escaped: "~0" for '~', "~1" for '/'); fmt says what is wrong with it.
 */
int err_set_pointer(int errnum, const char *pointer, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like err_set(), about the query parameter `name`; fmt says what is wrong with it. */
int err_set_parameter(int errnum, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * The field the current thread's last error names: its kind, and (when not
 * ERR_FIELD_NONE) the pointer or parameter name into *ret_name and the
 * message about it into *ret_detail, both borrowed. Either may be NULL.
 */
enum err_field_kind err_field(const char **ret_name, const char **ret_detail);

/* The current thread's last detail message, or NULL when none is set. Borrowed. */
const char *err_detail(void);

/* Forgets the current thread's detail message and field. */
void err_clear(void);

/* A thread's error, to carry to another thread. */
struct err_state {
    bool have;
    enum err_field_kind kind;
    char detail[1024];
    char name[256];  /* the field's pointer or parameter name */
    char field[512]; /* what is wrong with the field */
};

/* Copies the current thread's error (detail and field) into st. */
void err_save(struct err_state *st);

/* Makes st the current thread's error. */
void err_restore(const struct err_state *st);

#endif
