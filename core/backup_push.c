/* The backup job, and creating one (see backup_priv.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup_priv.h"
#include "vault/vault.h"
#include "busy.h"
#include "checkpoint.h"
#include "cleanup.h"
#include "db/backup.h"
#include "db/checkpoint.h"
#include "err.h"
#include "hash.h"
#include "log.h"
#include "text.h"
#include "virt/virt.h"
#include "webhook.h"

/*
 * Starts hashing each image of a push backup while QEMU writes it, so that
 * sealing has little left to hash. Best effort: a disk without a follower
 * is hashed whole when it is sealed.
 */
static void
backup_follow_images(struct backup_job *br)
{
    struct conf_backup *b = br->b;

    br->follow = calloc(b->n_disks, sizeof(*br->follow));
    if (!br->follow)
        return;
    for (size_t i = 0; i < b->n_disks; i++) {
        if (!b->disks[i].file[0])
            continue;
        if (vault_follow_start(backup_ctx.vault, b->disks[i].file, &br->follow[i]) < 0) {
            log_warn("backup %s: disk %s is hashed after the copy: %s", b->id, b->disks[i].target,
                     err_detail() ? err_detail() : "");
            err_clear();
        }
    }
}

/* Makes the images and begins libvirt's job. */
static int
backup_begin(struct job *job, struct backup_job *br)
{
    struct conf_backup *b = br->b;
    _cleanup_free_ struct virt_backup_disk *vd = calloc(b->n_disks, sizeof(*vd));
    _cleanup_free_ char *paths = calloc(b->n_disks, PATH_MAX);
    _cleanup_free_ char *cpxml = NULL;
    char desc[96];
    int r;

    if (!vd || !paths)
        return -ENOMEM;
    for (size_t i = 0; i < b->n_disks; i++) {
        char *part = paths + i * PATH_MAX;

        if (b->disks[i].file[0]) {
            r = vault_image_create(backup_ctx.vault, b->disks[i].file, b->disks[i].size,
                                   b->disks[i].backing);
            if (r < 0)
                return r;
        }
        if (br->pull)
            r = backup_pull_scratch_path(b, b->disks[i].target, part, PATH_MAX);
        else if ((size_t)snprintf(part, PATH_MAX, "%s/%s%s", backup_ctx.vault, b->disks[i].file,
                                  VAULT_PART_SUFFIX) >= PATH_MAX)
            r = err_set(-ENAMETOOLONG, "vault path too long");
        if (r < 0)
            return r;
        vd[i].target = b->disks[i].target;
        vd[i].file = part;
    }
    if (br->pull) {
        r = backup_pull_prepare_dir(b);
        if (r < 0)
            return r;
        for (size_t i = 0; i < b->n_disks; i++)
            (void)unlink(vd[i].file);
        (void)unlink(br->pull_socket);
    }
    if (job_cancelled(job))
        return err_set(-ECANCELED, "the backup was cancelled before it began");
    log_debug("backup %s: images made, beginning libvirt's job", b->id);

    snprintf(desc, sizeof(desc), "virtvault %s backup %s", conf_backup_type_to_string(b->type),
             b->id);
    struct virt_backup_spec spec = {
        .incremental = b->base_checkpoint,
        .checkpoint = b->checkpoint,
        .description = desc,
        .disks = vd,
        .n_disks = b->n_disks,
        .skip = (const char *const *)br->skip,
        .n_skip = br->n_skip,
        .bandwidth = br->bandwidth,
        .socket = br->pull ? br->pull_socket : NULL,
    };
    r = virt_backup_begin(b->domain_uuid, &spec, &cpxml);
    if (r < 0)
        return r;
    br->begun = true;
    if (!br->pull)
        backup_follow_images(br);
    /* The checkpoint's XML is stored in the same step: SQLite is its source of truth. */
    r = core_checkpoint_store_created(b->domain_uuid, cpxml);
    if (r < 0)
        return r;
    log_info("backup %s of %s began (%s%s%s)", b->id, b->domain_name,
             conf_backup_type_to_string(b->type), b->base_checkpoint ? " since " : "",
             b->base_checkpoint ? b->base_checkpoint : "");
    return 0;
}

/*
 * Follows libvirt's job until it ends, reporting progress. Returns 0 when
 * the backup succeeded, -ECANCELED when it was cancelled, or another
 * negative errno with the reason.
 */
static int
backup_follow(struct job *job, struct backup_job *br)
{
    const char *uuid = br->b->domain_uuid;
    uint64_t seen, lost_since = 0;
    bool aborted = false;
    int r;

    pthread_mutex_lock(&backup_ctx.lock);
    seen = backup_ctx.generation;
    pthread_mutex_unlock(&backup_ctx.lock);
    for (;;) {
        struct virt_job_info ji;

        r = virt_job_get(uuid, false, &ji);
        if (r == -ENOTCONN) {
            uint64_t now = (uint64_t)text_now_ms();
            if (!lost_since)
                lost_since = now;
            if (now - lost_since > RECONNECT_WAIT_MS)
                return err_set(-ENOTCONN, "libvirt stayed unreachable while the backup ran");
            backup_wait_event(&seen, POLL_MS);
            continue;
        }
        if (r < 0)
            return r;
        lost_since = 0;
        if (ji.state == VIRT_JOB_RUNNING && ji.backup) {
            job_progress(job, ji.done, ji.total);
            for (size_t i = 0; i < br->b->n_disks; i++)
                (void)vault_image_writeback(backup_ctx.vault, br->b->disks[i].file);
            if (job_cancelled(job) && !aborted) {
                /* The cancel hook aborts too; this covers a cancel that came first. */
                if (virt_job_abort(uuid) < 0)
                    err_clear();
                aborted = true;
            }
            backup_wait_event(&seen, POLL_MS);
            continue;
        }
        if (ji.state == VIRT_JOB_RUNNING) {
            backup_wait_event(&seen, POLL_MS);
            continue;
        }

        r = virt_job_get(uuid, true, &ji);
        if (r < 0)
            return r;
        if (ji.state == VIRT_JOB_SUCCEEDED && ji.backup && !job_cancelled(job)) {
            log_debug("backup %s: libvirt's job succeeded", br->b->id);
            job_progress(job, ji.total, ji.total);
            return 0;
        }
        if (job_cancelled(job))
            return err_set(-ECANCELED, "the backup was cancelled");
        if (ji.state == VIRT_JOB_CANCELLED)
            return err_set(-EIO, "libvirt's backup job was aborted outside virtvault%s%s",
                           ji.error[0] ? ": " : "", ji.error);
        if (ji.state == VIRT_JOB_FAILED)
            return err_set(-EIO, "libvirt's backup job failed: %s",
                           ji.error[0] ? ji.error : "no reason given");
        return err_set(-EIO, "libvirt no longer knows how the backup ended (was libvirtd "
                             "restarted?)");
    }
}

/* Seals every image and records the backup as completed. */
static int
backup_seal(struct job *job, struct backup_job *br)
{
    struct conf_backup *b = br->b;
    char result[256];
    _cleanup_free_ char *with = NULL;
    uint64_t stored = 0;
    int r;

    for (size_t i = 0; i < b->n_disks; i++) {
        struct vault_follow *follow = br->follow ? br->follow[i] : NULL;
        struct conf_backup_disk *k = &b->disks[i];
        struct vault_checksum sum = {0};

        if (!k->file[0])
            continue; /* a client read it: nothing was stored */
        r = vault_image_seal(backup_ctx.vault, k->file, follow, &k->stored_bytes, &sum);
        if (r < 0)
            return r;
        log_debug("backup %s disk %s: %" PRIu64 " bytes hashed while QEMU copied, %" PRIu64
                  " after it (%" PRIu64 " ms; fsync %" PRIu64 " ms)",
                  b->id, k->target, vault_follow_hashed_bytes(follow), sum.hashed_bytes,
                  sum.hash_ms, sum.sync_ms);
        free(k->sha256);
        free(k->checksum_algorithm);
        free(k->pieces);
        k->pieces = TAKE_PTR(sum.pieces);
        k->n_pieces = sum.n_pieces;
        k->sha256 = strdup(sum.digest);
        k->checksum_algorithm = strdup(HASH_ALG_PIECES);
        if (!k->sha256 || !k->checksum_algorithm)
            return -ENOMEM;
        stored += k->stored_bytes;
    }
    b->state = CONF_BACKUP_STATE_COMPLETED;
    b->stored_bytes = stored;
    b->finished_at = text_now_ms();
    r = db_backup_finish(backup_ctx.db, b);
    if (r < 0)
        return r;
    snprintf(result, sizeof(result),
             "{\"backup_id\": \"%s\", \"type\": \"%s\", \"stored_bytes\": %" PRIu64 "}", b->id,
             conf_backup_type_to_string(b->type), stored);
    if (br->plan_note) {
        /* Why an auto backup is a full where a remote's chain could not be adopted. */
        _cleanup_free_ char *quoted = text_json_quote(br->plan_note);
        if (!quoted ||
            asprintf(&with, "%.*s, \"note\": %s}", (int)strlen(result) - 1, result, quoted) < 0)
            return -ENOMEM;
        log_info("backup %s of %s: %s", b->id, b->domain_name, br->plan_note);
    }
    log_info("backup %s of %s completed: %s, %" PRIu64 " bytes stored", b->id, b->domain_name,
             conf_backup_type_to_string(b->type), stored);
    core_webhook_emit_backup(b);
    return job_set_result(job, with ? with : result);
}

/*
 * Undoes what a backup that did not complete left: its images, and the
 * checkpoint it created (its bitmaps merge into the parent checkpoint's,
 * so the next incremental still counts every change); records why.
 */
int
backup_abandon(struct backup_job *br, int err)
{
    struct conf_backup *b = br->b;
    char detail[1024];
    int r;

    snprintf(detail, sizeof(detail), "%s", err_detail() ? err_detail() : strerror(-err));
    if (br->follow)
        for (size_t i = 0; i < b->n_disks; i++)
            vault_follow_free(TAKE_PTR(br->follow[i]));
    if (br->begun)
        backup_job_stop(b->domain_uuid);
    if (br->pull)
        backup_pull_cleanup_files(b);
    backup_remove_images(b);
    if (b->checkpoint) {
        /* The store first: a reconcile in between must not redefine what goes away. */
        r = db_checkpoint_delete(backup_ctx.db, b->domain_uuid, b->checkpoint);
        if (r < 0 && r != -ENOENT)
            log_warn("backup %s: cannot forget checkpoint %s: %s", b->id, b->checkpoint,
                     err_detail() ? err_detail() : strerror(-r));
        /* Its bitmap merges into the parent's: changes since the parent still count. */
        r = virt_checkpoint_delete(b->domain_uuid, b->checkpoint, 0);
        if (r < 0 && r != -ENOENT)
            log_warn("backup %s: cannot remove checkpoint %s: %s", b->id, b->checkpoint,
                     err_detail() ? err_detail() : strerror(-r));
    }
    b->state = err == -ECANCELED ? CONF_BACKUP_STATE_CANCELLED : CONF_BACKUP_STATE_FAILED;
    free(b->error_detail);
    b->error_detail = strdup(detail);
    b->error_errno = err;
    b->finished_at = text_now_ms();
    b->stored_bytes = 0;
    if (db_backup_finish(backup_ctx.db, b) < 0)
        log_warn("backup %s: cannot record its end: %s", b->id, err_detail());
    log_info("backup %s of %s %s: %s", b->id, b->domain_name, conf_backup_state_to_string(b->state),
             detail);
    return err_set(err, "%s", detail);
}

int
backup_job_run(struct job *job, void *data)
{
    struct backup_job *br = data;
    int r;

    if (br->offline) {
        r = backup_offline_run(job, br);
        if (r == 0)
            r = backup_seal(job, br);
        if (r < 0) {
            /* Before the redefine there is no checkpoint of it to remove. */
            if (!br->offline_defined)
                free(TAKE_PTR(br->b->checkpoint));
            return backup_abandon(br, job_cancelled(job) ? -ECANCELED : r);
        }
        return 0;
    }
    if (br->pull) {
        r = backup_begin(job, br);
        if (r < 0)
            return backup_abandon(br, r);
        if (br->to_vault) {
            r = backup_pull_to_vault(job, br);
            if (r == 0)
                r = backup_seal(job, br);
            if (r < 0)
                return backup_abandon(br, job_cancelled(job) ? -ECANCELED : r);
            return 0;
        }
        r = backup_pull_serve(job, br);
        if (r == 0) {
            backup_job_stop(br->b->domain_uuid);
            backup_pull_cleanup_files(br->b);
            br->begun = false;
            r = backup_pull_complete(job, br);
        }
        if (r < 0)
            r = backup_abandon(br, r);
        backup_pull_unregister(br->b->id);
        return r;
    }
    if (!job_resumed(job)) {
        r = backup_begin(job, br);
        if (r < 0)
            return backup_abandon(br, r);
    } else {
        log_info("backup %s of %s: following the job libvirt ran while virtvaultd was away",
                 br->b->id, br->b->domain_name);
    }
    r = backup_follow(job, br);
    if (r == 0)
        r = backup_seal(job, br);
    if (r < 0)
        return backup_abandon(br, r);
    return 0;
}

int
backup_job_cancel(struct job *job, void *data)
{
    struct backup_job *br = data;
    int r;

    if (br->offline) {
        backup_wake_jobs();
        return 0; /* no libvirt job: the copy sees the flag */
    }
    r = br->pull && !br->to_vault ? 0 : virt_job_abort(br->b->domain_uuid);
    backup_wake_jobs();
    if (r < 0) {
        /* Not begun yet, or ended meanwhile: run() sees the flag. */
        log_debug("backup %s: abort: %s", br->b->id, err_detail() ? err_detail() : "");
        err_clear();
    }
    return 0;
}

/*
 * A backup job that an earlier process ran: its row tells what it was.
 * Resumed whenever the row is still running, so that run() finds out from
 * libvirt how it ended (or still runs) and records that.
 */
int
backup_job_recover(const struct conf_job *rec, void **ret_data)
{
    struct backup_job *br;
    struct conf_backup *b = NULL;
    int r;

    if (!rec->params)
        return 0;
    r = db_backup_get(backup_ctx.db, rec->params, &b);
    if (r < 0)
        return r;
    /* A pull backup's exports and copies were this process's: the sweep ends them. */
    if (b->state != CONF_BACKUP_STATE_RUNNING || b->mode != CONF_BACKUP_MODE_PUSH) {
        conf_backup_free(b);
        return 0;
    }
    br = calloc(1, sizeof(*br));
    if (!br) {
        conf_backup_free(b);
        return -ENOMEM;
    }
    br->b = b;
    *ret_data = br;
    return 1;
}

/*
 * --- offsite adoption: qemu-nbd opens a vault image with its backing file,
 * and an offsite-only parent's is in a bucket. Only QEMU's own backup job
 * (push, running domain) writes an incremental on one: an auto backup that
 * is read through qemu-nbd (shut off, or pull into the vault) is a full
 * instead, saying why; an incremental or differential asked for is refused.
 */
static int
offsite_parent_check(const struct conf_domain *d, const struct core_backup_request *req,
                     struct conf_backup **b, char **note)
{
    _cleanup_(conf_backup_freep) struct conf_backup *p = NULL;
    struct core_backup_request full = *req;
    char *why = NULL;
    int r;

    r = db_backup_get(backup_ctx.db, (*b)->parent_id, &p);
    if (r < 0 || !p->location) {
        err_clear();
        return 0;
    }
    if (req->type != CONF_BACKUP_TYPE_AUTO)
        return err_set(-EBADFD,
                       "its parent, backup %s, is offsite only (in the bucket of remote '%s'): "
                       "an incremental on it is taken of a running domain in push mode only; "
                       "take a full (or auto) backup",
                       p->id, p->location);
    if (asprintf(&why,
                 "a full backup: its parent would be backup %s, offsite only (in the bucket "
                 "of remote '%s'), and an incremental on it is taken of a running domain in "
                 "push mode only",
                 p->id, p->location) < 0)
        return -ENOMEM;
    conf_backup_free(*b);
    *b = NULL;
    free(*note);
    *note = NULL;
    full.type = CONF_BACKUP_TYPE_FULL;
    r = backup_plan(d, &full, b, note);
    if (r < 0) {
        free(why);
        return r;
    }
    free(*note);
    *note = why;
    return 0;
}
/* --- end offsite adoption --- */

int
core_backup_create(const char *domain, const struct core_backup_request *req,
                   struct conf_backup **ret, struct conf_job **ret_job)
{
    _cleanup_(conf_domain_freep) struct conf_domain *d = NULL;
    _cleanup_(conf_backup_freep) struct conf_backup *b = NULL;
    _cleanup_(virt_domain_scope_endp) bool scoped = false;
    _cleanup_free_ char *note = NULL;
    struct backup_job *br;
    struct conf_job *job = NULL;
    char holder[128];
    int r;

    bool pull = req->mode == CONF_BACKUP_MODE_PULL;
    bool offline = false;

    /* One lookup for the whole request: every virt call below names this domain. */
    (void)virt_domain_lookups_take();
    (void)virt_domain_xml_fetches_take();
    r = virt_domain_scope_begin(domain);
    if (r < 0)
        return r;
    scoped = true;
    /* One read of its definition, too: planning and the catalog row take it from d. */
    r = virt_domain_get_definition(domain, &d);
    if (r < 0)
        return r;
    r = virt_backup_supported_for(d->uuid);
    if (r == -EBADFD) {
        /* Shut off: its images are read directly, into the vault. */
        if (pull && !req->to_vault)
            return err_set(-EBADFD, "the domain is not running: libvirt serves pull exports "
                                    "of running domains only; a stopped domain is backed up "
                                    "into the vault (mode push, or pull with target vault)");
        err_clear();
        offline = true;
    } else if (r < 0) {
        return r;
    }
    /* Planning reads the catalog: answer a busy domain before, not after, doing it. */
    if (core_busy_holder(d->uuid, holder, sizeof(holder)))
        return err_set(-EBUSY, "the domain is busy with %s", holder);
    r = backup_plan(d, req, &b, &note);
    if (r < 0)
        return r;
    if (b->parent_id && (offline || (pull && req->to_vault))) {
        r = offsite_parent_check(d, req, &b, &note);
        if (r < 0)
            return r;
    }

    br = calloc(1, sizeof(*br));
    if (!br)
        return -ENOMEM;
    br->bandwidth = req->bandwidth;
    br->plan_note = TAKE_PTR(note);
    br->pull = pull && !offline;
    br->to_vault = req->to_vault;
    br->offline = offline;
    r = br->pull ? backup_pull_socket_path(b, br->pull_socket, sizeof(br->pull_socket)) : 0;
    if (r >= 0 && req->policy && !(br->policy = strdup(req->policy)))
        r = -ENOMEM;
    if (r >= 0 && offline)
        r = backup_offline_sources(d, b, &br->sources);
    if (r < 0) {
        backup_job_free(br);
        return r;
    }
    br->skip = calloc(d->n_disks + 1, sizeof(char *));
    if (!br->skip) {
        free(br);
        return -ENOMEM;
    }
    for (size_t k = 0; k < d->n_disks; k++) {
        bool taken = false;
        for (size_t i = 0; i < b->n_disks; i++)
            taken |= strcmp(b->disks[i].target, d->disks[k].target) == 0;
        if (!taken && !(br->skip[br->n_skip++] = strdup(d->disks[k].target))) {
            backup_job_free(br);
            return -ENOMEM;
        }
    }

    /* The row first, so that the job never runs without it; removed when the queue refuses. */
    r = db_backup_insert(backup_ctx.db, b);
    if (r < 0) {
        backup_job_free(br);
        return r;
    }
    r = db_backup_get(backup_ctx.db, b->id, &br->b);
    if (r < 0) {
        db_backup_delete(backup_ctx.db, b->id);
        backup_job_free(br);
        return r;
    }
    r = backup_job_submit(BACKUP_JOB_BACKUP, d->name, br, &job);
    if (r < 0) {
        char keep[1024];
        snprintf(keep, sizeof(keep), "%s", err_detail() ? err_detail() : "");
        db_backup_delete(backup_ctx.db, b->id);
        return err_set(r, "%s", keep);
    }
    /* The job runs now whatever happens here: a row without its job id is no reason to fail. */
    if (db_backup_set_job(backup_ctx.db, b->id, job->id) < 0)
        log_warn("backup %s: cannot record its job %s: %s", b->id, job->id, err_detail());
    free(b->job_id);
    b->job_id = strdup(job->id);
    log_debug("backup %s of %s queued; libvirt: %u domain lookups, %u domain XML fetches", b->id,
              d->name, virt_domain_lookups_take(), virt_domain_xml_fetches_take());
    *ret = TAKE_PTR(b);
    *ret_job = job;
    return 0;
}
