/*
 * core/offsite_adopt.h - chains that survive a move: a domain that appears
 * on a host (same UUID) with the dirty bitmaps of its checkpoints in its
 * images but without their metadata (migrated, or its host rebuilt with an
 * empty database) gets its checkpoints back from the manifests in a
 * remote's bucket, so that its next incremental counts from them.
 *
 * Adopting a chain: its checkpoints are stored from the manifests'
 * checkpoint XML, parents first, and the reconciler redefines them in
 * libvirt, validated against the disks' bitmaps (core/checkpoint.h); then
 * the chain's backups enter the local catalog as completed and "offsite
 * only" (conf_backup.location = the remote: their images are in its bucket
 * alone). A chain whose disks or bitmaps do not match is never adopted:
 * what was stored for it goes again.
 *
 * The next backup's images name the parent's file as its manifest records
 * it for a backing file (created without opening it); copied to the same
 * remote it uploads only itself, and a restore from the bucket downloads
 * the whole chain (core/offsite_restore.c).
 */
#ifndef VV_CORE_OFFSITE_ADOPT_H
#define VV_CORE_OFFSITE_ADOPT_H

#include <stddef.h>

#include "backup_plan.h"
#include "conf/domain.h"
#include "conf/remote.h"

/*
 * Chooses the chain of domain uuid to adopt from a bucket's manifests
 * (list, n of them, any order; borrowed): chains are tried newest first
 * (by their newest backup), and the first is taken whose lineage from its
 * newest backup back to its full is complete in list, made of completed
 * backups that each created a checkpoint whose XML the manifest carries,
 * each holding every disk of disks, and whose newest backup holds exactly
 * disks (n_disks targets, each at the same size). Fills ret_idx with
 * indexes into list, oldest (the full) first, at most max of them, and
 * *ret_n. Pure: reads nothing else.
 *
 * -ENOENT with a detail when list holds no backup of uuid; -EBADFD with
 * the reason the newest chain cannot be used when none can.
 */
int offsite_adopt_choose(struct conf_manifest *const *list, size_t n, const char *uuid,
                         const struct backup_plan_disk *disks, size_t n_disks, size_t *ret_idx,
                         size_t max, size_t *ret_n);

/* What an adoption took into the local catalog. */
struct offsite_adoption {
    char *remote;
    char *chain_id;
    char **backups;     /* ids, oldest first */
    char **checkpoints; /* their checkpoints, in the same order */
    size_t n;
};

/* Frees the members of a (not a). Accepts NULL. */
void offsite_adoption_clear(struct offsite_adoption *a);

/*
 * Adopts for domain d (borrowed; the caller holds its busy claim or plans
 * its backup) the chain offsite_adopt_choose() picks from remote's bucket
 * for disks (n of them), as the header says. *ret (offsite_adoption_clear)
 * says what was adopted. -ENOENT / -EBADFD with a detail as
 * offsite_adopt_choose() says or when the bitmaps do not match (nothing
 * is left of the attempt); errors of the bucket with their detail.
 */
int offsite_adopt(const struct conf_domain *d, const char *remote,
                  const struct backup_plan_disk *disks, size_t n, struct offsite_adoption *ret);

/*
 * For an auto backup of d that found no completed backup in the local
 * catalog: tries every remote (by name) until one adoption succeeds.
 * Returns 1 when a chain was adopted, 0 when none was; then *ret_note is a
 * new string saying why (NULL when no remote holds a backup of d). Errors
 * only for lack of memory: a remote that cannot be read is a note.
 */
int offsite_adopt_any(const struct conf_domain *d, const struct backup_plan_disk *disks, size_t n,
                      char **ret_note);

/*
 * The route's adoption: domain (name or UUID) adopts the chain of remote
 * (every qcow2 disk of the domain), under the domain's busy claim. -ENOENT
 * naming /remote for no such remote; -EBADFD when the local catalog holds
 * completed backups of the domain already.
 */
int core_checkpoints_adopt(const char *domain, const char *remote, struct offsite_adoption *ret);

#endif
