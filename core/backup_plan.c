/* Planning a backup: the pure choices (backup_plan.h) and what they read. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup_plan.h"
#include "backup_priv.h"
#include "vault/vault.h"
#include "checkpoint.h"
#include "cleanup.h"
#include "db/backup.h"
#include "db/checkpoint.h"
#include "err.h"
#include "log.h"
#include "offsite_adopt.h"
#include "text.h"
#include "virt/virt.h"

/* Whether disk k of a domain can be backed up, and why not. */
static const char *
disk_unfit(const struct conf_disk *k)
{
    if (!conf_disk_is_disk(k))
        return "it is not a disk";
    if (!k->source)
        return "it has no source";
    if (!conf_disk_is_qcow2(k))
        return "it is not qcow2 (checkpoints need qcow2 dirty bitmaps)";
    return NULL;
}

int
backup_plan_select_disks(const struct conf_domain *d, const struct core_backup_request *req,
                         struct backup_plan_disk *ret, size_t max, size_t *ret_n)
{
    size_t n = 0;

    for (size_t i = 0; i < req->n_disks; i++) {
        bool found = false;
        char at[32];

        snprintf(at, sizeof(at), "/disks/%zu", i);
        for (size_t k = 0; k < d->n_disks; k++) {
            if (strcmp(d->disks[k].target, req->disks[i]) != 0)
                continue;
            const char *why = disk_unfit(&d->disks[k]);
            if (why)
                return err_set_pointer(-EINVAL, at, "disk '%s' cannot be backed up: %s",
                                       req->disks[i], why);
            found = true;
        }
        if (!found)
            return err_set_pointer(-EINVAL, at, "the domain has no disk '%s'", req->disks[i]);
        for (size_t j = 0; j < i; j++)
            if (strcmp(req->disks[j], req->disks[i]) == 0)
                return err_set_pointer(-EINVAL, at, "disk '%s' is named twice", req->disks[i]);
    }
    for (size_t k = 0; k < d->n_disks && n < max; k++) {
        bool wanted = !req->disks && !disk_unfit(&d->disks[k]);

        for (size_t i = 0; req->disks && i < req->n_disks; i++)
            wanted |= strcmp(req->disks[i], d->disks[k].target) == 0;
        if (!wanted)
            continue;
        ret[n++] = (struct backup_plan_disk){.target = d->disks[k].target};
    }
    if (n == 0)
        return err_set(-EINVAL, "the domain has no disk that can be backed up (qcow2 disks)");
    *ret_n = n;
    return 0;
}

static const struct backup_plan_checkpoint *
checkpoint_of(const struct backup_plan_catalog *cat, const char *name)
{
    for (size_t i = 0; i < cat->n_checkpoints; i++)
        if (strcmp(cat->checkpoints[i].name, name) == 0)
            return &cat->checkpoints[i];
    return NULL;
}

/*
 * Says whether parent can carry an incremental of disks: it completed, its
 * checkpoint is stored and healthy (ok or redefined) and still in libvirt,
 * and it holds the same disks at the same sizes. Returns 0, or -EBADFD with
 * the reason in the detail.
 */
static int
base_sound(const struct backup_plan_catalog *cat, const struct conf_backup *parent,
           const struct backup_plan_disk *disks, size_t n)
{
    const struct backup_plan_checkpoint *c;

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
    /*
     * The stored checkpoint decides: broken is final, missing means deleted,
     * and orphaned is not the service's (its row was lost and libvirt's copy
     * found again): the service neither vouches for its bitmap nor puts it
     * back when libvirt loses it, so it is no base until adopted, as the
     * reason the reconciler stores with it says.
     */
    c = checkpoint_of(cat, parent->checkpoint);
    if (!c)
        return err_set(-EBADFD, "checkpoint '%s' of backup %s was deleted", parent->checkpoint,
                       parent->id);
    if (c->state == CONF_CHECKPOINT_BROKEN)
        return err_set(-EBADFD, "checkpoint '%s' is broken: %s", c->name,
                       c->reason ? c->reason : "its bitmap cannot be trusted");
    if (!conf_checkpoint_state_healthy(c->state))
        return err_set(-EBADFD, "checkpoint '%s' of backup %s is %s: %s", c->name, parent->id,
                       conf_checkpoint_state_to_string(c->state),
                       c->reason ? c->reason : "adopt it to use it as a base");
    if (cat->libvirt_error < 0)
        return err_set(cat->libvirt_error, "%s",
                       cat->libvirt_detail ? cat->libvirt_detail : "cannot ask libvirt");
    if (!c->in_libvirt)
        return err_set(-EBADFD, "checkpoint '%s' of backup %s is gone from libvirt",
                       parent->checkpoint, parent->id);
    return 0;
}

/*
 * The newest completed backup of the catalog (optionally of one chain, of
 * one checkpoint, of one type), or NULL. With vault, only backups whose
 * images are in the vault count: a chain stands on images.
 */
static const struct conf_backup *
find_backup(const struct backup_plan_catalog *cat, const char *chain, const char *checkpoint,
            const enum conf_backup_type *type, bool vault)
{
    for (size_t i = 0; i < cat->n_backups; i++) {
        const struct conf_backup *b = cat->backups[i];

        if ((chain && strcmp(b->chain_id, chain) != 0) ||
            (checkpoint && (!b->checkpoint || strcmp(b->checkpoint, checkpoint) != 0)) ||
            (type && b->type != *type) || (vault && core_backup_is_client_pull(b)))
            continue;
        return b;
    }
    return NULL;
}

/* Whether the backup req asks for stores images in the vault. */
static bool
request_to_vault(const struct core_backup_request *req)
{
    return req->mode != CONF_BACKUP_MODE_PULL || req->to_vault;
}

int
backup_plan_choose(const struct backup_plan_catalog *cat, const struct core_backup_request *req,
                   const struct backup_plan_disk *disks, size_t n, enum conf_backup_type *ret_type,
                   const struct conf_backup **ret_parent)
{
    static const enum conf_backup_type full = CONF_BACKUP_TYPE_FULL;
    const struct conf_backup *latest, *parent;
    bool automatic = req->type == CONF_BACKUP_TYPE_AUTO;
    bool vault = request_to_vault(req);
    int r;

    if (req->type == CONF_BACKUP_TYPE_FULL) {
        *ret_type = CONF_BACKUP_TYPE_FULL;
        *ret_parent = NULL;
        return 0;
    }
    latest = find_backup(cat, NULL, NULL, NULL, vault);
    if (!latest) {
        if (automatic) {
            *ret_type = CONF_BACKUP_TYPE_FULL;
            *ret_parent = NULL;
            return 0;
        }
        return err_set(-EBADFD, "the domain has no completed backup to count changes from; "
                                "take a full backup first (or use type auto)");
    }

    if (req->type == CONF_BACKUP_TYPE_DIFFERENTIAL) {
        if (req->since)
            parent = find_backup(cat, latest->chain_id, req->since, NULL, vault);
        else
            parent = find_backup(cat, latest->chain_id, NULL, &full, vault);
        if (!parent)
            return err_set(-EBADFD,
                           req->since ? "no completed backup of the current chain created "
                                        "checkpoint '%s'"
                                      : "the current chain has no full backup%s",
                           req->since ? req->since : "");
        r = base_sound(cat, parent, disks, n);
        if (r < 0)
            return r;
        *ret_type = CONF_BACKUP_TYPE_DIFFERENTIAL;
        *ret_parent = parent;
        return 0;
    }

    r = base_sound(cat, latest, disks, n);
    if (r == -EBADFD && automatic) {
        log_info("backup of %s: a full backup instead of an incremental: %s", latest->domain_uuid,
                 err_detail() ? err_detail() : "");
        *ret_type = CONF_BACKUP_TYPE_FULL;
        *ret_parent = NULL;
        return 0;
    }
    if (r < 0)
        return r;
    *ret_type = CONF_BACKUP_TYPE_INCREMENTAL;
    *ret_parent = latest;
    return 0;
}

/* The catalog of domain uuid as planning reads it (catalog_clear frees it). */
struct catalog {
    struct backup_plan_catalog view;
    struct conf_backup **backups;
    struct db_checkpoint *stored;
    struct backup_plan_checkpoint *checkpoints;
    char **names;
    size_t n_names;
    char detail[512];
};

static void
catalog_clear(struct catalog *c)
{
    conf_backup_list_free(c->backups, c->view.n_backups);
    db_checkpoint_list_free(c->stored, c->view.n_checkpoints);
    free(c->checkpoints);
    for (size_t i = 0; i < c->n_names; i++)
        free(c->names[i]);
    free(c->names);
}

/*
 * Reads what planning chooses from: the completed backups and the stored
 * checkpoints of domain uuid, and the checkpoints libvirt has (an error of
 * libvirt's is kept in the catalog: it matters only when a parent is
 * checked).
 */
static int
catalog_load(const char *uuid, struct catalog *c)
{
    static const enum conf_backup_state completed = CONF_BACKUP_STATE_COMPLETED;
    struct db_backup_filter f = {.domain_uuid = uuid, .state = &completed};
    int r;

    r = db_backup_list(backup_ctx.db, &f, &c->backups, &c->view.n_backups, NULL);
    if (r < 0)
        return r;
    c->view.backups = c->backups;
    r = db_checkpoint_list(backup_ctx.db, uuid, &c->stored, &c->view.n_checkpoints);
    if (r < 0)
        return r;
    c->checkpoints = calloc(c->view.n_checkpoints + 1, sizeof(*c->checkpoints));
    if (!c->checkpoints)
        return -ENOMEM;
    c->view.checkpoints = c->checkpoints;
    r = virt_checkpoint_names(uuid, &c->names, &c->n_names);
    if (r < 0) {
        snprintf(c->detail, sizeof(c->detail), "%s", err_detail() ? err_detail() : strerror(-r));
        err_clear();
        c->view.libvirt_error = r;
        c->view.libvirt_detail = c->detail;
    }
    for (size_t i = 0; i < c->view.n_checkpoints; i++) {
        struct backup_plan_checkpoint *k = &c->checkpoints[i];

        k->name = c->stored[i].name;
        k->state = c->stored[i].state;
        k->reason = c->stored[i].reason;
        for (size_t j = 0; j < c->n_names && !k->in_libvirt; j++)
            k->in_libvirt = strcmp(c->names[j], k->name) == 0;
    }
    return 0;
}

/*
 * Picks the parent of an incremental or differential (NULL for a full, else
 * a new copy) and settles the type of an "auto" backup into *type.
 */
static int
plan_parent(const struct conf_domain *d, const struct core_backup_request *req,
            const struct backup_plan_disk *disks, size_t n, enum conf_backup_type *type,
            struct conf_backup **ret_parent, char **ret_note)
{
    _cleanup_(catalog_clear) struct catalog c = {0};
    const struct conf_backup *parent = NULL;
    int r;

    *ret_parent = NULL;
    if (req->type == CONF_BACKUP_TYPE_FULL) {
        *type = CONF_BACKUP_TYPE_FULL;
        return 0;
    }
    /* Puts back into libvirt what it lost, and marks what is broken, before relying on it. */
    r = core_checkpoint_reconcile(d, 0, NULL);
    if (r < 0)
        return r;
    for (bool adopted = false;; adopted = true) {
        r = catalog_load(d->uuid, &c);
        if (r < 0)
            return r;
        r = backup_plan_choose(&c.view, req, disks, n, type, &parent);
        if (r < 0)
            return r;
        /* A domain new to this catalog may take its chain from a remote's bucket
         * (offsite_adopt.h); once adopted, the catalog is read and chosen from again. */
        if (adopted || req->type != CONF_BACKUP_TYPE_AUTO || parent || c.view.n_backups > 0 ||
            !request_to_vault(req))
            break;
        r = offsite_adopt_any(d, disks, n, ret_note);
        if (r <= 0)
            return r;
        catalog_clear(&c);
        c = (struct catalog){0};
    }
    for (size_t i = 0; parent && i < c.view.n_backups; i++)
        if (c.backups[i] == parent)
            *ret_parent = TAKE_PTR(c.backups[i]);
    return 0;
}

int
backup_plan_disks(const struct conf_domain *d, const struct core_backup_request *req,
                  struct backup_plan_disk *ret, size_t max, size_t *ret_n)
{
    int r = backup_plan_select_disks(d, req, ret, max, ret_n);

    for (size_t i = 0; r >= 0 && i < *ret_n; i++)
        r = virt_disk_capacity(d->uuid, ret[i].target, &ret[i].size);
    return r;
}

int
backup_plan(const struct conf_domain *d, const struct core_backup_request *req,
            struct conf_backup **ret, char **ret_note)
{
    _cleanup_(conf_backup_freep) struct conf_backup *b = calloc(1, sizeof(*b));
    _cleanup_(conf_backup_freep) struct conf_backup *parent = NULL;
    struct backup_plan_disk disks[MAX_DISKS];
    enum conf_backup_type type = CONF_BACKUP_TYPE_FULL;
    char id[17];
    size_t n = 0;
    int r;

    if (!b)
        return -ENOMEM;
    r = backup_plan_disks(d, req, disks, MAX_DISKS, &n);
    if (r < 0)
        return r;
    *ret_note = NULL;
    r = plan_parent(d, req, disks, n, &type, &parent, ret_note);
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
    if (!d->xml)
        return err_set(-EINVAL,
                       "planning needs the domain's definition (virt_domain_get_definition)");
    if (!(b->domain_xml = strdup(d->xml)))
        return -ENOMEM;
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
                !(k->backing = strdup(backup_base_name(parent->disks[p].file))))
                return -ENOMEM;
    }
    *ret = TAKE_PTR(b);
    return 0;
}
