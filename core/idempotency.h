/*
 * core/idempotency.h - answers kept for POSTs that came with an
 * Idempotency-Key, so that a retried request is answered again instead of
 * being done twice.
 *
 * A key lives in a scope (the caller: one per token, per Unix-socket user,
 * or one for all without authentication). The first request with a key
 * claims it; its answer is then stored (core_idem_store) or the claim
 * released (core_idem_release) so that the request may be sent again. A
 * stored answer is kept for CORE_IDEM_TTL_MS, in the database, across
 * restarts; a claim that a stopped process never settled is dropped at the
 * next start. Expired answers are deleted by core_idem_start() and, after
 * that, at most every ten minutes by a claim.
 */
#ifndef VV_CORE_IDEMPOTENCY_H
#define VV_CORE_IDEMPOTENCY_H

#include <stdint.h>

#include "conf/idempotency.h"

#define CORE_IDEM_TTL_MS (24 * 3600 * 1000LL)

/*
 * Drops the claims an earlier process left and the expired answers. Call
 * after core_start(). Returns 0 or a negative errno with a detail (the
 * service may still run).
 */
int core_idem_start(void);

/*
 * Claims key in scope for a request whose fingerprint (a digest of its
 * method, path and body) is given, or finds what holds it: see
 * db_idem_claim() for *ret and *ret_answer. Returns 0 or a negative errno
 * with a detail (nothing claimed).
 */
int core_idem_claim(const char *scope, const char *key, const char *fingerprint,
                    enum conf_idem_claim *ret, struct conf_idem_answer *ret_answer);

/*
 * Stores the answer (borrowed) of the request that claimed key, kept for
 * CORE_IDEM_TTL_MS from now. Returns 0 or a negative errno with a detail
 * (the claim is then released, so a retry runs the request again).
 */
int core_idem_store(const char *scope, const char *key, const struct conf_idem_answer *a);

/* Releases the claim on key: a retry runs the request again. Failures are logged. */
void core_idem_release(const char *scope, const char *key);

#endif
