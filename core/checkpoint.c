/* Checkpoint use cases: list, get, create, delete, reconcile; see checkpoint.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "busy.h"
#include "cleanup.h"
#include "core.h"
#include "db/checkpoint.h"
#include "err.h"
#include "log.h"
#include "reconcile.h"
#include "text.h"
#include "virt/virt.h"

void
core_checkpoint_free(struct core_checkpoint *c)
{
    if (!c)
        return;
    conf_checkpoint_def_free(c->def);
    free(c->reason);
    free(c);
}

void
core_checkpoint_list_free(struct core_checkpoint *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++) {
        conf_checkpoint_def_free(list[i].def);
        free(list[i].reason);
    }
    free(list);
}

struct stored {
    struct db_checkpoint *items;
    size_t n;
};

static void
stored_clear(struct stored *s)
{
    db_checkpoint_list_free(s->items, s->n);
}

/* A libvirt job (a backup or migration started elsewhere) makes the domain busy too. */
static int
refuse_libvirt_job(const struct conf_domain *dom)
{
    char what[64];
    int r = virt_domain_job_active(dom->uuid, what, sizeof(what));

    if (r < 0)
        return r;
    if (r > 0)
        return err_set(-EBUSY, "the domain is busy with %s run by libvirt", what);
    return 0;
}

static bool
domain_active(const struct conf_domain *dom)
{
    return conf_domain_state_active(dom->state);
}

/* Reconciles for a reader, unless another operation holds the domain (it reconciles itself). */
static int
reconcile_if_free(const struct conf_domain *dom, uint64_t asked_ns)
{
    struct core_reconcile_report rep = {0};
    char holder[96];
    int r;

    if (core_busy_holder(dom->uuid, holder, sizeof(holder)))
        return 0;
    /* Many readers of one domain at once: one reconcile serves all that waited for it. */
    if (reconcile_fresh_since(dom->uuid, asked_ns))
        return 0;
    r = reconcile_locked(dom, 0, &rep);
    reconcile_report_clear(&rep);
    return r;
}

static ssize_t
find_name(const struct stored *s, const char *name)
{
    for (size_t i = 0; name && i < s->n; i++)
        if (strcmp(s->items[i].name, name) == 0)
            return (ssize_t)i;
    return -1;
}

static bool
has_children(const struct stored *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->items[i].parent && strcmp(s->items[i].parent, name) == 0)
            return true;
    return false;
}

/*
 * The stored XML without its <domain> element, or NULL when it has none: the
 * domain definition is most of the text and a listing needs none of it, so
 * parsing without it is several times cheaper. Returns a new string.
 */
static char *
without_domain(const char *xml)
{
    const char *start = xml, *end;
    char *out;

    while ((start = strstr(start, "<domain"))) {
        if (start[7] == ' ' || start[7] == '>' || start[7] == '\n' || start[7] == '\t')
            break;
        start += 7; /* "<domaincheckpoint" */
    }
    end = start ? strstr(start, "</domain>") : NULL;
    if (!end)
        return NULL;
    end += strlen("</domain>");
    out = malloc(strlen(xml) - (size_t)(end - start) + 1);
    if (!out)
        return NULL;
    memcpy(out, xml, (size_t)(start - xml));
    strcpy(out + (start - xml), end);
    return out;
}

/*
 * Turns a stored row into a core_checkpoint (into *out, which is zeroed first).
 * brief: for a listing, which never shows the checkpoint's XML (def->xml is then partial).
 */
static int
from_row(const struct db_checkpoint *row, bool in_libvirt, bool brief, struct core_checkpoint *out)
{
    _cleanup_free_ char *trimmed = brief ? without_domain(row->xml) : NULL;
    struct conf_checkpoint_def *def = NULL;
    int r;

    memset(out, 0, sizeof(*out));
    r = virt_checkpoint_parse(trimmed ? trimmed : row->xml, &def);
    if (r < 0)
        return r;
    out->def = def;
    snprintf(out->domain_uuid, sizeof(out->domain_uuid), "%s", row->domain_uuid);
    out->state = row->state;
    out->in_libvirt = in_libvirt;
    out->created = row->created;
    out->stored = row->stored;
    if (row->reason) {
        out->reason = strdup(row->reason);
        if (!out->reason)
            return -ENOMEM;
    }
    return 0;
}

/* The names libvirt knows now, as a stored-order flag array (names only: no XML). */
static int
libvirt_presence(const char *uuid, const struct stored *s, bool **ret)
{
    char **names = NULL;
    size_t n = 0;
    bool *present;
    int r;

    r = virt_checkpoint_names(uuid, &names, &n);
    if (r < 0)
        return r;
    present = calloc(s->n + 1, sizeof(bool));
    for (size_t i = 0; i < n; i++) {
        ssize_t k = present ? find_name(s, names[i]) : -1;
        if (k >= 0)
            present[k] = true;
        free(names[i]);
    }
    free(names);
    if (!present)
        return -ENOMEM;
    *ret = present;
    return 0;
}

static int
by_list_key(const void *a, const void *b, void *ctx)
{
    const struct stored *s = ctx;
    const struct db_checkpoint *x = &s->items[*(const size_t *)a];
    const struct db_checkpoint *y = &s->items[*(const size_t *)b];

    if (x->created != y->created)
        return x->created < y->created ? -1 : 1;
    if (x->stored != y->stored)
        return x->stored < y->stored ? -1 : 1;
    return strcmp(x->name, y->name);
}

/*
 * Orders s by (created, stored, name) into order[]: a key that no insert
 * changes, so that a list can be paged by it; parents come first, as a
 * checkpoint is made and stored after its parent.
 */
static void
list_order(const struct stored *s, size_t *order)
{
    for (size_t i = 0; i < s->n; i++)
        order[i] = i;
    qsort_r(order, s->n, sizeof(*order), by_list_key, (void *)s);
}

/* Whether the stored checkpoint is in libvirt, as the last reconcile saw, or now. */
static bool
in_libvirt(const char *uuid, const struct stored *s, const bool *present, size_t i)
{
    return present ? present[i] : !reconcile_left_absent(uuid, s->items[i].name);
}

static int
build_list(const struct core_checkpoint_catalog *cat, unsigned filter, struct core_checkpoint **ret,
           size_t *ret_n)
{
    _cleanup_(stored_clear) struct stored s = {0};
    _cleanup_free_ bool *present = NULL;
    _cleanup_free_ size_t *order = NULL;
    const char *uuid = cat->domain.uuid;
    struct core_checkpoint *list;
    size_t n = 0;
    int r;

    r = db_checkpoint_list(core_db(), uuid, &s.items, &s.n);
    if (r < 0)
        return r;
    if (cat->version == 0) { /* never reconciled (it was busy): ask libvirt */
        r = libvirt_presence(uuid, &s, &present);
        if (r < 0)
            return r;
    }
    order = calloc(s.n + 1, sizeof(*order));
    list = calloc(s.n + 1, sizeof(*list));
    if (!order || !list) {
        free(list);
        return -ENOMEM;
    }
    list_order(&s, order);
    for (size_t i = 0; i < s.n; i++) {
        const struct db_checkpoint *row = &s.items[order[i]];

        bool root = find_name(&s, row->parent) < 0;
        bool leaf = !has_children(&s, row->name);

        if (((filter & CORE_CHECKPOINT_LIST_ROOTS) && !root) ||
            ((filter & CORE_CHECKPOINT_LIST_NO_ROOTS) && root) ||
            ((filter & CORE_CHECKPOINT_LIST_LEAVES) && !leaf) ||
            ((filter & CORE_CHECKPOINT_LIST_NO_LEAVES) && leaf))
            continue;
        r = from_row(row, in_libvirt(uuid, &s, present, order[i]), true, &list[n]);
        n++;
        if (r < 0) {
            core_checkpoint_list_free(list, n);
            return r;
        }
    }
    *ret = list;
    *ret_n = n;
    return 0;
}

static uint64_t max_age_ns; /* set once, before the threads start */

void
core_checkpoint_set_max_age(unsigned seconds)
{
    max_age_ns = (uint64_t)seconds * 1000000000u;
}

/*
 * Readers answer from the store. A domain not compared with libvirt since
 * the process started (or when the reader asks, or with a max age of 0) is
 * reconciled first, unless an operation holds it; one compared longer ago
 * than the max age is queued for the worker and answered as it is.
 */
static int
prepare_read(const struct conf_domain_ref *ref, unsigned flags)
{
    _cleanup_(conf_domain_freep) struct conf_domain *dom = NULL;
    uint64_t asked = text_mono_ns(), last = reconcile_last(ref->uuid);
    int r;

    if (last && max_age_ns && !(flags & CORE_CHECKPOINT_READ_REFRESH)) {
        if (last < asked && asked - last >= max_age_ns)
            reconcile_queue(ref->uuid);
        return 0;
    }
    r = virt_domain_get(ref->uuid, &dom);
    if (r < 0)
        return r;
    _cleanup_checkpoint_lock_ const char *locked = checkpoint_lock(dom->uuid);
    return reconcile_if_free(dom, asked);
}

int
core_checkpoint_catalog_open(const char *domain, unsigned flags,
                             struct core_checkpoint_catalog *ret)
{
    struct core_checkpoint_catalog cat = {0};
    int r;

    r = virt_domain_resolve(domain, &cat.domain);
    if (r < 0)
        return r;
    r = prepare_read(&cat.domain, flags);
    if (r < 0)
        return r;
    /* Read before the rows are: a change after this makes what is built from them stale. */
    if (reconcile_last(cat.domain.uuid))
        cat.version = db_checkpoint_version() + reconcile_views_version();
    *ret = cat;
    return 0;
}

int
core_checkpoint_list(const struct core_checkpoint_catalog *cat, unsigned filter,
                     struct core_checkpoint **ret, size_t *ret_n)
{
    return build_list(cat, filter, ret, ret_n);
}

/* Builds the answer for one stored checkpoint, with sizes from libvirt where it has them. */
static int
describe(const struct conf_domain_ref *dom, const char *name, struct core_checkpoint **ret)
{
    _cleanup_(db_checkpoint_freep) struct db_checkpoint *row = NULL;
    _cleanup_(core_checkpoint_freep) struct core_checkpoint *c = NULL;
    _cleanup_(conf_checkpoint_def_freep) struct conf_checkpoint_def *live = NULL;
    int r;

    r = db_checkpoint_get(core_db(), dom->uuid, name, &row);
    if (r == -ENOENT)
        return err_set(-ENOENT, "domain '%s' has no checkpoint '%s'", dom->name, name);
    if (r < 0)
        return r;
    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    r = virt_checkpoint_get(dom->uuid, name, true, &live);
    if (r < 0 && r != -ENOENT) {
        if (r == -ENOTCONN || r == -ENOMEM)
            return r;
        log_debug("no sizes for checkpoint '%s': %s", name, err_detail() ? err_detail() : "");
    }
    r = from_row(row, live != NULL, false, c);
    if (r < 0)
        return r;
    for (size_t i = 0; live && i < c->def->n_disks; i++)
        for (size_t k = 0; k < live->n_disks; k++)
            if (strcmp(c->def->disks[i].target, live->disks[k].target) == 0)
                c->def->disks[i].size_bytes = live->disks[k].size_bytes;
    *ret = TAKE_PTR(c);
    return 0;
}

int
core_checkpoint_get(const char *domain, const char *name, unsigned flags,
                    struct core_checkpoint **ret)
{
    struct conf_domain_ref ref;
    int r;

    r = virt_domain_resolve(domain, &ref);
    if (r < 0)
        return r;
    r = prepare_read(&ref, flags);
    if (r < 0)
        return r;
    return describe(&ref, name, ret);
}

/* Checks the disks a request names against the domain's. */
static int
check_disks(const struct conf_domain *dom, const struct core_checkpoint_request *req)
{
    for (size_t i = 0; req->disks && i < req->n_disks; i++) {
        const struct conf_disk *disk = NULL;
        char at[32];

        snprintf(at, sizeof(at), "/disks/%zu", i);
        for (size_t k = 0; k < i; k++)
            if (strcmp(req->disks[k], req->disks[i]) == 0)
                return err_set_pointer(-EINVAL, at, "disk '%s' is named twice", req->disks[i]);
        for (size_t k = 0; k < dom->n_disks && !disk; k++)
            if (strcmp(dom->disks[k].target, req->disks[i]) == 0)
                disk = &dom->disks[k];
        if (!disk)
            return err_set_pointer(-EINVAL, at, "domain '%s' has no disk '%s'", dom->name,
                                   req->disks[i]);
        if (disk->device && !conf_disk_is_disk(disk))
            return err_set_pointer(-EINVAL, at,
                                   "'%s' is a %s, not a disk: it cannot take part in a "
                                   "checkpoint",
                                   req->disks[i], disk->device);
        if (disk->format && !conf_disk_is_qcow2(disk))
            return err_set_pointer(-EINVAL, at,
                                   "disk '%s' is %s: checkpoints need dirty bitmaps, which only "
                                   "qcow2 images hold",
                                   req->disks[i], disk->format);
    }
    return 0;
}

int
core_checkpoint_create(const char *domain, const struct core_checkpoint_request *req,
                       struct core_checkpoint **ret)
{
    _cleanup_(conf_domain_freep) struct conf_domain *dom = NULL;
    _cleanup_(conf_checkpoint_def_freep) struct conf_checkpoint_def *made = NULL;
    _cleanup_(db_checkpoint_freep) struct db_checkpoint *existing = NULL;
    _cleanup_claim_ const char *claimed = NULL;
    struct core_reconcile_report rep = {0};
    char generated[NAME_MAX_LEN + 1];
    const char *name = req->name;
    int r;

    r = virt_domain_get(domain, &dom);
    if (r < 0)
        return r;
    r = check_disks(dom, req);
    if (r < 0)
        return r;
    r = core_busy_claim_scoped(dom->uuid, "checkpoint create", &claimed);
    if (r < 0)
        return r;
    _cleanup_checkpoint_lock_ const char *locked = checkpoint_lock(dom->uuid);
    if (!domain_active(dom))
        return err_set(-EBADFD,
                       "domain '%s' is not running (%s): libvirt creates checkpoints "
                       "only for running domains",
                       dom->name, conf_domain_state_to_string(dom->state));
    r = refuse_libvirt_job(dom);
    if (r < 0)
        return r;
    /* The new checkpoint's parent is libvirt's newest one: make libvirt whole first. */
    r = reconcile_locked(dom, 0, &rep);
    reconcile_report_clear(&rep);
    if (r < 0)
        return r;
    if (!name) {
        r = text_generated_name(generated, sizeof(generated), "cp");
        if (r < 0)
            return r;
        name = generated;
    }
    r = db_checkpoint_get(core_db(), dom->uuid, name, &existing);
    if (r == 0)
        return err_set(-EEXIST, "domain '%s' has a checkpoint '%s' already", dom->name, name);
    if (r != -ENOENT)
        return r;

    struct virt_checkpoint_spec spec = {
        .name = name,
        .description = req->description,
        .disks = req->disks,
        .n_disks = req->n_disks,
    };
    r = virt_checkpoint_create(dom->uuid, &spec, &made);
    if (r < 0)
        return r;
    r = core_checkpoint_store_created(dom->uuid, made->xml);
    if (r < 0) {
        char why[512];

        /* Stored in the same step or not at all: take it back from libvirt. */
        snprintf(why, sizeof(why), "%s", err_detail() ? err_detail() : "cannot store it");
        if (virt_checkpoint_delete(dom->uuid, name, 0) < 0)
            log_warn("checkpoint '%s' of '%s' could not be stored nor removed again: %s", name,
                     dom->name, err_detail() ? err_detail() : "");
        return err_set(r, "%s", why);
    }
    log_info("created checkpoint '%s' of domain '%s'", name, dom->name);
    struct conf_domain_ref ref;
    snprintf(ref.uuid, sizeof(ref.uuid), "%s", dom->uuid);
    text_copy_utf8(ref.name, sizeof(ref.name), dom->name);
    return describe(&ref, name, ret);
}

/* Adds the stored descendants of s->items[i] to doomed[]. */
static void
mark_descendants(const struct stored *s, size_t i, bool *doomed)
{
    doomed[i] = true;
    for (size_t k = 0; k < s->n; k++)
        if (!doomed[k] && s->items[k].parent && strcmp(s->items[k].parent, s->items[i].name) == 0)
            mark_descendants(s, k, doomed);
}

int
core_checkpoint_delete(const char *domain, const char *name, unsigned flags)
{
    _cleanup_(conf_domain_freep) struct conf_domain *dom = NULL;
    _cleanup_(stored_clear) struct stored s = {0};
    _cleanup_free_ bool *doomed = NULL;
    _cleanup_claim_ const char *claimed = NULL;
    struct core_reconcile_report rep = {0};
    unsigned vflags = 0;
    ssize_t idx;
    int r;

    r = virt_domain_get(domain, &dom);
    if (r < 0)
        return r;
    r = core_busy_claim_scoped(dom->uuid, "checkpoint delete", &claimed);
    if (r < 0)
        return r;
    _cleanup_checkpoint_lock_ const char *locked = checkpoint_lock(dom->uuid);
    r = refuse_libvirt_job(dom);
    if (r < 0)
        return r;
    r = reconcile_locked(dom, 0, &rep);
    reconcile_report_clear(&rep);
    if (r < 0)
        return r;
    r = db_checkpoint_list(core_db(), dom->uuid, &s.items, &s.n);
    if (r < 0)
        return r;
    idx = find_name(&s, name);
    if (idx < 0)
        return err_set(-ENOENT, "domain '%s' has no checkpoint '%s'", dom->name, name);
    doomed = calloc(s.n + 1, sizeof(bool));
    if (!doomed)
        return -ENOMEM;
    if (flags & CORE_CHECKPOINT_DELETE_CHILDREN)
        mark_descendants(&s, (size_t)idx, doomed);
    doomed[idx] = true;

    if (flags & CORE_CHECKPOINT_DELETE_CHILDREN)
        vflags |= VIRT_CHECKPOINT_DELETE_CHILDREN;
    if (flags & CORE_CHECKPOINT_DELETE_METADATA_ONLY)
        vflags |= VIRT_CHECKPOINT_DELETE_METADATA_ONLY;
    r = virt_checkpoint_delete(dom->uuid, name, vflags);
    if (r == -ENOENT) {
        /* libvirt cannot take it back now (say, a stopped domain): only the store has it. */
        if (!(flags & CORE_CHECKPOINT_DELETE_CHILDREN) && has_children(&s, name))
            return err_set(-EBADFD,
                           "libvirt does not know checkpoint '%s' now, so its bitmap cannot be "
                           "merged into its children's: delete it when the domain runs, or "
                           "with children=true",
                           name);
    } else if (r < 0 && r != -ENOTCONN && !(vflags & VIRT_CHECKPOINT_DELETE_METADATA_ONLY) &&
               s.items[idx].state == CONF_CHECKPOINT_BROKEN) {
        log_warn("checkpoint '%s' of '%s' is broken and libvirt cannot remove its bitmap (%s): "
                 "deleting its metadata only",
                 name, dom->name, err_detail() ? err_detail() : "");
        r = virt_checkpoint_delete(dom->uuid, name, vflags | VIRT_CHECKPOINT_DELETE_METADATA_ONLY);
        if (r < 0)
            return r;
    } else if (r == -EOPNOTSUPP && !domain_active(dom)) {
        return err_set(-EBADFD,
                       "domain '%s' is not running (%s): libvirt merges checkpoint bitmaps only "
                       "for running domains; metadata_only=true forgets the checkpoint and "
                       "leaves its bitmaps in the images",
                       dom->name, conf_domain_state_to_string(dom->state));
    } else if (r < 0) {
        return r;
    }

    for (size_t i = 0; i < s.n; i++) {
        if (!doomed[i])
            continue;
        r = db_checkpoint_delete(core_db(), dom->uuid, s.items[i].name);
        if (r < 0 && r != -ENOENT)
            return r;
    }
    log_info("deleted checkpoint '%s' of domain '%s'%s%s", name, dom->name,
             flags & CORE_CHECKPOINT_DELETE_CHILDREN ? " with its children" : "",
             flags & CORE_CHECKPOINT_DELETE_METADATA_ONLY ? " (metadata only)" : "");
    /* libvirt gave the children of a deleted checkpoint a new parent: store that. */
    r = reconcile_locked(dom, 0, &rep);
    reconcile_report_clear(&rep);
    return r;
}

int
core_checkpoint_reconcile_now(const char *domain, unsigned flags,
                              struct core_reconcile_report **ret)
{
    _cleanup_(conf_domain_freep) struct conf_domain *dom = NULL;
    _cleanup_(core_reconcile_report_freep) struct core_reconcile_report *rep = NULL;
    _cleanup_claim_ const char *claimed = NULL;
    int r;

    r = virt_domain_get(domain, &dom);
    if (r < 0)
        return r;
    r = core_busy_claim_scoped(dom->uuid, "checkpoint reconcile", &claimed);
    if (r < 0)
        return r;
    _cleanup_checkpoint_lock_ const char *locked = checkpoint_lock(dom->uuid);
    rep = calloc(1, sizeof(*rep));
    if (!rep)
        return -ENOMEM;
    r = reconcile_locked(dom, flags, rep);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(rep);
    return 0;
}

int
core_checkpoint_reconcile(const struct conf_domain *dom, unsigned flags,
                          struct core_reconcile_report **ret)
{
    _cleanup_(core_reconcile_report_freep) struct core_reconcile_report *rep = NULL;
    int r;

    _cleanup_checkpoint_lock_ const char *locked = checkpoint_lock(dom->uuid);
    rep = calloc(1, sizeof(*rep));
    if (!rep)
        return -ENOMEM;
    r = reconcile_locked(dom, flags, rep);
    if (r < 0)
        return r;
    if (ret)
        *ret = TAKE_PTR(rep);
    return 0;
}

int
core_checkpoint_store_created(const char *domain_uuid, const char *xml)
{
    _cleanup_(conf_checkpoint_def_freep) struct conf_checkpoint_def *def = NULL;
    struct db_checkpoint row = {0};
    int r;

    r = virt_checkpoint_parse(xml, &def);
    if (r < 0)
        return r;
    snprintf(row.domain_uuid, sizeof(row.domain_uuid), "%s", domain_uuid);
    row.state = CONF_CHECKPOINT_OK;
    row.name = def->name;
    row.parent = def->parent;
    row.xml = def->xml;
    row.created = def->created;
    return db_checkpoint_put(core_db(), &row);
}

int
core_checkpoint_newest_healthy(const char *domain_uuid, char **ret)
{
    _cleanup_(stored_clear) struct stored s = {0};
    const struct db_checkpoint *best = NULL;
    char *name;
    int r;

    r = db_checkpoint_list(core_db(), domain_uuid, &s.items, &s.n);
    if (r < 0)
        return r;
    for (size_t i = 0; i < s.n; i++) {
        const struct db_checkpoint *c = &s.items[i];
        if (conf_checkpoint_state_healthy(c->state))
            best = c; /* ordered by creation time: the last one wins */
    }
    if (!best)
        return err_set(-ENOENT, "the domain has no healthy checkpoint");
    name = strdup(best->name);
    if (!name)
        return -ENOMEM;
    *ret = name;
    return 0;
}
