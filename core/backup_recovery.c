/*
 * Instant recovery (see backup.h): a new domain that runs from a backup's
 * chain in the vault through qcow2 overlays, then leaves the vault while it
 * runs, disk by disk, with a full block copy and a pivot.
 *
 * The job ("instant_recovery") makes the overlays, defines the clone (the
 * restore's safe-clone rules), starts it and says so in its result
 * ("phase": "running"); then it copies and pivots each disk, follows the
 * copy for progress, and ends "independent". The recovery's row (db/recovery.h)
 * locks every backup of the chain it stands on until the domain no longer
 * needs the vault (or is gone). A cancel abandons the copy in flight: the
 * domain keeps running on the vault and the locks stay ("stopped"). A
 * process that stopped mid-move picks the job up again at start-up
 * (recover): a copy QEMU still runs is followed and pivoted, one that is
 * gone is begun again.
 *
 * Files in target_dir: "<name>-<disk>.overlay.qcow2" (on the vault, removed
 * once the disk moved) and "<name>-<disk>.qcow2" (the copy, where the disk
 * ends up).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup_priv.h"
#include "vault/vault.h"
#include "cleanup.h"
#include "db/backup.h"
#include "db/recovery.h"
#include "err.h"
#include "log.h"
#include "text.h"
#include "virt/virt.h"

/* How long a pivot that libvirt refuses (the copy fell behind again) is tried again. */
#define PIVOT_TRIES 40

/* The run of one instant recovery. */
struct recovery_run {
    struct conf_backup *b;
    char *name;
    char *target_dir;
    unsigned keep;
    bool start;
    uint64_t bandwidth; /* of the block copy, bytes per second; 0 for no limit */
    char rid[33];       /* the recovery's id (its row, and the job's params) */
    char uuid[37];      /* the new domain's, once defined */
    int64_t asked_ms;   /* when the request came (for the time to a running domain) */
    int64_t running_ms; /* how long that took, or -1 */
    char *changes_json; /* the clone's changes, as a JSON array */
    char *prev_result;  /* resumed: the result the earlier process recorded, or NULL */
};

static void
recovery_run_free(void *data)
{
    struct recovery_run *rr = data;

    if (!rr)
        return;
    conf_backup_free(rr->b);
    free(rr->name);
    free(rr->target_dir);
    free(rr->changes_json);
    free(rr->prev_result);
    free(rr);
}

/* The file name of disk target's overlay (overlay true) or final image, into buf. */
static int
disk_file(const struct recovery_run *rr, const char *target, bool overlay, char *buf, size_t size)
{
    if ((size_t)snprintf(buf, size, "%s-%s%s.qcow2", rr->name, target, overlay ? ".overlay" : "") >=
        size)
        return err_set(-ENAMETOOLONG, "file name too long");
    return 0;
}

static int
disk_path(const struct recovery_run *rr, const char *target, bool overlay, char *buf, size_t size)
{
    char name[NAME_MAX + 1];
    int r = disk_file(rr, target, overlay, name, sizeof(name));

    if (r < 0)
        return r;
    if ((size_t)snprintf(buf, size, "%s/%s", rr->target_dir, name) >= size)
        return err_set(-ENAMETOOLONG, "path too long");
    return 0;
}

/* Sets the job's result: where the recovery stands. */
static int
recovery_result(struct job *job, const struct recovery_run *rr, const char *phase)
{
    const struct conf_backup *b = rr->b;
    _cleanup_free_ char *qname = text_json_quote(rr->name);
    char *out = NULL;
    size_t out_len = 0;
    FILE *f;
    int r;

    /* Resumed: what the earlier process recorded (changes, time to running), phase updated. */
    const char *was = rr->prev_result ? strstr(rr->prev_result, "\"phase\": \"") : NULL;
    const char *end = was ? strchr(was + 10, '"') : NULL;
    if (end) {
        if (asprintf(&out, "%.*s\"phase\": \"%s%s", (int)(was - rr->prev_result), rr->prev_result,
                     phase, end) < 0)
            return -ENOMEM;
        r = job_set_result(job, out);
        free(out);
        return r;
    }
    f = open_memstream(&out, &out_len);
    if (!f)
        return -ENOMEM;
    fprintf(f, "{\"backup_id\": \"%s\", \"phase\": \"%s\", \"domain\": {\"name\": %s, ", b->id,
            phase, qname ? qname : "null");
    if (rr->uuid[0])
        fprintf(f, "\"uuid\": \"%s\", ", rr->uuid);
    else
        fputs("\"uuid\": null, ", f);
    fprintf(f, "\"changes\": %s}, ", rr->changes_json ? rr->changes_json : "[]");
    if (rr->running_ms >= 0)
        fprintf(f, "\"running_after_ms\": %" PRId64 ", ", rr->running_ms);
    else
        fputs("\"running_after_ms\": null, ", f);
    fputs("\"disks\": [", f);
    for (size_t i = 0; i < b->n_disks; i++) {
        char ov[PATH_MAX], fin[PATH_MAX];
        if (disk_path(rr, b->disks[i].target, true, ov, sizeof(ov)) < 0 ||
            disk_path(rr, b->disks[i].target, false, fin, sizeof(fin)) < 0)
            continue;
        _cleanup_free_ char *qov = text_json_quote(ov);
        _cleanup_free_ char *qfin = text_json_quote(fin);
        fprintf(f, "%s{\"target\": \"%s\", \"overlay\": %s, \"path\": %s}", i ? ", " : "",
                b->disks[i].target, qov ? qov : "null", qfin ? qfin : "null");
    }
    fputs("]}", f);
    if (fclose(f) != 0) {
        free(out);
        return -ENOMEM;
    }
    r = job_set_result(job, out);
    free(out);
    return r;
}

/* The clone's changes as a JSON array, into a new *ret. */
static int
changes_json(const struct virt_clone_changes *c, char **ret)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);

    if (!f)
        return -ENOMEM;
    fputc('[', f);
    for (size_t i = 0; i < c->n; i++) {
        _cleanup_free_ char *q = text_json_quote(c->items[i].detail);
        fprintf(f, "%s{\"what\": \"%s\", \"detail\": %s}", i ? ", " : "", c->items[i].what,
                q ? q : "null");
    }
    fputc(']', f);
    if (fclose(f) != 0) {
        free(out);
        return -ENOMEM;
    }
    *ret = out;
    return 0;
}

/* -EEXIST when the final image of disk target is there already: a restore never replaces. */
static int
dest_free(const struct recovery_run *rr, int dirfd, const char *target)
{
    char name[NAME_MAX + 1];
    struct stat st;
    int r = disk_file(rr, target, false, name, sizeof(name));

    if (r < 0)
        return r;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
        return err_set(-EEXIST, "%s exists already in %s; instant recovery does not replace files",
                       name, rr->target_dir);
    return 0;
}

/* Makes the overlays, defines the clone on them and starts it. */
static int
recovery_launch(struct job *job, struct recovery_run *rr, int dirfd)
{
    const struct conf_backup *b = rr->b;
    _cleanup_free_ struct virt_restored_disk *rd = calloc(b->n_disks + 1, sizeof(*rd));
    _cleanup_free_ char(*paths)[PATH_MAX] = calloc(b->n_disks + 1, PATH_MAX);
    __attribute__((cleanup(virt_clone_changes_clear))) struct virt_clone_changes changes = {0};
    size_t made = 0;
    int r = 0;

    if (!rd || !paths)
        return -ENOMEM;
    for (size_t i = 0; r >= 0 && i < b->n_disks; i++) {
        char src[PATH_MAX], name[NAME_MAX + 1];

        r = backup_abs_path(b->disks[i].file, src, sizeof(src));
        if (r >= 0)
            r = disk_file(rr, b->disks[i].target, true, name, sizeof(name));
        if (r >= 0)
            r = disk_path(rr, b->disks[i].target, true, paths[i], PATH_MAX);
        if (r >= 0)
            r = dest_free(rr, dirfd, b->disks[i].target);
        if (r >= 0)
            r = vault_overlay_create_at(dirfd, name, b->disks[i].size, src);
        if (r >= 0)
            made++;
        rd[i] = (struct virt_restored_disk){b->disks[i].target, paths[i], "qcow2"};
    }
    if (r >= 0) {
        struct virt_clone_target where = {dirfd, rr->target_dir, rr->keep};
        r = virt_domain_define_restored(b->domain_xml, rr->name, rd, b->n_disks, &where, rr->uuid,
                                        &changes);
    }
    if (r < 0) {
        for (size_t i = 0; i < made; i++)
            (void)unlinkat(dirfd, paths[i] + strlen(rr->target_dir) + 1, 0);
        rr->uuid[0] = '\0';
        return r;
    }
    r = changes_json(&changes, &rr->changes_json);
    if (r >= 0)
        r = db_recovery_set(backup_ctx.db, rr->rid, CONF_RECOVERY_MOVING, rr->uuid);
    if (r >= 0 && rr->start)
        r = virt_domain_start(rr->uuid);
    if (r < 0)
        return r;
    rr->running_ms = text_now_ms() - rr->asked_ms;
    log_info("instant recovery of backup %s: domain %s %s after %" PRId64 " ms", b->id, rr->name,
             rr->start ? "running" : "defined", rr->running_ms);
    return recovery_result(job, rr, rr->start ? "running" : "defined");
}

/* Waits (at most RECONNECT_WAIT_MS) until libvirt answers. */
static int
wait_libvirt(struct job *job)
{
    int64_t until = text_now_ms() + RECONNECT_WAIT_MS;
    uint64_t seen = 0;

    while (!virt_connected()) {
        if (job_stopping(job))
            return err_set(-ESHUTDOWN, "the service stops while waiting for libvirt");
        if (job_cancelled(job))
            return err_set(-ECANCELED, "cancelled while waiting for libvirt");
        if (text_now_ms() > until)
            return err_set(-ENOTCONN, "libvirt did not come back within %d s",
                           RECONNECT_WAIT_MS / 1000);
        backup_wait_event(&seen, POLL_MS);
    }
    return 0;
}

/* Follows the block copy of disk i until it is ready and pivots it. */
static int
move_disk(struct job *job, struct recovery_run *rr, int dirfd, size_t i, uint64_t base,
          uint64_t total)
{
    const struct conf_backup_disk *k = &rr->b->disks[i];
    char dest[PATH_MAX], dest_name[NAME_MAX + 1];
    _cleanup_free_ char *src = NULL;
    struct virt_block_job bj;
    unsigned refused = 0;
    uint64_t seen = 0;
    int r;

    r = disk_path(rr, k->target, false, dest, sizeof(dest));
    if (r >= 0)
        r = disk_file(rr, k->target, false, dest_name, sizeof(dest_name));
    if (r >= 0)
        r = virt_block_job_get(rr->uuid, k->target, &bj);
    if (r < 0)
        return r;
    if (!bj.active) {
        r = virt_disk_source(rr->uuid, k->target, &src);
        if (r < 0)
            return r;
        if (strcmp(src, dest) == 0)
            return 0; /* moved already (pivoted before a restart) */
        /* A copy of ours that did not finish (resumed) is begun again, into a new image. */
        if (job_resumed(job) && unlinkat(dirfd, dest_name, 0) < 0 && errno != ENOENT)
            return err_set(-errno, "cannot replace %s: %s", dest, strerror(errno));
        r = vault_overlay_create_at(dirfd, dest_name, k->size, NULL);
        if (r >= 0)
            r = virt_block_copy_start(rr->uuid, k->target, dest, rr->bandwidth);
        if (r < 0)
            return r;
        log_info("instant recovery %s: copying %s of %s into %s", job_id(job), k->target, rr->name,
                 dest);
    } else if (!bj.copy) {
        return err_set(-EBUSY, "disk %s of %s runs another block job", k->target, rr->name);
    }
    for (;;) {
        r = virt_block_job_get(rr->uuid, k->target, &bj);
        if (r == -ENOTCONN) {
            /* QEMU copies on without libvirt: follow again once it is back. */
            err_clear();
            r = wait_libvirt(job);
            if (r < 0)
                return r;
            continue;
        }
        if (r < 0)
            return r;
        if (!bj.active) {
            /* Ended without us: pivoted (a restart raced it) or failed. */
            free(src);
            src = NULL;
            r = virt_disk_source(rr->uuid, k->target, &src);
            if (r < 0)
                return r;
            if (strcmp(src, dest) == 0)
                return 0;
            return err_set(-EIO, "the block copy of %s ended without moving the disk", k->target);
        }
        if (bj.total)
            job_progress(job, base + (uint64_t)((double)k->size * bj.done / bj.total), total);
        if (job_stopping(job))
            return err_set(-ESHUTDOWN, "the service stops: the copy goes on in QEMU and the "
                                       "next start follows it");
        if (job_cancelled(job)) {
            (void)virt_block_job_end(rr->uuid, k->target, false);
            return err_set(-ECANCELED, "the move was cancelled: %s still runs from the vault",
                           rr->name);
        }
        if (bj.ready) {
            r = virt_block_job_end(rr->uuid, k->target, true);
            if (r >= 0) {
                log_info("instant recovery %s: %s of %s moved to %s", job_id(job), k->target,
                         rr->name, dest);
                char ov[NAME_MAX + 1];
                if (disk_file(rr, k->target, true, ov, sizeof(ov)) >= 0)
                    (void)unlinkat(dirfd, ov, 0);
                return 0;
            }
            if (++refused > PIVOT_TRIES)
                return r;
            err_clear();
        }
        backup_wait_event(&seen, POLL_MS);
    }
}

/* Whether an error says the domain is gone. */
static bool
domain_gone(struct recovery_run *rr)
{
    return rr->uuid[0] && virt_domain_is_active(rr->uuid) == -ENOENT;
}

static int
recovery_run(struct job *job, void *data)
{
    struct recovery_run *rr = data;
    const struct conf_backup *b = rr->b;
    _cleanup_close_ int dirfd = -1;
    uint64_t total = 0, base = 0;
    char keep[1024];
    int r;

    r = vault_dir_open(rr->target_dir, backup_ctx.roots, backup_ctx.n_roots, &dirfd);
    if (r < 0) {
        if (!job_resumed(job))
            (void)db_recovery_set(backup_ctx.db, rr->rid, CONF_RECOVERY_FAILED, NULL);
        return r;
    }
    if (!job_resumed(job)) {
        r = recovery_launch(job, rr, dirfd);
        if (r < 0) {
            snprintf(keep, sizeof(keep), "%s", err_detail() ? err_detail() : strerror(-r));
            /* Defined but not started: the domain stays, on the vault, and keeps its locks. */
            (void)db_recovery_set(backup_ctx.db, rr->rid,
                                  rr->uuid[0] ? CONF_RECOVERY_STOPPED : CONF_RECOVERY_FAILED, NULL);
            return err_set(r, "%s", keep);
        }
        if (!rr->start) {
            (void)db_recovery_set(backup_ctx.db, rr->rid, CONF_RECOVERY_STOPPED, NULL);
            return 0;
        }
    } else {
        r = wait_libvirt(job);
        if (r < 0)
            return r;
        if (domain_gone(rr)) {
            (void)db_recovery_set(backup_ctx.db, rr->rid, CONF_RECOVERY_FAILED, NULL);
            return err_set(-ENOENT, "domain %s is gone: its backups are unlocked", rr->name);
        }
        (void)recovery_result(job, rr, "running");
    }
    for (size_t i = 0; i < b->n_disks; i++)
        total += b->disks[i].size;
    job_progress(job, 0, total);
    for (size_t i = 0; i < b->n_disks; i++) {
        r = move_disk(job, rr, dirfd, i, base, total);
        if (r == -ESHUTDOWN)
            return r;
        if (r < 0) {
            int e = r;
            bool gone = domain_gone(rr);
            snprintf(keep, sizeof(keep), "%s", err_detail() ? err_detail() : strerror(-r));
            (void)db_recovery_set(backup_ctx.db, rr->rid,
                                  gone ? CONF_RECOVERY_FAILED : CONF_RECOVERY_STOPPED, NULL);
            (void)recovery_result(job, rr, gone ? "failed" : "stopped");
            return err_set(e, "%s%s", keep,
                           gone ? " (the domain is gone: its backups are unlocked)" : "");
        }
        base += b->disks[i].size;
        job_progress(job, base, total);
    }
    r = db_recovery_set(backup_ctx.db, rr->rid, CONF_RECOVERY_DONE, NULL);
    if (r < 0)
        return r;
    log_info("instant recovery %s: %s no longer needs the vault", job_id(job), rr->name);
    return recovery_result(job, rr, "independent");
}

/* A process that stopped mid-move: go on when the domain is still there. */
static int
recovery_recover(const struct conf_job *rec, void **ret_data)
{
    _cleanup_(conf_recovery_freep) struct conf_recovery *rc = NULL;
    struct recovery_run *rr;
    int r;

    if (!rec->params)
        return 0;
    r = db_recovery_get(backup_ctx.db, rec->params, &rc);
    if (r < 0)
        return r;
    if (rc->state != CONF_RECOVERY_MOVING || !rc->domain_uuid) {
        (void)db_recovery_set(backup_ctx.db, rec->params,
                              rc->domain_uuid ? CONF_RECOVERY_STOPPED : CONF_RECOVERY_FAILED, NULL);
        return 0;
    }
    /* Without libvirt now, the run waits for it (RECONNECT_WAIT_MS) and asks again. */
    r = virt_domain_is_active(rc->domain_uuid);
    if (r != 1 && r != -ENOTCONN) {
        if (r == -ENOENT || r == 0)
            (void)db_recovery_set(backup_ctx.db, rec->params,
                                  r == 0 ? CONF_RECOVERY_STOPPED : CONF_RECOVERY_FAILED, NULL);
        return r < 0 ? r : 0;
    }
    err_clear();
    rr = calloc(1, sizeof(*rr));
    if (!rr)
        return -ENOMEM;
    rr->running_ms = -1;
    rr->start = true;
    snprintf(rr->uuid, sizeof(rr->uuid), "%s", rc->domain_uuid);
    snprintf(rr->rid, sizeof(rr->rid), "%s", rc->id);
    rr->name = strdup(rc->name);
    rr->target_dir = strdup(rc->target_dir);
    rr->prev_result = rec->result ? strdup(rec->result) : NULL;
    r = rr->name && rr->target_dir ? db_backup_get(backup_ctx.db, rc->backup_id, &rr->b) : -ENOMEM;
    if (r < 0) {
        recovery_run_free(rr);
        return r;
    }
    *ret_data = rr;
    return 1;
}

const struct job_kind backup_recovery_kind = {
    .kind = CONF_JOB_KIND_INSTANT_RECOVERY,
    .run = recovery_run,
    .recover = recovery_recover,
    .free_data = recovery_run_free,
};

/* The ids of b's chain (b, its parent, ... the full) as a new NULL-terminated *ret. */
static int
chain_ids(const struct conf_backup *b, char ***ret, size_t *ret_n)
{
    char **ids = calloc(MAX_CHAIN + 1, sizeof(*ids));
    size_t n = 0;
    _cleanup_free_ char *next = NULL;
    int r = 0;

    if (!ids)
        return -ENOMEM;
    ids[n++] = strdup(b->id);
    next = b->parent_id ? strdup(b->parent_id) : NULL;
    while (next && n < MAX_CHAIN) {
        _cleanup_(conf_backup_freep) struct conf_backup *p = NULL;
        r = backup_of(b->domain_uuid, next, &p);
        if (r < 0)
            break;
        ids[n++] = TAKE_PTR(next);
        next = p->parent_id ? strdup(p->parent_id) : NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (!ids[i])
            r = -ENOMEM;
    if (r < 0) {
        backup_strv_free(ids);
        return r;
    }
    *ret = ids;
    *ret_n = n;
    return 0;
}

int
core_backup_instant_recovery(const char *domain, const char *id,
                             const struct core_instant_recovery_request *req,
                             struct conf_job **ret_job)
{
    _cleanup_free_ char *name = NULL;
    _cleanup_(conf_backup_freep) struct conf_backup *b = NULL;
    _cleanup_(conf_domain_freep) struct conf_domain *other = NULL;
    _cleanup_(conf_job_freep) struct conf_job *job = NULL;
    char **ids = NULL;
    size_t n_ids = 0;
    struct recovery_run *rr;
    int64_t now = text_now_ms();
    int r;

    if (!req->name || !text_name_valid(req->name))
        return err_set_pointer(
            -EINVAL, "/name", "must be a domain name (1 to %d of A-Z a-z 0-9 . _ -)", NAME_MAX_LEN);
    if (strlen(req->name) > 64)
        return err_set_pointer(-EINVAL, "/name", "must be at most 64 characters long");
    r = backup_completed_local(domain, id, &name, &b);
    if (r < 0)
        return r;
    r = virt_domain_get(req->name, &other);
    if (r == 0)
        return err_set(-EEXIST, "a domain named '%s' exists already", req->name);
    if (r != -ENOENT)
        return r;
    err_clear();
    r = vault_dir_inside(req->target_dir, backup_ctx.roots, backup_ctx.n_roots);
    if (r < 0)
        return r;
    r = chain_ids(b, &ids, &n_ids);
    if (r < 0)
        return r;
    rr = calloc(1, sizeof(*rr));
    if (!rr) {
        backup_strv_free(ids);
        return -ENOMEM;
    }
    rr->name = strdup(req->name);
    rr->target_dir = strdup(req->target_dir);
    rr->keep = req->keep;
    rr->start = req->start;
    rr->bandwidth = req->bandwidth;
    rr->asked_ms = now;
    rr->running_ms = -1;
    rr->b = TAKE_PTR(b);
    if (!rr->name || !rr->target_dir) {
        recovery_run_free(rr);
        backup_strv_free(ids);
        return -ENOMEM;
    }
    r = text_random_hex(rr->rid, sizeof(rr->rid), 16);
    if (r >= 0) {
        struct conf_recovery rec = {
            .id = rr->rid,
            .backup_id = rr->b->id,
            .name = rr->name,
            .target_dir = rr->target_dir,
            .state = CONF_RECOVERY_MOVING,
            .created_ms = now,
        };
        /* The locks hold from now on, before the job can run. */
        r = db_recovery_insert(backup_ctx.db, &rec, ids, n_ids);
    }
    backup_strv_free(ids);
    if (r < 0) {
        recovery_run_free(rr);
        return r;
    }
    char rid[33];
    snprintf(rid, sizeof(rid), "%s", rr->rid);
    /* Not on the original (it may take backups meanwhile) nor a UUID yet: on the new name. */
    struct job_spec spec = {
        .kind = &backup_recovery_kind,
        .domain = req->name,
        .params = rid,
        .data = rr,
    };
    r = core_job_submit(&spec, &job);
    if (r < 0) {
        (void)db_recovery_set(backup_ctx.db, rid, CONF_RECOVERY_FAILED, NULL);
        return r;
    }
    *ret_job = TAKE_PTR(job);
    return 0;
}

int
core_backup_locked_by(const char *backup_id, char **ret_domain)
{
    for (int tries = 0; tries < 8; tries++) {
        _cleanup_free_ char *rid = NULL;
        _cleanup_free_ char *name = NULL;
        _cleanup_(conf_recovery_freep) struct conf_recovery *rc = NULL;
        int r;

        r = db_recovery_locked_by(backup_ctx.db, backup_id, &rid, &name);
        if (r <= 0)
            return r;
        /* A recovered domain that was undefined no longer needs the vault. */
        if (db_recovery_get(backup_ctx.db, rid, &rc) == 0 && rc->domain_uuid &&
            virt_domain_is_active(rc->domain_uuid) == -ENOENT) {
            err_clear();
            log_info("instant recovery %s: domain %s is gone; its backups are unlocked", rid,
                     rc->name);
            (void)db_recovery_set(backup_ctx.db, rid, CONF_RECOVERY_FAILED, NULL);
            continue;
        }
        err_clear();
        *ret_domain = TAKE_PTR(name);
        return 1;
    }
    return 0;
}

void
backup_recovery_sweep(void)
{
    struct conf_recovery **list = NULL;
    size_t n = 0;

    if (db_recovery_list_locking(backup_ctx.db, &list, &n) < 0) {
        log_warn("cannot read the instant recoveries: %s", err_detail());
        return;
    }
    for (size_t i = 0; i < n; i++) {
        /* Never defined (the process stopped before): nothing holds the vault. */
        if (!list[i]->domain_uuid || virt_domain_is_active(list[i]->domain_uuid) == -ENOENT) {
            log_info("instant recovery %s of %s: no domain; its backups are unlocked", list[i]->id,
                     list[i]->name);
            (void)db_recovery_set(backup_ctx.db, list[i]->id, CONF_RECOVERY_FAILED, NULL);
        }
        err_clear();
        conf_recovery_free(list[i]);
    }
    free(list);
}
