/*
 * db/idempotency.h - the idempotency table: one row per (scope, key) of a
 * POST that came with an Idempotency-Key (see conf/idempotency.h for the
 * answer, core/idempotency.h for its use).
 *
 * A row is 'pending' from its claim until the answer is stored (it is then
 * 'done') or released (the row goes). A row whose expires_ms has passed
 * counts as absent: a claim replaces it, a prune deletes it.
 */
#ifndef VV_DB_IDEMPOTENCY_H
#define VV_DB_IDEMPOTENCY_H

#include <stdbool.h>
#include <stdint.h>

#include "conf/idempotency.h"

struct db;

/*
 * Looks up the live row of (scope, key) at now_ms, in one step with its
 * claim. No live row: inserts a pending one with fingerprint, kept until
 * expires_ms, and *ret is CONF_IDEM_NEW. A row with another fingerprint:
 * CONF_IDEM_REUSED; a pending one: CONF_IDEM_IN_USE; a done one:
 * CONF_IDEM_DONE, and *ret_answer is filled (conf_idem_answer_clear).
 * Returns 0, or a negative errno with a detail (nothing claimed).
 */
int db_idem_claim(struct db *db, const char *scope, const char *key, const char *fingerprint,
                  int64_t now_ms, int64_t expires_ms, enum conf_idem_claim *ret,
                  struct conf_idem_answer *ret_answer);

/*
 * Stores answer a (borrowed) in the pending row of (scope, key) and makes
 * it done, kept until expires_ms. Returns 0; -ENOENT with a detail when no
 * pending row is there; or another negative errno with a detail.
 */
int db_idem_store(struct db *db, const char *scope, const char *key,
                  const struct conf_idem_answer *a, int64_t expires_ms);

/* Deletes the pending row of (scope, key), if any. 0, or a negative errno with a detail. */
int db_idem_release(struct db *db, const char *scope, const char *key);

/*
 * Deletes the rows expired at now_ms, and with pending_too every pending
 * row as well (those of an earlier process, at start). *ret_deleted (may be
 * NULL) says how many. 0, or a negative errno with a detail.
 */
int db_idem_prune(struct db *db, int64_t now_ms, bool pending_too, int64_t *ret_deleted);

#endif
