/*
 * Unit tests: piece digests (util/hash.h) against a plain SHA-256 of each
 * piece, and the qcow2 metadata pieces of images qemu-img and qemu-io wrote.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash.h"
#include "tap.h"
#include "vault/vault.h"

#define MiB (1024u * 1024u)

static const struct {
    uint64_t size;
    size_t pieces;
} counts[] = {
    {0, 0},
    {1, 1},
    {HASH_PIECE_SIZE - 1, 1},
    {HASH_PIECE_SIZE, 1},
    {HASH_PIECE_SIZE + 1, 2},
    {5 * HASH_PIECE_SIZE, 5},
    {(uint64_t)1 << 40, (size_t)(((uint64_t)1 << 40) / HASH_PIECE_SIZE)},
};

/* Runs a shell command (the test's own, fixed text). */
static int
sh(const char *cmd)
{
    return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
    char dir[] = "/tmp/vv-checksum-test-XXXXXX";
    char path[256], cmd[1024], hex[65], want[65];
    uint64_t size = 2 * HASH_PIECE_SIZE + 12345;
    size_t n = hash_piece_count(size);
    uint8_t *data, *digests, *all;
    bool need[3] = {false, true, false};
    int fd;

    if (!mkdtemp(dir))
        return 1;
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
        ok(hash_piece_count(counts[i].size) == counts[i].pieces, "%" PRIu64 " bytes: %zu pieces",
           counts[i].size, counts[i].pieces);

    /* A file of three pieces, the last one short. */
    data = malloc(size);
    digests = calloc(n, HASH_SHA256_LEN);
    all = calloc(n, HASH_SHA256_LEN);
    if (!data || !digests || !all)
        return 1;
    for (uint64_t i = 0; i < size; i++)
        data[i] = (uint8_t)(i * 2654435761u >> 13);
    snprintf(path, sizeof(path), "%s/file", dir);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ok(fd >= 0 && write(fd, data, size) == (ssize_t)size, "write a file of %" PRIu64 " bytes",
       size);
    ok(hash_pieces_fd(fd, size, all, NULL, 2, NULL) == 0, "hash every piece on two threads");
    for (size_t i = 0; i < n; i++) {
        uint64_t off = i * HASH_PIECE_SIZE;
        uint64_t len = size - off < HASH_PIECE_SIZE ? size - off : HASH_PIECE_SIZE;
        hash_sha256_hex(data + off, len, want);
        hash_digest_hex(all + i * HASH_SHA256_LEN, hex);
        ok(strcmp(hex, want) == 0, "piece %zu is the SHA-256 of its %" PRIu64 " bytes", i, len);
    }
    hash_sha256_hex(all, n * HASH_SHA256_LEN, want);
    hash_pieces_top_hex(all, n, hex);
    ok(strcmp(hex, want) == 0, "the checksum is the SHA-256 of the digests: %s", hex);
    hash_pieces_top_hex(NULL, 0, hex);
    ok(strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0,
       "an empty file's checksum is the SHA-256 of nothing");
    {
        static const uint8_t unset[HASH_SHA256_LEN];
        ok(hash_pieces_fd(fd, size, digests, need, 0, NULL) == 0 &&
               memcmp(digests + HASH_SHA256_LEN, all + HASH_SHA256_LEN, HASH_SHA256_LEN) == 0 &&
               memcmp(digests, unset, HASH_SHA256_LEN) == 0 &&
               memcmp(digests + 2 * HASH_SHA256_LEN, unset, HASH_SHA256_LEN) == 0,
           "only the pieces asked for are hashed");
    }
    ok(hash_pieces_fd(fd, size + 1, digests, NULL, 2, NULL) == -EIO,
       "a file shorter than said is -EIO");
    {
        atomic_bool stop;
        atomic_init(&stop, true);
        ok(hash_pieces_fd(fd, size, digests, NULL, 2, &stop) == -ECANCELED,
           "a cancelled hash is -ECANCELED");
    }
    close(fd);

    /* vault_file_checksum() agrees, and counts the stored bytes. */
    {
        struct vault_checksum sum = {0};
        uint64_t stored = 0;
        hash_pieces_top_hex(all, n, want);
        ok(vault_file_checksum(path, NULL, true, NULL, &stored, &sum) == 0 &&
               strcmp(sum.digest, want) == 0 && sum.n_pieces == n &&
               memcmp(sum.pieces, all, n * HASH_SHA256_LEN) == 0 && stored >= size,
           "vault_file_checksum of the file");
        vault_checksum_clear(&sum);
    }

    /*
     * A qcow2 image of 2 GiB with 20 MiB of data at 0 and 1 MiB at 1 GiB:
     * the second write needs a new L2 table, given out after the data, in
     * piece 2; piece 1 holds data only.
     */
    snprintf(path, sizeof(path), "%s/img.qcow2", dir);
    snprintf(cmd, sizeof(cmd),
             "qemu-img create -q -f qcow2 %s 2G && "
             "qemu-io -f qcow2 -c 'write -P 0x11 0 20M' -c 'write -P 0x22 1G 1M' %s >/dev/null",
             path, path);
    ok(sh(cmd) == 0, "make a qcow2 image with data in two L2 ranges");
    fd = open(path, O_RDONLY);
    {
        struct stat st;
        struct vault_qcow2_tables t;
        bool mark[8] = {false};
        size_t np;

        ok(fd >= 0 && fstat(fd, &st) == 0, "open it");
        np = hash_piece_count((uint64_t)st.st_size);
        ok(np >= 3 && np <= 8, "it has %zu pieces", np);
        ok(vault_qcow2_tables(fd, &t) == 0 && t.cluster_size == 65536 && t.l1_entries == 4,
           "its header: clusters of %" PRIu64 ", %u L1 entries", t.cluster_size, t.l1_entries);
        ok(vault_qcow2_mark_metadata(fd, (uint64_t)st.st_size, mark, np, NULL) == 0,
           "mark its metadata pieces");
        ok(mark[0] && !mark[1] && mark[2], "pieces 0 and 2 hold metadata, piece 1 data only");
        close(fd);
    }

    /* Layouts it does not read whole are refused, so that the caller hashes everything. */
    snprintf(cmd, sizeof(cmd), "qemu-img snapshot -c s1 %s", path);
    ok(sh(cmd) == 0, "take an internal snapshot");
    fd = open(path, O_RDONLY);
    {
        struct vault_qcow2_tables t;
        ok(vault_qcow2_tables(fd, &t) == -ENOTSUP, "an image with snapshots is -ENOTSUP");
        close(fd);
    }
    snprintf(path, sizeof(path), "%s/file", dir);
    fd = open(path, O_RDONLY);
    {
        struct vault_qcow2_tables t;
        ok(vault_qcow2_tables(fd, &t) == -ENOTSUP, "a file that is no qcow2 is -ENOTSUP");
        close(fd);
    }

    free(data);
    free(digests);
    free(all);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (sh(cmd) != 0)
        return 1;
    return tap_done();
}
