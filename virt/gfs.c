/*
 * Filesystems inside disk images through libguestfs (gfs.h). The
 * appliance's messages are kept off stderr: each failure becomes a detail
 * (err.h) with libguestfs's own words, and its errno picks the status.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "cleanup.h"
#include "err.h"
#include "gfs.h"

#if HAVE_GUESTFS
#include <guestfs.h>

/* lstatnslist and readlinklist take at most this many names a call (the protocol's limit). */
#define NAMES_PER_CALL 500

struct virt_gfs {
    guestfs_h *h;
    char *mounted; /* the device mounted at /, or NULL */
};

bool
virt_gfs_available(void)
{
    return true;
}

/* The errno of g's last failure as a negative errno (-EIO when it gave none), with detail. */
static int
gfs_fail(guestfs_h *h, const char *what)
{
    int e = guestfs_last_errno(h);
    const char *msg = guestfs_last_error(h);

    if (e <= 0)
        e = EIO;
    return err_set(-e, "%s: %s", what, msg ? msg : strerror(e));
}

int
virt_gfs_launch(const char *const *images, size_t n_images, const char *format,
                const char *backend_settings, unsigned memsize_mb, struct virt_gfs **ret)
{
    struct virt_gfs *g;
    int r;

    g = calloc(1, sizeof(*g));
    if (!g)
        return -ENOMEM;
    g->h = guestfs_create_flags(GUESTFS_CREATE_NO_CLOSE_ON_EXIT);
    if (!g->h) {
        free(g);
        return err_set(-EIO, "cannot create a libguestfs handle");
    }
    guestfs_set_error_handler(g->h, NULL, NULL);
    if (backend_settings && backend_settings[0]) {
        _cleanup_free_ char *copy = strdup(backend_settings);
        char *list[16] = {NULL};
        size_t n = 0;
        char *save = NULL;

        if (!copy) {
            virt_gfs_close(g);
            return -ENOMEM;
        }
        for (char *s = strtok_r(copy, ":", &save); s && n < 15; s = strtok_r(NULL, ":", &save))
            list[n++] = s;
        if (guestfs_set_backend_settings(g->h, list) < 0) {
            r = gfs_fail(g->h, "libguestfs backend settings");
            virt_gfs_close(g);
            return r == -EIO ? r : -EIO;
        }
    }
    if (memsize_mb)
        (void)guestfs_set_memsize(g->h, (int)memsize_mb);
    for (size_t i = 0; i < n_images; i++)
        if (guestfs_add_drive_opts(g->h, images[i], GUESTFS_ADD_DRIVE_OPTS_READONLY, 1,
                                   GUESTFS_ADD_DRIVE_OPTS_FORMAT, format, -1) < 0) {
            r = gfs_fail(g->h, "cannot add the image");
            virt_gfs_close(g);
            return r == -ENOENT ? r : -EIO;
        }
    if (guestfs_launch(g->h) < 0) {
        (void)gfs_fail(g->h, "the libguestfs appliance did not start");
        virt_gfs_close(g);
        return -EIO;
    }
    *ret = g;
    return 0;
}

bool
virt_gfs_alive(struct virt_gfs *g)
{
    return g && g->h && guestfs_is_ready(g->h) > 0;
}

void
virt_gfs_close(struct virt_gfs *g)
{
    if (!g)
        return;
    if (g->h) {
        /*
         * The service blocks SIGTERM in every thread and QEMU inherits that
         * mask; libguestfs ends QEMU with SIGTERM and waits. Nothing of a
         * read-only appliance needs a clean end: kill it, libguestfs reaps it.
         */
        int pid = guestfs_get_pid(g->h);
        if (pid > 0)
            (void)kill(pid, SIGKILL);
        guestfs_close(g->h);
    }
    free(g->mounted);
    free(g);
}

/* A copy of s (NULL: ""), or NULL when out of memory. */
static char *
dup_text(const char *s)
{
    return strdup(s ? s : "");
}

static void
strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* The index in devices of the whole device dev is or lies on (a partition), or -1. */
static int
drive_of_device(guestfs_h *h, char *const *devices, const char *dev)
{
    char *parent = NULL;
    int found = -1;

    for (int i = 0; devices[i] && found < 0; i++)
        if (strcmp(devices[i], dev) == 0)
            found = i;
    if (found >= 0 || !(parent = guestfs_part_to_dev(h, dev)))
        return found;
    for (int i = 0; devices[i] && found < 0; i++)
        if (strcmp(devices[i], parent) == 0)
            found = i;
    free(parent);
    return found;
}

/* uuid without its dashes, at most 32 characters, into out[33]. */
static void
uuid_plain(const char *uuid, size_t len, char out[33])
{
    size_t n = 0;

    for (size_t i = 0; i < len && uuid[i] && n < 32; i++)
        if (uuid[i] != '-')
            out[n++] = uuid[i];
    out[n] = '\0';
}

/* The drive of logical volume "/dev/VG/LV": that of its group's first physical volume. */
static int
drive_of_lv(guestfs_h *h, char *const *devices, const char *dev)
{
    char vg[256], want[33];
    struct guestfs_lvm_pv_list *pvs;
    char **uuids;
    int found = -1;

    if (sscanf(dev, "/dev/%255[^/]/", vg) != 1 || !(uuids = guestfs_vgpvuuids(h, vg)))
        return -1;
    if (!uuids[0] || !(pvs = guestfs_pvs_full(h))) {
        strv_free(uuids);
        return -1;
    }
    uuid_plain(uuids[0], strlen(uuids[0]), want);
    for (size_t i = 0; i < pvs->len && found < 0; i++) {
        char have[33];
        uuid_plain(pvs->val[i].pv_uuid, sizeof(pvs->val[i].pv_uuid), have);
        if (strcmp(have, want) == 0)
            found = drive_of_device(h, devices, pvs->val[i].pv_name);
    }
    guestfs_free_lvm_pv_list(pvs);
    strv_free(uuids);
    return found;
}

int
virt_gfs_filesystems(struct virt_gfs *g, struct conf_filesystem **ret, size_t *ret_n)
{
    char **devices = guestfs_list_devices(g->h);
    char **list = devices ? guestfs_list_filesystems(g->h) : NULL;
    struct conf_filesystem *v;
    size_t n = 0, pairs = 0;
    int r = 0;

    if (!list) {
        r = gfs_fail(g->h, "cannot list the filesystems");
        strv_free(devices);
        return r;
    }
    while (list[2 * pairs])
        pairs++;
    v = calloc(pairs + 1, sizeof(*v));
    for (size_t i = 0; v && r >= 0 && i < pairs; i++) {
        const char *dev = list[2 * i], *type = list[2 * i + 1];
        struct conf_filesystem *f = &v[n];
        char *label, *uuid;

        if (!type || strcmp(type, "unknown") == 0 || strcmp(type, "swap") == 0)
            continue;
        label = guestfs_vfs_label(g->h, dev);
        uuid = guestfs_vfs_uuid(g->h, dev);
        f->device = strdup(dev);
        f->type = strdup(type);
        f->label = dup_text(label);
        f->uuid = dup_text(uuid);
        free(label);
        free(uuid);
        f->size = strncmp(dev, "/dev/", 5) == 0 ? guestfs_blockdev_getsize64(g->h, dev) : -1;
        f->drive = drive_of_device(g->h, devices, dev);
        if (f->drive < 0 && guestfs_is_lv(g->h, dev) > 0)
            f->drive = drive_of_lv(g->h, devices, dev);
        n++;
        if (!f->device || !f->type || !f->label || !f->uuid)
            r = -ENOMEM;
    }
    strv_free(list);
    strv_free(devices);
    err_clear();
    if (!v || r < 0) {
        conf_filesystems_free(v, n);
        return -ENOMEM;
    }
    *ret = v;
    *ret_n = n;
    return 0;
}

int
virt_gfs_mount(struct virt_gfs *g, const char *device)
{
    if (g->mounted && strcmp(g->mounted, device) == 0)
        return 0;
    if (g->mounted) {
        if (guestfs_umount_all(g->h) < 0)
            return gfs_fail(g->h, "cannot unmount");
        free(g->mounted);
        g->mounted = NULL;
    }
    if (guestfs_mount_ro(g->h, device, "/") < 0) {
        const char *msg = guestfs_last_error(g->h);
        return err_set(-EMEDIUMTYPE, "%s cannot be mounted: %s", device,
                       msg ? msg : "no filesystem libguestfs can read");
    }
    g->mounted = strdup(device);
    if (!g->mounted) {
        (void)guestfs_umount_all(g->h);
        return -ENOMEM;
    }
    return 0;
}

int
virt_gfs_realpath(struct virt_gfs *g, const char *path, char **ret)
{
    char *p = guestfs_realpath(g->h, path);

    if (!p) {
        if (guestfs_last_errno(g->h) == ENOENT || guestfs_last_errno(g->h) == ENOTDIR)
            return err_set(-ENOENT, "%s: no such file or folder in the filesystem", path);
        return gfs_fail(g->h, path);
    }
    *ret = p;
    return 0;
}

static enum conf_file_type
type_of(int64_t mode)
{
    switch (mode & S_IFMT) {
    case S_IFREG:
        return CONF_FILE_FILE;
    case S_IFDIR:
        return CONF_FILE_DIRECTORY;
    case S_IFLNK:
        return CONF_FILE_SYMLINK;
    case S_IFCHR:
        return CONF_FILE_CHAR;
    case S_IFBLK:
        return CONF_FILE_BLOCK;
    case S_IFIFO:
        return CONF_FILE_FIFO;
    case S_IFSOCK:
        return CONF_FILE_SOCKET;
    default:
        return CONF_FILE_UNKNOWN;
    }
}

static void
fill_stat(struct conf_file *f, const struct guestfs_statns *st)
{
    f->type = type_of(st->st_mode);
    f->size = st->st_size;
    f->mode = (unsigned)(st->st_mode & 07777);
    f->mtime_s = st->st_mtime_sec;
}

int
virt_gfs_stat(struct virt_gfs *g, const char *path, struct conf_file *ret)
{
    struct guestfs_statns *st = guestfs_lstatns(g->h, path);
    const char *slash = strrchr(path, '/');
    struct conf_file f = {0};

    if (!st) {
        if (guestfs_last_errno(g->h) == ENOENT)
            return err_set(-ENOENT, "%s: no such file or folder in the filesystem", path);
        return gfs_fail(g->h, path);
    }
    fill_stat(&f, st);
    guestfs_free_statns(st);
    f.name = strdup(slash && slash[1] ? slash + 1 : "/");
    if (!f.name)
        return -ENOMEM;
    *ret = f;
    return 0;
}

static int
by_name(const void *a, const void *b)
{
    return strcmp(((const struct conf_file *)a)->name, ((const struct conf_file *)b)->name);
}

/* Fills the lstat and targets of v[from, to) from folder dir. */
static int
stat_batch(struct virt_gfs *g, const char *dir, struct conf_file *v, size_t from, size_t to)
{
    char *names[NAMES_PER_CALL + 1];
    struct guestfs_statns_list *st;
    char **links;
    size_t n = to - from;

    for (size_t i = 0; i < n; i++)
        names[i] = v[from + i].name;
    names[n] = NULL;
    st = guestfs_lstatnslist(g->h, dir, names);
    if (!st)
        return gfs_fail(g->h, dir);
    for (size_t i = 0; i < n && i < st->len; i++)
        fill_stat(&v[from + i], &st->val[i]);
    guestfs_free_statns_list(st);
    links = guestfs_readlinklist(g->h, dir, names);
    if (!links)
        return gfs_fail(g->h, dir);
    size_t n_links = 0;
    while (links[n_links])
        n_links++;
    for (size_t i = 0; i < n && i < n_links; i++)
        if (v[from + i].type == CONF_FILE_SYMLINK && links[i][0])
            v[from + i].target = TAKE_PTR(links[i]);
    for (size_t i = 0; i < n_links; i++)
        free(links[i]);
    free(links);
    return 0;
}

int
virt_gfs_readdir(struct virt_gfs *g, const char *dir, struct conf_file **ret, size_t *ret_n)
{
    struct guestfs_dirent_list *d = guestfs_readdir(g->h, dir);
    struct conf_file *v;
    size_t n = 0;
    int r = 0;

    if (!d) {
        int e = guestfs_last_errno(g->h);
        if (e == ENOTDIR)
            return err_set(-ENOTDIR, "%s is not a folder", dir);
        if (e == ENOENT)
            return err_set(-ENOENT, "%s: no such folder in the filesystem", dir);
        return gfs_fail(g->h, dir);
    }
    v = calloc(d->len + 1, sizeof(*v));
    for (size_t i = 0; v && i < d->len; i++) {
        const char *name = d->val[i].name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        if (!(v[n].name = strdup(name))) {
            r = -ENOMEM;
            break;
        }
        v[n++].type = CONF_FILE_UNKNOWN;
    }
    guestfs_free_dirent_list(d);
    if (!v || r < 0) {
        conf_files_free(v, n);
        return -ENOMEM;
    }
    qsort(v, n, sizeof(*v), by_name);
    for (size_t at = 0; r >= 0 && at < n; at += NAMES_PER_CALL)
        r = stat_batch(g, dir, v, at, at + NAMES_PER_CALL < n ? at + NAMES_PER_CALL : n);
    if (r < 0) {
        conf_files_free(v, n);
        return r;
    }
    *ret = v;
    *ret_n = n;
    return 0;
}

ssize_t
virt_gfs_pread(struct virt_gfs *g, const char *path, uint64_t offset, void *buf, size_t max)
{
    size_t got = 0;
    char *data;

    if (max > VIRT_GFS_READ_MAX)
        max = VIRT_GFS_READ_MAX;
    data = guestfs_pread(g->h, path, (int)max, (int64_t)offset, &got);
    if (!data)
        return gfs_fail(g->h, path);
    if (got > max)
        got = max;
    memcpy(buf, data, got);
    free(data);
    return (ssize_t)got;
}

#else /* !HAVE_GUESTFS */

struct virt_gfs {
    int unused;
};

bool
virt_gfs_available(void)
{
    return false;
}

int
virt_gfs_launch(const char *const *images, size_t n_images, const char *format,
                const char *backend_settings, unsigned memsize_mb, struct virt_gfs **ret)
{
    return err_set(-EOPNOTSUPP, "this build has no file access (built without libguestfs)");
}

bool
virt_gfs_alive(struct virt_gfs *g)
{
    return false;
}

void
virt_gfs_close(struct virt_gfs *g)
{
}

int
virt_gfs_filesystems(struct virt_gfs *g, struct conf_filesystem **ret, size_t *ret_n)
{
    return -EOPNOTSUPP;
}

int
virt_gfs_mount(struct virt_gfs *g, const char *device)
{
    return -EOPNOTSUPP;
}

int
virt_gfs_realpath(struct virt_gfs *g, const char *path, char **ret)
{
    return -EOPNOTSUPP;
}

int
virt_gfs_stat(struct virt_gfs *g, const char *path, struct conf_file *ret)
{
    return -EOPNOTSUPP;
}

int
virt_gfs_readdir(struct virt_gfs *g, const char *dir, struct conf_file **ret, size_t *ret_n)
{
    return -EOPNOTSUPP;
}

ssize_t
virt_gfs_pread(struct virt_gfs *g, const char *path, uint64_t offset, void *buf, size_t max)
{
    return -EOPNOTSUPP;
}

#endif
