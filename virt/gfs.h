/*
 * gfs.h - reading the filesystems inside a disk image through
 * libguestfs: a small appliance (a VM of its own, started by libguestfs)
 * opens the image read-only and answers for the filesystem's own view of
 * paths, so that `..` and symlinks are resolved inside the image, never on
 * this host. Only virt/ includes guestfs.h.
 *
 * A struct virt_gfs is one launched appliance with one image; it is not
 * thread-safe: its caller serialises every call on it. Launching costs
 * seconds (tens of seconds without hardware virtualization); the calls on
 * a launched handle cost milliseconds.
 *
 * Without libguestfs in the build, virt_gfs_available() is false and
 * virt_gfs_launch() returns -EOPNOTSUPP.
 */
#ifndef VV_VIRT_GFS_H
#define VV_VIRT_GFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf/files.h"

/* The most bytes one virt_gfs_pread() returns (libguestfs's message limit is 4 MiB). */
#define VIRT_GFS_READ_MAX (1u << 20)

struct virt_gfs;

/* Whether this build can read filesystems inside images. */
bool virt_gfs_available(void);

/*
 * Launches an appliance over images[0..n) (format "qcow2" or "raw", their
 * backing chains included), each added read-only, in that order.
 * backend_settings is a ':'-separated list for libguestfs's backend
 * ("force_tcg" keeps off KVM), "" or NULL for none; memsize_mb the
 * appliance's memory (0: libguestfs's default). Returns 0 and *ret,
 * -EOPNOTSUPP without libguestfs, or -EIO with libguestfs's message as
 * detail.
 */
int virt_gfs_launch(const char *const *images, size_t n, const char *format,
                    const char *backend_settings, unsigned memsize_mb, struct virt_gfs **ret);

/* Whether g's appliance still answers (false once QEMU or the appliance died). */
bool virt_gfs_alive(struct virt_gfs *g);

/* Stops the appliance and frees g. Accepts NULL. */
void virt_gfs_close(struct virt_gfs *g);

/*
 * The filesystems libguestfs finds on the images (partitions, logical
 * volumes, whole devices), those it cannot read ("unknown", swap) left
 * out, in its order, each with the image it lies on (a logical volume:
 * the image of its group's first physical volume). *ret is a new array of
 * *ret_n (may be 0).
 */
int virt_gfs_filesystems(struct virt_gfs *g, struct conf_filesystem **ret, size_t *ret_n);

/*
 * Mounts device (one of virt_gfs_filesystems()) read-only as the root the
 * other calls see, instead of what was mounted. -EMEDIUMTYPE with the reason
 * when it cannot be mounted.
 */
int virt_gfs_mount(struct virt_gfs *g, const char *device);

/*
 * The canonical absolute path of path (absolute) in the mounted
 * filesystem: `.`, `..` and symlinks resolved by that filesystem, with the
 * root as the top (`/..` is `/`). -ENOENT when it does not exist.
 */
int virt_gfs_realpath(struct virt_gfs *g, const char *path, char **ret);

/* lstat of path: *ret filled (its name the last component; target NULL). -ENOENT, -EIO. */
int virt_gfs_stat(struct virt_gfs *g, const char *path, struct conf_file *ret);

/*
 * The entries of folder dir, "." and ".." left out, sorted by name
 * (bytewise), with their lstat and a symlink's target. -ENOENT, -ENOTDIR.
 */
int virt_gfs_readdir(struct virt_gfs *g, const char *dir, struct conf_file **ret, size_t *ret_n);

/*
 * Reads up to max (at most VIRT_GFS_READ_MAX) bytes of regular file path
 * at offset into buf. Returns the count (0 at the end) or a negative errno.
 */
ssize_t virt_gfs_pread(struct virt_gfs *g, const char *path, uint64_t offset, void *buf,
                       size_t max);

#endif
