/* Planning a backup (see backup_priv.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup_priv.h"
#include "checkpoint.h"
#include "cleanup.h"
#include "db/backup.h"
#include "err.h"
#include "log.h"
#include "text.h"
#include "virt/virt.h"

/* Whether disk k of a domain can be backed up, and why not. */
static const char *
disk_unfit(const struct conf_disk *k)
{
    if (!k->device || strcmp(k->device, "disk") != 0)
        return "it is not a disk";
    if (!k->source)
        return "it has no source";
    if (!k->format || strcmp(k->format, "qcow2") != 0)
        return "it is not qcow2 (checkpoints need qcow2 dirty bitmaps)";
    return NULL;
}

/* The disks of the plan, in the domain's order, with their sizes. */
struct plan_disk {
    const char *target;
    uint64_t size;
};

static int
plan_disks(const struct conf_domain *d, const struct core_backup_request *req,
           struct plan_disk *ret, size_t *ret_n)
{
    size_t n = 0;
    int r;

    for (size_t i = 0; i < req->n_disks; i++) {
        bool found = false;
        for (size_t k = 0; k < d->n_disks; k++) {
            if (strcmp(d->disks[k].target, req->disks[i]) != 0)
                continue;
            const char *why = disk_unfit(&d->disks[k]);
            if (why)
                return err_set(-EINVAL, "disk '%s' cannot be backed up: %s", req->disks[i], why);
            found = true;
        }
        if (!found)
            return err_set(-EINVAL, "the domain has no disk '%s'", req->disks[i]);
        for (size_t j = 0; j < i; j++)
            if (strcmp(req->disks[j], req->disks[i]) == 0)
                return err_set(-EINVAL, "disk '%s' is named twice", req->disks[i]);
    }
    for (size_t k = 0; k < d->n_disks && n < MAX_DISKS; k++) {
        bool wanted = !req->disks && !disk_unfit(&d->disks[k]);

        for (size_t i = 0; req->disks && i < req->n_disks; i++)
            wanted |= strcmp(req->disks[i], d->disks[k].target) == 0;
        if (!wanted)
            continue;
        ret[n].target = d->disks[k].target;
        r = virt_disk_capacity(d->uuid, d->disks[k].target, &ret[n].size);
        if (r < 0)
            return r;
        n++;
    }
    if (n == 0)
        return err_set(-EINVAL, "the domain has no disk that can be backed up (qcow2 disks)");
    *ret_n = n;
    return 0;
}

/*
 * Says whether parent can carry an incremental of disks: it completed, its
 * checkpoint is still in libvirt and it holds the same disks at the same
 * sizes. Returns 0, or -EBADFD with the reason in the detail.
 */
static int
base_sound(const char *uuid, const struct conf_backup *parent, const struct plan_disk *disks,
           size_t n)
{
    int r;

    if (!parent->checkpoint)
        return err_set(-EBADFD, "backup %s created no checkpoint", parent->id);
    if (parent->n_disks != n)
        return err_set(-EBADFD, "the disks changed since backup %s", parent->id);
    for (size_t i = 0; i < n; i++) {
        bool same = false;
        for (size_t k = 0; k < parent->n_disks; k++)
            if (strcmp(parent->disks[k].target, disks[i].target) == 0 &&
                parent->disks[k].size == disks[i].size)
                same = true;
        if (!same)
            return err_set(-EBADFD, "disk '%s' is new or changed size since backup %s",
                           disks[i].target, parent->id);
    }
    /* The stored checkpoint decides: broken is final, missing means deleted. */
    r = core_checkpoint_usable(uuid, parent->checkpoint);
    if (r == -ENOENT)
        return err_set(-EBADFD, "checkpoint '%s' of backup %s was deleted", parent->checkpoint,
                       parent->id);
    if (r < 0)
        return r;
    r = virt_checkpoint_exists(uuid, parent->checkpoint);
    if (r < 0)
        return r;
    if (r == 0)
        return err_set(-EBADFD, "checkpoint '%s' of backup %s is gone from libvirt",
                       parent->checkpoint, parent->id);
    return 0;
}

static const enum conf_backup_state completed = CONF_BACKUP_STATE_COMPLETED;
static const enum conf_backup_type full = CONF_BACKUP_TYPE_FULL;

/*
 * The newest completed backup of the domain (optionally of one chain, of
 * one checkpoint). With vault, only backups whose images are in the vault
 * count: a chain stands on images.
 */
static int
find_backup(const char *uuid, const char *chain, const char *checkpoint,
            const enum conf_backup_type *type, bool vault, struct conf_backup **ret)
{
    struct db_backup_filter f = {.domain_uuid = uuid,
                                 .state = &completed,
                                 .chain_id = chain,
                                 .checkpoint = checkpoint,
                                 .type = type};
    struct conf_backup **list = NULL;
    size_t n = 0;
    int r;

    r = db_backup_list(backup_ctx.db, &f, &list, &n, NULL);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        if (vault && core_backup_is_client_pull(list[i]))
            continue;
        *ret = TAKE_PTR(list[i]);
        conf_backup_list_free(list, n);
        return 0;
    }
    conf_backup_list_free(list, n);
    return -ENOENT;
}

/* Whether the backup req asks for stores images in the vault. */
static bool
request_to_vault(const struct core_backup_request *req)
{
    return req->mode != CONF_BACKUP_MODE_PULL || req->to_vault;
}

/*
 * Picks the parent of an incremental or differential (NULL for a full) and
 * settles the type of an "auto" backup into *type.
 */
static int
plan_parent(const char *uuid, const struct core_backup_request *req, const struct plan_disk *disks,
            size_t n, enum conf_backup_type *type, struct conf_backup **ret_parent)
{
    _cleanup_(conf_backup_freep) struct conf_backup *latest = NULL;
    _cleanup_(conf_backup_freep) struct conf_backup *parent = NULL;
    bool automatic = req->type == CONF_BACKUP_TYPE_AUTO;
    int r;

    *ret_parent = NULL;
    if (req->type == CONF_BACKUP_TYPE_FULL) {
        *type = CONF_BACKUP_TYPE_FULL;
        return 0;
    }
    /* Puts back into libvirt what it lost, and marks what is broken, before relying on it. */
    r = core_checkpoint_reconcile(uuid, 0, NULL);
    if (r < 0)
        return r;
    r = find_backup(uuid, NULL, NULL, NULL, request_to_vault(req), &latest);
    if (r == -ENOENT) {
        if (automatic) {
            *type = CONF_BACKUP_TYPE_FULL;
            return 0;
        }
        return err_set(-EBADFD, "the domain has no completed backup to count changes from; "
                                "take a full backup first (or use type auto)");
    }
    if (r < 0)
        return r;

    if (req->type == CONF_BACKUP_TYPE_DIFFERENTIAL) {
        if (req->since)
            r = find_backup(uuid, latest->chain_id, req->since, NULL, request_to_vault(req),
                            &parent);
        else
            r = find_backup(uuid, latest->chain_id, NULL, &full, request_to_vault(req), &parent);
        if (r == -ENOENT)
            return err_set(-EBADFD,
                           req->since ? "no completed backup of the current chain created "
                                        "checkpoint '%s'"
                                      : "the current chain has no full backup%s",
                           req->since ? req->since : "");
        if (r < 0)
            return r;
        r = base_sound(uuid, parent, disks, n);
        if (r < 0)
            return r;
        *type = CONF_BACKUP_TYPE_DIFFERENTIAL;
        *ret_parent = TAKE_PTR(parent);
        return 0;
    }

    r = base_sound(uuid, latest, disks, n);
    if (r == -EBADFD && automatic) {
        log_info("backup of %s: a full backup instead of an incremental: %s", uuid,
                 err_detail() ? err_detail() : "");
        *type = CONF_BACKUP_TYPE_FULL;
        return 0;
    }
    if (r < 0)
        return r;
    *type = CONF_BACKUP_TYPE_INCREMENTAL;
    *ret_parent = TAKE_PTR(latest);
    return 0;
}

/* The basename of a relative vault path (borrowed, inside rel). */
static const char *
base_name(const char *rel)
{
    const char *slash = strrchr(rel, '/');

    return slash ? slash + 1 : rel;
}

int
backup_plan(const struct conf_domain *d, const struct core_backup_request *req,
            struct conf_backup **ret)
{
    _cleanup_(conf_backup_freep) struct conf_backup *b = calloc(1, sizeof(*b));
    _cleanup_(conf_backup_freep) struct conf_backup *parent = NULL;
    struct plan_disk disks[MAX_DISKS];
    enum conf_backup_type type = CONF_BACKUP_TYPE_FULL;
    char id[17];
    size_t n = 0;
    int r;

    if (!b)
        return -ENOMEM;
    r = plan_disks(d, req, disks, &n);
    if (r < 0)
        return r;
    r = plan_parent(d->uuid, req, disks, n, &type, &parent);
    if (r < 0)
        return r;
    r = text_random_hex(id, sizeof(id), 8);
    if (r < 0)
        return r;

    b->verify_ok = -1;
    b->mode = req->mode;
    b->type = type;
    b->state = CONF_BACKUP_STATE_RUNNING;
    b->started_at = text_now_ms();
    if (!(b->id = strdup(id)) || !(b->domain_uuid = strdup(d->uuid)) ||
        !(b->domain_name = strdup(d->name)) ||
        !(b->chain_id = strdup(parent ? parent->chain_id : id)) ||
        (parent && !(b->parent_id = strdup(parent->id))) ||
        (parent && !(b->base_checkpoint = strdup(parent->checkpoint))) ||
        asprintf(&b->checkpoint, "vv-%s", id) < 0)
        return -ENOMEM;
    r = virt_domain_xml(d->uuid, &b->domain_xml);
    if (r < 0)
        return r;
    b->disks = calloc(n, sizeof(*b->disks));
    if (!b->disks)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        struct conf_backup_disk *k = &b->disks[b->n_disks++];

        k->size = disks[i].size;
        if (!(k->target = strdup(disks[i].target)))
            return -ENOMEM;
        if (!request_to_vault(req)) {
            /* Read by a client: nothing of it goes into the vault. */
            if (!(k->file = strdup("")))
                return -ENOMEM;
            continue;
        }
        r = vault_image_path(b->domain_uuid, b->chain_id, b->id, k->target, &k->file);
        if (r < 0)
            return r;
        for (size_t p = 0; parent && p < parent->n_disks; p++)
            if (strcmp(parent->disks[p].target, k->target) == 0 &&
                !(k->backing = strdup(base_name(parent->disks[p].file))))
                return -ENOMEM;
    }
    *ret = TAKE_PTR(b);
    return 0;
}
