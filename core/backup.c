/* Backups: planning, the backup job, catalog, restore and verify (see backup.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#include "backup.h"
#include "busy.h"
#include "checkpoint.h"
#include "cleanup.h"
#include "core.h"
#include "db/checkpoint.h"
#include "err.h"
#include "hash.h"
#include "jobs.h"
#include "log.h"
#include "text.h"
#include "vault/vault.h"

#define POLL_MS 250
/* How long a job waits for a lost libvirt connection before it gives up. */
#define RECONNECT_WAIT_MS (5 * 60 * 1000)
#define MAX_DISKS         64
#define MAX_CHAIN         1024
#define MAX_ROOTS         16
#define MAX_PULLS         64
#define PULL_IDLE_DEFAULT 600
/* How long finish waits for the job to record the end of a pull backup. */
#define FINISH_WAIT_MS (60 * 1000)
/* A unix socket path must fit into sun_path. */
#define SOCKET_PATH_MAX 107

DEFINE_TRIVIAL_CLEANUP_FUNC(struct db_backup *, db_backup_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct virt_domain *, virt_domain_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct virt_nbd *, virt_nbd_close)

/* A pull backup whose exports are ready for clients (guarded by bk.lock). */
struct pull_session {
    bool used;
    char id[17];
    int64_t last_ms; /* the last read of one of its exports */
    bool finish;     /* finish was asked for */
};

static struct {
    char *vault;
    char *roots[MAX_ROOTS];
    size_t n_roots;
    /* Woken by every job-completed event; waiters poll libvirt anyway. */
    pthread_mutex_t lock;
    pthread_cond_t ended;
    uint64_t generation;
    unsigned pull_idle_s;
    struct pull_session pulls[MAX_PULLS];
} bk = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .ended = PTHREAD_COND_INITIALIZER,
};

static void
backup_listp(struct db_backup ***list, size_t n)
{
    db_backup_list_free(*list, n);
}

static void
strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* ---------------------------------------------------------------------------------------- */
/* Domains: through libvirt, or through the catalog when libvirt does not know them (now). */

/* Resolves name_or_uuid into its UUID and name (a new string). */
static int
domain_resolve(const char *name_or_uuid, char ret_uuid[37], char **ret_name)
{
    _cleanup_(virt_domain_freep) struct virt_domain *d = NULL;
    char *name;
    int r;

    r = virt_domain_get(name_or_uuid, &d);
    if (r == -ENOENT || r == -ENOTCONN) {
        int q = db_backup_find_domain(core_db(), name_or_uuid, ret_uuid, ret_name);
        if (q == -ENOENT && r == -ENOTCONN)
            return err_set(-ENOTCONN,
                           "libvirt is not reachable and the catalog has no "
                           "backups of a domain '%s'",
                           name_or_uuid);
        return q;
    }
    if (r < 0)
        return r;
    name = strdup(d->name);
    if (!name)
        return -ENOMEM;
    memcpy(ret_uuid, d->uuid, 37);
    *ret_name = name;
    return 0;
}

/* Reads backup id and checks that it belongs to domain uuid. */
static int
backup_of(const char *uuid, const char *id, struct db_backup **ret)
{
    struct db_backup *b = NULL;
    int r;

    r = db_backup_get(core_db(), id, &b);
    if (r < 0)
        return r;
    if (strcmp(b->domain_uuid, uuid) != 0) {
        db_backup_free(b);
        return err_set(-ENOENT, "backup '%s' not found for this domain", id);
    }
    *ret = b;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Planning */

/* Whether disk k of a domain can be backed up, and why not. */
static const char *
disk_unfit(const struct virt_disk *k)
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
plan_disks(const struct virt_domain *d, const struct core_backup_request *req,
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
base_sound(const char *uuid, const struct db_backup *parent, const struct plan_disk *disks,
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

bool
core_backup_is_client_pull(const struct db_backup *b)
{
    /* Its disks name no file: a client read the exports, the vault holds nothing. */
    return b->mode && strcmp(b->mode, "pull") == 0 && b->n_disks > 0 && b->disks[0].file &&
           b->disks[0].file[0] == '\0';
}

/*
 * The newest completed backup of the domain (optionally of one chain, of
 * one checkpoint). With vault, only backups whose images are in the vault
 * count: a chain stands on images.
 */
static int
find_backup(const char *uuid, const char *chain, const char *checkpoint, const char *type,
            bool vault, struct db_backup **ret)
{
    struct db_backup_filter f = {.domain_uuid = uuid,
                                 .state = "completed",
                                 .chain_id = chain,
                                 .checkpoint = checkpoint,
                                 .type = type};
    struct db_backup **list = NULL;
    size_t n = 0;
    int r;

    r = db_backup_list(core_db(), &f, &list, &n, NULL);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        if (vault && core_backup_is_client_pull(list[i]))
            continue;
        *ret = TAKE_PTR(list[i]);
        db_backup_list_free(list, n);
        return 0;
    }
    db_backup_list_free(list, n);
    return -ENOENT;
}

/* Whether the backup req asks for stores images in the vault. */
static bool
request_to_vault(const struct core_backup_request *req)
{
    return !req->mode || strcmp(req->mode, "pull") != 0 || req->to_vault;
}

/*
 * Picks the parent of an incremental or differential (NULL for a full) and
 * settles the type of an "auto" backup into *type.
 */
static int
plan_parent(const char *uuid, const struct core_backup_request *req, const struct plan_disk *disks,
            size_t n, const char **type, struct db_backup **ret_parent)
{
    _cleanup_(db_backup_freep) struct db_backup *latest = NULL;
    _cleanup_(db_backup_freep) struct db_backup *parent = NULL;
    bool automatic = strcmp(req->type, "auto") == 0;
    int r;

    *ret_parent = NULL;
    if (strcmp(req->type, "full") == 0) {
        *type = "full";
        return 0;
    }
    /* Puts back into libvirt what it lost, and marks what is broken, before relying on it. */
    r = core_checkpoint_reconcile(uuid, 0, NULL);
    if (r < 0)
        return r;
    r = find_backup(uuid, NULL, NULL, NULL, request_to_vault(req), &latest);
    if (r == -ENOENT) {
        if (automatic) {
            *type = "full";
            return 0;
        }
        return err_set(-EBADFD, "the domain has no completed backup to count changes from; "
                                "take a full backup first (or use type auto)");
    }
    if (r < 0)
        return r;

    if (strcmp(req->type, "differential") == 0) {
        if (req->since)
            r = find_backup(uuid, latest->chain_id, req->since, NULL, request_to_vault(req),
                            &parent);
        else
            r = find_backup(uuid, latest->chain_id, NULL, "full", request_to_vault(req), &parent);
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
        *type = "differential";
        *ret_parent = TAKE_PTR(parent);
        return 0;
    }

    r = base_sound(uuid, latest, disks, n);
    if (r == -EBADFD && automatic) {
        log_info("backup of %s: a full backup instead of an incremental: %s", uuid,
                 err_detail() ? err_detail() : "");
        *type = "full";
        return 0;
    }
    if (r < 0)
        return r;
    *type = "incremental";
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

static int
plan_backup(const struct virt_domain *d, const struct core_backup_request *req,
            struct db_backup **ret)
{
    _cleanup_(db_backup_freep) struct db_backup *b = calloc(1, sizeof(*b));
    _cleanup_(db_backup_freep) struct db_backup *parent = NULL;
    struct plan_disk disks[MAX_DISKS];
    const char *type = NULL;
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
    b->started_at = text_now_ms();
    if (!(b->id = strdup(id)) || !(b->domain_uuid = strdup(d->uuid)) ||
        !(b->domain_name = strdup(d->name)) ||
        !(b->mode = strdup(req->mode ? req->mode : "push")) || !(b->type = strdup(type)) ||
        !(b->state = strdup("running")) ||
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
        struct db_backup_disk *k = &b->disks[b->n_disks++];

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

/* ---------------------------------------------------------------------------------------- */
/* The backup job */

struct backup_run {
    struct db_backup *b;
    uint64_t bandwidth;
    char **skip; /* targets of the domain's other disks (NULL-terminated) */
    size_t n_skip;
    bool begun;           /* libvirt's job was started by this process */
    bool pull;            /* a pull backup: libvirt serves exports on pull_socket */
    bool to_vault;        /* pull: the service copies the exports into the vault */
    bool offline;         /* the domain is shut off: its images are read with qemu-nbd */
    bool offline_defined; /* offline: the new checkpoint was given to libvirt */
    char **sources;       /* offline: the image of each disk of b, in b's order */
    char pull_socket[PATH_MAX];
};

static void
backup_run_free(void *data)
{
    struct backup_run *br = data;

    if (!br)
        return;
    db_backup_free(br->b);
    strv_free(br->skip);
    strv_free(br->sources);
    free(br);
}

static int
abs_path(const char *rel, char *buf, size_t size)
{
    if ((size_t)snprintf(buf, size, "%s/%s", bk.vault, rel) >= size)
        return err_set(-ENAMETOOLONG, "vault path too long");
    return 0;
}

/* Removes the images of b and the folders they leave empty. */
static void
remove_images(const struct db_backup *b)
{
    for (size_t i = 0; i < b->n_disks; i++) {
        if (!b->disks[i].file || !b->disks[i].file[0])
            continue;
        if (vault_image_remove(bk.vault, b->disks[i].file) < 0)
            log_warn("backup %s: %s", b->id, err_detail() ? err_detail() : "cannot delete");
        vault_prune_dirs(bk.vault, b->disks[i].file);
    }
}

/*
 * "<vault>/pull": where the sockets and scratch files of pull backups live
 * (backup ids are unique; a short path leaves room in sun_path).
 */
static int
pull_dir(const struct db_backup *b, char *buf, size_t size)
{
    if ((size_t)snprintf(buf, size, "%s/pull", bk.vault) >= size)
        return err_set(-ENAMETOOLONG, "vault path too long");
    return 0;
}

static int
pull_socket_path(const struct db_backup *b, char *buf, size_t size)
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
                       bk.vault, SOCKET_PATH_MAX);
    return 0;
}

static int
pull_scratch_path(const struct db_backup *b, const char *target, char *buf, size_t size)
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

static int
pull_prepare_dir(const struct db_backup *b)
{
    char dir[PATH_MAX];
    int r;

    r = pull_dir(b, dir, sizeof(dir));
    if (r < 0)
        return r;
    return vault_prepare(dir);
}

/* Removes the socket and scratch files a pull backup leaves once libvirt's job ended. */
static void
pull_cleanup_files(const struct db_backup *b)
{
    char path[PATH_MAX];

    if (pull_socket_path(b, path, sizeof(path)) == 0)
        (void)unlink(path);
    for (size_t i = 0; i < b->n_disks; i++)
        if (pull_scratch_path(b, b->disks[i].target, path, sizeof(path)) == 0)
            (void)unlink(path);
    err_clear();
}

int
core_backup_pull_export(const struct db_backup *b, const char *target, struct core_pull_export *ret)
{
    struct core_pull_export e = {0};
    const struct db_backup_disk *k = NULL;
    int r;

    if (!core_backup_is_client_pull(b))
        return err_set(-EBADFD, "backup %s is not a pull backup read by a client", b->id);
    for (size_t i = 0; i < b->n_disks; i++)
        if (strcmp(b->disks[i].target, target) == 0)
            k = &b->disks[i];
    if (!k)
        return err_set(-ENOENT, "backup %s has no disk '%s'", b->id, target);
    r = pull_socket_path(b, e.socket, sizeof(e.socket));
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

/* Makes the images and begins libvirt's job. */
static int
backup_begin(struct job *job, struct backup_run *br)
{
    struct db_backup *b = br->b;
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
            r = vault_image_create(bk.vault, b->disks[i].file, b->disks[i].size,
                                   b->disks[i].backing);
            if (r < 0)
                return r;
        }
        if (br->pull)
            r = pull_scratch_path(b, b->disks[i].target, part, PATH_MAX);
        else if ((size_t)snprintf(part, PATH_MAX, "%s/%s%s", bk.vault, b->disks[i].file,
                                  VAULT_PART_SUFFIX) >= PATH_MAX)
            r = err_set(-ENAMETOOLONG, "vault path too long");
        if (r < 0)
            return r;
        vd[i].target = b->disks[i].target;
        vd[i].file = part;
    }
    if (br->pull) {
        r = pull_prepare_dir(b);
        if (r < 0)
            return r;
        for (size_t i = 0; i < b->n_disks; i++)
            (void)unlink(vd[i].file);
        (void)unlink(br->pull_socket);
    }
    if (job_cancelled(job))
        return err_set(-ECANCELED, "the backup was cancelled before it began");

    snprintf(desc, sizeof(desc), "virtvault %s backup %s", b->type, b->id);
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
    /* The checkpoint's XML is stored in the same step: SQLite is its source of truth. */
    r = core_checkpoint_store_created(b->domain_uuid, cpxml);
    if (r < 0)
        return r;
    log_info("backup %s of %s began (%s%s%s)", b->id, b->domain_name, b->type,
             b->base_checkpoint ? " since " : "", b->base_checkpoint ? b->base_checkpoint : "");
    return 0;
}

/* Sleeps until a job-completed event or ms milliseconds pass. */
static void
wait_event(uint64_t *seen, unsigned ms)
{
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&bk.lock);
    while (bk.generation == *seen) {
        if (pthread_cond_timedwait(&bk.ended, &bk.lock, &until) != 0)
            break;
    }
    *seen = bk.generation;
    pthread_mutex_unlock(&bk.lock);
}

void
core_backup_on_event(const struct virt_event *ev)
{
    if (ev->kind != VIRT_EVENT_JOB_COMPLETED && ev->kind != VIRT_EVENT_STOPPED &&
        ev->kind != VIRT_EVENT_CONNECTED)
        return;
    pthread_mutex_lock(&bk.lock);
    bk.generation++;
    pthread_cond_broadcast(&bk.ended);
    pthread_mutex_unlock(&bk.lock);
}

/*
 * Follows libvirt's job until it ends, reporting progress. Returns 0 when
 * the backup succeeded, -ECANCELED when it was cancelled, or another
 * negative errno with the reason.
 */
static int
backup_follow(struct job *job, struct backup_run *br)
{
    const char *uuid = br->b->domain_uuid;
    uint64_t seen, lost_since = 0;
    bool aborted = false;
    int r;

    pthread_mutex_lock(&bk.lock);
    seen = bk.generation;
    pthread_mutex_unlock(&bk.lock);
    for (;;) {
        struct virt_job_info ji;

        r = virt_job_get(uuid, false, &ji);
        if (r == -ENOTCONN) {
            uint64_t now = (uint64_t)text_now_ms();
            if (!lost_since)
                lost_since = now;
            if (now - lost_since > RECONNECT_WAIT_MS)
                return err_set(-ENOTCONN, "libvirt stayed unreachable while the backup ran");
            wait_event(&seen, POLL_MS);
            continue;
        }
        if (r < 0)
            return r;
        lost_since = 0;
        if (ji.state == VIRT_JOB_RUNNING && ji.backup) {
            job_progress(job, ji.done, ji.total);
            for (size_t i = 0; i < br->b->n_disks; i++)
                (void)vault_image_writeback(bk.vault, br->b->disks[i].file);
            if (job_cancelled(job) && !aborted) {
                /* The cancel hook aborts too; this covers a cancel that came first. */
                if (virt_job_abort(uuid) < 0)
                    err_clear();
                aborted = true;
            }
            wait_event(&seen, POLL_MS);
            continue;
        }
        if (ji.state == VIRT_JOB_RUNNING) {
            wait_event(&seen, POLL_MS);
            continue;
        }

        r = virt_job_get(uuid, true, &ji);
        if (r < 0)
            return r;
        if (ji.state == VIRT_JOB_SUCCEEDED && ji.backup && !job_cancelled(job)) {
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
backup_seal(struct job *job, struct backup_run *br)
{
    struct db_backup *b = br->b;
    char result[256];
    uint64_t stored = 0;
    int r;

    for (size_t i = 0; i < b->n_disks; i++) {
        char hex[HASH_SHA256_HEX_LEN + 1];
        struct db_backup_disk *k = &b->disks[i];

        if (!k->file[0])
            continue; /* a client read it: nothing was stored */
        r = vault_image_seal(bk.vault, k->file, &k->stored_bytes, hex);
        if (r < 0)
            return r;
        free(k->sha256);
        k->sha256 = strdup(hex);
        if (!k->sha256)
            return -ENOMEM;
        stored += k->stored_bytes;
    }
    free(b->state);
    b->state = strdup("completed");
    if (!b->state)
        return -ENOMEM;
    b->stored_bytes = stored;
    b->finished_at = text_now_ms();
    r = db_backup_finish(core_db(), b);
    if (r < 0)
        return r;
    snprintf(result, sizeof(result),
             "{\"backup_id\": \"%s\", \"type\": \"%s\", \"stored_bytes\": %" PRIu64 "}", b->id,
             b->type, stored);
    log_info("backup %s of %s completed: %s, %" PRIu64 " bytes stored", b->id, b->domain_name,
             b->type, stored);
    return job_set_result(job, result);
}

/* Aborts libvirt's job when it still runs and waits (a little) for it to end. */
static void
job_stop(const char *uuid)
{
    struct virt_job_info ji;

    for (int i = 0; i < 100; i++) {
        if (virt_job_get(uuid, false, &ji) < 0 || ji.state != VIRT_JOB_RUNNING)
            break;
        if (i == 0 && virt_job_abort(uuid) < 0)
            break;
        usleep(100 * 1000);
    }
    err_clear();
}

/*
 * Undoes what a backup that did not complete left: its images, and the
 * checkpoint it created (its bitmaps merge into the parent checkpoint's,
 * so the next incremental still counts every change); records why.
 */
static int
backup_abandon(struct backup_run *br, int err)
{
    struct db_backup *b = br->b;
    char detail[1024];
    int r;

    snprintf(detail, sizeof(detail), "%s", err_detail() ? err_detail() : strerror(-err));
    if (br->begun)
        job_stop(b->domain_uuid);
    if (br->pull)
        pull_cleanup_files(b);
    remove_images(b);
    if (b->checkpoint) {
        /* The store first: a reconcile in between must not redefine what goes away. */
        r = db_checkpoint_delete(core_db(), b->domain_uuid, b->checkpoint);
        if (r < 0 && r != -ENOENT)
            log_warn("backup %s: cannot forget checkpoint %s: %s", b->id, b->checkpoint,
                     err_detail() ? err_detail() : strerror(-r));
        /* Its bitmap merges into the parent's: changes since the parent still count. */
        r = virt_checkpoint_delete(b->domain_uuid, b->checkpoint, 0);
        if (r < 0 && r != -ENOENT)
            log_warn("backup %s: cannot remove checkpoint %s: %s", b->id, b->checkpoint,
                     err_detail() ? err_detail() : strerror(-r));
    }
    free(b->state);
    b->state = strdup(err == -ECANCELED ? "cancelled" : "failed");
    free(b->error_detail);
    b->error_detail = strdup(detail);
    b->error_errno = err;
    b->finished_at = text_now_ms();
    b->stored_bytes = 0;
    if (b->state && db_backup_finish(core_db(), b) < 0)
        log_warn("backup %s: cannot record its end: %s", b->id, err_detail());
    log_info("backup %s of %s %s: %s", b->id, b->domain_name, b->state ? b->state : "failed",
             detail);
    return err_set(err, "%s", detail);
}

/* ---------------------------------------------------------------------------------------- */
/* Pull mode: exports for clients, copies into the vault, stopped domains */

/* The session of pull backup id, or NULL. Call with bk.lock held. */
static struct pull_session *
pull_find(const char *id)
{
    for (size_t i = 0; i < MAX_PULLS; i++)
        if (bk.pulls[i].used && strcmp(bk.pulls[i].id, id) == 0)
            return &bk.pulls[i];
    return NULL;
}

static void
pull_touch(const char *id)
{
    struct pull_session *ps;

    pthread_mutex_lock(&bk.lock);
    ps = pull_find(id);
    if (ps)
        ps->last_ms = text_now_ms();
    pthread_mutex_unlock(&bk.lock);
}

/* Wakes every job waiting in wait_event(). */
static void
wake_jobs(void)
{
    pthread_mutex_lock(&bk.lock);
    bk.generation++;
    pthread_cond_broadcast(&bk.ended);
    pthread_mutex_unlock(&bk.lock);
}

static void
pull_unregister(const char *id)
{
    struct pull_session *ps;

    pthread_mutex_lock(&bk.lock);
    ps = pull_find(id);
    if (ps)
        ps->used = false;
    bk.generation++;
    pthread_cond_broadcast(&bk.ended);
    pthread_mutex_unlock(&bk.lock);
}

/* Waits for the end of a ready pull backup; see pull_serve(). */
static int
pull_wait(struct job *job, const struct db_backup *b, struct pull_session *ps, uint64_t seen)
{
    int r;

    for (;;) {
        struct virt_job_info ji;
        bool finish;
        int64_t idle;

        wait_event(&seen, 1000);
        pthread_mutex_lock(&bk.lock);
        finish = ps->finish;
        idle = text_now_ms() - ps->last_ms;
        pthread_mutex_unlock(&bk.lock);
        if (job_cancelled(job))
            return err_set(-ECANCELED, "the pull backup was abandoned: its checkpoint was removed");
        if (finish)
            return 0;
        if (idle > (int64_t)bk.pull_idle_s * 1000)
            return err_set(-ETIMEDOUT,
                           "no client read the exports for %u s (the pull idle timeout): the "
                           "backup was abandoned and its checkpoint removed",
                           bk.pull_idle_s);
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
static int
pull_serve(struct job *job, struct backup_run *br)
{
    const struct db_backup *b = br->b;
    struct pull_session *ps = NULL;
    uint64_t seen;
    int r;

    pthread_mutex_lock(&bk.lock);
    for (size_t i = 0; i < MAX_PULLS && !ps; i++)
        if (!bk.pulls[i].used)
            ps = &bk.pulls[i];
    if (ps) {
        *ps = (struct pull_session){.used = true, .last_ms = text_now_ms()};
        snprintf(ps->id, sizeof(ps->id), "%s", b->id);
    }
    seen = bk.generation;
    pthread_mutex_unlock(&bk.lock);
    if (!ps)
        return err_set(-EAGAIN, "too many pull backups are ready at once (at most %d)", MAX_PULLS);
    r = db_backup_set_state(core_db(), b->id, "ready");
    if (r < 0)
        return r;
    log_info("backup %s of %s ready: exports on %s", b->id, b->domain_name, br->pull_socket);
    job_park(job, true); /* clients set the pace now: free the worker's place for others */
    r = pull_wait(job, b, ps, seen);
    job_park(job, false);
    return r;
}

/* Records a client pull backup as completed: it stored nothing. */
static int
pull_complete(struct job *job, struct backup_run *br)
{
    struct db_backup *b = br->b;
    char result[256];
    int r;

    free(b->state);
    b->state = strdup("completed");
    if (!b->state)
        return -ENOMEM;
    b->stored_bytes = 0;
    b->finished_at = text_now_ms();
    r = db_backup_finish(core_db(), b);
    if (r < 0)
        return r;
    snprintf(result, sizeof(result),
             "{\"backup_id\": \"%s\", \"type\": \"%s\", \"stored_bytes\": 0}", b->id, b->type);
    log_info("backup %s of %s finished: %s pull, checkpoint %s kept", b->id, b->domain_name,
             b->type, b->checkpoint);
    return job_set_result(job, result);
}

/* What the copy reports progress into. */
struct copy_ctx {
    struct job *job;
    uint64_t base, total;
};

static int
copy_progress(void *opaque, uint64_t done)
{
    struct copy_ctx *c = opaque;

    job_progress(c->job, c->base + done, c->total);
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
                  int (*fn)(void *opaque, const struct virt_extent *ext, size_t n), void *opaque)
{
    uint64_t at = 0, size = virt_nbd_size(src);
    int r = 0;

    while (r >= 0 && at < size) {
        _cleanup_free_ struct virt_extent *ext = NULL;
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
count_bytes(void *opaque, const struct virt_extent *ext, size_t n)
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
copy_page(void *opaque, const struct virt_extent *ext, size_t n)
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
static int
copy_into_vault(struct job *job, struct backup_run *br, struct virt_nbd **srcs,
                char *const *contexts)
{
    struct db_backup *b = br->b;
    struct copy_ctx cc = {.job = job};
    int r = 0;

    /* A first pass counts the bytes for progress, holding one page at a time. */
    for (size_t i = 0; r >= 0 && i < b->n_disks; i++)
        r = copy_extent_pages(srcs[i], contexts ? contexts[i] : NULL, count_bytes, &cc.total);
    job_progress(job, 0, cc.total);
    for (size_t i = 0; r >= 0 && i < b->n_disks; i++) {
        _cleanup_(virt_nbd_closep) struct virt_nbd *dst = NULL;
        char part[PATH_MAX];

        if ((size_t)snprintf(part, sizeof(part), "%s/%s%s", bk.vault, b->disks[i].file,
                             VAULT_PART_SUFFIX) >= sizeof(part)) {
            r = err_set(-ENAMETOOLONG, "vault path too long");
            break;
        }
        r = virt_nbd_open_image(part, NULL, true, &dst);
        if (r < 0)
            break;
        struct copy_page_ctx pc = {srcs[i], dst, &cc};
        r = copy_extent_pages(srcs[i], contexts ? contexts[i] : NULL, copy_page, &pc);
    }
    if (r >= 0)
        job_progress(job, cc.total, cc.total);
    return r;
}

/* A pull backup into the vault: reads libvirt's exports and ends libvirt's job. */
static int
pull_to_vault(struct job *job, struct backup_run *br)
{
    struct db_backup *b = br->b;
    _cleanup_free_ struct virt_nbd **srcs = calloc(b->n_disks, sizeof(*srcs));
    _cleanup_free_ char **contexts = calloc(b->n_disks, sizeof(*contexts));
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
    if (r >= 0)
        r = copy_into_vault(job, br, srcs, contexts);
    for (size_t i = 0; i < b->n_disks; i++) {
        virt_nbd_close(srcs[i]);
        free(contexts[i]);
    }
    if (r < 0)
        return r;
    /* The copy is complete: ending the job is how a pull backup ends. */
    job_stop(b->domain_uuid);
    pull_cleanup_files(b);
    br->begun = false;
    return 0;
}

/*
 * A backup of a shut-off domain: its images are read with qemu-nbd (only
 * the dirty extents of the base checkpoint's bitmap for an incremental),
 * then the new checkpoint's bitmap is added to each image and the
 * checkpoint redefined, as libvirt cannot create one for an inactive
 * domain.
 */
static int
offline_run(struct job *job, struct backup_run *br)
{
    struct db_backup *b = br->b;
    _cleanup_free_ struct virt_nbd **srcs = calloc(b->n_disks, sizeof(*srcs));
    _cleanup_free_ char **contexts = calloc(b->n_disks, sizeof(*contexts));
    _cleanup_free_ const char **targets = calloc(b->n_disks, sizeof(*targets));
    _cleanup_free_ char *parent = NULL;
    _cleanup_free_ char *cpxml = NULL;
    size_t added = 0;
    int r = 0;

    if (!srcs || !contexts || !targets)
        return -ENOMEM;
    for (size_t i = 0; i < b->n_disks; i++) {
        r = vault_image_create(bk.vault, b->disks[i].file, b->disks[i].size, b->disks[i].backing);
        if (r < 0)
            return r;
    }
    for (size_t i = 0; r >= 0 && i < b->n_disks; i++) {
        if (b->base_checkpoint &&
            asprintf(&contexts[i], "qemu:dirty-bitmap:%s", b->base_checkpoint) < 0) {
            r = -ENOMEM;
            break;
        }
        r = virt_nbd_open_image(br->sources[i], b->base_checkpoint, false, &srcs[i]);
    }
    if (r >= 0)
        r = copy_into_vault(job, br, srcs, contexts);
    for (size_t i = 0; i < b->n_disks; i++) {
        virt_nbd_close(srcs[i]);
        free(contexts[i]);
    }
    if (r < 0)
        return r;
    if (job_cancelled(job))
        return err_set(-ECANCELED, "the backup was cancelled");

    /* The next checkpoint: a bitmap in each image, then libvirt's metadata. */
    r = core_checkpoint_newest_healthy(b->domain_uuid, &parent);
    if (r == -ENOENT) {
        err_clear();
        r = 0;
    }
    for (size_t i = 0; r >= 0 && i < b->n_disks; i++) {
        r = virt_image_bitmap_set(br->sources[i], b->checkpoint, true);
        if (r >= 0)
            added++;
        targets[i] = b->disks[i].target;
    }
    if (r >= 0)
        r = virt_checkpoint_define_offline(b->domain_uuid, b->checkpoint, parent, targets,
                                           b->n_disks, (const char *const *)br->skip, br->n_skip,
                                           &cpxml);
    if (r >= 0) {
        br->offline_defined = true;
        r = core_checkpoint_store_created(b->domain_uuid, cpxml);
    }
    if (r < 0) {
        char keep[1024];
        snprintf(keep, sizeof(keep), "%s", err_detail() ? err_detail() : strerror(-r));
        for (size_t i = 0; i < added; i++)
            if (virt_image_bitmap_set(br->sources[i], b->checkpoint, false) < 0)
                log_warn("backup %s: cannot remove bitmap %s from %s: %s", b->id, b->checkpoint,
                         br->sources[i], err_detail());
        return err_set(r, "%s", keep);
    }
    log_info("backup %s of stopped domain %s: checkpoint %s added%s%s", b->id, b->domain_name,
             b->checkpoint, parent ? " after " : "", parent ? parent : "");
    return 0;
}

static int
backup_job_run(struct job *job, void *data)
{
    struct backup_run *br = data;
    int r;

    if (br->offline) {
        r = offline_run(job, br);
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
            r = pull_to_vault(job, br);
            if (r == 0)
                r = backup_seal(job, br);
            if (r < 0)
                return backup_abandon(br, job_cancelled(job) ? -ECANCELED : r);
            return 0;
        }
        r = pull_serve(job, br);
        if (r == 0) {
            job_stop(br->b->domain_uuid);
            pull_cleanup_files(br->b);
            br->begun = false;
            r = pull_complete(job, br);
        }
        if (r < 0)
            r = backup_abandon(br, r);
        pull_unregister(br->b->id);
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

static int
backup_job_cancel(struct job *job, void *data)
{
    struct backup_run *br = data;
    int r;

    if (br->offline) {
        wake_jobs();
        return 0; /* no libvirt job: the copy sees the flag */
    }
    r = br->pull && !br->to_vault ? 0 : virt_job_abort(br->b->domain_uuid);
    wake_jobs();
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
static int
backup_job_recover(const struct db_job *rec, void **ret_data)
{
    struct backup_run *br;
    struct db_backup *b = NULL;
    int r;

    if (!rec->params)
        return 0;
    r = db_backup_get(core_db(), rec->params, &b);
    if (r < 0)
        return r;
    /* A pull backup's exports and copies were this process's: the sweep ends them. */
    if (strcmp(b->state, "running") != 0 || strcmp(b->mode, "push") != 0) {
        db_backup_free(b);
        return 0;
    }
    br = calloc(1, sizeof(*br));
    if (!br) {
        db_backup_free(b);
        return -ENOMEM;
    }
    br->b = b;
    *ret_data = br;
    return 1;
}

static const struct job_kind backup_kind = {
    .name = "backup",
    .run = backup_job_run,
    .cancel = backup_job_cancel,
    .recover = backup_job_recover,
    .free_data = backup_run_free,
};

/*
 * The image of each disk of b on the stopped domain d, checked for what an
 * offline backup needs: a qcow2 file and, for an incremental, the base
 * checkpoint's bitmap, present and sound. *ret is a new NULL-terminated
 * array in b's disk order.
 */
static int
offline_sources(const struct virt_domain *d, const struct db_backup *b, char ***ret)
{
    char **v = calloc(b->n_disks + 1, sizeof(*v));

    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < b->n_disks; i++) {
        const struct virt_disk *k = NULL;
        struct virt_image_bitmap *bm = NULL;
        size_t n_bm = 0;
        int found = 0, r;

        for (size_t j = 0; j < d->n_disks; j++)
            if (strcmp(d->disks[j].target, b->disks[i].target) == 0)
                k = &d->disks[j];
        if (!k || !k->type || strcmp(k->type, "file") != 0) {
            strv_free(v);
            return err_set(-EOPNOTSUPP,
                           "disk '%s' of the stopped domain is not a file: only qcow2 files "
                           "can be read while the domain is shut off",
                           b->disks[i].target);
        }
        if (!(v[i] = strdup(k->source))) {
            strv_free(v);
            return -ENOMEM;
        }
        if (!b->base_checkpoint)
            continue;
        r = virt_image_bitmaps(k->source, &bm, &n_bm);
        if (r < 0) {
            strv_free(v);
            return r;
        }
        for (size_t j = 0; j < n_bm; j++)
            if (strcmp(bm[j].name, b->base_checkpoint) == 0)
                found = bm[j].in_use ? -1 : 1;
        virt_image_bitmaps_free(bm, n_bm);
        if (found <= 0) {
            strv_free(v);
            return err_set(-EBADFD,
                           "the image of disk '%s' %s bitmap '%s' of the base checkpoint, so "
                           "the changes since it cannot be told: take a full backup (or use "
                           "type auto after deleting the chain)",
                           b->disks[i].target, found < 0 ? "holds an unsound (in-use)" : "lacks",
                           b->base_checkpoint);
        }
    }
    *ret = v;
    return 0;
}

int
core_backup_create(const char *domain, const struct core_backup_request *req,
                   struct db_backup **ret, struct db_job **ret_job)
{
    _cleanup_(virt_domain_freep) struct virt_domain *d = NULL;
    _cleanup_(db_backup_freep) struct db_backup *b = NULL;
    struct backup_run *br;
    struct db_job *job = NULL;
    char holder[128];
    int r;

    bool pull = req->mode && strcmp(req->mode, "pull") == 0;
    bool offline = false;

    r = virt_domain_get(domain, &d);
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
    r = plan_backup(d, req, &b);
    if (r < 0)
        return r;

    br = calloc(1, sizeof(*br));
    if (!br)
        return -ENOMEM;
    br->bandwidth = req->bandwidth;
    br->pull = pull && !offline;
    br->to_vault = req->to_vault;
    br->offline = offline;
    r = br->pull ? pull_socket_path(b, br->pull_socket, sizeof(br->pull_socket)) : 0;
    if (r >= 0 && offline)
        r = offline_sources(d, b, &br->sources);
    if (r < 0) {
        backup_run_free(br);
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
            backup_run_free(br);
            return -ENOMEM;
        }
    }

    /* The row first, so that the job never runs without it; removed when the queue refuses. */
    r = db_backup_insert(core_db(), b);
    if (r < 0) {
        backup_run_free(br);
        return r;
    }
    r = db_backup_get(core_db(), b->id, &br->b);
    if (r < 0) {
        db_backup_delete(core_db(), b->id);
        backup_run_free(br);
        return r;
    }
    struct job_spec spec = {
        .kind = &backup_kind,
        .domain = d->name,
        .domain_uuid = d->uuid,
        .params = b->id,
        .data = br,
    };
    r = core_job_submit(&spec, &job);
    if (r < 0) {
        char keep[1024];
        snprintf(keep, sizeof(keep), "%s", err_detail() ? err_detail() : "");
        db_backup_delete(core_db(), b->id);
        return err_set(r, "%s", keep);
    }
    /* The job runs now whatever happens here: a row without its job id is no reason to fail. */
    if (db_backup_set_job(core_db(), b->id, job->id) < 0)
        log_warn("backup %s: cannot record its job %s: %s", b->id, job->id, err_detail());
    free(b->job_id);
    b->job_id = strdup(job->id);
    *ret = TAKE_PTR(b);
    *ret_job = job;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Catalog */

int
core_backup_list(const char *domain, const struct core_backup_query *q, struct db_backup ***ret,
                 size_t *ret_n, size_t *ret_total)
{
    _cleanup_free_ char *name = NULL;
    char uuid[37];
    int r;

    r = domain_resolve(domain, uuid, &name);
    if (r < 0)
        return r;
    struct db_backup_filter f = {
        .domain_uuid = uuid,
        .type = q->type,
        .state = q->state,
        .limit = q->limit,
        .offset = q->offset,
    };
    return db_backup_list(core_db(), &f, ret, ret_n, ret_total);
}

int
core_backup_get(const char *domain, const char *id, struct db_backup **ret)
{
    _cleanup_free_ char *name = NULL;
    char uuid[37];
    int r;

    r = domain_resolve(domain, uuid, &name);
    if (r < 0)
        return r;
    return backup_of(uuid, id, ret);
}

/* Deletes one backup's files and row (it has no dependents left). */
static int
delete_one(const struct db_backup *b)
{
    int r;

    r = db_backup_delete(core_db(), b->id);
    if (r < 0)
        return r;
    remove_images(b);
    log_info("backup %s of %s deleted", b->id, b->domain_name);
    return 0;
}

/* Appends a copy of s to the NULL-terminated *v of *n strings. */
static int
strv_push(char ***v, size_t *n, const char *s)
{
    char **nv = realloc(*v, (*n + 2) * sizeof(*nv));

    if (!nv)
        return -ENOMEM;
    *v = nv;
    if (!(nv[*n] = strdup(s)))
        return -ENOMEM;
    nv[++*n] = NULL;
    return 0;
}

int
core_backup_delete(const char *domain, const char *id, bool chain, char ***ret_ids)
{
    _cleanup_free_ char *name = NULL;
    _cleanup_(db_backup_freep) struct db_backup *b = NULL;
    struct db_backup **list = NULL;
    char **deleted = NULL;
    size_t n = 0, nd = 0;
    char uuid[37];
    int r;

    r = domain_resolve(domain, uuid, &name);
    if (r < 0)
        return r;
    r = backup_of(uuid, id, &b);
    if (r < 0)
        return r;
    /* Deleting while a job of the domain runs could pull an image from under it. */
    char holder[128];
    if (core_busy_holder(uuid, holder, sizeof(holder)))
        return err_set(-EBUSY, "the domain is busy with %s", holder);

    if (!chain) {
        char **deps = NULL;
        size_t nd_ = 0;

        r = db_backup_dependents(core_db(), b->id, &deps, &nd_);
        if (r < 0)
            return r;
        if (nd_ > 0) {
            char names[768] = "";
            for (size_t i = 0; i < nd_; i++)
                snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
                         i ? ", " : "", deps[i]);
            strv_free(deps);
            return err_set(-ENOTEMPTY,
                           "backup %s cannot be deleted: backups %s depend on it (delete them "
                           "first, or the whole chain with ?chain=true)",
                           b->id, names);
        }
        strv_free(deps);
        r = delete_one(b);
        if (r >= 0)
            r = strv_push(&deleted, &nd, b->id);
    } else {
        struct db_backup_filter f = {.domain_uuid = uuid, .chain_id = b->chain_id};
        r = db_backup_list(core_db(), &f, &list, &n, NULL);
        /* Newest first: every backup goes before the one it stands on. */
        for (size_t i = 0; r >= 0 && i < n; i++) {
            r = delete_one(list[i]);
            if (r >= 0)
                r = strv_push(&deleted, &nd, list[i]->id);
        }
        backup_listp(&list, n);
    }
    if (r < 0) {
        strv_free(deleted);
        return r;
    }
    if (ret_ids)
        *ret_ids = deleted;
    else
        strv_free(deleted);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Restore */

/* Restore and verify runs begin with their vault_cancel: one cancel hook serves both. */
struct restore_run {
    struct vault_cancel cancel;
    struct db_backup *b;
    char *target_dir;
    char *format;
    char *define_name;
    unsigned keep; /* CORE_RESTORE_KEEP_* */
    uint64_t bandwidth;
};

static void
restore_run_free(void *data)
{
    struct restore_run *rr = data;

    if (!rr)
        return;
    db_backup_free(rr->b);
    free(rr->target_dir);
    free(rr->format);
    free(rr->define_name);
    free(rr);
}

/* The virt flags of a request's CORE_RESTORE_KEEP_* flags. */
static unsigned
restore_keep_flags(unsigned keep)
{
    return (keep & CORE_RESTORE_KEEP_LUN ? VIRT_CLONE_KEEP_LUN : 0) |
           (keep & CORE_RESTORE_KEEP_FILESYSTEM ? VIRT_CLONE_KEEP_FILESYSTEM : 0) |
           (keep & CORE_RESTORE_KEEP_HOSTDEV ? VIRT_CLONE_KEEP_HOSTDEV : 0) |
           (keep & CORE_RESTORE_KEEP_LOGS ? VIRT_CLONE_KEEP_LOGS : 0);
}

/* The restore job's result as JSON, into a new *ret. */
static int
restore_result(const struct restore_run *rr, char (*dest)[PATH_MAX], const char *uuid,
               const struct virt_clone_changes *changes, char **ret)
{
    const struct db_backup *b = rr->b;
    char *out = NULL;
    size_t out_len = 0;
    FILE *f = open_memstream(&out, &out_len);

    if (!f)
        return -ENOMEM;
    fprintf(f, "{\"backup_id\": \"%s\", \"format\": \"%s\", \"disks\": [", b->id, rr->format);
    for (size_t i = 0; i < b->n_disks; i++) {
        _cleanup_free_ char *q = text_json_quote(dest[i]);
        fprintf(f, "%s{\"target\": \"%s\", \"path\": %s}", i ? ", " : "", b->disks[i].target,
                q ? q : "null");
    }
    fputs("], \"domain\": ", f);
    if (rr->define_name) {
        fprintf(f, "{\"name\": \"%s\", \"uuid\": \"%s\", \"changes\": [", rr->define_name, uuid);
        for (size_t i = 0; i < changes->n; i++) {
            _cleanup_free_ char *q = text_json_quote(changes->items[i].detail);
            fprintf(f, "%s{\"what\": \"%s\", \"detail\": %s}", i ? ", " : "",
                    changes->items[i].what, q ? q : "null");
        }
        fputs("]}", f);
    } else {
        fputs("null", f);
    }
    fputs("}", f);
    if (fclose(f) != 0) {
        free(out);
        return -ENOMEM;
    }
    *ret = out;
    return 0;
}

static int
restore_job_run(struct job *job, void *data)
{
    struct restore_run *rr = data;
    struct db_backup *b = rr->b;
    _cleanup_free_ struct virt_restored_disk *rd = calloc(b->n_disks + 1, sizeof(*rd));
    _cleanup_free_ char(*dest)[PATH_MAX] = calloc(b->n_disks + 1, PATH_MAX);
    __attribute__((cleanup(virt_clone_changes_clear))) struct virt_clone_changes changes = {0};
    _cleanup_close_ int dirfd = -1;
    _cleanup_free_ char *out = NULL;
    size_t done_disks = 0;
    uint64_t total = 0, done = 0;
    char uuid[37] = "";
    int r = 0;

    if (!rd || !dest)
        return -ENOMEM;
    /* Checked again and opened once: every file below is made under this descriptor. */
    r = vault_dir_open(rr->target_dir, bk.roots, bk.n_roots, &dirfd);
    if (r < 0)
        return r;
    for (size_t i = 0; i < b->n_disks; i++)
        total += b->disks[i].size;
    job_progress(job, 0, total);
    for (size_t i = 0; r >= 0 && i < b->n_disks; i++) {
        char src[PATH_MAX];
        const char *name;

        r = abs_path(b->disks[i].file, src, sizeof(src));
        if (r < 0)
            break;
        /* "<new name>-vda.qcow2" for a define, else "<domain>-<backup>-vda.img". */
        if ((size_t)snprintf(dest[i], PATH_MAX, "%s/%s%s%s-%s.%s", rr->target_dir,
                             rr->define_name ? rr->define_name : b->domain_name,
                             rr->define_name ? "" : "-", rr->define_name ? "" : b->id,
                             b->disks[i].target,
                             strcmp(rr->format, "raw") == 0 ? "img" : "qcow2") >= PATH_MAX) {
            r = err_set(-ENAMETOOLONG, "restore path too long");
            break;
        }
        name = dest[i] + strlen(rr->target_dir) + 1;
        r = vault_image_flatten_at(dirfd, name, src, rr->format, rr->bandwidth, &rr->cancel);
        if (r < 0)
            break;
        done_disks++;
        done += b->disks[i].size;
        job_progress(job, done, total);
        rd[i] = (struct virt_restored_disk){b->disks[i].target, dest[i], rr->format};
    }
    if (r >= 0 && job_cancelled(job))
        r = err_set(-ECANCELED, "the restore was cancelled");
    if (r >= 0 && rr->define_name) {
        struct virt_clone_target where = {dirfd, rr->target_dir, restore_keep_flags(rr->keep)};
        r = virt_domain_define_restored(b->domain_xml, rr->define_name, rd, b->n_disks, &where,
                                        uuid, &changes);
    }
    if (r < 0) {
        int e = r;
        char keep[1024];
        snprintf(keep, sizeof(keep), "%s", err_detail() ? err_detail() : strerror(-r));
        for (size_t i = 0; i < done_disks; i++)
            (void)unlinkat(dirfd, dest[i] + strlen(rr->target_dir) + 1, 0);
        return err_set(e == -ECANCELED || job_cancelled(job) ? -ECANCELED : e, "%s", keep);
    }
    r = restore_result(rr, dest, uuid, &changes, &out);
    if (r < 0)
        return r;
    r = job_set_result(job, out);
    log_info("backup %s restored into %s%s%s", b->id, rr->target_dir,
             rr->define_name ? " as domain " : "", rr->define_name ? rr->define_name : "");
    return r;
}

/* Cancels a restore or verify run: data begins with its struct vault_cancel. */
static int
vault_job_cancel(struct job *job, void *data)
{
    struct vault_cancel *cancel = data;

    atomic_store(&cancel->cancelled, true);
    return 0;
}

static const struct job_kind restore_kind = {
    .name = "restore",
    .run = restore_job_run,
    .cancel = vault_job_cancel,
    .free_data = restore_run_free,
};

/* Reads a completed backup of domain for restore or verify. */
static int
completed_backup(const char *domain, const char *id, char **ret_name, struct db_backup **ret)
{
    _cleanup_free_ char *name = NULL;
    _cleanup_(db_backup_freep) struct db_backup *b = NULL;
    char uuid[37];
    int r;

    r = domain_resolve(domain, uuid, &name);
    if (r < 0)
        return r;
    r = backup_of(uuid, id, &b);
    if (r < 0)
        return r;
    if (strcmp(b->state, "completed") != 0)
        return err_set(-EBADFD, "backup %s is %s, not completed", b->id, b->state);
    if (core_backup_is_client_pull(b))
        return err_set(-EBADFD,
                       "backup %s was read by a client in pull mode: the vault holds no "
                       "images of it",
                       b->id);
    *ret_name = TAKE_PTR(name);
    *ret = TAKE_PTR(b);
    return 0;
}

int
core_backup_restore(const char *domain, const char *id, const struct core_restore_request *req,
                    struct db_job **ret_job)
{
    _cleanup_free_ char *name = NULL;
    struct db_backup *b = NULL;
    struct restore_run *rr;
    int r;

    if (strcmp(req->format, "qcow2") != 0 && strcmp(req->format, "raw") != 0)
        return err_set(-EINVAL, "format must be qcow2 or raw");
    if (req->define_name && !text_name_valid(req->define_name))
        return err_set(-EINVAL, "'%s' is not a valid domain name (1 to %d of A-Z a-z 0-9 . _ -)",
                       req->define_name, NAME_MAX_LEN);
    r = completed_backup(domain, id, &name, &b);
    if (r < 0)
        return r;
    if (req->define_name) {
        _cleanup_(virt_domain_freep) struct virt_domain *other = NULL;
        r = virt_domain_get(req->define_name, &other);
        if (r == 0) {
            db_backup_free(b);
            return err_set(-EEXIST, "a domain named '%s' exists already", req->define_name);
        }
        if (r != -ENOENT) {
            db_backup_free(b);
            return r;
        }
        err_clear();
    }
    r = vault_dir_inside(req->target_dir, bk.roots, bk.n_roots);
    if (r < 0) {
        db_backup_free(b);
        return r;
    }
    rr = calloc(1, sizeof(*rr));
    if (!rr) {
        db_backup_free(b);
        return -ENOMEM;
    }
    rr->b = b;
    rr->target_dir = strdup(req->target_dir);
    rr->format = strdup(req->format);
    rr->define_name = req->define_name ? strdup(req->define_name) : NULL;
    rr->keep = req->keep;
    rr->bandwidth = req->bandwidth;
    if (!rr->target_dir || !rr->format || (req->define_name && !rr->define_name)) {
        restore_run_free(rr);
        return -ENOMEM;
    }
    struct job_spec spec = {
        .kind = &restore_kind,
        .domain = name,
        .domain_uuid = b->domain_uuid,
        .params = b->id,
        .data = rr,
    };
    return core_job_submit(&spec, ret_job);
}

/* ---------------------------------------------------------------------------------------- */
/* Verify */

struct verify_run {
    struct vault_cancel cancel; /* first, as in restore_run */
    struct db_backup *b;
};

static void
verify_run_free(void *data)
{
    struct verify_run *vr = data;

    if (!vr)
        return;
    db_backup_free(vr->b);
    free(vr);
}

/* Records one problem as a line of *text. */
static void note(FILE *text, size_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
note(FILE *text, size_t *n, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfprintf(text, fmt, ap);
    va_end(ap);
    fputc('\n', text);
    ++*n;
}

/* Checks one image: checksum, qcow2 structure, backing file. */
static int
verify_disk(const struct db_backup *b, const struct db_backup_disk *k, struct verify_run *vr,
            FILE *text, size_t *problems)
{
    char path[PATH_MAX], hex[HASH_SHA256_HEX_LEN + 1];
    _cleanup_free_ char *backing = NULL;
    int r;

    r = abs_path(k->file, path, sizeof(path));
    if (r < 0)
        return r;
    if (access(path, F_OK) < 0) {
        note(text, problems, "%s: backup %s disk %s is missing", k->file, b->id, k->target);
        return 0;
    }
    r = hash_sha256_file(path, hex);
    if (r < 0) {
        note(text, problems, "%s: cannot be read: %s", k->file, err_detail());
        return 0;
    }
    if (!k->sha256 || strcmp(hex, k->sha256) != 0)
        note(text, problems, "%s: checksum mismatch (sha256 %s, recorded %s)", k->file, hex,
             k->sha256 ? k->sha256 : "none");
    r = vault_image_check(path, &vr->cancel);
    if (r == -ECANCELED)
        return r;
    if (r < 0)
        note(text, problems, "%s: %s", k->file, err_detail() ? err_detail() : "check failed");
    r = vault_qcow2_backing(path, &backing);
    if (r < 0) {
        note(text, problems, "%s: %s", k->file, err_detail());
        return 0;
    }
    if ((backing == NULL) != (k->backing == NULL) ||
        (backing && strcmp(backing, k->backing) != 0)) {
        note(text, problems, "%s: backing file is '%s', the catalog says '%s'", k->file,
             backing ? backing : "(none)", k->backing ? k->backing : "(none)");
    } else if (backing) {
        char bpath[PATH_MAX];
        const char *slash = strrchr(path, '/');
        snprintf(bpath, sizeof(bpath), "%.*s/%s", (int)(slash - path), path, backing);
        if (access(bpath, R_OK) < 0)
            note(text, problems, "%s: its backing file %s is missing", k->file, backing);
    }
    return 0;
}

static int
verify_job_run(struct job *job, void *data)
{
    struct verify_run *vr = data;
    struct db_backup *chain[MAX_CHAIN];
    size_t n_chain = 0, problems = 0, files = 0;
    uint64_t total = 0, done = 0;
    _cleanup_free_ char *text = NULL;
    _cleanup_free_ char *quoted = NULL;
    _cleanup_free_ char *result = NULL;
    size_t text_len = 0;
    char when[40];
    FILE *f;
    int r = 0;

    f = open_memstream(&text, &text_len);
    if (!f)
        return -ENOMEM;
    /* The backup and every backup it stands on, down to the full one. */
    chain[n_chain++] = vr->b;
    while (chain[n_chain - 1]->parent_id && n_chain < MAX_CHAIN) {
        struct db_backup *p = NULL;
        r = db_backup_get(core_db(), chain[n_chain - 1]->parent_id, &p);
        if (r == -ENOENT) {
            note(f, &problems, "backup %s stands on backup %s, which is gone",
                 chain[n_chain - 1]->id, chain[n_chain - 1]->parent_id);
            r = 0;
            break;
        }
        if (r < 0)
            break;
        chain[n_chain++] = p;
    }
    for (size_t c = 0; c < n_chain; c++)
        for (size_t i = 0; i < chain[c]->n_disks; i++)
            total += chain[c]->disks[i].stored_bytes;
    for (size_t c = 0; r >= 0 && c < n_chain; c++) {
        for (size_t i = 0; r >= 0 && i < chain[c]->n_disks; i++) {
            r = verify_disk(chain[c], &chain[c]->disks[i], vr, f, &problems);
            files++;
            done += chain[c]->disks[i].stored_bytes;
            job_progress(job, done, total);
            if (job_cancelled(job))
                r = err_set(-ECANCELED, "the verification was cancelled");
        }
    }
    for (size_t c = 1; c < n_chain; c++)
        db_backup_free(chain[c]);
    if (fclose(f) != 0)
        return -ENOMEM;
    if (r < 0)
        return r;

    r = db_backup_set_verification(core_db(), vr->b->id, text_now_ms(), problems == 0,
                                   problems ? text : NULL);
    if (r < 0)
        return r;
    text_time_now_rfc3339(when, sizeof(when), false);
    if (text_len && text[text_len - 1] == '\n')
        text[text_len - 1] = '\0';
    quoted = text_json_quote(text ? text : "");
    if (!quoted ||
        asprintf(&result,
                 "{\"backup_id\": \"%s\", \"ok\": %s, \"checked_at\": \"%s\", \"files\": %zu, "
                 "\"backups\": %zu, \"problems\": %s}",
                 vr->b->id, problems ? "false" : "true", when, files, n_chain,
                 problems ? quoted : "\"\"") < 0)
        return -ENOMEM;
    log_info("backup %s verified: %s", vr->b->id,
             problems ? "problems found" : "sound, every checksum matches");
    return job_set_result(job, result);
}

static const struct job_kind verify_kind = {
    .name = "verify",
    .run = verify_job_run,
    .cancel = vault_job_cancel,
    .free_data = verify_run_free,
};

int
core_backup_verify(const char *domain, const char *id, struct db_job **ret_job)
{
    _cleanup_free_ char *name = NULL;
    struct db_backup *b = NULL;
    struct verify_run *vr;
    int r;

    r = completed_backup(domain, id, &name, &b);
    if (r < 0)
        return r;
    vr = calloc(1, sizeof(*vr));
    if (!vr) {
        db_backup_free(b);
        return -ENOMEM;
    }
    vr->b = b;
    struct job_spec spec = {
        .kind = &verify_kind,
        .domain = name,
        .domain_uuid = b->domain_uuid,
        .params = b->id,
        .data = vr,
    };
    return core_job_submit(&spec, ret_job);
}

/* ---------------------------------------------------------------------------------------- */
/* Start-up */

int
core_backup_init(const char *vault_dir, const char *roots, unsigned pull_idle_timeout)
{
    char *copy, *save = NULL;
    int r;

    bk.pull_idle_s = pull_idle_timeout ? pull_idle_timeout : PULL_IDLE_DEFAULT;
    /* libvirt takes absolute paths only: the vault may have been given relative. */
    bk.vault = realpath(vault_dir, NULL);
    if (!bk.vault)
        return err_set(-errno, "cannot resolve the vault folder %s: %s", vault_dir,
                       strerror(errno));
    if (roots) {
        copy = strdup(roots);
        if (!copy)
            return -ENOMEM;
        for (char *p = strtok_r(copy, ":", &save); p && bk.n_roots < MAX_ROOTS;
             p = strtok_r(NULL, ":", &save))
            if (!(bk.roots[bk.n_roots++] = strdup(p))) {
                free(copy);
                return -ENOMEM;
            }
        free(copy);
    } else {
        char *def = NULL;
        if (asprintf(&def, "%s/restore", bk.vault) < 0)
            return -ENOMEM;
        r = vault_prepare(def);
        if (r < 0) {
            free(def);
            return r;
        }
        bk.roots[bk.n_roots++] = def;
    }
    r = core_jobs_register(&backup_kind);
    if (r >= 0)
        r = core_jobs_register(&restore_kind);
    if (r >= 0)
        r = core_jobs_register(&verify_kind);
    return r;
}

void
core_backup_sweep(void)
{
    struct db_backup_filter f = {.state = "running"};
    struct db_backup **list = NULL;
    size_t n = 0;

    if (db_backup_list(core_db(), &f, &list, &n, NULL) < 0) {
        log_warn("cannot read the backups left running: %s", err_detail());
        return;
    }
    for (size_t i = 0; i < n; i++) {
        _cleanup_(db_job_freep) struct db_job *job = NULL;
        bool pull = strcmp(list[i]->mode, "pull") == 0;
        struct backup_run br = {.b = list[i], .pull = pull, .begun = pull};

        if (list[i]->job_id && core_job_get(list[i]->job_id, &job) == 0 &&
            !db_job_state_final(job->state))
            continue; /* a resumed job carries it on */
        err_set(-EINTR, "interrupted: virtvaultd stopped before the backup's job could go on");
        backup_abandon(&br, -EINTR);
    }
    backup_listp(&list, n);

    /* Pull backups left ready: their exports end with the process that served them. */
    f.state = "ready";
    if (db_backup_list(core_db(), &f, &list, &n, NULL) < 0) {
        log_warn("cannot read the pull backups left ready: %s", err_detail());
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct backup_run br = {.b = list[i], .pull = true, .begun = true};

        err_set(-EINTR, "interrupted: virtvaultd stopped while the pull backup was ready");
        backup_abandon(&br, -EINTR);
    }
    backup_listp(&list, n);
}

void
core_backup_fini(void)
{
    free(TAKE_PTR(bk.vault));
    for (size_t i = 0; i < bk.n_roots; i++)
        free(bk.roots[i]);
    bk.n_roots = 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Pull mode: finish, and the readers of the HTTP data plane */

int
core_backup_finish(const char *domain, const char *id, struct db_backup **ret)
{
    _cleanup_(db_backup_freep) struct db_backup *b = NULL;
    _cleanup_free_ char *name = NULL;
    struct pull_session *ps;
    int64_t until = text_now_ms() + FINISH_WAIT_MS;
    uint64_t seen;
    char uuid[37];
    int r;

    r = domain_resolve(domain, uuid, &name);
    if (r < 0)
        return r;
    r = backup_of(uuid, id, &b);
    if (r < 0)
        return r;
    pthread_mutex_lock(&bk.lock);
    ps = pull_find(b->id);
    if (ps) {
        ps->finish = true;
        bk.generation++;
        pthread_cond_broadcast(&bk.ended);
    }
    seen = bk.generation;
    pthread_mutex_unlock(&bk.lock);
    if (!ps)
        return err_set(-EBADFD, "backup %s is %s, not a ready pull backup", b->id, b->state);
    /* The job ends libvirt's and records the outcome; the session goes when it has. */
    for (;;) {
        bool gone;

        wait_event(&seen, 250);
        pthread_mutex_lock(&bk.lock);
        gone = pull_find(b->id) == NULL;
        pthread_mutex_unlock(&bk.lock);
        if (gone)
            break;
        if (text_now_ms() > until)
            return err_set(-ETIMEDOUT, "backup %s did not finish within %d s", b->id,
                           FINISH_WAIT_MS / 1000);
    }
    db_backup_free(TAKE_PTR(b));
    return backup_of(uuid, id, ret);
}

struct core_pull_reader {
    struct virt_nbd *n;
    char id[17];
    char context[96]; /* "" for a full backup */
    int64_t touched;
};

int
core_pull_reader_open(const char *domain, const char *id, const char *disk,
                      struct core_pull_reader **ret)
{
    _cleanup_(db_backup_freep) struct db_backup *b = NULL;
    _cleanup_free_ char *name = NULL;
    _cleanup_free_ struct core_pull_reader *pr = calloc(1, sizeof(*pr));
    struct core_pull_export e;
    bool ready;
    char uuid[37];
    int r;

    if (!pr)
        return -ENOMEM;
    r = domain_resolve(domain, uuid, &name);
    if (r < 0)
        return r;
    r = backup_of(uuid, id, &b);
    if (r < 0)
        return r;
    pthread_mutex_lock(&bk.lock);
    ready = pull_find(b->id) != NULL;
    pthread_mutex_unlock(&bk.lock);
    if (!core_backup_is_client_pull(b) && strcmp(b->mode, "pull") != 0)
        return err_set(-EBADFD, "backup %s is a push backup: it has no exports", b->id);
    if (!ready || strcmp(b->state, "ready") != 0)
        return err_set(-EBADFD, "backup %s is %s: its exports are not ready", b->id, b->state);
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

uint64_t
core_pull_reader_size(const struct core_pull_reader *r)
{
    return virt_nbd_size(r->n);
}

int
core_pull_reader_extents(struct core_pull_reader *r, bool dirty, uint64_t offset, uint64_t length,
                         size_t limit, struct virt_extent **ret, size_t *ret_n, uint64_t *ret_next)
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
core_pull_reader_prepare(struct core_pull_reader *r, uint64_t pos, uint64_t len)
{
    virt_nbd_prepare(r->n, pos, len);
}

ssize_t
core_pull_reader_read(struct core_pull_reader *r, uint64_t pos, void *buf, size_t max)
{
    int64_t now = text_now_ms();

    /* At most one touch a second: reads come in 2 MiB pieces or smaller. */
    if (now - r->touched >= 1000) {
        pull_touch(r->id);
        r->touched = now;
    }
    return virt_nbd_read(r->n, pos, buf, max);
}
