/*
 * Chains that survive a move (see offsite_adopt.h): the choice of a chain
 * from a bucket's manifests (pure), and its adoption: checkpoints stored and
 * redefined through the reconciler, backups entered as offsite only, or
 * nothing left when the disks' bitmaps do not bear the chain out.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup_priv.h"
#include "busy.h"
#include "checkpoint.h"
#include "cleanup.h"
#include "core.h"
#include "db/backup.h"
#include "db/checkpoint.h"
#include "err.h"
#include "log.h"
#include "offsite.h"
#include "offsite_adopt.h"
#include "virt/virt.h"

/* The index of the backup id of domain uuid in list, or -1. */
static ssize_t
manifest_index(struct conf_manifest *const *list, size_t n, const char *uuid, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i]->b->domain_uuid, uuid) == 0 && strcmp(list[i]->b->id, id) == 0)
            return (ssize_t)i;
    return -1;
}

/* Whether a is newer than b (started later; the greater id on a tie). */
static bool
newer(const struct conf_backup *a, const struct conf_backup *b)
{
    return a->started_at != b->started_at ? a->started_at > b->started_at
                                          : strcmp(a->id, b->id) > 0;
}

/* Whether backup b holds disk target, at size when size is not 0. */
static bool
holds_disk(const struct conf_backup *b, const char *target, uint64_t size)
{
    for (size_t i = 0; i < b->n_disks; i++)
        if (strcmp(b->disks[i].target, target) == 0)
            return !size || b->disks[i].size == size;
    return false;
}

/*
 * Walks the lineage of list[tip] back to its full into idx (oldest first)
 * and checks it as offsite_adopt_choose() says. -EBADFD with the reason.
 */
static int
lineage(struct conf_manifest *const *list, size_t n, size_t tip,
        const struct backup_plan_disk *disks, size_t n_disks, size_t *idx, size_t max,
        size_t *ret_n)
{
    const struct conf_backup *t = list[tip]->b;
    size_t k = 0;
    ssize_t at = (ssize_t)tip;

    if (t->n_disks != n_disks)
        return err_set(-EBADFD,
                       "backup %s in the bucket holds %zu disks, the domain's backup takes %zu",
                       t->id, t->n_disks, n_disks);
    for (size_t d = 0; d < n_disks; d++)
        if (!holds_disk(t, disks[d].target, disks[d].size))
            return err_set(-EBADFD,
                           "disk %s (%llu bytes) of the domain does not match backup %s in "
                           "the bucket (a disk added, removed or resized since)",
                           disks[d].target, (unsigned long long)disks[d].size, t->id);
    while (at >= 0) {
        const struct conf_manifest *m = list[at];
        const struct conf_backup *b = m->b;

        if (k >= max)
            return err_set(-EBADFD, "the chain of backup %s is longer than %zu", t->id, max);
        if (b->state != CONF_BACKUP_STATE_COMPLETED)
            return err_set(-EBADFD, "backup %s in the bucket is not completed", b->id);
        if (!b->checkpoint || !m->checkpoint_xml)
            return err_set(-EBADFD, "backup %s in the bucket carries no checkpoint XML to redefine",
                           b->id);
        for (size_t d = 0; d < n_disks; d++)
            if (!holds_disk(b, disks[d].target, 0))
                return err_set(-EBADFD, "backup %s in the bucket lacks disk %s", b->id,
                               disks[d].target);
        idx[k++] = (size_t)at;
        if (!b->parent_id) {
            if (b->type != CONF_BACKUP_TYPE_FULL)
                return err_set(-EBADFD, "backup %s in the bucket has no parent but is no full",
                               b->id);
            break;
        }
        at = manifest_index(list, n, b->domain_uuid, b->parent_id);
        if (at < 0)
            return err_set(-EBADFD, "the bucket lacks backup %s, the parent of backup %s",
                           b->parent_id, b->id);
    }
    for (size_t i = 0; i < k / 2; i++) {
        size_t x = idx[i];
        idx[i] = idx[k - 1 - i];
        idx[k - 1 - i] = x;
    }
    *ret_n = k;
    return 0;
}

int
offsite_adopt_choose(struct conf_manifest *const *list, size_t n, const char *uuid,
                     const struct backup_plan_disk *disks, size_t n_disks, size_t *ret_idx,
                     size_t max, size_t *ret_n)
{
    _cleanup_free_ bool *tried = calloc(n + 1, sizeof(*tried));
    char first[512] = "";
    bool any = false;

    if (!tried)
        return -ENOMEM;
    for (;;) {
        ssize_t tip = -1;
        int r;

        /* The newest backup of a chain not tried yet is that chain's tip. */
        for (size_t i = 0; i < n; i++) {
            if (tried[i] || strcmp(list[i]->b->domain_uuid, uuid) != 0)
                continue;
            if (tip < 0 || newer(list[i]->b, list[tip]->b))
                tip = (ssize_t)i;
        }
        if (tip < 0)
            break;
        any = true;
        for (size_t i = 0; i < n; i++)
            if (strcmp(list[i]->b->chain_id, list[tip]->b->chain_id) == 0)
                tried[i] = true;
        r = lineage(list, n, (size_t)tip, disks, n_disks, ret_idx, max, ret_n);
        if (r != -EBADFD)
            return r;
        if (!first[0])
            snprintf(first, sizeof(first), "%s", err_detail() ? err_detail() : "unusable");
        err_clear();
    }
    if (!any)
        return err_set(-ENOENT, "the bucket holds no backup of domain %s", uuid);
    return err_set(-EBADFD, "%s", first);
}

void
offsite_adoption_clear(struct offsite_adoption *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++) {
        free(a->backups[i]);
        free(a->checkpoints[i]);
    }
    free(a->backups);
    free(a->checkpoints);
    free(a->remote);
    free(a->chain_id);
    *a = (struct offsite_adoption){0};
}

/* The manifests of a listing (conf_manifest_free each). */
struct listing {
    struct conf_manifest **items;
    size_t n;
};

static void
listing_clear(struct listing *l)
{
    conf_manifest_list_free(l->items, l->n);
}

/*
 * Takes back what an adoption stored (the first n of the chain, newest
 * first): its backup rows, its checkpoints in libvirt (metadata only: the
 * bitmaps are the disks') and in the store, except those stored before.
 */
static void
undo(const struct conf_domain *d, struct conf_manifest *const *chain, size_t n,
     const bool *stored_before, const bool *promoted, size_t n_backups)
{
    struct err_state saved;

    err_save(&saved);
    for (size_t i = n_backups; i-- > 0;)
        (void)db_backup_delete(core_db(), chain[i]->b->id);
    for (size_t i = n; i-- > 0;) {
        const char *name = chain[i]->b->checkpoint;
        if (promoted[i])
            (void)db_checkpoint_set_state(core_db(), d->uuid, name, CONF_CHECKPOINT_ORPHANED,
                                          "found in libvirt but not created through virtvault: "
                                          "adopt it to have it redefined when lost and to use "
                                          "it as a base");
        if (stored_before[i])
            continue;
        (void)virt_checkpoint_delete(d->uuid, name, VIRT_CHECKPOINT_DELETE_METADATA_ONLY);
        (void)db_checkpoint_delete(core_db(), d->uuid, name);
    }
    err_restore(&saved);
}

/*
 * Stores the checkpoint of chain member m (state ok) unless the store has it
 * (*stored_before); one the store holds as orphaned becomes ok (*promoted).
 */
static int
store_checkpoint(const struct conf_domain *d, const struct conf_manifest *m, const char *remote,
                 bool *stored_before, bool *promoted)
{
    _cleanup_(conf_checkpoint_def_freep) struct conf_checkpoint_def *def = NULL;
    _cleanup_(db_checkpoint_freep) struct db_checkpoint *have = NULL;
    struct db_checkpoint row = {0};
    char why[256];
    int r;

    r = db_checkpoint_get(core_db(), d->uuid, m->b->checkpoint, &have);
    if (r == 0) {
        *stored_before = true;
        if (have->state != CONF_CHECKPOINT_ORPHANED)
            return 0;
        /* libvirt kept it (the reconciler stored it as not ours): the manifest says it is. */
        *promoted = true;
        snprintf(why, sizeof(why), "adopted from remote '%s' (backup %s)", remote, m->b->id);
        return db_checkpoint_set_state(core_db(), d->uuid, have->name, CONF_CHECKPOINT_OK, why);
    }
    if (r != -ENOENT)
        return r;
    err_clear();
    r = virt_checkpoint_parse(m->checkpoint_xml, &def);
    if (r < 0)
        return err_set(-EBADFD, "backup %s in the bucket: its checkpoint XML cannot be read",
                       m->b->id);
    if (strcmp(def->name, m->b->checkpoint) != 0)
        return err_set(-EBADFD, "backup %s in the bucket: its checkpoint XML names '%s', not '%s'",
                       m->b->id, def->name, m->b->checkpoint);
    snprintf(why, sizeof(why), "adopted from remote '%s' (backup %s)", remote, m->b->id);
    snprintf(row.domain_uuid, sizeof(row.domain_uuid), "%s", d->uuid);
    row.name = def->name;
    row.parent = def->parent;
    row.xml = def->xml;
    row.created = def->created;
    row.state = CONF_CHECKPOINT_OK;
    row.reason = why;
    return db_checkpoint_put(core_db(), &row);
}

/*
 * Checks after the reconciler ran that checkpoint name of d is healthy and
 * in libvirt (names: libvirt's). -EBADFD with the reason when not.
 */
static int
checkpoint_sound(const struct conf_domain *d, const char *name, char *const *names, size_t n_names)
{
    _cleanup_(db_checkpoint_freep) struct db_checkpoint *c = NULL;
    bool in_libvirt = false;
    int r;

    r = db_checkpoint_get(core_db(), d->uuid, name, &c);
    if (r < 0)
        return err_set(-EBADFD, "checkpoint '%s' was not kept", name);
    for (size_t i = 0; i < n_names && !in_libvirt; i++)
        in_libvirt = strcmp(names[i], name) == 0;
    if (!conf_checkpoint_state_healthy(c->state))
        return err_set(-EBADFD, "checkpoint '%s' does not match the disks: %s", name,
                       c->reason ? c->reason : conf_checkpoint_state_to_string(c->state));
    if (!in_libvirt)
        return err_set(-EBADFD, "libvirt did not take checkpoint '%s' back", name);
    return 0;
}

/* Enters chain member m into the local catalog as a completed, offsite-only backup. */
static int
insert_backup(struct conf_manifest *m, const char *remote)
{
    struct conf_backup *b = m->b;

    free(b->location);
    if (!(b->location = strdup(remote)))
        return -ENOMEM;
    free(b->job_id);
    b->job_id = NULL;
    b->state = CONF_BACKUP_STATE_COMPLETED;
    b->is_protected = false;
    return db_backup_insert(core_db(), b);
}

/* Fills *ret from the adopted chain (n members, oldest first). */
static int
adoption_fill(struct conf_manifest *const *chain, size_t n, const char *remote,
              struct offsite_adoption *ret)
{
    struct offsite_adoption a = {0};

    a.backups = calloc(n + 1, sizeof(*a.backups));
    a.checkpoints = calloc(n + 1, sizeof(*a.checkpoints));
    a.remote = strdup(remote);
    a.chain_id = strdup(chain[n - 1]->b->chain_id);
    if (!a.backups || !a.checkpoints || !a.remote || !a.chain_id) {
        offsite_adoption_clear(&a);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        a.backups[i] = strdup(chain[i]->b->id);
        a.checkpoints[i] = strdup(chain[i]->b->checkpoint);
        a.n++;
        if (!a.backups[i] || !a.checkpoints[i]) {
            offsite_adoption_clear(&a);
            return -ENOMEM;
        }
    }
    *ret = a;
    return 0;
}

int
offsite_adopt(const struct conf_domain *d, const char *remote, const struct backup_plan_disk *disks,
              size_t n, struct offsite_adoption *ret)
{
    _cleanup_(listing_clear) struct listing l = {0};
    _cleanup_free_ size_t *idx = calloc(MAX_CHAIN, sizeof(*idx));
    _cleanup_free_ struct conf_manifest **chain = NULL;
    _cleanup_free_ bool *before = NULL, *promoted = NULL;
    char **names = NULL;
    size_t k = 0, n_names = 0, inserted = 0;
    int r;

    if (!idx)
        return -ENOMEM;
    r = core_offsite_list(remote, d->uuid, NULL, &l.items, &l.n);
    if (r < 0)
        return r;
    r = offsite_adopt_choose(l.items, l.n, d->uuid, disks, n, idx, MAX_CHAIN, &k);
    if (r < 0)
        return r;
    chain = calloc(k + 1, sizeof(*chain));
    before = calloc(k + 1, sizeof(*before));
    promoted = calloc(k + 1, sizeof(*promoted));
    if (!chain || !before || !promoted)
        return -ENOMEM;
    for (size_t i = 0; i < k; i++)
        chain[i] = l.items[idx[i]];

    /* Parents first: the store orders by creation time, the reconciler redefines in that order. */
    for (size_t i = 0; r >= 0 && i < k; i++)
        r = store_checkpoint(d, chain[i], remote, &before[i], &promoted[i]);
    if (r >= 0)
        r = core_checkpoint_reconcile(d, 0, NULL);
    if (r >= 0)
        r = virt_checkpoint_names(d->uuid, &names, &n_names);
    for (size_t i = 0; r >= 0 && i < k; i++)
        r = checkpoint_sound(d, chain[i]->b->checkpoint, names, n_names);
    for (size_t i = 0; i < n_names; i++)
        free(names[i]);
    free(names);
    for (size_t i = 0; r >= 0 && i < k; i++) {
        r = insert_backup(chain[i], remote);
        if (r >= 0)
            inserted++;
    }
    if (r >= 0)
        r = adoption_fill(chain, k, remote, ret);
    if (r < 0) {
        undo(d, chain, k, before, promoted, inserted);
        return r;
    }
    log_info("domain %s adopted chain %s (%zu backups, newest %s) from remote %s", d->name,
             chain[k - 1]->b->chain_id, k, chain[k - 1]->b->id, remote);
    return 0;
}

int
offsite_adopt_any(const struct conf_domain *d, const struct backup_plan_disk *disks, size_t n,
                  char **ret_note)
{
    struct conf_remote *remotes = NULL;
    size_t n_remotes = 0;
    _cleanup_free_ char *note = NULL;
    int r;

    *ret_note = NULL;
    r = core_remote_list(&remotes, &n_remotes);
    if (r < 0) {
        err_clear();
        return r == -ENOMEM ? r : 0;
    }
    for (size_t i = 0; i < n_remotes; i++) {
        struct offsite_adoption a = {0};
        char *more;

        r = offsite_adopt(d, remotes[i].name, disks, n, &a);
        if (r == 0) {
            offsite_adoption_clear(&a);
            conf_remote_list_free(remotes, n_remotes);
            return 1;
        }
        if (r == -ENOMEM)
            break;
        if (r != -ENOENT) {
            /* A remote that holds nothing of the domain says nothing. */
            if (asprintf(&more, "%s%sremote '%s': %s", note ? note : "", note ? "; " : "",
                         remotes[i].name, err_detail() ? err_detail() : strerror(-r)) < 0) {
                r = -ENOMEM;
                break;
            }
            free(note);
            note = more;
        }
        err_clear();
        r = 0;
    }
    conf_remote_list_free(remotes, n_remotes);
    if (r == -ENOMEM)
        return r;
    if (note) {
        char *full = NULL;
        if (asprintf(&full, "a full backup: no chain of the domain adopted from a remote (%s)",
                     note) < 0)
            return -ENOMEM;
        *ret_note = full;
    }
    return 0;
}

int
core_checkpoints_adopt(const char *domain, const char *remote, struct offsite_adoption *ret)
{
    static const enum conf_backup_state completed = CONF_BACKUP_STATE_COMPLETED;
    _cleanup_(conf_domain_freep) struct conf_domain *d = NULL;
    _cleanup_claim_ const char *claimed = NULL;
    struct core_backup_request req = {.type = CONF_BACKUP_TYPE_AUTO};
    struct backup_plan_disk disks[MAX_DISKS];
    struct db_backup_filter f = {.state = &completed, .limit = 1};
    struct conf_backup **have = NULL;
    struct conf_remote rem = {0};
    size_t n = 0, n_have = 0, total = 0;
    int r;

    r = core_remote_get(remote, &rem);
    conf_remote_clear(&rem);
    if (r == -ENOENT)
        return err_set_pointer(-ENOENT, "/remote", "no remote '%.64s'", remote);
    if (r < 0)
        return r;
    r = virt_domain_get(domain, &d);
    if (r < 0)
        return r;
    r = core_busy_claim_scoped(d->uuid, "checkpoint adoption", &claimed);
    if (r < 0)
        return r;
    f.domain_uuid = d->uuid;
    r = db_backup_list(core_db(), &f, &have, &n_have, &total);
    conf_backup_list_free(have, n_have);
    if (r < 0)
        return r;
    if (total > 0)
        return err_set(-EBADFD,
                       "the local catalog holds %zu completed backups of domain '%s': its "
                       "chains are this host's own, none is adopted",
                       total, d->name);
    r = backup_plan_disks(d, &req, disks, MAX_DISKS, &n);
    if (r < 0)
        return r;
    return offsite_adopt(d, remote, disks, n, ret);
}
