/*
 * files.h - the files inside a backup point: the filesystems of one of its
 * disks, a folder's entries and a file's bytes, as they were at that
 * point, read through a libguestfs appliance (virt/gfs.h) over the
 * read-only chain of the backup's images in the vault.
 *
 * Handles: launching an appliance costs seconds (~26 s without hardware
 * virtualization), so one launched handle per backup point (all its disks,
 * one drive each) is kept for reuse, until nobody used it for the idle timeout, and at most
 * max_handles are open at once: a new one closes the least recently used
 * idle one, and when every one is in use the request is refused with
 * -EAGAIN (503). Concurrent requests for a point being launched wait for
 * that one launch. A handle is not thread-safe: one lock per handle
 * serialises its calls. Deleting or pruning a backup closes its handles
 * (a reader in flight finishes on the files it opened; see backup_files.c).
 *
 * Functions return 0 or a negative errno with a detail; outputs are filled
 * on success only and owned by the caller. -EOPNOTSUPP everywhere in a
 * build without libguestfs.
 */
#ifndef VV_CORE_FILES_H
#define VV_CORE_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf/files.h"

struct core_files_config {
    unsigned idle_s;              /* close a handle unused this long; 0: 300 */
    unsigned max_handles;         /* open at once; 0: 2 */
    const char *backend_settings; /* libguestfs's, ':'-separated ("force_tcg"); NULL: none */
};

/* Starts the idle reaper. Call after core_backup_init(). */
int core_files_init(const struct core_files_config *cfg);

/* Closes every handle and stops the reaper. */
void core_files_fini(void);

/* Whether this build reads files inside backups (it has libguestfs). */
bool core_files_available(void);

/* Whether a launched handle of backup id is open (a request on it will be quick). */
bool core_files_warm(const char *id);

/* Appliances launched since the start, and handles open now (launching ones too). */
void core_files_stats(uint64_t *ret_launches, unsigned *ret_open);

/*
 * Checks that domain has completed backup id with disk, without reading it:
 * 0, -ENOENT for no such backup or disk, -EBADFD when the backup holds no
 * images (not completed, or read by a client in pull mode).
 */
int core_backup_files_target(const char *domain, const char *id, const char *disk);

/*
 * The filesystems on disk of completed backup id of domain. -ENOENT for no
 * such backup or disk, -EBADFD when the backup holds no images.
 */
int core_backup_filesystems(const char *domain, const char *id, const char *disk,
                            struct conf_filesystem **ret, size_t *ret_n);

/* A folder of a filesystem of a backup point. */
struct core_files_dir {
    char *filesystem; /* the device read */
    char *path;       /* the folder's canonical path in it */
    struct conf_file *items;
    size_t n;
};

void core_files_dir_free(struct core_files_dir *d);

/*
 * Lists folder path (absolute) of filesystem (a device that
 * core_backup_filesystems() names; NULL: the first that mounts) on disk of
 * backup id. `..` and symlinks are resolved by the filesystem itself.
 * -EINVAL for a filesystem that is not on the disk (detail names the
 * parameter), -ENOENT for no such folder, -ENOTDIR for a path that is no
 * folder, -EMEDIUMTYPE when the disk holds no filesystem libguestfs reads.
 */
int core_backup_files_list(const char *domain, const char *id, const char *disk,
                           const char *filesystem, const char *path, struct core_files_dir **ret);

/* An open regular file of a backup point; it keeps its handle in use until freed. */
struct core_file_reader;

/*
 * Opens file path as core_backup_files_list() finds folders; a symlink is
 * followed inside the filesystem. -EMEDIUMTYPE for a folder or another
 * kind of file that has no bytes to read.
 */
int core_backup_file_open(const char *domain, const char *id, const char *disk,
                          const char *filesystem, const char *path, struct core_file_reader **ret);
uint64_t core_file_reader_size(const struct core_file_reader *r);
const char *core_file_reader_name(const struct core_file_reader *r); /* the last component */

/* Reads up to max bytes at pos; the count (> 0, 0 at the end) or a negative errno. */
ssize_t core_file_reader_read(struct core_file_reader *r, uint64_t pos, void *buf, size_t max);

/* Closes r and releases its handle. Accepts NULL. */
void core_file_reader_free(struct core_file_reader *r);

#endif
