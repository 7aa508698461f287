/*
 * core/reconcile.h - what checkpoint.c and reconcile.c share inside core/.
 *
 * Checkpoint work on one domain is serialised by a per-domain lock (short
 * waits: a reconcile, a create), separate from the busy claims of busy.h
 * (which refuse, for long jobs). Lock order: claim first, then the lock.
 */
#ifndef VV_CORE_RECONCILE_H
#define VV_CORE_RECONCILE_H

#include <stdbool.h>
#include <stdint.h>

#include "checkpoint.h"
#include "cleanup.h"

/* Takes the checkpoint lock of the domain, waiting for it. Returns uuid. */
const char *checkpoint_lock(const char *uuid);
void checkpoint_unlock(const char *uuid);

static inline void
checkpoint_unlockp(const char **uuid)
{
    if (*uuid)
        checkpoint_unlock(*uuid);
}
#define _cleanup_checkpoint_lock_ __attribute__((cleanup(checkpoint_unlockp), unused))

/*
 * A reconcile flag of core/ only (beside the CORE_RECONCILE_* ones): compare
 * names and parents with libvirt and redefine what it lacks, without
 * checking every bitmap (libvirt's size query costs a QEMU transaction per
 * checkpoint). What reads queue when the last reconcile grew old; events,
 * writes, backups and clients asking for a reconcile check everything.
 */
#define RECONCILE_NAMES_ONLY (1u << 16)

/*
 * The reconciler proper, with the domain's checkpoint lock held. rep is
 * filled with what was done (it may already hold actions). Returns 0 or a
 * negative errno; a failure of one checkpoint is an action, not an error.
 */
int reconcile_locked(const struct conf_domain *dom, unsigned flags,
                     struct core_reconcile_report *rep);

/*
 * Readers coalesce: a reader that arrived at asked_ns (text_mono_ns()) need
 * not reconcile again when a full reconcile of the domain that started after
 * it arrived has succeeded meanwhile, since that one saw a libvirt at least
 * as recent as the reader's.
 */
bool reconcile_fresh_since(const char *uuid, uint64_t asked_ns);

/*
 * What the last successful reconcile of a domain saw, for readers that
 * answer from the store: when it started (text_mono_ns(); 0 when the domain
 * has not been reconciled since the process started), and whether it left
 * the stored checkpoint name missing from libvirt. Any lock may be held.
 */
uint64_t reconcile_last(const char *uuid);
bool reconcile_left_absent(const char *uuid, const char *name);

/* Changes whenever what a reconcile saw of any domain changes. */
uint64_t reconcile_views_version(void);

/*
 * Asks the worker to reconcile the domain soon (coalesced with what it has
 * queued): RECONCILE_NAMES_ONLY, unless a full reconcile that was due could
 * not run (the domain was busy, or it failed); then a full one.
 */
void reconcile_queue(const char *uuid);

/* Records one action in rep (detail may be NULL). Returns 0 or -ENOMEM. */
int report_add(struct core_reconcile_report *rep, const char *checkpoint, const char *action,
               const char *detail);

/* Frees the actions of rep (not rep itself) and empties it. */
void reconcile_report_clear(struct core_reconcile_report *rep);

#endif
