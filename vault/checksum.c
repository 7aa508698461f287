/*
 * Checksums of vault images (HASH_ALG_PIECES, util/hash.h), and hashing a
 * push backup's image while QEMU still writes it.
 *
 * Why hashing early is sound. A backup job writes into a fresh qcow2 image
 * (a full one, or an incremental's overlay) and copies each guest cluster
 * at most once; qcow2 gives every new data cluster a host cluster at the
 * end of the file and writes it there once. Only metadata is written again
 * in place: the header cluster, the L1 table, the refcount table, L2 tables
 * and refcount blocks. So a piece of the file holds its final bytes once
 * every byte of it has been written and none of it is metadata. The
 * follower checks the first when it hashes a piece: the piece lies below
 * the end of the file and the file system reports no hole in it (a cluster
 * that qcow2 gave out but whose write has not begun is a hole; a direct
 * write reports its range as a hole until it completed; a buffered write
 * holds each page locked while it copies, and a read waits for the lock).
 * The sealer checks the second on the final file: it reads the final
 * header, L1 table and refcount table and re-hashes every piece that holds
 * a metadata cluster, piece 0 (header, tables) and every piece the
 * follower did not hash. A freed cluster could be given out again, but a
 * fresh image frees clusters only when its L1 or refcount table moves: the
 * sealer re-hashes everything when either table is not where it was when
 * the follower began, or when the image has snapshots, bitmaps, an
 * external data file or encryption, whose layout it does not read.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "err.h"
#include "hash.h"
#include "text.h"
#include "vault.h"

/*
 * A piece is hashed early only when its end lies this far below the end of
 * the file (a spare distance: a settled piece needs none).
 */
#define FOLLOW_MARGIN HASH_PIECE_SIZE
/* A piece with a hole this far below the end is left for the sealer. */
#define FOLLOW_GIVE_UP (32 * HASH_PIECE_SIZE)
#define FOLLOW_POLL_MS 20
/* Pieces hashed in one go, and on how many threads. */
#define FOLLOW_BATCH     8
#define FOLLOW_THREADS   2
#define TABLE_READ_MAX   (64u << 20)
#define L1_OFFSET_MASK   0x00fffffffffffe00ULL
#define REFT_OFFSET_MASK 0xfffffffffffffe00ULL

struct vault_follow {
    int fd;
    pthread_t thread;
    bool running;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    struct vault_qcow2_tables tables; /* as they were when the follower began */
    bool tables_known;
    uint8_t *digests; /* cap pieces of HASH_SHA256_LEN bytes */
    bool *hashed;
    bool *want; /* scratch: the batch being hashed */
    size_t cap;
    uint64_t hashed_bytes;
};

static uint64_t
get_be64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static uint32_t
get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads exactly len bytes at off. */
static int
read_at(int fd, void *buf, size_t len, uint64_t off)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = pread(fd, (uint8_t *)buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        got += (size_t)n;
    }
    return 0;
}

/* Marks the pieces that bytes [off, off + len) touch. */
static void
mark_range(bool *mark, size_t n, uint64_t off, uint64_t len)
{
    if (len == 0)
        return;
    for (uint64_t i = off / HASH_PIECE_SIZE; i <= (off + len - 1) / HASH_PIECE_SIZE && i < n; i++)
        mark[i] = true;
}

/*
 * Reads a table of entries (8 bytes each, big-endian) of len bytes at off
 * and marks the cluster each non-zero entry (masked) points at.
 */
static int
mark_pointed(int fd, uint64_t size, uint64_t off, uint64_t len, uint64_t mask, uint64_t cluster,
             bool *mark, size_t n)
{
    _cleanup_free_ uint8_t *buf = NULL;
    int r;

    if (len > TABLE_READ_MAX || off + len > size)
        return -ENOTSUP;
    buf = malloc(len ? len : 1);
    if (!buf)
        return -ENOMEM;
    r = read_at(fd, buf, len, off);
    if (r < 0)
        return r;
    for (uint64_t i = 0; i + 8 <= len; i += 8) {
        uint64_t at = get_be64(buf + i) & mask;
        if (at == 0)
            continue;
        if (at >= size)
            return -ENOTSUP;
        mark_range(mark, n, at, cluster);
    }
    return 0;
}

int
vault_qcow2_tables(int fd, struct vault_qcow2_tables *ret)
{
    uint8_t h[104];
    uint32_t version, bits;
    int r;

    r = read_at(fd, h, 72, 0);
    if (r < 0)
        return r == -EIO ? -ENOTSUP : r;
    if (memcmp(h, "QFI\xfb", 4) != 0)
        return -ENOTSUP;
    version = get_be32(h + 4);
    bits = get_be32(h + 20);
    if ((version != 2 && version != 3) || bits < 9 || bits > 21)
        return -ENOTSUP;
    if (get_be32(h + 32) != 0 || get_be32(h + 60) != 0)
        return -ENOTSUP; /* encrypted, or snapshots */
    if (version == 3) {
        r = read_at(fd, h + 72, sizeof(h) - 72, 72);
        if (r < 0)
            return r == -EIO ? -ENOTSUP : r;
        /* Known layouts only: compression type (bit 3) and extended L2 (bit 4). */
        if ((get_be64(h + 72) & ~(uint64_t)0x18) != 0 || get_be64(h + 88) != 0)
            return -ENOTSUP; /* dirty, corrupt, external data file; bitmaps */
    }
    *ret = (struct vault_qcow2_tables){
        .cluster_size = (uint64_t)1 << bits,
        .l1_entries = get_be32(h + 36),
        .l1_offset = get_be64(h + 40),
        .reftable_offset = get_be64(h + 48),
        .reftable_clusters = get_be32(h + 56),
        .backing_offset = get_be64(h + 8),
        .backing_len = get_be32(h + 16),
    };
    return 0;
}

int
vault_qcow2_mark_metadata(int fd, uint64_t size, bool *mark, size_t n,
                          struct vault_qcow2_tables *ret_tables)
{
    struct vault_qcow2_tables t;
    uint64_t c;
    int r;

    r = vault_qcow2_tables(fd, &t);
    if (r < 0)
        return r;
    c = t.cluster_size;
    mark_range(mark, n, 0, c);
    mark_range(mark, n, t.backing_offset, t.backing_len);
    mark_range(mark, n, t.l1_offset, (uint64_t)t.l1_entries * 8);
    mark_range(mark, n, t.reftable_offset, (uint64_t)t.reftable_clusters * c);
    r = mark_pointed(fd, size, t.l1_offset, (uint64_t)t.l1_entries * 8, L1_OFFSET_MASK, c, mark, n);
    if (r >= 0)
        r = mark_pointed(fd, size, t.reftable_offset, (uint64_t)t.reftable_clusters * c,
                         REFT_OFFSET_MASK, c, mark, n);
    if (r < 0)
        return r;
    if (ret_tables)
        *ret_tables = t;
    return 0;
}

void
vault_checksum_clear(struct vault_checksum *c)
{
    if (!c)
        return;
    free(c->pieces);
    c->pieces = NULL;
    c->n_pieces = 0;
}

/* Grows f's arrays to hold piece i (the follower thread only). */
static int
follow_grow(struct vault_follow *f, size_t i)
{
    size_t cap = f->cap ? f->cap : 64;
    uint8_t *d;
    bool *h;

    if (i < f->cap)
        return 0;
    while (cap <= i)
        cap *= 2;
    d = realloc(f->digests, cap * HASH_SHA256_LEN);
    if (!d)
        return -ENOMEM;
    f->digests = d;
    h = realloc(f->hashed, cap * sizeof(*h));
    if (!h)
        return -ENOMEM;
    memset(h + f->cap, 0, (cap - f->cap) * sizeof(*h));
    f->hashed = h;
    h = realloc(f->want, cap * sizeof(*h));
    if (!h)
        return -ENOMEM;
    memset(h + f->cap, 0, (cap - f->cap) * sizeof(*h));
    f->want = h;
    f->cap = cap;
    return 0;
}

/* Waits up to FOLLOW_POLL_MS for a stop; true when stopped. */
static bool
follow_wait(struct vault_follow *f)
{
    struct timespec until;
    bool stop;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += FOLLOW_POLL_MS * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&f->lock);
    if (!f->stop)
        pthread_cond_timedwait(&f->cond, &f->lock, &until);
    stop = f->stop;
    pthread_mutex_unlock(&f->lock);
    return stop;
}

static bool
follow_stopped(struct vault_follow *f)
{
    bool stop;

    pthread_mutex_lock(&f->lock);
    stop = f->stop;
    pthread_mutex_unlock(&f->lock);
    return stop;
}

/*
 * Hashes, in file order from piece 1, the pieces that are settled (see the
 * top of this file), in batches on FOLLOW_THREADS threads, until stopped.
 * Errors only end the following early: the sealer hashes what is left.
 */
static void *
follow_main(void *arg)
{
    struct vault_follow *f = arg;
    size_t next = 1;

    while (!follow_stopped(f)) {
        struct stat st;
        size_t count = 0;

        if (fstat(f->fd, &st) < 0)
            return NULL;
        while (count < FOLLOW_BATCH) {
            uint64_t off = (uint64_t)(next + count) * HASH_PIECE_SIZE;
            uint64_t end = off + HASH_PIECE_SIZE, size = (uint64_t)st.st_size;
            off_t hole;

            if (end + FOLLOW_MARGIN > size)
                break;
            hole = lseek(f->fd, (off_t)off, SEEK_HOLE);
            if (hole < 0)
                return NULL;
            if ((uint64_t)hole >= end) {
                count++;
                continue;
            }
            if (count > 0 || end + FOLLOW_GIVE_UP > size)
                break; /* not written yet: hash what is settled, then look again */
            next++;    /* a hole that stays: the sealer hashes it */
        }
        if (count == 0) {
            if (follow_wait(f))
                break;
            continue;
        }
        if (follow_grow(f, next + count) < 0)
            return NULL;
        for (size_t i = next; i < next + count; i++)
            f->want[i] = true;
        if (hash_pieces_fd(f->fd, (uint64_t)(next + count) * HASH_PIECE_SIZE, f->digests, f->want,
                           FOLLOW_THREADS, NULL) < 0)
            return NULL;
        for (size_t i = next; i < next + count; i++) {
            f->want[i] = false;
            f->hashed[i] = true;
        }
        f->hashed_bytes += (uint64_t)count * HASH_PIECE_SIZE;
        next += count;
    }
    return NULL;
}

int
vault_follow_start(const char *vault, const char *rel, struct vault_follow **ret)
{
    char part[PATH_MAX];
    struct vault_follow *f;
    int r;

    if ((size_t)snprintf(part, sizeof(part), "%s/%s%s", vault, rel, VAULT_PART_SUFFIX) >=
        sizeof(part))
        return err_set(-ENAMETOOLONG, "vault path too long: %s/%s", vault, rel);
    f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->fd = open(part, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) {
        r = err_set(-errno, "cannot open %s: %s", part, strerror(errno));
        free(f);
        return r;
    }
    f->tables_known = vault_qcow2_tables(f->fd, &f->tables) == 0;
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    r = pthread_create(&f->thread, NULL, follow_main, f);
    f->running = r == 0;
    if (r != 0) {
        vault_follow_free(f);
        return err_set(-r, "cannot start hashing %s: %s", part, strerror(r));
    }
    *ret = f;
    return 0;
}

/* Stops f's thread (idempotent); its results stay. */
static void
follow_stop(struct vault_follow *f)
{
    if (!f->running)
        return;
    pthread_mutex_lock(&f->lock);
    f->stop = true;
    pthread_cond_signal(&f->cond);
    pthread_mutex_unlock(&f->lock);
    pthread_join(f->thread, NULL);
    f->running = false;
}

void
vault_follow_free(struct vault_follow *f)
{
    if (!f)
        return;
    follow_stop(f);
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->cond);
    closep(&f->fd);
    free(f->digests);
    free(f->hashed);
    free(f->want);
    free(f);
}

uint64_t
vault_follow_hashed_bytes(const struct vault_follow *f)
{
    return f ? f->hashed_bytes : 0;
}

struct fsync_task {
    int fd;
    int err;
    uint64_t took_ns;
};

static void *
fsync_main(void *arg)
{
    struct fsync_task *t = arg;
    uint64_t t0 = text_mono_ns();

    t->err = fsync(t->fd) < 0 ? -errno : 0;
    t->took_ns = text_mono_ns() - t0;
    return NULL;
}

int
vault_file_checksum(const char *path, struct vault_follow *follow, bool sync,
                    const atomic_bool *cancel, uint64_t *ret_stored, struct vault_checksum *ret)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    _cleanup_free_ uint8_t *digests = NULL;
    _cleanup_free_ bool *need = NULL;
    struct fsync_task sync_task = {.fd = fd};
    struct vault_qcow2_tables now;
    pthread_t syncer;
    bool threaded = false;
    struct stat st;
    size_t n;
    int r;

    if (fd < 0)
        return err_set(-errno, "cannot open %s: %s", path, strerror(errno));
    if (follow)
        follow_stop(follow);
    if (fstat(fd, &st) < 0)
        return err_set(-errno, "cannot stat %s: %s", path, strerror(errno));
    if (follow) {
        struct stat fst;

        /* The follower must have read this very file, not one replaced since. */
        if (fstat(follow->fd, &fst) < 0 || fst.st_ino != st.st_ino || fst.st_dev != st.st_dev)
            follow = NULL;
    }
    n = hash_piece_count((uint64_t)st.st_size);
    digests = malloc(n ? n * HASH_SHA256_LEN : 1);
    need = malloc(n ? n * sizeof(*need) : 1);
    if (!digests || !need)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        need[i] = true;
    if (follow && follow->tables_known) {
        /* Pieces the follower hashed stand, but for those that hold metadata now. */
        _cleanup_free_ bool *meta = calloc(n ? n : 1, sizeof(*meta));

        if (!meta)
            return -ENOMEM;
        r = vault_qcow2_mark_metadata(fd, (uint64_t)st.st_size, meta, n, &now);
        if (r >= 0 && now.l1_offset == follow->tables.l1_offset &&
            now.reftable_offset == follow->tables.reftable_offset &&
            now.reftable_clusters == follow->tables.reftable_clusters &&
            now.l1_entries == follow->tables.l1_entries) {
            for (size_t i = 1; i < n && i < follow->cap; i++) {
                bool whole = (uint64_t)(i + 1) * HASH_PIECE_SIZE <= (uint64_t)st.st_size;
                if (follow->hashed[i] && whole && !meta[i]) {
                    memcpy(digests + i * HASH_SHA256_LEN, follow->digests + i * HASH_SHA256_LEN,
                           HASH_SHA256_LEN);
                    need[i] = false;
                }
            }
        } else if (r < 0 && r != -ENOTSUP) {
            return err_set(r, "cannot read the qcow2 tables of %s: %s", path, strerror(-r));
        }
    }
    if (sync)
        threaded = pthread_create(&syncer, NULL, fsync_main, &sync_task) == 0;
    if (sync && !threaded)
        fsync_main(&sync_task);
    uint64_t t0 = text_mono_ns(), hashed = 0;
    for (size_t i = 0; i < n; i++)
        if (need[i])
            hashed += hash_piece_len((uint64_t)st.st_size, i);
    r = hash_pieces_fd(fd, (uint64_t)st.st_size, digests, need, 0, cancel);
    uint64_t hash_ns = text_mono_ns() - t0;
    if (threaded)
        pthread_join(syncer, NULL);
    if (sync_task.err < 0)
        return err_set(sync_task.err, "cannot sync %s: %s", path, strerror(-sync_task.err));
    if (r < 0)
        return err_set(r, "%s: %s", path, err_detail() ? err_detail() : strerror(-r));
    if (fstat(fd, &st) < 0)
        return err_set(-errno, "cannot stat %s: %s", path, strerror(errno));
    if (hash_piece_count((uint64_t)st.st_size) != n)
        return err_set(-EIO, "%s changed its size while it was hashed", path);
    if (ret_stored)
        *ret_stored = (uint64_t)st.st_blocks * 512;
    if (ret) {
        hash_pieces_top_hex(digests, n, ret->digest);
        ret->pieces = TAKE_PTR(digests);
        ret->n_pieces = n;
        ret->hashed_bytes = hashed;
        ret->hash_ms = hash_ns / 1000000u;
        ret->sync_ms = sync_task.took_ns / 1000000u;
    }
    return 0;
}
