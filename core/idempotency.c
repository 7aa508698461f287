/* Answers kept for requests with an Idempotency-Key (see idempotency.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core.h"
#include "db/idempotency.h"
#include "err.h"
#include "idempotency.h"
#include "log.h"
#include "text.h"

#define PRUNE_INTERVAL_MS (600 * 1000LL)

static _Atomic int64_t last_prune_ms;

/* Deletes the expired answers (and, at start, the claims of an earlier process); logs. */
static int
prune(int64_t now, bool pending_too)
{
    int64_t deleted = 0;
    int r;

    atomic_store(&last_prune_ms, now);
    r = db_idem_prune(core_db(), now, pending_too, &deleted);
    if (r < 0) {
        log_warn("idempotency: cannot delete expired keys: %s",
                 err_detail() ? err_detail() : strerror(-r));
        return r;
    }
    if (deleted > 0)
        log_debug("idempotency: deleted %" PRId64 " expired or unsettled key(s)", deleted);
    return 0;
}

int
core_idem_start(void)
{
    return prune(text_now_ms(), true);
}

int
core_idem_claim(const char *scope, const char *key, const char *fingerprint,
                enum conf_idem_claim *ret, struct conf_idem_answer *ret_answer)
{
    int64_t now = text_now_ms();

    if (now - atomic_load(&last_prune_ms) >= PRUNE_INTERVAL_MS)
        prune(now, false);
    return db_idem_claim(core_db(), scope, key, fingerprint, now, now + CORE_IDEM_TTL_MS, ret,
                         ret_answer);
}

int
core_idem_store(const char *scope, const char *key, const struct conf_idem_answer *a)
{
    int r = db_idem_store(core_db(), scope, key, a, text_now_ms() + CORE_IDEM_TTL_MS);

    if (r < 0) {
        log_warn("idempotency: cannot store the answer of a request (%s); a retry runs it again",
                 err_detail() ? err_detail() : strerror(-r));
        core_idem_release(scope, key);
    }
    return r;
}

void
core_idem_release(const char *scope, const char *key)
{
    int r = db_idem_release(core_db(), scope, key);

    if (r < 0)
        log_warn("idempotency: cannot release a key: %s",
                 err_detail() ? err_detail() : strerror(-r));
}
