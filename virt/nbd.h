/*
 * nbd.h - reading an NBD export (a pull-mode backup, or an image exported
 * for a stopped domain) through libnbd. Only virt/ includes libnbd.h.
 *
 * A struct virt_nbd is one connection; it is not shared between threads.
 * Reads keep several requests in flight ahead of the reader within the
 * range announced by virt_nbd_prepare(), with bounded memory
 * (VIRT_NBD_DEPTH chunks of VIRT_NBD_CHUNK bytes).
 */
#ifndef VV_VIRT_NBD_H
#define VV_VIRT_NBD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cleanup.h"
#include "conf/backup.h"

#define VIRT_NBD_CHUNK (2u << 20)
#define VIRT_NBD_DEPTH 8

#define VIRT_NBD_CONTEXT_ALLOCATION "base:allocation"

/* One block status request covers at most this many bytes (NBD's limit is 32 bits). */
#define VIRT_NBD_PROBE_SPAN ((4ull << 30) - (64u << 10))
/* A read's probe of what reads as zeros holds at most this many extents at a time. */
#define VIRT_NBD_PROBE_MAX 4096

struct virt_nbd;

/*
 * Connects to uri (e.g. "nbd+unix:///vda?socket=/run/x.sock"), asking for
 * meta_context too when not NULL (base:allocation is always asked for).
 * Returns 0 or a negative errno with a detail.
 */
int virt_nbd_open(const char *uri, const char *meta_context, struct virt_nbd **ret);

/*
 * Serves the qcow2 image at path with qemu-nbd (started by libnbd with
 * socket activation: no shell, no socket in the file system) and connects
 * to it: read-only unless writable, with the persistent dirty bitmap
 * bitmap offered as the context "qemu:dirty-bitmap:<bitmap>" when not
 * NULL. qemu-nbd ends when the connection is closed.
 */
int virt_nbd_open_image(const char *path, const char *bitmap, bool writable, struct virt_nbd **ret);

/* Closes the connection. Accepts NULL. */
void virt_nbd_close(struct virt_nbd *n);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct virt_nbd *, virt_nbd_close);

/*
 * Since the process started, over every connection: the bytes reads asked
 * of NBD servers (virt_nbd_read()'s read-ahead), and the bytes they answered
 * as zeros without asking because block status said so.
 */
void virt_nbd_counters(uint64_t *ret_read, uint64_t *ret_zero);

/* Size of the export in bytes. */
uint64_t virt_nbd_size(const struct virt_nbd *n);

/*
 * The extents of context from offset on, within [offset, offset+length) and
 * the export, adjacent extents of equal flags merged: at most max (>= 1) of
 * them, so that the memory held is bounded whatever the disk looks like.
 * *ret is a new array the caller frees; *ret_next (may be NULL) is where
 * the extents returned end: the end of the range when they cover it, else
 * the offset to ask from next. Block status is asked in windows of at most
 * VIRT_NBD_PROBE_SPAN bytes. -EOPNOTSUPP when the export does not offer
 * that context.
 */
int virt_nbd_extents(struct virt_nbd *n, const char *context, uint64_t offset, uint64_t length,
                     size_t max, struct conf_extent **ret, size_t *ret_n, uint64_t *ret_next);

/* Announces that [pos, pos+len) will be read in order next. */
void virt_nbd_prepare(struct virt_nbd *n, uint64_t pos, uint64_t len);

/* Reads up to max bytes at pos into buf; returns the count (> 0) or a negative errno. */
ssize_t virt_nbd_read(struct virt_nbd *n, uint64_t pos, void *buf, size_t max);

/*
 * When the bytes at pos read as zeros (block status said so, and they were
 * not asked of the server), passes over up to max of them and returns how
 * many; returns 0 when the bytes at pos are data (read them with
 * virt_nbd_read()), or a negative errno. Lets a caller whose buffer already
 * holds zeros skip writing them.
 */
ssize_t virt_nbd_read_zeros(struct virt_nbd *n, uint64_t pos, size_t max);

/* Told the bytes copied so far; a negative errno stops the copy with it. */
typedef int (*virt_nbd_progress_fn)(void *opaque, uint64_t done);

/*
 * Copies the extents ext[0..n) (start and length; flags ignored) from src
 * to the same offsets of dst (a writable export), with reads and writes in
 * flight (at most VIRT_NBD_DEPTH chunks each), and flushes dst. progress
 * (may be NULL) is called after every chunk. Returns 0 or a negative errno
 * with a detail.
 */
int virt_nbd_copy(struct virt_nbd *src, struct virt_nbd *dst, const struct conf_extent *ext,
                  size_t n, virt_nbd_progress_fn progress, void *opaque);

#endif
