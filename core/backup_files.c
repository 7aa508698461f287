/*
 * Files inside backup points (files.h): a cache of launched libguestfs
 * handles, one per backup point, each disk a drive over the top image of
 * its chain in the vault (qcow2, read-only: its backing files are
 * opened read-only too, and nothing of the vault is ever written).
 *
 * Each handle is in the table from the start of its launch on. A request
 * that finds it launching waits on `files.changed` for that launch's end
 * (one launch however many ask). `users` counts the requests and open
 * readers holding it; an idle handle (no users) is closed by the reaper
 * after the idle timeout, or earlier to make room under the cap. A backup
 * that is deleted or pruned has its handles taken out of the table at
 * once (backup_files_forget): the last user closes them. The files they
 * read stay readable until then (an unlinked file lives on while open), so
 * a download in flight ends well, and no new request reaches them.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backup_priv.h"
#include "cleanup.h"
#include "err.h"
#include "files.h"
#include "log.h"
#include "text.h"
#include "virt/gfs.h"

#define FILES_IDLE_DEF   300
#define FILES_MAX_DEF    2
#define FILES_MEMSIZE_MB 512

enum handle_state {
    HANDLE_LAUNCHING,
    HANDLE_READY,
    HANDLE_FAILED,
};

struct handle {
    char backup_id[17];
    char **targets; /* the backup's disks, in the order of the appliance's drives */
    size_t n_targets;
    enum handle_state state;
    int launch_r; /* HANDLE_FAILED: the launch's error */
    char launch_detail[512];
    pthread_mutex_t lock; /* serialises the calls on g */
    struct virt_gfs *g;
    struct conf_filesystem *fs;
    size_t n_fs;
    unsigned users;
    bool in_table;
    int64_t last_ms;
    struct handle *next;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t changed; /* a launch ended, or the reaper should look */
    struct handle *list;
    unsigned n;
    uint64_t launches;
    unsigned idle_s, max;
    char *backend_settings;
    pthread_t reaper;
    bool running, stopping;
} files = {.lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER};

static void
handle_free(struct handle *h)
{
    if (!h)
        return;
    if (h->g) {
        log_info("files of backup %s: appliance closed", h->backup_id);
        virt_gfs_close(h->g);
    }
    conf_filesystems_free(h->fs, h->n_fs);
    for (size_t i = 0; i < h->n_targets; i++)
        free(h->targets[i]);
    free(h->targets);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

/* Takes h out of the table. Call with files.lock held. */
static void
unlink_locked(struct handle *h)
{
    for (struct handle **p = &files.list; *p; p = &(*p)->next)
        if (*p == h) {
            *p = h->next;
            h->next = NULL;
            h->in_table = false;
            files.n--;
            return;
        }
}

static void *
reaper(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&files.lock);
    while (!files.stopping) {
        int64_t now = text_now_ms();
        struct handle *idle = NULL;
        struct timespec until;

        for (struct handle *h = files.list; h; h = h->next)
            if (h->state == HANDLE_READY && h->users == 0 &&
                now - h->last_ms > (int64_t)files.idle_s * 1000) {
                idle = h;
                break;
            }
        if (idle) {
            unlink_locked(idle);
            pthread_mutex_unlock(&files.lock);
            log_info("files of backup %s: nobody read them for %u s", idle->backup_id,
                     files.idle_s);
            handle_free(idle);
            pthread_mutex_lock(&files.lock);
            continue;
        }
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&files.changed, &files.lock, &until);
    }
    pthread_mutex_unlock(&files.lock);
    return NULL;
}

int
core_files_init(const struct core_files_config *cfg)
{
    files.idle_s = cfg && cfg->idle_s ? cfg->idle_s : FILES_IDLE_DEF;
    files.max = cfg && cfg->max_handles ? cfg->max_handles : FILES_MAX_DEF;
    free(files.backend_settings);
    files.backend_settings = NULL;
    if (cfg && cfg->backend_settings && !(files.backend_settings = strdup(cfg->backend_settings)))
        return -ENOMEM;
    files.stopping = false;
    if (pthread_create(&files.reaper, NULL, reaper, NULL) != 0)
        return err_set(-EAGAIN, "cannot start the reaper of file handles");
    files.running = true;
    return 0;
}

void
core_files_fini(void)
{
    struct handle *list;

    if (!files.running)
        return;
    pthread_mutex_lock(&files.lock);
    files.stopping = true;
    pthread_cond_broadcast(&files.changed);
    pthread_mutex_unlock(&files.lock);
    pthread_join(files.reaper, NULL);
    files.running = false;
    pthread_mutex_lock(&files.lock);
    list = files.list;
    files.list = NULL;
    files.n = 0;
    pthread_mutex_unlock(&files.lock);
    while (list) {
        struct handle *next = list->next;
        list->in_table = false;
        /* Every request ended before the core stops; one still held would leak, not crash. */
        if (list->users == 0)
            handle_free(list);
        list = next;
    }
    free(files.backend_settings);
    files.backend_settings = NULL;
}

bool
core_files_available(void)
{
    return virt_gfs_available();
}

bool
core_files_warm(const char *id)
{
    bool warm = false;

    pthread_mutex_lock(&files.lock);
    for (struct handle *h = files.list; h && !warm; h = h->next)
        warm = h->state == HANDLE_READY && strcmp(h->backup_id, id) == 0;
    pthread_mutex_unlock(&files.lock);
    return warm;
}

void
core_files_stats(uint64_t *ret_launches, unsigned *ret_open)
{
    pthread_mutex_lock(&files.lock);
    *ret_launches = files.launches;
    *ret_open = files.n;
    pthread_mutex_unlock(&files.lock);
}

void
backup_files_forget(const char *backup_id)
{
    struct handle *closing = NULL;

    pthread_mutex_lock(&files.lock);
    for (struct handle *h = files.list, *next; h; h = next) {
        next = h->next;
        if (strcmp(h->backup_id, backup_id) != 0 || h->state != HANDLE_READY)
            continue;
        unlink_locked(h);
        if (h->users == 0) {
            h->next = closing;
            closing = h;
        }
    }
    pthread_mutex_unlock(&files.lock);
    while (closing) {
        struct handle *next = closing->next;
        handle_free(closing);
        closing = next;
    }
}

/*
 * Gives h back; the last user of a handle out of the table closes it. A
 * handle whose appliance died leaves the table: the next request launches
 * a new one.
 */
static void
handle_release(struct handle *h)
{
    bool close_it, dead;

    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    dead = !virt_gfs_alive(h->g);
    pthread_mutex_unlock(&h->lock);
    pthread_mutex_lock(&files.lock);
    if (dead && h->in_table) {
        log_warn("files of backup %s: the appliance died; a new one starts on the next request",
                 h->backup_id);
        unlink_locked(h);
    }
    h->users--;
    h->last_ms = text_now_ms();
    close_it = h->users == 0 && !h->in_table;
    pthread_mutex_unlock(&files.lock);
    if (close_it)
        handle_free(h);
}

static inline void
handle_releasep(struct handle **h)
{
    handle_release(*h);
}

/* Launches the appliance of h over images (out of files.lock) and lists its filesystems. */
static int
handle_launch(struct handle *h, const char *const *images)
{
    int64_t t0 = text_now_ms();
    int r;

    r = virt_gfs_launch(images, h->n_targets, "qcow2", files.backend_settings, FILES_MEMSIZE_MB,
                        &h->g);
    if (r >= 0)
        r = virt_gfs_filesystems(h->g, &h->fs, &h->n_fs);
    if (r < 0)
        return r;
    log_info("files of backup %s: appliance launched in %.1f s, %zu filesystem(s) on %zu disk(s)",
             h->backup_id, (double)(text_now_ms() - t0) / 1000.0, h->n_fs, h->n_targets);
    return 0;
}

/* The drive of disk target in h, or -1. */
static int
handle_drive(const struct handle *h, const char *disk)
{
    for (size_t i = 0; i < h->n_targets; i++)
        if (strcmp(h->targets[i], disk) == 0)
            return (int)i;
    return -1;
}

/* Whether filesystem f lies on drive (one whose drive is unknown lies on every one). */
static bool
on_drive(const struct conf_filesystem *f, int drive)
{
    return f->drive < 0 || f->drive == drive;
}

/* Fills h's targets from b, and *ret_images (a new array) with their images' paths. */
static int
handle_images(struct handle *h, const struct conf_backup *b, char ***ret_images)
{
    char **images = calloc(b->n_disks + 1, sizeof(*images));

    h->targets = calloc(b->n_disks + 1, sizeof(*h->targets));
    if (!images || !h->targets) {
        free(images);
        return -ENOMEM;
    }
    for (size_t i = 0; i < b->n_disks; i++) {
        char path[PATH_MAX];
        int r;

        if (!b->disks[i].file || !b->disks[i].file[0])
            r = err_set(-EBADFD, "backup %s holds no image of disk %s", b->id, b->disks[i].target);
        else
            r = backup_abs_path(b->disks[i].file, path, sizeof(path));
        if (r >= 0 &&
            (!(h->targets[i] = strdup(b->disks[i].target)) || !(images[i] = strdup(path))))
            r = -ENOMEM;
        h->n_targets = i + 1;
        if (r < 0) {
            for (size_t k = 0; k <= i; k++)
                free(images[k]);
            free(images);
            return r;
        }
    }
    *ret_images = images;
    return 0;
}

/*
 * The launched handle of backup b (all its disks), in use (handle_release()
 * it): found, waited for, or launched now. -ENOENT when b has no disk named
 * disk.
 */
static int
handle_acquire(const struct conf_backup *b, const char *disk, struct handle **ret)
{
    struct handle *h, *evict;
    char **images = NULL;
    bool known = false;
    int r;

    for (size_t i = 0; i < b->n_disks && !known; i++)
        known = strcmp(b->disks[i].target, disk) == 0;
    if (!known)
        return err_set(-ENOENT, "backup %s has no disk '%s'", b->id, disk);

    pthread_mutex_lock(&files.lock);
    for (;;) {
        if (files.stopping) {
            pthread_mutex_unlock(&files.lock);
            return err_set(-EAGAIN, "the service is stopping");
        }
        for (h = files.list; h; h = h->next)
            if (strcmp(h->backup_id, b->id) == 0)
                break;
        if (!h)
            break;
        if (h->state == HANDLE_READY) {
            h->users++;
            h->last_ms = text_now_ms();
            pthread_mutex_unlock(&files.lock);
            *ret = h;
            return 0;
        }
        /* Launching: wait for that launch, holding h so that its end finds us. */
        h->users++;
        while (h->state == HANDLE_LAUNCHING)
            pthread_cond_wait(&files.changed, &files.lock);
        if (h->state == HANDLE_FAILED) {
            int fr = h->launch_r;
            char detail[512];
            bool last = --h->users == 0;

            snprintf(detail, sizeof(detail), "%s", h->launch_detail);
            pthread_mutex_unlock(&files.lock);
            if (last)
                handle_free(h);
            return err_set(fr, "%s", detail);
        }
        h->users--;
        /* Ready (or forgotten meanwhile): look again. */
    }
    /* None: make room under the cap with the least recently used idle one. */
    evict = NULL;
    if (files.n >= files.max) {
        for (struct handle *e = files.list; e; e = e->next)
            if (e->state == HANDLE_READY && e->users == 0 &&
                (!evict || e->last_ms < evict->last_ms))
                evict = e;
        if (!evict) {
            pthread_mutex_unlock(&files.lock);
            return err_set(-EAGAIN,
                           "all %u file handles are in use; try again in a few seconds "
                           "(--files-max-handles raises the cap)",
                           files.max);
        }
        unlink_locked(evict);
    }
    h = calloc(1, sizeof(*h));
    if (!h) {
        pthread_mutex_unlock(&files.lock);
        handle_free(evict);
        return -ENOMEM;
    }
    pthread_mutex_init(&h->lock, NULL);
    snprintf(h->backup_id, sizeof(h->backup_id), "%s", b->id);
    h->state = HANDLE_LAUNCHING;
    h->users = 1;
    h->in_table = true;
    h->next = files.list;
    files.list = h;
    files.n++;
    files.launches++;
    pthread_mutex_unlock(&files.lock);
    if (evict) {
        log_info("files of backup %s: closed to make room", evict->backup_id);
        handle_free(evict);
    }

    r = handle_images(h, b, &images);
    if (r >= 0)
        r = handle_launch(h, (const char *const *)images);
    for (size_t i = 0; images && i < h->n_targets; i++)
        free(images[i]);
    free(images);

    pthread_mutex_lock(&files.lock);
    if (r < 0) {
        h->state = HANDLE_FAILED;
        h->launch_r = r;
        snprintf(h->launch_detail, sizeof(h->launch_detail), "%s",
                 err_detail() ? err_detail() : strerror(-r));
        if (h->in_table)
            unlink_locked(h);
        bool last = --h->users == 0;
        pthread_cond_broadcast(&files.changed);
        pthread_mutex_unlock(&files.lock);
        if (last)
            handle_free(h);
        return r;
    }
    h->state = HANDLE_READY;
    h->last_ms = text_now_ms();
    pthread_cond_broadcast(&files.changed);
    pthread_mutex_unlock(&files.lock);
    *ret = h;
    return 0;
}

int
core_backup_files_target(const char *domain, const char *id, const char *disk)
{
    _cleanup_free_ char *name = NULL;
    _cleanup_(conf_backup_freep) struct conf_backup *b = NULL;
    int r;

    r = backup_completed_local(domain, id, &name, &b);
    if (r < 0)
        return r;
    for (size_t i = 0; i < b->n_disks; i++)
        if (strcmp(b->disks[i].target, disk) == 0)
            return 0;
    return err_set(-ENOENT, "backup %s has no disk '%s'", b->id, disk);
}

/* The handle of disk of completed backup id of domain, in use. */
static int
handle_for(const char *domain, const char *id, const char *disk, struct handle **ret)
{
    _cleanup_free_ char *name = NULL;
    _cleanup_(conf_backup_freep) struct conf_backup *b = NULL;
    int r;

    if (!virt_gfs_available())
        return err_set(-EOPNOTSUPP, "this build has no file access (built without libguestfs)");
    r = backup_completed_local(domain, id, &name, &b);
    if (r < 0)
        return r;
    return handle_acquire(b, disk, ret);
}

/*
 * Mounts filesystem (NULL: the first that mounts) of disk of h; *ret_fs
 * borrows the device from h. Call with h->lock held.
 */
static int
handle_mount(struct handle *h, const char *disk, const char *filesystem, const char **ret_fs)
{
    int drive = handle_drive(h, disk);
    size_t tried = 0;
    int r = -EMEDIUMTYPE;

    for (size_t i = 0; i < h->n_fs; i++) {
        if (!on_drive(&h->fs[i], drive) || (filesystem && strcmp(h->fs[i].device, filesystem) != 0))
            continue;
        tried++;
        r = virt_gfs_mount(h->g, h->fs[i].device);
        if (r >= 0) {
            *ret_fs = h->fs[i].device;
            return 0;
        }
        if (filesystem)
            return r;
    }
    if (filesystem)
        return err_set_parameter(-EINVAL, "filesystem",
                                 "is not one of the filesystems on disk %s (see its filesystems)",
                                 disk);
    if (tried == 0)
        return err_set(-EMEDIUMTYPE,
                       "disk %s of backup %s holds no filesystem libguestfs can read (no "
                       "partition, logical volume or filesystem found)",
                       disk, h->backup_id);
    return r;
}

int
core_backup_filesystems(const char *domain, const char *id, const char *disk,
                        struct conf_filesystem **ret, size_t *ret_n)
{
    _cleanup_(handle_releasep) struct handle *h = NULL;
    struct conf_filesystem *v;
    size_t n = 0;
    int drive, r;

    r = handle_for(domain, id, disk, &h);
    if (r < 0)
        return r;
    /* The list is h's since its launch, and never changes. */
    drive = handle_drive(h, disk);
    v = calloc(h->n_fs + 1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < h->n_fs; i++) {
        struct conf_filesystem *f = &v[n];

        if (!on_drive(&h->fs[i], drive))
            continue;
        n++;
        f->device = strdup(h->fs[i].device);
        f->type = strdup(h->fs[i].type);
        f->label = strdup(h->fs[i].label);
        f->uuid = strdup(h->fs[i].uuid);
        f->size = h->fs[i].size;
        f->drive = h->fs[i].drive;
        if (!f->device || !f->type || !f->label || !f->uuid) {
            conf_filesystems_free(v, n);
            return -ENOMEM;
        }
    }
    *ret = v;
    *ret_n = n;
    return 0;
}

void
core_files_dir_free(struct core_files_dir *d)
{
    if (!d)
        return;
    free(d->filesystem);
    free(d->path);
    conf_files_free(d->items, d->n);
    free(d);
}

int
core_backup_files_list(const char *domain, const char *id, const char *disk, const char *filesystem,
                       const char *path, struct core_files_dir **ret)
{
    _cleanup_(handle_releasep) struct handle *h = NULL;
    struct core_files_dir *d;
    const char *fs = NULL;
    int r;

    r = handle_for(domain, id, disk, &h);
    if (r < 0)
        return r;
    d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    pthread_mutex_lock(&h->lock);
    r = handle_mount(h, disk, filesystem, &fs);
    if (r >= 0)
        r = virt_gfs_realpath(h->g, path, &d->path);
    if (r >= 0)
        r = virt_gfs_readdir(h->g, d->path, &d->items, &d->n);
    pthread_mutex_unlock(&h->lock);
    if (r >= 0 && !(d->filesystem = strdup(fs)))
        r = -ENOMEM;
    if (r == -ENOTDIR)
        r = err_set(-ENOTDIR, "%s is not a folder of %s: read it with files/content",
                    d->path ? d->path : path, fs);
    if (r < 0) {
        core_files_dir_free(d);
        return r;
    }
    *ret = d;
    return 0;
}

struct core_file_reader {
    struct handle *h;
    const char *fs; /* borrowed from h */
    char *path;     /* canonical */
    char *name;
    uint64_t size;
};

int
core_backup_file_open(const char *domain, const char *id, const char *disk, const char *filesystem,
                      const char *path, struct core_file_reader **ret)
{
    struct core_file_reader *rd;
    struct conf_file st = {0};
    int r;

    rd = calloc(1, sizeof(*rd));
    if (!rd)
        return -ENOMEM;
    r = handle_for(domain, id, disk, &rd->h);
    if (r < 0) {
        free(rd);
        return r;
    }
    pthread_mutex_lock(&rd->h->lock);
    r = handle_mount(rd->h, disk, filesystem, &rd->fs);
    if (r >= 0)
        r = virt_gfs_realpath(rd->h->g, path, &rd->path);
    if (r >= 0)
        r = virt_gfs_stat(rd->h->g, rd->path, &st);
    pthread_mutex_unlock(&rd->h->lock);
    if (r >= 0 && st.type != CONF_FILE_FILE)
        r = err_set(
            -EMEDIUMTYPE, "%s is a %s, not a file: %s", rd->path, conf_file_type_to_string(st.type),
            st.type == CONF_FILE_DIRECTORY ? "list it with files?path=" : "it has no bytes");
    if (r >= 0) {
        rd->name = TAKE_PTR(st.name);
        rd->size = st.size > 0 ? (uint64_t)st.size : 0;
    }
    free(st.name);
    if (r < 0) {
        core_file_reader_free(rd);
        return r;
    }
    *ret = rd;
    return 0;
}

uint64_t
core_file_reader_size(const struct core_file_reader *r)
{
    return r->size;
}

const char *
core_file_reader_name(const struct core_file_reader *r)
{
    return r->name;
}

ssize_t
core_file_reader_read(struct core_file_reader *r, uint64_t pos, void *buf, size_t max)
{
    ssize_t n;
    int m;

    if (pos >= r->size)
        return 0;
    if (max > r->size - pos)
        max = (size_t)(r->size - pos);
    pthread_mutex_lock(&r->h->lock);
    /* Another request may have mounted another filesystem of the disk meanwhile. */
    m = virt_gfs_mount(r->h->g, r->fs);
    n = m < 0 ? m : virt_gfs_pread(r->h->g, r->path, pos, buf, max);
    pthread_mutex_unlock(&r->h->lock);
    return n;
}

void
core_file_reader_free(struct core_file_reader *r)
{
    if (!r)
        return;
    handle_release(r->h);
    free(r->path);
    free(r->name);
    free(r);
}
