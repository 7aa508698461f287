/*
 * conf/retention.h - retention options and the prune rule that applies them,
 * exactly as Proxmox Backup Server prunes.
 *
 * A struct conf_retention holds six non-negative counts; all zero means keep
 * everything. conf_retention_prune() is a pure function of (options, start
 * times, protected flags): it touches no state, allocates only scratch memory
 * it frees, and is the one rule both the simulator and the pruner use.
 *
 * The rule: sort the backups newest first and apply the options in the order
 * last, hourly, daily, weekly, monthly, yearly. Each option buckets a backup
 * by its start time in UTC: last by the backup itself, hourly "%Y-%m-%d %H",
 * daily "%Y-%m-%d", weekly "%G-%V", monthly "%Y-%m", yearly "%Y". For an
 * option with count N > 0, the buckets of the backups already kept when it
 * starts are covered. Walking newest first, a backup already marked is
 * skipped, one in a covered bucket is skipped, one in a bucket this option
 * already selected is marked removed; otherwise, once N buckets are selected
 * the option stops, else the bucket is selected and the backup kept. Every
 * backup left unmarked is removed. A protected backup is always kept and the
 * walk passes over it as if it were not there.
 */
#ifndef VV_CONF_RETENTION_H
#define VV_CONF_RETENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum conf_retention_option {
    CONF_RETENTION_LAST,
    CONF_RETENTION_HOURLY,
    CONF_RETENTION_DAILY,
    CONF_RETENTION_WEEKLY,
    CONF_RETENTION_MONTHLY,
    CONF_RETENTION_YEARLY,
    CONF_RETENTION_OPTION_LAST,
};

struct conf_retention {
    /* indexed by enum conf_retention_option: keep_last ... keep_yearly */
    uint32_t keep[CONF_RETENTION_OPTION_LAST];
};

/*
 * The JSON/API name of an option ("keep_last" ... "keep_yearly"), or NULL for
 * a value out of range.
 */
const char *conf_retention_option_to_string(enum conf_retention_option o);

/* True when every count is zero: the options keep everything. */
bool conf_retention_keeps_all(const struct conf_retention *r);

/*
 * Decides which of n backups to keep. times[i] is the start time of backup i
 * in seconds since the epoch (UTC); protected_ may be NULL (none protected).
 * The backups may come in any order; backups with equal times are taken in
 * the order given. On success sets ret_keep[i] (an array of n the caller
 * owns) and returns 0; returns -ENOMEM when scratch memory runs out or
 * -EINVAL for a NULL argument with n > 0 or a time gmtime cannot convert;
 * ret_keep is untouched on failure.
 */
int conf_retention_prune(const struct conf_retention *r, const int64_t *times,
                         const bool *protected_, size_t n, bool *ret_keep);

#endif
