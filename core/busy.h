/*
 * busy.h - one operation per domain at a time.
 *
 * Before an operation that changes a domain (a checkpoint, a snapshot, a
 * backup job) the caller claims the domain by UUID with a short text that
 * says who holds it (a job id, or "checkpoint create"). A second claim
 * fails with -EBUSY and a detail naming the holder, which the API answers
 * as 409 domain_busy. Claims live in memory: a restart frees them all.
 */
#ifndef VV_BUSY_H
#define VV_BUSY_H

#include <stddef.h>

/* Claims the domain for holder. Returns 0, or -EBUSY with a detail naming the holder. */
int core_busy_claim(const char *uuid, const char *holder);

/* Releases a claim made by core_busy_claim (no-op when not held). */
void core_busy_release(const char *uuid);

/* Copies the current holder into buf and returns 1, or returns 0 when the domain is free. */
int core_busy_holder(const char *uuid, char *buf, size_t size);

/*
 * Claims uuid for holder and sets *scope to it, so that a variable declared
 * _cleanup_claim_ releases the claim when it leaves scope:
 *
 *     _cleanup_claim_ const char *claimed = NULL;
 *     r = core_busy_claim_scoped(uuid, "snapshot delete", &claimed);
 */
static inline int
core_busy_claim_scoped(const char *uuid, const char *holder, const char **scope)
{
    int r = core_busy_claim(uuid, holder);

    if (r == 0)
        *scope = uuid;
    return r;
}

static inline void
core_busy_releasep(const char **uuid)
{
    if (*uuid)
        core_busy_release(*uuid);
}
#define _cleanup_claim_ __attribute__((cleanup(core_busy_releasep)))

#endif
