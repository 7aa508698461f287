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
 * The errno values carry these meanings throughout the service (the HTTP
 * mapping is api/problem.c's table):
 *   EINVAL     the request is malformed or names something invalid
 *   ENOENT     the object does not exist
 *   EEXIST     an object of that name exists already
 *   ENOTEMPTY  the object has dependents that stop the operation
 *   EBADFD     the object is in a state that does not allow the operation
 *   EBUSY      the domain is busy with another job
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

/* Records a detail message for the current thread and returns errnum. */
int err_set(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The current thread's last detail message, or NULL when none is set. Borrowed. */
const char *err_detail(void);

/* Forgets the current thread's detail message. */
void err_clear(void);

#endif
