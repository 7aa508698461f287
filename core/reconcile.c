/*
 * The checkpoint reconciler: compares what SQLite holds with what libvirt
 * knows for one domain and brings libvirt back in line (see checkpoint.h),
 * plus the worker thread that runs it for libvirt's events.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busy.h"
#include "cleanup.h"
#include "core.h"
#include "db/checkpoint.h"
#include "err.h"
#include "log.h"
#include "reconcile.h"
#include "text.h"
#include "virt/virt.h"
#include "webhook.h"

#define LOCKS_MAX  64
#define QUEUE_MAX  256
#define REASON_MAX 1024

/* ---- per-domain checkpoint locks ---- */

static pthread_mutex_t locks_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t locks_cond = PTHREAD_COND_INITIALIZER;
static char locks[LOCKS_MAX][37];

/*
 * What the last successful reconcile of each domain saw: when it started and
 * which stored checkpoints it left missing from libvirt (usually none).
 * Readers answer from the store and these views without asking libvirt.
 * A chained hash by UUID, guarded by views_mutex; a view is kept for as long
 * as the process runs (one per domain ever reconciled: small).
 */
#define VIEW_BUCKETS 1024

struct view {
    struct view *next;
    char uuid[37];
    uint64_t started_ns; /* the last successful reconcile, full or names only */
    uint64_t full_ns;    /* the last successful full one */
    bool needs_full;     /* a full one was asked for and could not run (busy, failed) */
    char **absent;
    size_t n_absent;
    bool queued; /* reconcile_queue() asked the worker for it, and it has not finished yet */
};

static pthread_mutex_t views_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct view *views[VIEW_BUCKETS];
static atomic_uint_fast64_t views_version = 1;

static struct view *
view_find(const char *uuid)
{
    for (struct view *v = views[text_hash(uuid) % VIEW_BUCKETS]; v; v = v->next)
        if (strcmp(v->uuid, uuid) == 0)
            return v;
    return NULL;
}

static struct view *
view_add(const char *uuid)
{
    struct view *v = calloc(1, sizeof(*v));
    size_t b = text_hash(uuid) % VIEW_BUCKETS;

    if (!v)
        return NULL;
    snprintf(v->uuid, sizeof(v->uuid), "%s", uuid);
    v->next = views[b];
    views[b] = v;
    return v;
}

static void
names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static bool
same_names(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return true;
}

/* Records a successful reconcile of uuid that started at started_ns; takes absent[]. */
static void
note_reconciled(const char *uuid, uint64_t started_ns, bool full, char **absent, size_t n_absent)
{
    struct view *v;

    pthread_mutex_lock(&views_mutex);
    v = view_find(uuid);
    if (!v)
        v = view_add(uuid);
    if (!v || started_ns < v->started_ns) { /* out of memory, or a newer one is recorded */
        pthread_mutex_unlock(&views_mutex);
        names_free(absent, n_absent);
        return;
    }
    if (v->started_ns == 0 || !same_names(v->absent, v->n_absent, absent, n_absent))
        atomic_fetch_add(&views_version, 1);
    names_free(v->absent, v->n_absent);
    v->absent = absent;
    v->n_absent = n_absent;
    v->started_ns = started_ns;
    if (full) {
        v->full_ns = started_ns;
        v->needs_full = false;
    }
    pthread_mutex_unlock(&views_mutex);
}

/* A full reconcile of uuid was due and did not happen: the next one readers ask for is full. */
static void
note_full_missed(const char *uuid)
{
    struct view *v;

    pthread_mutex_lock(&views_mutex);
    v = view_find(uuid);
    if (!v)
        v = view_add(uuid);
    if (v)
        v->needs_full = true;
    pthread_mutex_unlock(&views_mutex);
}

bool
reconcile_fresh_since(const char *uuid, uint64_t asked_ns)
{
    const struct view *v;
    bool fresh = false;

    pthread_mutex_lock(&views_mutex);
    v = view_find(uuid);
    if (v)
        fresh = v->full_ns > asked_ns;
    pthread_mutex_unlock(&views_mutex);
    return fresh;
}

uint64_t
reconcile_last(const char *uuid)
{
    const struct view *v;
    uint64_t started = 0;

    pthread_mutex_lock(&views_mutex);
    v = view_find(uuid);
    if (v)
        started = v->started_ns;
    pthread_mutex_unlock(&views_mutex);
    return started;
}

bool
reconcile_left_absent(const char *uuid, const char *name)
{
    const struct view *v;
    bool absent = false;

    pthread_mutex_lock(&views_mutex);
    v = view_find(uuid);
    for (size_t i = 0; v && i < v->n_absent && !absent; i++)
        absent = strcmp(v->absent[i], name) == 0;
    pthread_mutex_unlock(&views_mutex);
    return absent;
}

uint64_t
reconcile_views_version(void)
{
    return atomic_load(&views_version);
}

/* What reconcile_queue() asked for uuid (NULL: for every domain) is done or covered. */
static void
unqueue(const char *uuid)
{
    struct view *v;

    pthread_mutex_lock(&views_mutex);
    if (uuid && (v = view_find(uuid)))
        v->queued = false;
    for (size_t i = 0; !uuid && i < VIEW_BUCKETS; i++)
        for (v = views[i]; v; v = v->next)
            v->queued = false;
    pthread_mutex_unlock(&views_mutex);
}

static bool
lock_held(const char *uuid)
{
    for (size_t i = 0; i < LOCKS_MAX; i++)
        if (strcmp(locks[i], uuid) == 0)
            return true;
    return false;
}

const char *
checkpoint_lock(const char *uuid)
{
    pthread_mutex_lock(&locks_mutex);
    for (;;) {
        if (!lock_held(uuid)) {
            for (size_t i = 0; i < LOCKS_MAX; i++) {
                if (locks[i][0] == '\0') {
                    snprintf(locks[i], sizeof(locks[i]), "%s", uuid);
                    pthread_mutex_unlock(&locks_mutex);
                    return uuid;
                }
            }
        }
        pthread_cond_wait(&locks_cond, &locks_mutex);
    }
}

void
checkpoint_unlock(const char *uuid)
{
    pthread_mutex_lock(&locks_mutex);
    for (size_t i = 0; i < LOCKS_MAX; i++)
        if (strcmp(locks[i], uuid) == 0)
            locks[i][0] = '\0';
    pthread_cond_broadcast(&locks_cond);
    pthread_mutex_unlock(&locks_mutex);
}

/* ---- reports ---- */

int
report_add(struct core_reconcile_report *rep, const char *checkpoint, const char *action,
           const char *detail)
{
    struct core_reconcile_action *grown, *a;

    grown = realloc(rep->actions, (rep->n_actions + 1) * sizeof(*grown));
    if (!grown)
        return -ENOMEM;
    rep->actions = grown;
    a = &rep->actions[rep->n_actions];
    a->action = action;
    a->checkpoint = strdup(checkpoint);
    a->detail = detail ? strdup(detail) : NULL;
    if (!a->checkpoint || (detail && !a->detail)) {
        free(a->checkpoint);
        free(a->detail);
        return -ENOMEM;
    }
    rep->n_actions++;
    return 0;
}

void
reconcile_report_clear(struct core_reconcile_report *rep)
{
    for (size_t i = 0; i < rep->n_actions; i++) {
        free(rep->actions[i].checkpoint);
        free(rep->actions[i].detail);
    }
    free(rep->actions);
    rep->actions = NULL;
    rep->n_actions = 0;
}

void
core_reconcile_report_free(struct core_reconcile_report *r)
{
    if (!r)
        return;
    reconcile_report_clear(r);
    free(r);
}

/* ---- the reconciler ---- */

/* Errors after which going on with other checkpoints makes no sense. */
static bool
fatal(int r)
{
    return r == -ENOTCONN || r == -ENOMEM;
}

struct stored_list {
    struct db_checkpoint *items;
    size_t n;
    bool *in_libvirt; /* per item: libvirt knows it now */
    bool *forgotten;  /* per item: an orphan removed from the store (forget_orphan) */
};

static void
stored_list_clear(struct stored_list *s)
{
    db_checkpoint_list_free(s->items, s->n);
    free(s->in_libvirt);
    free(s->forgotten);
}

struct libvirt_list {
    struct conf_checkpoint_def *items;
    size_t n;
};

static void
libvirt_list_clear(struct libvirt_list *l)
{
    conf_checkpoint_def_list_free(l->items, l->n);
}

static ssize_t
stored_find(const struct stored_list *s, const char *name)
{
    for (size_t i = 0; name && i < s->n; i++)
        if (strcmp(s->items[i].name, name) == 0)
            return (ssize_t)i;
    return -1;
}

static bool
is_state(const struct db_checkpoint *c, enum conf_checkpoint_state state)
{
    return c->state == state;
}

static bool
same_text(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* 'name', or none when name is NULL; written into buf. */
static const char *
quoted(char *buf, size_t size, const char *name)
{
    if (name)
        snprintf(buf, size, "'%s'", name);
    else
        snprintf(buf, size, "none");
    return buf;
}

/* Marks c broken for why, in the store and in rep (once). */
static int
mark_broken(const struct conf_domain *dom, struct db_checkpoint *c, const char *why,
            struct core_reconcile_report *rep)
{
    int r;

    if (is_state(c, CONF_CHECKPOINT_BROKEN))
        return 0;
    r = db_checkpoint_set_state(core_db(), dom->uuid, c->name, CONF_CHECKPOINT_BROKEN, why);
    if (r < 0)
        return r;
    c->state = CONF_CHECKPOINT_BROKEN;
    log_warn("checkpoint '%s' of domain '%s' is broken: %s", c->name, dom->name, why);
    core_webhook_emit_checkpoint_broken(dom->name, dom->uuid, c->name, why);
    return report_add(rep, c->name, "broken", why);
}

static const struct conf_checkpoint_def *
libvirt_find(const struct libvirt_list *lv, const char *name)
{
    for (size_t i = 0; name && i < lv->n; i++)
        if (strcmp(lv->items[i].name, name) == 0)
            return &lv->items[i];
    return NULL;
}

/*
 * When libvirt loses a checkpoint's metadata it gives the children another
 * parent. True when that is why libvirt's parent of c differs from the
 * stored one: the stored parent is one the store holds and libvirt lacks
 * (it is about to be redefined, and c linked back to it).
 */
static bool
parent_was_lost(const struct stored_list *st, const struct libvirt_list *lv,
                const struct db_checkpoint *c)
{
    const struct conf_checkpoint_def *v = libvirt_find(lv, c->name);

    return v && c->parent && !same_text(v->parent, c->parent) && stored_find(st, c->parent) >= 0 &&
           !libvirt_find(lv, c->parent);
}

/*
 * Step 1: every checkpoint libvirt has is stored; stored copies follow the
 * changes libvirt makes (a deleted checkpoint's children get its parent),
 * except the new parents it gives when metadata was lost.
 */
static int
store_from_libvirt(const struct conf_domain *dom, const struct libvirt_list *lv,
                   const struct stored_list *st, struct core_reconcile_report *rep)
{
    for (size_t i = 0; i < lv->n; i++) {
        const struct conf_checkpoint_def *v = &lv->items[i];
        ssize_t k = stored_find(st, v->name);
        struct db_checkpoint row = {
            .name = v->name,
            .parent = v->parent,
            .xml = v->xml,
            .created = v->created,
        };
        int r;

        snprintf(row.domain_uuid, sizeof(row.domain_uuid), "%s", dom->uuid);
        if (k < 0) {
            row.state = CONF_CHECKPOINT_ORPHANED;
            row.reason = (char *)"found in libvirt but not created through virtvault: adopt it to "
                                 "have it redefined when lost and to use it as a base";
            r = db_checkpoint_put(core_db(), &row);
            if (r >= 0)
                r = report_add(rep, v->name, "recorded", row.reason);
        } else {
            const struct db_checkpoint *s = &st->items[k];
            char detail[512];

            if (strcmp(s->xml, v->xml) == 0 || parent_was_lost(st, lv, s))
                continue;
            row.state = s->state;
            row.reason = s->reason;
            r = db_checkpoint_put(core_db(), &row);
            if (r >= 0 && !same_text(s->parent, v->parent)) {
                char now[160], was[160];

                snprintf(detail, sizeof(detail), "libvirt now gives it the parent %s (was %s)",
                         quoted(now, sizeof(now), v->parent), quoted(was, sizeof(was), s->parent));
                r = report_add(rep, v->name, "updated", detail);
            }
        }
        if (r < 0)
            return r;
    }
    return 0;
}

/*
 * True when a checkpoint the service keeps (not orphaned) descends from the
 * stored checkpoint name: then name is needed in libvirt as their ancestor.
 */
static bool
ancestor_of_kept(const struct stored_list *st, const char *name, size_t depth)
{
    if (depth > st->n)
        return false; /* a loop of parents */
    for (size_t i = 0; i < st->n; i++) {
        const struct db_checkpoint *c = &st->items[i];

        if (!c->parent || strcmp(c->parent, name) != 0)
            continue;
        if (!is_state(c, CONF_CHECKPOINT_ORPHANED) || ancestor_of_kept(st, c->name, depth + 1))
            return true;
    }
    return false;
}

/*
 * An orphaned checkpoint was never the service's: when the tool that made it
 * removes it, putting it back would undo that tool's work. It is forgotten,
 * unless a checkpoint the service keeps descends from it.
 */
static int
forget_orphan(const struct conf_domain *dom, const struct db_checkpoint *c, bool *forgotten,
              struct core_reconcile_report *rep)
{
    int r = db_checkpoint_delete(core_db(), dom->uuid, c->name);

    if (r < 0 && r != -ENOENT)
        return r;
    *forgotten = true;
    return report_add(rep, c->name, "forgotten",
                      "orphaned (not created through virtvault) and gone from libvirt: forgotten, "
                      "not redefined");
}

static int
redefine_one(const struct conf_domain *dom, const struct virt_checkpoint_caps *caps,
             struct stored_list *st, size_t i, struct core_reconcile_report *rep)
{
    struct db_checkpoint *c = &st->items[i];
    bool *in_libvirt = &st->in_libvirt[i];
    bool broken = is_state(c, CONF_CHECKPOINT_BROKEN);
    bool validate = caps->validate && !broken;
    char why[REASON_MAX], when[32];
    int r;

    if (is_state(c, CONF_CHECKPOINT_ORPHANED) && !ancestor_of_kept(st, c->name, 0))
        return forget_orphan(dom, c, &st->forgotten[i], rep);
    r = virt_checkpoint_redefine(dom->uuid, c->xml, validate);
    if (r == -EBADFD && validate) {
        snprintf(why, sizeof(why), "its bitmaps failed validation when it was redefined: %s",
                 err_detail() ? err_detail() : "inconsistent");
        r = mark_broken(dom, c, why, rep);
        if (r < 0)
            return r;
        /* Put it back without validation all the same, so that its children can follow. */
        r = virt_checkpoint_redefine(dom->uuid, c->xml, false);
        if (r == 0)
            *in_libvirt = true;
        return fatal(r) ? r : 0;
    }
    if (fatal(r))
        return r;
    if (r == -EOPNOTSUPP || r == -EBADFD)
        return report_add(rep, c->name, "pending", err_detail());
    if (r < 0)
        return report_add(rep, c->name, "failed", err_detail());
    *in_libvirt = true;

    text_time_now_rfc3339(when, sizeof(when), false);
    snprintf(why, sizeof(why), "libvirt had lost it; redefined from the stored XML at %s (%s)",
             when,
             validate       ? "validated against the disks' bitmaps"
             : broken       ? "not validated: it is broken"
             : caps->active ? "not validated: this driver cannot validate bitmaps"
                            : "not validated: the domain is not running");
    if (!broken && !is_state(c, CONF_CHECKPOINT_ORPHANED)) {
        r = db_checkpoint_set_state(core_db(), dom->uuid, c->name, CONF_CHECKPOINT_REDEFINED, why);
        if (r < 0)
            return r;
        c->state = CONF_CHECKPOINT_REDEFINED;
    }
    log_info("checkpoint '%s' of domain '%s': %s", c->name, dom->name, why);
    return report_add(rep, c->name, "redefined", why);
}

/* True when c's parent is stored, not in libvirt, and not tried yet: c must wait for it. */
static bool
parent_pending(const struct stored_list *st, const bool *tried, const struct db_checkpoint *c)
{
    ssize_t k = stored_find(st, c->parent);

    return k >= 0 && !st->in_libvirt[k] && !tried[k];
}

/* Step 2: what libvirt lacks is redefined, parents first. */
static int
redefine_missing(const struct conf_domain *dom, const struct virt_checkpoint_caps *caps,
                 struct stored_list *st, struct core_reconcile_report *rep)
{
    _cleanup_free_ bool *tried = calloc(st->n + 1, sizeof(bool));

    if (!tried)
        return -ENOMEM;
    for (;;) {
        ssize_t pick = -1, fallback = -1;
        int r;

        for (size_t i = 0; i < st->n && pick < 0; i++) {
            if (st->in_libvirt[i] || tried[i])
                continue;
            if (!parent_pending(st, tried, &st->items[i]))
                pick = (ssize_t)i;
            else if (fallback < 0)
                fallback = (ssize_t)i;
        }
        if (pick < 0)
            pick = fallback; /* a loop of parents: libvirt will say what is wrong */
        if (pick < 0)
            return 0;
        tried[pick] = true;
        r = redefine_one(dom, caps, st, (size_t)pick, rep);
        if (r < 0)
            return r;
    }
}

/* Step 2b: children that libvirt re-parented when their parent was lost are linked back. */
static int
relink_children(const struct conf_domain *dom, const struct libvirt_list *lv,
                const struct stored_list *st, struct core_reconcile_report *rep)
{
    for (size_t i = 0; i < st->n; i++) {
        const struct db_checkpoint *c = &st->items[i];
        ssize_t p;
        char detail[256];
        int r;

        if (!st->in_libvirt[i] || !parent_was_lost(st, lv, c))
            continue;
        p = stored_find(st, c->parent);
        if (p < 0 || !st->in_libvirt[p])
            continue; /* the parent could not be redefined: nothing to link to */
        r = virt_checkpoint_redefine(dom->uuid, c->xml, false);
        if (fatal(r))
            return r;
        if (r < 0) {
            r = report_add(rep, c->name, "failed", err_detail());
        } else {
            snprintf(detail, sizeof(detail), "its parent '%s' is restored in libvirt", c->parent);
            r = report_add(rep, c->name, "updated", detail);
        }
        if (r < 0)
            return r;
    }
    return 0;
}

/* Step 3, running domain: libvirt reports no size for a bitmap that QEMU does not have. */
static int
check_running(const struct conf_domain *dom, struct stored_list *st,
              struct core_reconcile_report *rep)
{
    for (size_t i = 0; i < st->n; i++) {
        struct db_checkpoint *c = &st->items[i];
        struct conf_checkpoint_def *v = NULL;
        int r;

        if (!st->in_libvirt[i] || is_state(c, CONF_CHECKPOINT_BROKEN))
            continue;
        r = virt_checkpoint_get(dom->uuid, c->name, true, &v);
        if (r == -ENOENT)
            continue;
        if (r < 0) {
            if (fatal(r))
                return r;
            r = report_add(rep, c->name, "failed", err_detail());
            if (r < 0)
                return r;
            continue;
        }
        for (size_t k = 0; r == 0 && k < v->n_disks; k++) {
            char why[REASON_MAX];

            if (!v->disks[k].bitmap || v->disks[k].size_bytes >= 0)
                continue;
            snprintf(
                why, sizeof(why), "the bitmap '%s' of disk %s is missing from the running domain",
                v->disks[k].bitmap_name ? v->disks[k].bitmap_name : c->name, v->disks[k].target);
            r = mark_broken(dom, c, why, rep);
        }
        conf_checkpoint_def_free(v);
        if (r < 0)
            return r;
    }
    return 0;
}

struct image_cache {
    bool loaded;
    bool failed;
    struct virt_image_bitmap *bitmaps;
    size_t n;
};

static const struct conf_disk *
domain_disk(const struct conf_domain *dom, const char *target, size_t *ret_index)
{
    for (size_t i = 0; i < dom->n_disks; i++) {
        if (strcmp(dom->disks[i].target, target) == 0) {
            *ret_index = i;
            return &dom->disks[i];
        }
    }
    return NULL;
}

/* Checks one disk of one checkpoint against its image; why is filled when it is broken. */
static int
check_image_disk(const struct conf_domain *dom, struct image_cache *cache,
                 const struct conf_checkpoint_def *def, const struct conf_checkpoint_disk *d,
                 struct core_reconcile_report *rep, char *why, size_t why_size)
{
    const char *bitmap = d->bitmap_name ? d->bitmap_name : def->name;
    const struct conf_disk *disk;
    const struct virt_image_bitmap *b = NULL;
    size_t idx = 0;
    int r;

    why[0] = '\0';
    disk = domain_disk(dom, d->target, &idx);
    if (!disk) {
        snprintf(why, why_size, "its disk %s is no longer part of the domain", d->target);
        return 0;
    }
    if (!disk->source || disk->source[0] != '/' || !conf_disk_is_qcow2(disk)) {
        snprintf(why, why_size, "its disk %s is no longer a local qcow2 image, which bitmaps need",
                 d->target);
        return 0;
    }
    cache = &cache[idx];
    if (!cache->loaded) {
        cache->loaded = true;
        r = virt_image_bitmaps(disk->source, &cache->bitmaps, &cache->n);
        if (r < 0) {
            cache->failed = true;
            if (fatal(r))
                return r;
            return report_add(rep, def->name, "failed", err_detail());
        }
    }
    if (cache->failed)
        return 0;
    for (size_t i = 0; i < cache->n && !b; i++)
        if (strcmp(cache->bitmaps[i].name, bitmap) == 0)
            b = &cache->bitmaps[i];
    if (!b)
        snprintf(why, why_size, "the bitmap '%s' is missing from disk %s (%s)", bitmap, d->target,
                 disk->source);
    else if (b->in_use)
        snprintf(why, why_size,
                 "the bitmap '%s' of disk %s is marked in-use: QEMU did not close %s cleanly, so "
                 "the bitmap may have missed writes",
                 bitmap, d->target, disk->source);
    else if (!b->recording)
        snprintf(why, why_size,
                 "the bitmap '%s' of disk %s is disabled: it no longer records writes", bitmap,
                 d->target);
    return 0;
}

/* Step 3, stopped QEMU domain: the bitmaps are read from the qcow2 files themselves. */
static int
check_images(const struct conf_domain *dom, struct stored_list *st,
             struct core_reconcile_report *rep)
{
    _cleanup_free_ struct image_cache *cache = calloc(dom->n_disks + 1, sizeof(*cache));
    int r = 0;

    if (!cache)
        return -ENOMEM;
    for (size_t i = 0; r == 0 && i < st->n; i++) {
        struct db_checkpoint *c = &st->items[i];
        struct conf_checkpoint_def *def = NULL;

        if (is_state(c, CONF_CHECKPOINT_BROKEN) || st->forgotten[i])
            continue;
        r = virt_checkpoint_parse(c->xml, &def);
        if (r < 0) {
            r = mark_broken(dom, c, "its stored XML cannot be read", rep);
            continue;
        }
        for (size_t k = 0; r == 0 && k < def->n_disks; k++) {
            char why[REASON_MAX];

            if (!def->disks[k].bitmap)
                continue;
            r = check_image_disk(dom, cache, def, &def->disks[k], rep, why, sizeof(why));
            if (r == 0 && why[0])
                r = mark_broken(dom, c, why, rep);
        }
        conf_checkpoint_def_free(def);
    }
    for (size_t i = 0; i < dom->n_disks; i++)
        virt_image_bitmaps_free(cache[i].bitmaps, cache[i].n);
    return r;
}

static int
adopt_orphans(const struct conf_domain *dom, struct stored_list *st,
              struct core_reconcile_report *rep)
{
    for (size_t i = 0; i < st->n; i++) {
        struct db_checkpoint *c = &st->items[i];
        const char *why = "adopted: created outside virtvault, now used like its own";
        int r;

        if (!is_state(c, CONF_CHECKPOINT_ORPHANED) || st->forgotten[i])
            continue;
        r = db_checkpoint_set_state(core_db(), dom->uuid, c->name, CONF_CHECKPOINT_OK, why);
        if (r >= 0)
            r = report_add(rep, c->name, "adopted", why);
        if (r < 0)
            return r;
        c->state = CONF_CHECKPOINT_OK;
    }
    return 0;
}

/* Records what the reconcile that started at started_ns leaves missing from libvirt. */
static int
note_absent(const char *uuid, uint64_t started_ns, bool full, const struct stored_list *st)
{
    char **absent = calloc(st->n + 1, sizeof(char *));
    size_t n = 0;

    if (!absent)
        return -ENOMEM;
    for (size_t i = 0; i < st->n; i++) {
        if (st->in_libvirt[i] || st->forgotten[i])
            continue;
        absent[n] = strdup(st->items[i].name);
        if (!absent[n++]) {
            names_free(absent, n);
            return -ENOMEM;
        }
    }
    note_reconciled(uuid, started_ns, full, absent, n);
    return 0;
}

int
reconcile_locked(const struct conf_domain *dom, unsigned flags, struct core_reconcile_report *rep)
{
    _cleanup_(libvirt_list_clear) struct libvirt_list lv = {0};
    _cleanup_(stored_list_clear) struct stored_list st = {0};
    struct virt_checkpoint_caps caps;
    uint64_t started = text_mono_ns();
    int r;

    snprintf(rep->domain, sizeof(rep->domain), "%s", dom->name);
    snprintf(rep->domain_uuid, sizeof(rep->domain_uuid), "%s", dom->uuid);
    r = virt_checkpoint_caps_get(dom->uuid, &caps);
    if (r < 0)
        return r;
    r = virt_checkpoint_list(dom->uuid, &lv.items, &lv.n);
    if (r < 0)
        return r;
    r = db_checkpoint_list(core_db(), dom->uuid, &st.items, &st.n);
    if (r < 0)
        return r;
    r = store_from_libvirt(dom, &lv, &st, rep);
    if (r < 0)
        return r;

    /* Read the store again: it now holds everything libvirt has. */
    stored_list_clear(&st);
    st = (struct stored_list){0};
    r = db_checkpoint_list(core_db(), dom->uuid, &st.items, &st.n);
    if (r < 0)
        return r;
    st.in_libvirt = calloc(st.n + 1, sizeof(bool));
    st.forgotten = calloc(st.n + 1, sizeof(bool));
    if (!st.in_libvirt || !st.forgotten)
        return -ENOMEM;
    for (size_t i = 0; i < lv.n; i++) {
        ssize_t k = stored_find(&st, lv.items[i].name);
        if (k >= 0)
            st.in_libvirt[k] = true;
    }
    rep->checked = st.n;

    r = redefine_missing(dom, &caps, &st, rep);
    if (r < 0)
        return r;
    r = relink_children(dom, &lv, &st, rep);
    if (r < 0)
        return r;
    if (flags & RECONCILE_NAMES_ONLY)
        r = 0; /* the bitmaps were checked by the last full reconcile */
    else if (caps.sizes)
        r = check_running(dom, &st, rep);
    else if (caps.image_bitmaps)
        r = check_images(dom, &st, rep);
    if (r < 0)
        return r;
    if (flags & CORE_RECONCILE_ADOPT)
        r = adopt_orphans(dom, &st, rep);
    if (r < 0)
        return r;
    return note_absent(dom->uuid, started, !(flags & RECONCILE_NAMES_ONLY), &st);
}

/* ---- the worker: reconciles for libvirt's events, off the event thread ---- */

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct {
        char uuid[37];
        unsigned flags; /* RECONCILE_NAMES_ONLY when every asker was content with it */
    } queue[QUEUE_MAX];
    size_t n;
    bool all; /* every domain (a new connection) */
    bool stop;
    bool started;
    pthread_t thread;
} worker = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
};

static void
reconcile_background(const char *uuid, unsigned flags)
{
    _cleanup_(conf_domain_freep) struct conf_domain *dom = NULL;
    struct core_reconcile_report rep = {0};
    char holder[96];
    int r;

    r = virt_domain_get(uuid, &dom);
    if (r < 0) {
        log_debug("checkpoint reconcile of %s skipped: %s", uuid,
                  err_detail() ? err_detail() : strerror(-r));
        return;
    }
    _cleanup_checkpoint_lock_ const char *locked = checkpoint_lock(dom->uuid);
    if (core_busy_holder(dom->uuid, holder, sizeof(holder))) {
        log_debug("checkpoint reconcile of '%s' skipped: busy with %s", dom->name, holder);
        if (!(flags & RECONCILE_NAMES_ONLY))
            note_full_missed(dom->uuid);
        return;
    }
    r = reconcile_locked(dom, flags, &rep);
    if (r < 0 && !(flags & RECONCILE_NAMES_ONLY))
        note_full_missed(dom->uuid);
    if (r < 0)
        log_warn("checkpoint reconcile of '%s' failed: %s", dom->name,
                 err_detail() ? err_detail() : strerror(-r));
    else if (rep.n_actions > 0)
        log_info("checkpoint reconcile of '%s': %zu checkpoint(s), %zu action(s)", dom->name,
                 rep.checked, rep.n_actions);
    reconcile_report_clear(&rep);
}

static void
reconcile_all(void)
{
    struct conf_domain *list = NULL;
    size_t n = 0;
    int r;

    r = virt_domain_list(&list, &n);
    if (r < 0) {
        log_warn("checkpoint reconcile of all domains failed: %s",
                 err_detail() ? err_detail() : strerror(-r));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        bool stop;

        pthread_mutex_lock(&worker.lock);
        stop = worker.stop;
        pthread_mutex_unlock(&worker.lock);
        if (stop)
            break;
        reconcile_background(list[i].uuid, 0);
    }
    conf_domain_list_free(list, n);
}

static void *
worker_main(void *arg)
{
    (void)arg;
    for (;;) {
        char uuid[37] = "";
        unsigned flags = 0;
        bool all = false;

        pthread_mutex_lock(&worker.lock);
        while (!worker.stop && !worker.all && worker.n == 0)
            pthread_cond_wait(&worker.wake, &worker.lock);
        if (worker.stop) {
            pthread_mutex_unlock(&worker.lock);
            break;
        }
        if (worker.all) {
            all = true;
            worker.all = false;
            worker.n = 0; /* covered by "all" */
        } else {
            memcpy(uuid, worker.queue[0].uuid, sizeof(uuid));
            flags = worker.queue[0].flags;
            memmove(&worker.queue[0], &worker.queue[1], (worker.n - 1) * sizeof(worker.queue[0]));
            worker.n--;
        }
        pthread_mutex_unlock(&worker.lock);
        err_clear();
        if (all) {
            unqueue(NULL); /* what readers asked for is covered */
            reconcile_all();
        } else {
            reconcile_background(uuid, flags);
            unqueue(uuid); /* only now: readers meanwhile must not ask again */
        }
    }
    return NULL;
}

/* Queues uuid (NULL: every domain, in full) for the worker, with reconcile flags. */
static void
enqueue(const char *uuid, unsigned flags)
{
    bool queued;

    pthread_mutex_lock(&worker.lock);
    queued = worker.all;
    if (!uuid) {
        worker.all = true;
    } else {
        for (size_t i = 0; i < worker.n && !queued; i++) {
            queued = strcmp(worker.queue[i].uuid, uuid) == 0;
            if (queued)
                worker.queue[i].flags &= flags; /* a full reconcile asked for wins */
        }
        if (!queued && worker.n < QUEUE_MAX) {
            snprintf(worker.queue[worker.n].uuid, sizeof(worker.queue[0].uuid), "%s", uuid);
            worker.queue[worker.n++].flags = flags;
        } else if (!queued) {
            worker.all = true; /* overflow: do them all */
        }
    }
    pthread_cond_signal(&worker.wake);
    pthread_mutex_unlock(&worker.lock);
}

void
reconcile_queue(const char *uuid)
{
    struct view *v;
    bool outstanding, full = false;

    /* One request at a time: readers keep asking until the reconcile they asked for is done. */
    pthread_mutex_lock(&views_mutex);
    v = view_find(uuid);
    if (!v)
        v = view_add(uuid);
    outstanding = !v || v->queued;
    if (v) {
        v->queued = true;
        full = v->needs_full;
    }
    pthread_mutex_unlock(&views_mutex);
    if (!outstanding)
        enqueue(uuid, full ? 0 : RECONCILE_NAMES_ONLY);
}

void
core_checkpoint_on_event(const struct conf_event *ev)
{
    if (ev->kind == CONF_EVENT_CONNECTED)
        enqueue(NULL, 0);
    else if ((ev->kind == CONF_EVENT_DEFINED || ev->kind == CONF_EVENT_STARTED ||
              ev->kind == CONF_EVENT_STOPPED) &&
             ev->uuid)
        enqueue(ev->uuid,
                0); /* a stop: what the bitmaps in the images say now (a crash loses them) */
}

int
core_checkpoint_start(void)
{
    worker.stop = false;
    if (pthread_create(&worker.thread, NULL, worker_main, NULL) != 0)
        return err_set(-EAGAIN, "cannot start the checkpoint reconcile thread");
    worker.started = true;
    return 0;
}

void
core_checkpoint_stop(void)
{
    if (!worker.started)
        return;
    pthread_mutex_lock(&worker.lock);
    worker.stop = true;
    pthread_cond_broadcast(&worker.wake);
    pthread_mutex_unlock(&worker.lock);
    pthread_join(worker.thread, NULL);
    worker.started = false;
}
