/*
 * vault.h - backup files on disk.
 *
 * A vault is one folder. Each domain has a folder named by its UUID below
 * it, and each chain of backups a folder named by the chain's id below
 * that; every image of a chain lives in its chain's folder, so that an
 * image names its backing file by a plain relative name:
 *
 *     <vault>/<domain uuid>/<chain id>/<backup id>.<disk>.qcow2
 *
 * An image is written under its name plus ".part" and renamed to its name
 * only after its content and the folder are synced (vault_image_seal), so
 * a name without ".part" always stands for a complete image.
 *
 * External programs (qemu-img) run with posix_spawn and an argv array;
 * nothing is ever formatted into a shell command. Every function returns 0
 * or a negative errno with a detail (err.h).
 */
#ifndef VV_VAULT_H
#define VV_VAULT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf/job.h"
#include "hash.h"

#define VAULT_PART_SUFFIX ".part"

/*
 * Makes sure dir exists and is a writable folder, creating it (mode 0750)
 * when missing. Returns 0 or a negative errno with a detail.
 */
int vault_prepare(const char *dir);

/*
 * The relative path of an image, "<uuid>/<chain>/<backup>.<disk>.qcow2",
 * as a new string in *ret. -EINVAL when a part is not a plain name.
 */
int vault_image_path(const char *uuid, const char *chain_id, const char *backup_id,
                     const char *disk, char **ret);

/*
 * Creates the folders of the relative image path rel below vault and an
 * empty qcow2 image at rel + ".part" of virtual size size. With backing
 * (a file name in the same folder) the image is backed by it, as
 * "-b backing -F qcow2". An existing .part file is replaced.
 */
int vault_image_create(const char *vault, const char *rel, uint64_t size, const char *backing);

/*
 * A file's HASH_ALG_PIECES checksum (util/hash.h): digest is the hex
 * checksum, pieces the n_pieces piece digests (32 bytes each, file order),
 * owned; vault_checksum_clear() frees them.
 */
struct vault_checksum {
    char digest[HASH_SHA256_HEX_LEN + 1];
    uint8_t *pieces;
    size_t n_pieces;
    /* What the last step cost: bytes hashed in it, and how long hashing and fsync took. */
    uint64_t hashed_bytes;
    uint64_t hash_ms, sync_ms;
};

/* Frees c's pieces (c itself is the caller's); NULL is fine. */
void vault_checksum_clear(struct vault_checksum *c);

/*
 * A follower hashes the pieces of a push backup's rel + ".part" while QEMU
 * writes it, each once it is settled (vault/checksum.c says when a piece
 * is, and why the sealer may keep its digest). It runs in a thread of its
 * own until vault_image_seal() or vault_follow_free() stops it.
 */
struct vault_follow;

/*
 * Starts following rel + ".part" below vault (created already). On success
 * *ret is a new follower the caller frees with vault_follow_free().
 */
int vault_follow_start(const char *vault, const char *rel, struct vault_follow **ret);

/* Stops f's thread and frees it; NULL is fine. */
void vault_follow_free(struct vault_follow *f);

/* How many bytes f has hashed so far (for logs and tests). */
uint64_t vault_follow_hashed_bytes(const struct vault_follow *f);

/*
 * The checksum of the file at path into *ret (may be NULL) and the bytes it
 * takes on disk into *ret_stored (may be NULL). With follow (may be NULL;
 * stopped here, freed by the caller) the pieces it hashed are kept unless
 * the file's final qcow2 tables show they may have changed since; every
 * other piece is hashed now, on every CPU. With sync the file is fsynced
 * meanwhile. cancel (may be NULL) ends it with -ECANCELED.
 */
int vault_file_checksum(const char *path, struct vault_follow *follow, bool sync,
                        const atomic_bool *cancel, uint64_t *ret_stored,
                        struct vault_checksum *ret);

/* Where a qcow2 image keeps its tables (the header's fields). */
struct vault_qcow2_tables {
    uint64_t cluster_size;
    uint64_t l1_offset;
    uint32_t l1_entries;
    uint64_t reftable_offset;
    uint32_t reftable_clusters;
    uint64_t backing_offset;
    uint32_t backing_len;
};

/*
 * Reads the header of the qcow2 image open as fd into *ret. -ENOTSUP when
 * it is no qcow2 image of a layout vault_qcow2_mark_metadata() knows whole
 * (encrypted, with snapshots, bitmaps, an external data file, or dirty).
 */
int vault_qcow2_tables(int fd, struct vault_qcow2_tables *ret);

/*
 * Sets mark[i] (n pieces of HASH_PIECE_SIZE) for every piece of the qcow2
 * image open as fd (of size bytes) that holds metadata: the header cluster,
 * the backing file name, the L1 table, the refcount table, every L2 table
 * and every refcount block. *ret_tables (may be NULL) gets the header's
 * fields. -ENOTSUP as vault_qcow2_tables(), or when a table points past
 * size.
 */
int vault_qcow2_mark_metadata(int fd, uint64_t size, bool *mark, size_t n,
                              struct vault_qcow2_tables *ret_tables);

/*
 * Seals a written image: checksums rel + ".part" (vault_file_checksum(),
 * with follow, which may be NULL) while it is fsynced, renames it to rel
 * and fsyncs the folder. On success *ret_stored (may be NULL) holds the
 * bytes the image takes on disk and *ret_sum (may be NULL) its checksum.
 */
int vault_image_seal(const char *vault, const char *rel, struct vault_follow *follow,
                     uint64_t *ret_stored, struct vault_checksum *ret_sum);

/*
 * Starts writing back what is cached of rel + ".part" (without waiting), so
 * that the fsync of vault_image_seal has little left to do. Best effort.
 */
int vault_image_writeback(const char *vault, const char *rel);

/* Deletes rel and rel + ".part" when present; a missing file is no error. */
int vault_image_remove(const char *vault, const char *rel);

/* Removes the folders of rel up to the vault when they became empty. */
void vault_prune_dirs(const char *vault, const char *rel);

/*
 * Reads the backing file name recorded in the qcow2 header of path into a
 * new *ret, or NULL when the image has none. -EINVAL when path is not a
 * qcow2 image.
 */
int vault_qcow2_backing(const char *path, char **ret);

/* How long a cancelled program has between SIGTERM and SIGKILL. */
#define VAULT_KILL_GRACE_MS 1000

/*
 * Runs argv[0] (a path or a name looked up in PATH) with argv and waits for
 * it. stdout is kept in *ret_out (a new string, may be NULL to discard);
 * stderr is quoted in the detail on failure. A program that exits non-zero
 * yields -EIO and its exit status in *ret_status (may be NULL). When cancel
 * is set while it runs, the program gets SIGTERM, and SIGKILL when it is
 * still there VAULT_KILL_GRACE_MS later; -ECANCELED is returned once it is
 * gone. The program starts with an empty signal mask and default handlers
 * whatever the calling thread blocks.
 */
int vault_run(char *const argv[], const struct conf_cancel *cancel, char **ret_out,
              int *ret_status);

/* The descriptor number under which a program gets the file it writes. */
#define VAULT_PASSED_FD 3

/*
 * Writes one flat image of format "qcow2" or "raw" named name (a plain
 * file name) in the folder dirfd, holding what the qcow2 image src shows
 * through its backing chain. The file is created as name + ".part" with
 * O_EXCL under dirfd (a stale .part is removed first), handed to qemu-img
 * as a descriptor, synced, linked to name and removed; nothing is looked up
 * by path in the folder again. rate (bytes per second, 0 for no limit)
 * throttles qemu-img. An existing name is never replaced (-EEXIST); on any
 * failure or cancel no .part file is left.
 */
int vault_image_flatten_at(int dirfd, const char *name, const char *src, const char *format,
                           uint64_t rate, const struct conf_cancel *cancel);

/*
 * Creates the qcow2 image name (a plain file name) in the folder dirfd with
 * O_EXCL (an existing file is never replaced: -EEXIST) of virtual size
 * size; with backing (an absolute path, not opened) it is an overlay on
 * that qcow2 image ("-b backing -F qcow2"), else an empty image. On failure
 * no file is left.
 */
int vault_overlay_create_at(int dirfd, const char *name, uint64_t size, const char *backing);

/*
 * Serves the qcow2 image (through its backing chain) read-only over NBD on
 * the unix socket socket, as export name, with a qemu-nbd of its own that
 * runs until vault_export_stop(); a stale socket file is replaced. The
 * socket accepts connections shortly after this returns (poll for it).
 */
int vault_export_start(const char *image, const char *socket, const char *name, pid_t *ret_pid);

/*
 * How many clients are connected to the export on socket now (the server's
 * ends of connections to it, as /proc/net/unix lists them), or a negative
 * errno.
 */
int vault_export_clients(const char *socket);

/* Stops the qemu-nbd of vault_export_start() and removes its socket (unless NULL). */
void vault_export_stop(pid_t pid, const char *socket);

/*
 * Writes rel + ".part" (an existing one is replaced): an image that shows
 * what rel shows through its backing chain. With new_backing NULL it is
 * self-contained (qemu-img convert of the chain); else new_backing (a file
 * name in rel's folder, which must show an older point of the same chain)
 * backs it and it holds what differs from it (a copy of rel, then a safe
 * qemu-img rebase onto new_backing). The .part is synced; *ret_stored (the
 * bytes it takes on disk) and *ret_sum its checksum are filled. Nothing is
 * renamed: vault_image_install() does that. On failure or cancel no .part
 * is left.
 */
int vault_image_merge(const char *vault, const char *rel, const char *new_backing,
                      const struct conf_cancel *cancel, uint64_t *ret_stored,
                      struct vault_checksum *ret_sum);

/*
 * Renames rel + ".part" over rel and syncs the folder. -ENOENT when there
 * is no .part (installed already).
 */
int vault_image_install(const char *vault, const char *rel);

/*
 * The bytes a self-contained qcow2 copy of what rel shows through its
 * chain would take ("qemu-img measure"), into *ret.
 */
int vault_image_measure(const char *vault, const char *rel, uint64_t *ret);

/*
 * Runs "qemu-img check" on a qcow2 image. Returns 0 when it is sound,
 * -EBADMSG with a detail quoting what qemu-img found when it is not, or
 * another negative errno when the check could not run.
 */
int vault_image_check(const char *path, const struct conf_cancel *cancel);

/*
 * As vault_image_check(), without opening the image's backing file (which
 * may be elsewhere, as an offsite-only parent's is): the image's own
 * structure only.
 */
int vault_image_check_alone(const char *path, const struct conf_cancel *cancel);

/*
 * Says whether path lies inside one of roots (absolute folders): path is
 * made absolute without following a final component that does not exist
 * yet, and must not contain "." or ".." segments. Creates the folder path
 * (mode 0750) when it does not exist. Returns 0, or -EINVAL (recorded as
 * about the request field "/target_dir") / -EACCES with a detail.
 */
int vault_dir_inside(const char *path, char *const *roots, size_t n_roots);

/* The checks of vault_dir_inside() that need no file system change: nothing is created. */
int vault_dir_valid(const char *path, char *const *roots, size_t n_roots);

/*
 * vault_dir_inside(), then opens the folder path and checks that what was
 * opened (not what the path names by now) lies inside one of roots. On
 * success *ret_fd is the folder's descriptor (O_RDONLY | O_DIRECTORY, close
 * on exec; the caller closes it).
 */
int vault_dir_open(const char *path, char *const *roots, size_t n_roots, int *ret_fd);

#endif
