/*
 * conf/remote_prune.h - what a remote (an S3 bucket of offsite copies)
 * keeps of one domain's backups: the plan of a remote prune, and how long
 * a policy's copy is locked. Both pure: no clock is read, nothing stored.
 *
 * The plan applies the local prune rule (conf/retention.h) to the
 * backups' start times. A backup still under object lock (retain_until
 * after now) or protected is kept and the rule's walk passes over it, so
 * that no delete is ever tried before it is due. A kept backup whose
 * parent goes is merged: rewritten to stand on its nearest kept ancestor
 * (onto), or, with none below it, to hold the whole disk (a full).
 */
#ifndef VV_CONF_REMOTE_PRUNE_H
#define VV_CONF_REMOTE_PRUNE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/retention.h"

/* One backup in the bucket, as the plan sees it. Strings borrowed. */
struct conf_remote_prune_item {
    const char *id;
    const char *parent_id;   /* NULL for a full */
    int64_t started_s;       /* seconds since the epoch */
    int64_t retain_until_ms; /* locked until then; 0: not locked */
    bool is_protected;
    /* set by conf_remote_prune_plan(): */
    bool keep;
    bool locked;    /* kept because the lock is not due yet */
    bool merge;     /* kept, and its parent goes: rewritten onto its nearest kept ancestor */
    ptrdiff_t onto; /* merge: the index of that ancestor, or -1 (it becomes a full) */
};

/* The index of the item whose id is id among n, or -1. */
ptrdiff_t conf_remote_prune_find(const struct conf_remote_prune_item *items, size_t n,
                                 const char *id);

/*
 * Plans a remote prune of n items under r at now_ms: sets keep, locked,
 * merge and onto of each. Items whose started_s are equal are taken in the
 * order given, the first as the newest (give them newest first). Keep-all options keep everything.
 * Returns 0, -ENOMEM, or -EINVAL (a NULL argument with n > 0, a time gmtime cannot convert).
 */
int conf_remote_prune_plan(const struct conf_retention *r, int64_t now_ms,
                           struct conf_remote_prune_item *items, size_t n);

/*
 * How long (seconds) a policy's copy is locked: the span for which r keeps
 * the newest backup for sure, from the first non-zero option in the order
 * last, hourly, daily, weekly, monthly, yearly: its count times its unit
 * (last: the schedule's period_s; an hour, a day, a week, 30 days, 365
 * days). Keep-all options, or keep_last with no period: lock_days days.
 */
int64_t conf_remote_lock_span(const struct conf_retention *r, int64_t period_s, unsigned lock_days);

#endif
