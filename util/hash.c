#include <errno.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "err.h"
#include "hash.h"

#define FILE_BLOCK (4u << 20)

static void
digest_hex(struct sha256_ctx *ctx, char hex[HASH_SHA256_HEX_LEN + 1])
{
    uint8_t digest[SHA256_DIGEST_SIZE];

    sha256_digest(ctx, sizeof(digest), digest);
    for (size_t i = 0; i < sizeof(digest); i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
}

void
hash_sha256_hex(const void *data, size_t len, char hex[HASH_SHA256_HEX_LEN + 1])
{
    struct sha256_ctx ctx;

    sha256_init(&ctx);
    sha256_update(&ctx, len, data);
    digest_hex(&ctx, hex);
}

int
hash_sha256_file(const char *path, char hex[HASH_SHA256_HEX_LEN + 1])
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    _cleanup_free_ uint8_t *buf = NULL;
    struct sha256_ctx ctx;
    ssize_t n;

    if (fd < 0)
        return err_set(-errno, "cannot open %s: %s", path, strerror(errno));
    buf = malloc(FILE_BLOCK);
    if (!buf)
        return -ENOMEM;
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    sha256_init(&ctx);
    while ((n = read(fd, buf, FILE_BLOCK)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return err_set(-errno, "cannot read %s: %s", path, strerror(errno));
        }
        sha256_update(&ctx, (size_t)n, buf);
    }
    digest_hex(&ctx, hex);
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
