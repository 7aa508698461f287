#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "err.h"
#include "hash.h"

#define FILE_BLOCK (4u << 20)

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
