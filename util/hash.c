#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "err.h"
#include "hash.h"

#define FILE_BLOCK  (4u << 20)
#define PIECE_BLOCK (1u << 20)
#define MAX_THREADS 4u

/*
 * SHA-256 through libcrypto's EVP interface: it picks the CPU's SHA
 * extensions (or AVX2) at run time, about twice the speed of a portable
 * implementation here, which matters because every stored byte is hashed
 * before a backup counts as completed.
 */
static void
ctx_freep(EVP_MD_CTX **p)
{
    EVP_MD_CTX_free(*p);
}

static void
digest_hex(const uint8_t digest[32], char hex[HASH_SHA256_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < 32; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 0xf];
    }
    hex[HASH_SHA256_HEX_LEN] = '\0';
}

void
hash_sha256_hex(const void *data, size_t len, char hex[HASH_SHA256_HEX_LEN + 1])
{
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    /* One-shot digests of small inputs (tokens) cannot fail short of OOM. */
    if (EVP_Digest(data, len, digest, &n, EVP_sha256(), NULL) != 1 || n != 32)
        abort();
    digest_hex(digest, hex);
}

int
hash_sha256_file(const char *path, char hex[HASH_SHA256_HEX_LEN + 1])
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    _cleanup_free_ uint8_t *buf = NULL;
    _cleanup_(ctx_freep) EVP_MD_CTX *ctx = NULL;
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    ssize_t n;

    if (fd < 0)
        return err_set(-errno, "cannot open %s: %s", path, strerror(errno));
    buf = malloc(FILE_BLOCK);
    ctx = EVP_MD_CTX_new();
    if (!buf || !ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        return -ENOMEM;
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    while ((n = read(fd, buf, FILE_BLOCK)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return err_set(-errno, "cannot read %s: %s", path, strerror(errno));
        }
        if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1)
            return err_set(-EIO, "cannot hash %s", path);
    }
    if (EVP_DigestFinal_ex(ctx, digest, &len) != 1 || len != 32)
        return err_set(-EIO, "cannot hash %s", path);
    digest_hex(digest, hex);
    return 0;
}

size_t
hash_piece_count(uint64_t size)
{
    return (size_t)((size + HASH_PIECE_SIZE - 1) / HASH_PIECE_SIZE);
}

uint64_t
hash_piece_len(uint64_t size, size_t i)
{
    uint64_t off = (uint64_t)i * HASH_PIECE_SIZE;

    return size - off < HASH_PIECE_SIZE ? size - off : HASH_PIECE_SIZE;
}

void
hash_digest_hex(const uint8_t digest[HASH_SHA256_LEN], char hex[HASH_SHA256_HEX_LEN + 1])
{
    digest_hex(digest, hex);
}

void
hash_pieces_top_hex(const uint8_t *digests, size_t n, char hex[HASH_SHA256_HEX_LEN + 1])
{
    hash_sha256_hex(digests ? (const void *)digests : "", n * HASH_SHA256_LEN, hex);
}

/* The pieces one hash_pieces_fd() call hashes; workers take the next index. */
struct piece_work {
    int fd;
    uint64_t size;
    uint8_t *digests;
    const bool *need;
    const atomic_bool *cancel;
    atomic_size_t next;
    atomic_int err;
    char detail[256];
    pthread_mutex_t lock;
};

/* Hashes bytes [off, off + len) of w->fd into digest, with buf (PIECE_BLOCK bytes). */
static int
hash_range(struct piece_work *w, EVP_MD_CTX *ctx, uint8_t *buf, uint64_t off, uint64_t len,
           uint8_t digest[HASH_SHA256_LEN])
{
    unsigned int dl = 0;

    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        return -ENOMEM;
    while (len > 0) {
        size_t want = len < PIECE_BLOCK ? (size_t)len : PIECE_BLOCK;
        ssize_t n = pread(w->fd, buf, want, (off_t)off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1)
            return -EIO;
        off += (uint64_t)n;
        len -= (uint64_t)n;
        if (w->cancel && atomic_load(w->cancel))
            return -ECANCELED;
        if (atomic_load(&w->err))
            return 0; /* another worker failed: its error is the answer */
    }
    if (EVP_DigestFinal_ex(ctx, digest, &dl) != 1 || dl != HASH_SHA256_LEN)
        return -EIO;
    return 0;
}

static void *
piece_worker(void *arg)
{
    struct piece_work *w = arg;
    _cleanup_free_ uint8_t *buf = malloc(PIECE_BLOCK);
    _cleanup_(ctx_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t n = hash_piece_count(w->size);

    if (!buf || !ctx) {
        int zero = 0;
        atomic_compare_exchange_strong(&w->err, &zero, -ENOMEM);
        return NULL;
    }
    while (!atomic_load(&w->err)) {
        size_t i = atomic_fetch_add(&w->next, 1);
        uint64_t off, len;
        int r;

        if (i >= n)
            break;
        if (w->need && !w->need[i])
            continue;
        off = (uint64_t)i * HASH_PIECE_SIZE;
        len = hash_piece_len(w->size, i);
        r = hash_range(w, ctx, buf, off, len, w->digests + i * HASH_SHA256_LEN);
        if (r < 0) {
            int zero = 0;
            if (atomic_compare_exchange_strong(&w->err, &zero, r)) {
                pthread_mutex_lock(&w->lock);
                snprintf(w->detail, sizeof(w->detail),
                         "piece %zu (bytes %" PRIu64 "-%" PRIu64 "): %s", i, off, off + len - 1,
                         strerror(-r));
                pthread_mutex_unlock(&w->lock);
            }
        }
    }
    return NULL;
}

int
hash_pieces_fd(int fd, uint64_t size, uint8_t *digests, const bool *need, unsigned threads,
               const atomic_bool *cancel)
{
    struct piece_work w = {
        .fd = fd, .size = size, .digests = digests, .need = need, .cancel = cancel};
    pthread_t tids[MAX_THREADS];
    unsigned started = 0;
    size_t todo = 0, n = hash_piece_count(size);
    int r;

    for (size_t i = 0; i < n; i++)
        todo += !need || need[i];
    if (threads == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cpus > 0 ? (unsigned)cpus : 1;
    }
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    if (threads > todo)
        threads = todo ? (unsigned)todo : 1;
    atomic_init(&w.next, 0);
    atomic_init(&w.err, 0);
    pthread_mutex_init(&w.lock, NULL);
    /* The calling thread is one of the workers. */
    while (started + 1 < threads && pthread_create(&tids[started], NULL, piece_worker, &w) == 0)
        started++;
    piece_worker(&w);
    for (unsigned i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    pthread_mutex_destroy(&w.lock);
    r = atomic_load(&w.err);
    if (r == -ECANCELED)
        return err_set(r, "hashing was cancelled");
    if (r < 0)
        return err_set(r, "cannot hash %s", w.detail[0] ? w.detail : strerror(-r));
    return 0;
}

bool
hash_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = la != lb;

    for (size_t i = 0; i < la && i < lb; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

int
hash_hmac_sha256_hex(const void *key, size_t key_len, const void *data, size_t len,
                     char hex[HASH_SHA256_HEX_LEN + 1])
{
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    if (key_len > INT32_MAX || !HMAC(EVP_sha256(), key, (int)key_len, data, len, digest, &n) ||
        n != 32)
        return -EIO;
    digest_hex(digest, hex);
    return 0;
}
