/* What the backup use cases share (see backup_priv.h). */
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
#include "text.h"
#include "err.h"
#include "log.h"
#include "virt/virt.h"

struct backup_ctx backup_ctx = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .ended = PTHREAD_COND_INITIALIZER,
};

void
backup_strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

void
backup_job_free(void *data)
{
    struct backup_job *br = data;

    if (!br)
        return;
    if (br->follow)
        for (size_t i = 0; br->b && i < br->b->n_disks; i++)
            vault_follow_free(br->follow[i]);
    free(br->follow);
    conf_backup_free(br->b);
    backup_strv_free(br->skip);
    backup_strv_free(br->sources);
    free(br->target_dir);
    free(br->define_name);
    free(br->policy);
    free(br->plan_note);
    free(br->offsite_remote);
    free(br->offsite_parent);
    free(br);
}

int
backup_job_submit(enum backup_job_kind kind, const char *domain_name, struct backup_job *bj,
                  struct conf_job **ret)
{
    struct job_spec spec = {
        .kind = &backup_kinds[kind],
        .domain = domain_name,
        .domain_uuid = bj->b->domain_uuid,
        .params = bj->b->id,
        .policy = bj->policy,
        .data = bj,
    };

    return core_job_submit(&spec, ret);
}

/*
 * Resolves name_or_uuid into its UUID and name (a new string): libvirt's
 * cached answer (virt_domain_resolve, no read of the definition), else the
 * catalog's for a domain libvirt does not know (now).
 */
int
backup_domain_resolve(const char *name_or_uuid, char ret_uuid[37], char **ret_name)
{
    struct conf_domain_ref ref;
    char *name;
    int r;

    r = virt_domain_resolve(name_or_uuid, &ref);
    if (r == -ENOENT || r == -ENOTCONN) {
        int q = db_backup_find_domain(backup_ctx.db, name_or_uuid, ret_uuid, ret_name);
        if (q == -ENOENT && r == -ENOTCONN)
            return err_set(-ENOTCONN,
                           "libvirt is not reachable and the catalog has no "
                           "backups of a domain '%s'",
                           name_or_uuid);
        return q;
    }
    if (r < 0)
        return r;
    name = strdup(ref.name);
    if (!name)
        return -ENOMEM;
    memcpy(ret_uuid, ref.uuid, 37);
    *ret_name = name;
    return 0;
}

/* Reads backup id and checks that it belongs to domain uuid. */
int
backup_of(const char *uuid, const char *id, struct conf_backup **ret)
{
    struct conf_backup *b = NULL;
    int r;

    r = db_backup_get(backup_ctx.db, id, &b);
    if (r < 0)
        return r;
    if (strcmp(b->domain_uuid, uuid) != 0) {
        conf_backup_free(b);
        return err_set(-ENOENT, "backup '%s' not found for this domain", id);
    }
    *ret = b;
    return 0;
}

int
backup_find(const char *domain, const char *id, char **ret_name, struct conf_backup **ret)
{
    _cleanup_free_ char *name = NULL;
    char uuid[37];
    int r;

    r = backup_domain_resolve(domain, uuid, &name);
    if (r < 0)
        return r;
    r = backup_of(uuid, id, ret);
    if (r < 0)
        return r;
    if (ret_name)
        *ret_name = TAKE_PTR(name);
    return 0;
}

/* Reads a completed backup of domain for restore or verify. */
int
backup_completed(const char *domain, const char *id, char **ret_name, struct conf_backup **ret)
{
    _cleanup_free_ char *name = NULL;
    _cleanup_(conf_backup_freep) struct conf_backup *b = NULL;
    int r;

    r = backup_find(domain, id, &name, &b);
    if (r < 0)
        return r;
    if (b->state != CONF_BACKUP_STATE_COMPLETED)
        return err_set(-EBADFD, "backup %s is %s, not completed", b->id,
                       conf_backup_state_to_string(b->state));
    if (core_backup_is_client_pull(b))
        return err_set(-EBADFD,
                       "backup %s was read by a client in pull mode: the vault holds no "
                       "images of it",
                       b->id);
    if (b->location)
        return err_set(-EBADFD,
                       "backup %s is offsite only: its images are in the bucket of remote "
                       "'%s', not in this host's vault; restore it from there "
                       "(POST /v1/remotes/%s/backups/%s/restore)",
                       b->id, b->location, b->location, b->id);
    *ret_name = TAKE_PTR(name);
    *ret = TAKE_PTR(b);
    return 0;
}

bool
core_backup_is_client_pull(const struct conf_backup *b)
{
    /* Its disks name no file: a client read the exports, the vault holds nothing. */
    return b->mode == CONF_BACKUP_MODE_PULL && b->n_disks > 0 && b->disks[0].file &&
           b->disks[0].file[0] == '\0';
}

int
backup_abs_path(const char *rel, char *buf, size_t size)
{
    if ((size_t)snprintf(buf, size, "%s/%s", backup_ctx.vault, rel) >= size)
        return err_set(-ENAMETOOLONG, "vault path too long");
    return 0;
}

/* Removes the images of b and the folders they leave empty. */
void
backup_remove_images(const struct conf_backup *b)
{
    backup_files_forget(b->id);
    for (size_t i = 0; i < b->n_disks; i++) {
        if (!b->disks[i].file || !b->disks[i].file[0])
            continue;
        if (vault_image_remove(backup_ctx.vault, b->disks[i].file) < 0)
            log_warn("backup %s: %s", b->id, err_detail() ? err_detail() : "cannot delete");
        vault_prune_dirs(backup_ctx.vault, b->disks[i].file);
    }
}

/*
 * "<vault>/pull": where the sockets and scratch files of pull backups live
 * (backup ids are unique; a short path leaves room in sun_path).
 */
static int
pull_dir(const struct conf_backup *b, char *buf, size_t size)
{
    if ((size_t)snprintf(buf, size, "%s/pull", backup_ctx.vault) >= size)
        return err_set(-ENAMETOOLONG, "vault path too long");
    return 0;
}

int
backup_pull_socket_path(const struct conf_backup *b, char *buf, size_t size)
{
    char dir[PATH_MAX];
    int r;

    r = pull_dir(b, dir, sizeof(dir));
    if (r < 0)
        return r;
    if ((size_t)snprintf(buf, size, "%s/%s.sock", dir, b->id) >= size ||
        strlen(buf) > SOCKET_PATH_MAX)
        return err_set(-ENAMETOOLONG,
                       "the vault's path is too long for the unix socket of a pull backup "
                       "(%s/...: at most %d characters in all)",
                       backup_ctx.vault, SOCKET_PATH_MAX);
    return 0;
}

int
backup_pull_scratch_path(const struct conf_backup *b, const char *target, char *buf, size_t size)
{
    char dir[PATH_MAX];
    int r;

    r = pull_dir(b, dir, sizeof(dir));
    if (r < 0)
        return r;
    if ((size_t)snprintf(buf, size, "%s/%s.%s.scratch", dir, b->id, target) >= size)
        return err_set(-ENAMETOOLONG, "vault path too long");
    return 0;
}

int
backup_pull_prepare_dir(const struct conf_backup *b)
{
    char dir[PATH_MAX];
    int r;

    r = pull_dir(b, dir, sizeof(dir));
    if (r < 0)
        return r;
    return vault_prepare(dir);
}

/* Removes the socket and scratch files a pull backup leaves once libvirt's job ended. */
void
backup_pull_cleanup_files(const struct conf_backup *b)
{
    char path[PATH_MAX];

    if (backup_pull_socket_path(b, path, sizeof(path)) == 0)
        (void)unlink(path);
    for (size_t i = 0; i < b->n_disks; i++)
        if (backup_pull_scratch_path(b, b->disks[i].target, path, sizeof(path)) == 0)
            (void)unlink(path);
    err_clear();
}

/* Sleeps until a job-completed event or ms milliseconds pass. */
void
backup_wait_event(uint64_t *seen, unsigned ms)
{
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&backup_ctx.lock);
    while (backup_ctx.generation == *seen) {
        if (pthread_cond_timedwait(&backup_ctx.ended, &backup_ctx.lock, &until) != 0)
            break;
    }
    *seen = backup_ctx.generation;
    pthread_mutex_unlock(&backup_ctx.lock);
}

/* Wakes every job waiting in backup_wait_event(). */
void
backup_wake_jobs(void)
{
    pthread_mutex_lock(&backup_ctx.lock);
    backup_ctx.generation++;
    pthread_cond_broadcast(&backup_ctx.ended);
    pthread_mutex_unlock(&backup_ctx.lock);
}

/*
 * Aborts libvirt's job when it still runs and waits (at most 10 s) for it
 * to end: woken by its job-completed event, checking after 2, 4, 8... ms
 * (at most 100) in case the event does not come.
 */
void
backup_job_stop(const char *uuid)
{
    struct virt_job_info ji;
    int64_t until = text_now_ms() + 10000;
    uint64_t seen;

    pthread_mutex_lock(&backup_ctx.lock);
    seen = backup_ctx.generation;
    pthread_mutex_unlock(&backup_ctx.lock);
    if (virt_job_get(uuid, false, &ji) == 0 && ji.state == VIRT_JOB_RUNNING &&
        virt_job_abort(uuid) == 0) {
        for (unsigned ms = 2;; ms = ms < 64 ? ms * 2 : 100) {
            if (virt_job_get(uuid, false, &ji) < 0 || ji.state != VIRT_JOB_RUNNING ||
                text_now_ms() > until)
                break;
            backup_wait_event(&seen, ms);
        }
    }
    err_clear();
}

int
backup_chain_offsite(const struct conf_backup *b, char **ret_remote, char **ret_id)
{
    _cleanup_free_ char *next = b->parent_id ? strdup(b->parent_id) : NULL;
    size_t n = 0;
    int r;

    *ret_remote = *ret_id = NULL;
    if (b->parent_id && !next)
        return -ENOMEM;
    while (next && n++ < MAX_CHAIN) {
        _cleanup_(conf_backup_freep) struct conf_backup *p = NULL;

        r = db_backup_get(backup_ctx.db, next, &p);
        if (r == -ENOENT) {
            err_clear();
            return 0; /* a gap is the reader's to report */
        }
        if (r < 0)
            return r;
        if (p->location) {
            *ret_remote = TAKE_PTR(p->location);
            *ret_id = TAKE_PTR(p->id);
            return 0;
        }
        free(next);
        next = p->parent_id ? strdup(p->parent_id) : NULL;
        if (p->parent_id && !next)
            return -ENOMEM;
    }
    return 0;
}

/*
 * Whether every backup b stands on has its images in the vault: -EBADFD
 * with a detail naming the remote when one is offsite only, else 0.
 */
static int
backup_chain_local(const struct conf_backup *b)
{
    _cleanup_free_ char *remote = NULL, *id = NULL;
    int r = backup_chain_offsite(b, &remote, &id);

    if (r < 0 || !remote)
        return r;
    return err_set(-EBADFD,
                   "backup %s stands on backup %s, which is offsite only (in the bucket of "
                   "remote '%s'): restore it (POST /v1/domains/%s/backups/%s/restore, which "
                   "downloads what it stands on) or restore it from the remote after a copy "
                   "(POST /v1/remotes/%s/backups/%s/restore)",
                   b->id, id, remote, b->domain_uuid, b->id, remote, b->id);
}

int
backup_completed_local(const char *domain, const char *id, char **ret_name,
                       struct conf_backup **ret)
{
    _cleanup_free_ char *name = NULL;
    _cleanup_(conf_backup_freep) struct conf_backup *b = NULL;
    int r = backup_completed(domain, id, &name, &b);

    if (r >= 0)
        r = backup_chain_local(b);
    if (r < 0)
        return r;
    *ret_name = TAKE_PTR(name);
    *ret = TAKE_PTR(b);
    return 0;
}
