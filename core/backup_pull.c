/* Pull mode: exports for clients, copies into the vault, the data plane's readers. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup_priv.h"
#include "vault/vault.h"
#include "cleanup.h"
#include "db/backup.h"
#include "err.h"
#include "log.h"
#include "text.h"
#include "virt/nbd.h"
#include "virt/virt.h"
#include "webhook.h"

int
core_backup_pull_export(const struct conf_backup *b, const char *target,
                        struct core_pull_export *ret)
{
    struct core_pull_export e = {0};
    const struct conf_backup_disk *k = NULL;
    int r;

    if (!core_backup_is_client_pull(b))
        return err_set(-EBADFD, "backup %s is not a pull backup read by a client", b->id);
    for (size_t i = 0; i < b->n_disks; i++)
        if (strcmp(b->disks[i].target, target) == 0)
            k = &b->disks[i];
    if (!k)
        return err_set(-ENOENT, "backup %s has no disk '%s'", b->id, target);
    r = backup_pull_socket_path(b, e.socket, sizeof(e.socket));
    if (r < 0)
        return r;
    snprintf(e.name, sizeof(e.name), "%s", k->target);
    e.size = k->size;
    if (b->base_checkpoint)
        snprintf(e.context, sizeof(e.context), "qemu:dirty-bitmap:backup-%s", k->target);
    /* Targets and paths in the vault are plain names: nothing needs escaping in the URI. */
    snprintf(e.uri, sizeof(e.uri), "nbd+unix:///%s?socket=%s", e.name, e.socket);
    *ret = e;
    return 0;
}

/* The session of pull backup id, or NULL. Call with backup_ctx.lock held. */
static struct pull_session *
pull_find(const char *id)
{
    for (size_t i = 0; i < MAX_PULLS; i++)
        if (backup_ctx.pulls[i].used && strcmp(backup_ctx.pulls[i].id, id) == 0)
            return &backup_ctx.pulls[i];
    return NULL;
}

static void
pull_touch(const char *id)
{
    struct pull_session *ps;

    backup_mount_touch(id);
    pthread_mutex_lock(&backup_ctx.lock);
    ps = pull_find(id);
    if (ps)
        ps->last_ms = text_now_ms();
    pthread_mutex_unlock(&backup_ctx.lock);
}

void
backup_pull_unregister(const char *id)
{
    struct pull_session *ps;

    pthread_mutex_lock(&backup_ctx.lock);
    ps = pull_find(id);
    if (ps)
        ps->used = false;
    backup_ctx.generation++;
    pthread_cond_broadcast(&backup_ctx.ended);
    pthread_mutex_unlock(&backup_ctx.lock);
}

/* Waits for the end of a ready pull backup; see backup_pull_serve(). */
static int
pull_wait(struct job *job, const struct conf_backup *b, struct pull_session *ps, uint64_t seen)
{
    int r;

    for (;;) {
        struct virt_job_info ji;
        bool finish;
        int64_t idle;

        backup_wait_event(&seen, 1000);
        pthread_mutex_lock(&backup_ctx.lock);
        finish = ps->finish;
        idle = text_now_ms() - ps->last_ms;
        pthread_mutex_unlock(&backup_ctx.lock);
        if (job_cancelled(job))
            return err_set(-ECANCELED, "the pull backup was abandoned: its checkpoint was removed");
        if (finish)
            return 0;
        if (idle > (int64_t)backup_ctx.pull_idle_s * 1000)
            return err_set(-ETIMEDOUT,
                           "no client read the exports for %u s (the pull idle timeout): the "
                           "backup was abandoned and its checkpoint removed",
                           backup_ctx.pull_idle_s);
        r = virt_job_get(b->domain_uuid, false, &ji);
        if (r == -ENOTCONN) {
            err_clear();
            continue;
        }
        if (r < 0)
            return r;
        if (ji.state != VIRT_JOB_RUNNING)
            return err_set(-EIO, "libvirt's backup job ended while its exports were ready "
                                 "(was the domain stopped?)");
    }
}

/*
 * Publishes a begun client pull backup as ready and waits until it is
 * finished (0), abandoned (-ECANCELED), forgotten (-ETIMEDOUT) or ended by
 * libvirt (-EIO). The session stays registered: the caller unregisters it
 * once the outcome is recorded.
 */
int
backup_pull_serve(struct job *job, struct backup_job *br)
{
    const struct conf_backup *b = br->b;
    struct pull_session *ps = NULL;
    uint64_t seen;
    int r;

    pthread_mutex_lock(&backup_ctx.lock);
    for (size_t i = 0; i < MAX_PULLS && !ps; i++)
        if (!backup_ctx.pulls[i].used)
            ps = &backup_ctx.pulls[i];
    if (ps) {
        *ps = (struct pull_session){.used = true, .last_ms = text_now_ms()};
        snprintf(ps->id, sizeof(ps->id), "%s", b->id);
    }
    seen = backup_ctx.generation;
    pthread_mutex_unlock(&backup_ctx.lock);
    if (!ps)
        return err_set(-EAGAIN, "too many pull backups are ready at once (at most %d)", MAX_PULLS);
    r = db_backup_set_state(backup_ctx.db, b->id, CONF_BACKUP_STATE_READY);
    if (r < 0)
        return r;
    log_info("backup %s of %s ready: exports on %s", b->id, b->domain_name, br->pull_socket);
    job_park(job, true); /* clients set the pace now: free the worker's place for others */
    r = pull_wait(job, b, ps, seen);
    job_park(job, false);
    return r;
}

/* Records a client pull backup as completed: it stored nothing. */
int
backup_pull_complete(struct job *job, struct backup_job *br)
{
    struct conf_backup *b = br->b;
    char result[256];
    int r;

    b->state = CONF_BACKUP_STATE_COMPLETED;
    b->stored_bytes = 0;
    b->finished_at = text_now_ms();
    r = db_backup_finish(backup_ctx.db, b);
    if (r < 0)
        return r;
    snprintf(result, sizeof(result),
             "{\"backup_id\": \"%s\", \"type\": \"%s\", \"stored_bytes\": 0}", b->id,
             conf_backup_type_to_string(b->type));
    log_info("backup %s of %s finished: %s pull, checkpoint %s kept", b->id, b->domain_name,
             conf_backup_type_to_string(b->type), b->checkpoint);
    core_webhook_emit_backup(b);
    return job_set_result(job, result);
}

/* Written bytes of an image that are handed to the disk's writeback at once. */
#define COPY_WRITEBACK_BYTES (64ull << 20)

/* What the copy reports progress into. */
struct copy_ctx {
    struct job *job;
    uint64_t base, total;
    const char *file;    /* the image being written, relative to the vault */
    uint64_t written_at; /* base + done when its writeback was last started */
};

static int
copy_progress(void *opaque, uint64_t done)
{
    struct copy_ctx *c = opaque;

    job_progress(c->job, c->base + done, c->total);
    /*
     * As push mode does while QEMU copies: the disk writes while the copy
     * goes on, so that the seal's sync finds little left to write.
     */
    if (c->base + done - c->written_at >= COPY_WRITEBACK_BYTES) {
        (void)vault_image_writeback(backup_ctx.vault, c->file);
        c->written_at = c->base + done;
    }
    if (job_cancelled(c->job))
        return err_set(-ECANCELED, "the backup was cancelled");
    return 0;
}

/* A copy holds at most this many extents of a disk at a time. */
#define COPY_EXTENTS_PAGE 16384

/*
 * Calls fn for each page of the extents of src worth copying, in order:
 * those of the dirty bitmap context when not NULL, else those that do not
 * read as zeros; at most COPY_EXTENTS_PAGE at a time (a page may hold
 * none). Stops at fn's first negative return.
 */
static int
copy_extent_pages(struct virt_nbd *src, const char *context,
                  int (*fn)(void *opaque, const struct conf_extent *ext, size_t n), void *opaque)
{
    uint64_t at = 0, size = virt_nbd_size(src);
    int r = 0;

    while (r >= 0 && at < size) {
        _cleanup_free_ struct conf_extent *ext = NULL;
        size_t n = 0, k = 0;
        uint64_t next = size;

        r = virt_nbd_extents(src, context ? context : VIRT_NBD_CONTEXT_ALLOCATION, at, size - at,
                             COPY_EXTENTS_PAGE, &ext, &n, &next);
        if (r < 0)
            return r;
        for (size_t i = 0; i < n; i++)
            if (context ? (ext[i].flags & 1) : !(ext[i].flags & 2))
                ext[k++] = ext[i];
        r = fn(opaque, ext, k);
        at = next;
    }
    return r;
}

static int
count_bytes(void *opaque, const struct conf_extent *ext, size_t n)
{
    uint64_t *total = opaque;

    for (size_t i = 0; i < n; i++)
        *total += ext[i].length;
    return 0;
}

struct copy_page_ctx {
    struct virt_nbd *src, *dst;
    struct copy_ctx *cc;
};

static int
copy_page(void *opaque, const struct conf_extent *ext, size_t n)
{
    struct copy_page_ctx *p = opaque;
    int r;

    if (n == 0)
        return 0;
    r = virt_nbd_copy(p->src, p->dst, ext, n, copy_progress, p->cc);
    for (size_t e = 0; e < n; e++)
        p->cc->base += ext[e].length;
    return r;
}

/*
 * Copies what the backup needs of each disk from its source export into
 * the vault's image (.part), several requests in flight, a page of extents
 * at a time. srcs are open connections, one per disk of b; contexts the
 * dirty bitmap context of each (NULL entries or array for a full backup).
 */
int
backup_copy_into_vault(struct job *job, struct backup_job *br, struct virt_nbd **srcs,
                       char *const *contexts)
{
    struct conf_backup *b = br->b;
    struct copy_ctx cc = {.job = job};
    int64_t t0 = text_now_ms(), t1, t2;
    int r = 0;

    /* A first pass counts the bytes for progress, holding one page at a time. */
    for (size_t i = 0; r >= 0 && i < b->n_disks; i++)
        r = copy_extent_pages(srcs[i], contexts ? contexts[i] : NULL, count_bytes, &cc.total);
    job_progress(job, 0, cc.total);
    t1 = t2 = text_now_ms();
    for (size_t i = 0; r >= 0 && i < b->n_disks; i++) {
        _cleanup_(virt_nbd_closep) struct virt_nbd *dst = NULL;
        char part[PATH_MAX];

        if ((size_t)snprintf(part, sizeof(part), "%s/%s%s", backup_ctx.vault, b->disks[i].file,
                             VAULT_PART_SUFFIX) >= sizeof(part)) {
            r = err_set(-ENAMETOOLONG, "vault path too long");
            break;
        }
        r = virt_nbd_open_image(part, NULL, true, &dst);
        if (r < 0)
            break;
        t2 = text_now_ms();
        cc.file = b->disks[i].file;
        cc.written_at = cc.base;
        struct copy_page_ctx pc = {srcs[i], dst, &cc};
        r = copy_extent_pages(srcs[i], contexts ? contexts[i] : NULL, copy_page, &pc);
    }
    if (r >= 0)
        job_progress(job, cc.total, cc.total);
    log_debug("backup %s: count %" PRId64 " ms, qemu-nbd %" PRId64 " ms, copy+close %" PRId64 " ms",
              b->id, t1 - t0, t2 - t1, text_now_ms() - t2);
    return r;
}

/* A pull backup into the vault: reads libvirt's exports and ends libvirt's job. */
int
backup_pull_to_vault(struct job *job, struct backup_job *br)
{
    struct conf_backup *b = br->b;
    _cleanup_free_ struct virt_nbd **srcs = calloc(b->n_disks, sizeof(*srcs));
    _cleanup_free_ char **contexts = calloc(b->n_disks, sizeof(*contexts));
    int64_t t0 = text_now_ms(), t1, t2;
    int r = 0;

    if (!srcs || !contexts)
        return -ENOMEM;
    for (size_t i = 0; r >= 0 && i < b->n_disks; i++) {
        char uri[PATH_MAX + 128];

        if (b->base_checkpoint &&
            asprintf(&contexts[i], "qemu:dirty-bitmap:backup-%s", b->disks[i].target) < 0) {
            r = -ENOMEM;
            break;
        }
        snprintf(uri, sizeof(uri), "nbd+unix:///%s?socket=%s", b->disks[i].target, br->pull_socket);
        r = virt_nbd_open(uri, contexts[i], &srcs[i]);
    }
    t1 = text_now_ms();
    if (r >= 0)
        r = backup_copy_into_vault(job, br, srcs, contexts);
    t2 = text_now_ms();
    for (size_t i = 0; i < b->n_disks; i++) {
        virt_nbd_close(srcs[i]);
        free(contexts[i]);
    }
    if (r < 0)
        return r;
    /* The copy is complete: ending the job is how a pull backup ends. */
    backup_job_stop(b->domain_uuid);
    backup_pull_cleanup_files(b);
    br->begun = false;
    log_debug("backup %s: connect %" PRId64 " ms, copy %" PRId64 " ms, stop %" PRId64 " ms", b->id,
              t1 - t0, t2 - t1, text_now_ms() - t2);
    return 0;
}

int
core_backup_finish(const char *domain, const char *id, struct conf_backup **ret)
{
    _cleanup_(conf_backup_freep) struct conf_backup *b = NULL;
    struct pull_session *ps;
    int64_t until = text_now_ms() + FINISH_WAIT_MS;
    uint64_t seen;
    int r;

    r = backup_find(domain, id, NULL, &b);
    if (r < 0)
        return r;
    pthread_mutex_lock(&backup_ctx.lock);
    ps = pull_find(b->id);
    if (ps) {
        ps->finish = true;
        backup_ctx.generation++;
        pthread_cond_broadcast(&backup_ctx.ended);
    }
    seen = backup_ctx.generation;
    pthread_mutex_unlock(&backup_ctx.lock);
    if (!ps)
        return err_set(-EBADFD, "backup %s is %s, not a ready pull backup", b->id,
                       conf_backup_state_to_string(b->state));
    /* The job ends libvirt's and records the outcome; the session goes when it has. */
    for (;;) {
        bool gone;

        backup_wait_event(&seen, 250);
        pthread_mutex_lock(&backup_ctx.lock);
        gone = pull_find(b->id) == NULL;
        pthread_mutex_unlock(&backup_ctx.lock);
        if (gone)
            break;
        if (text_now_ms() > until)
            return err_set(-ETIMEDOUT, "backup %s did not finish within %d s", b->id,
                           FINISH_WAIT_MS / 1000);
    }
    /* The row as the job recorded the end. */
    return backup_of(b->domain_uuid, b->id, ret);
}

struct core_pull_reader {
    struct virt_nbd *n;
    char id[17];
    char context[96]; /* "" for a full backup */
    int64_t touched;
    bool mount; /* reads a mount, not a pull backup's export */
};

int
core_pull_reader_open(const char *domain, const char *id, const char *disk,
                      struct core_pull_reader **ret)
{
    _cleanup_(conf_backup_freep) struct conf_backup *b = NULL;
    _cleanup_free_ struct core_pull_reader *pr = calloc(1, sizeof(*pr));
    struct core_pull_export e;
    bool ready;
    int r;

    if (!pr)
        return -ENOMEM;
    r = backup_find(domain, id, NULL, &b);
    if (r < 0)
        return r;
    pthread_mutex_lock(&backup_ctx.lock);
    ready = pull_find(b->id) != NULL;
    pthread_mutex_unlock(&backup_ctx.lock);
    if (!ready && b->state == CONF_BACKUP_STATE_COMPLETED) {
        /* A mounted backup point: read through its mount. */
        char uri[PATH_MAX + 128];
        uint64_t size;

        r = backup_mount_uri(b->id, disk, uri, sizeof(uri), &size);
        if (r == 0) {
            r = virt_nbd_open(uri, NULL, &pr->n);
            if (r < 0)
                return r;
            snprintf(pr->id, sizeof(pr->id), "%s", b->id);
            pr->mount = true;
            pr->touched = text_now_ms();
            *ret = TAKE_PTR(pr);
            return 0;
        }
        err_clear();
    }
    if (!core_backup_is_client_pull(b) && b->mode != CONF_BACKUP_MODE_PULL)
        return err_set(-EBADFD, "backup %s is a push backup: it has no exports", b->id);
    if (!ready || b->state != CONF_BACKUP_STATE_READY)
        return err_set(-EBADFD, "backup %s is %s: its exports are not ready", b->id,
                       conf_backup_state_to_string(b->state));
    r = core_backup_pull_export(b, disk, &e);
    if (r < 0)
        return r;
    r = virt_nbd_open(e.uri, e.context[0] ? e.context : NULL, &pr->n);
    if (r < 0)
        return r;
    snprintf(pr->id, sizeof(pr->id), "%s", b->id);
    snprintf(pr->context, sizeof(pr->context), "%s", e.context);
    pull_touch(pr->id);
    pr->touched = text_now_ms();
    *ret = TAKE_PTR(pr);
    return 0;
}

void
core_pull_reader_free(struct core_pull_reader *r)
{
    if (!r)
        return;
    virt_nbd_close(r->n);
    pull_touch(r->id);
    free(r);
}

bool
core_pull_reader_has_dirty(const struct core_pull_reader *r)
{
    return r->context[0] != '\0';
}

uint64_t
core_pull_reader_size(const struct core_pull_reader *r)
{
    return virt_nbd_size(r->n);
}

int
core_pull_reader_extents(struct core_pull_reader *r, bool dirty, uint64_t offset, uint64_t length,
                         size_t limit, struct conf_extent **ret, size_t *ret_n, uint64_t *ret_next)
{
    pull_touch(r->id);
    if (dirty && !r->context[0])
        return err_set(-EINVAL,
                       "backup %s is a full backup: it has no dirty bitmap "
                       "(ask for context=allocation)",
                       r->id);
    if (offset > virt_nbd_size(r->n))
        return err_set(-EINVAL, "offset %" PRIu64 " lies beyond the disk's end (%" PRIu64 ")",
                       offset, virt_nbd_size(r->n));
    return virt_nbd_extents(r->n, dirty ? r->context : VIRT_NBD_CONTEXT_ALLOCATION, offset, length,
                            limit, ret, ret_n, ret_next);
}

void
core_pull_reader_counters(uint64_t *ret_read, uint64_t *ret_zero)
{
    virt_nbd_counters(ret_read, ret_zero);
}

void
core_pull_reader_prepare(struct core_pull_reader *r, uint64_t pos, uint64_t len)
{
    virt_nbd_prepare(r->n, pos, len);
}

/* Counts a read as activity for the idle timeout: at most once a second. */
static void
reader_touch(struct core_pull_reader *r)
{
    int64_t now = text_now_ms();

    if (now - r->touched >= 1000) {
        pull_touch(r->id);
        r->touched = now;
    }
}

ssize_t
core_pull_reader_read(struct core_pull_reader *r, uint64_t pos, void *buf, size_t max)
{
    reader_touch(r);
    return virt_nbd_read(r->n, pos, buf, max);
}

ssize_t
core_pull_reader_zeros(struct core_pull_reader *r, uint64_t pos, size_t max)
{
    reader_touch(r);
    return virt_nbd_read_zeros(r->n, pos, max);
}
