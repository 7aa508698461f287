/* The audit log (see audit.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "audit.h"
#include "core.h"
#include "db/audit.h"
#include "err.h"
#include "log.h"
#include "text.h"

#define PRUNE_INTERVAL_MS (3600 * 1000LL)

static atomic_uint retention_days = 90;
static _Atomic int64_t last_prune_ms;

/* Deletes the records older than the retention; logs what it did. */
static int
prune(int64_t now)
{
    unsigned days = atomic_load(&retention_days);
    int64_t deleted = 0;
    int r;

    atomic_store(&last_prune_ms, now);
    if (days == 0)
        return 0;
    r = db_audit_prune(core_db(), now - (int64_t)days * 86400 * 1000, &deleted);
    if (r < 0) {
        log_warn("audit: cannot delete old records: %s",
                 err_detail() ? err_detail() : strerror(-r));
        return r;
    }
    if (deleted > 0)
        log_info("audit: deleted %" PRId64 " record(s) older than %u day(s)", deleted, days);
    return 0;
}

int
core_audit_start(unsigned days)
{
    atomic_store(&retention_days, days);
    return prune(text_now_ms());
}

void
core_audit_record(const struct conf_audit *rec)
{
    int64_t now = text_now_ms();
    int r;

    r = db_audit_put(core_db(), rec);
    if (r < 0)
        log_warn("audit: cannot store the record of %s %s: %s", rec->method, rec->path,
                 err_detail() ? err_detail() : strerror(-r));
    if (now - atomic_load(&last_prune_ms) >= PRUNE_INTERVAL_MS)
        prune(now);
}

int
core_audit_list(const struct conf_audit_filter *f, struct conf_audit **ret, size_t *ret_n,
                int64_t *ret_next)
{
    return db_audit_list(core_db(), f, ret, ret_n, ret_next);
}
