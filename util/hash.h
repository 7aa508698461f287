/*
 * hash.h - SHA-256, for token hashes and stored-file checksums; HMAC-SHA256,
 * for the signatures of webhook deliveries.
 */
#ifndef VV_HASH_H
#define VV_HASH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HASH_SHA256_HEX_LEN 64
#define HASH_SHA256_LEN     32

/*
 * Stored-file checksums come in two algorithms, named in the catalog:
 *
 *   "sha256"             the SHA-256 of the whole file (backups made before
 *                        piece digests; still verified as such);
 *   "sha256-pieces-8MiB" the file is cut into pieces of HASH_PIECE_SIZE bytes
 *                        (the last one shorter; an empty file has none); each
 *                        piece has its SHA-256, and the checksum is the
 *                        SHA-256 of the 32-byte piece digests concatenated in
 *                        file order. In Python:
 *                          top = sha256(b''.join(sha256(p).digest() for p in pieces))
 *
 * Pieces can be hashed in any order and in parallel, a piece that did not
 * change need not be read again, and a mismatch names the piece.
 */
#define HASH_ALG_FILE   "sha256"
#define HASH_ALG_PIECES "sha256-pieces-8MiB"
#define HASH_PIECE_SIZE ((uint64_t)8 << 20)

/* Writes the lowercase hex SHA-256 of data into hex (65 bytes with NUL). */
void hash_sha256_hex(const void *data, size_t len, char hex[HASH_SHA256_HEX_LEN + 1]);

/*
 * Writes the lowercase hex SHA-256 of the whole file at path into hex,
 * reading it in large blocks. Returns 0, or a negative errno with a detail
 * when the file cannot be read.
 */
int hash_sha256_file(const char *path, char hex[HASH_SHA256_HEX_LEN + 1]);

/* How many pieces a file of size bytes has under HASH_ALG_PIECES. */
size_t hash_piece_count(uint64_t size);

/* The length of piece i (< hash_piece_count(size)) of a file of size bytes. */
uint64_t hash_piece_len(uint64_t size, size_t i);

/* Writes the 32-byte digest as 64 lowercase hex digits and a NUL into hex. */
void hash_digest_hex(const uint8_t digest[HASH_SHA256_LEN], char hex[HASH_SHA256_HEX_LEN + 1]);

/*
 * The HASH_ALG_PIECES checksum of n piece digests (n * 32 bytes, in file
 * order), as lowercase hex into hex.
 */
void hash_pieces_top_hex(const uint8_t *digests, size_t n, char hex[HASH_SHA256_HEX_LEN + 1]);

/*
 * Hashes the pieces of the open file fd (of size bytes) whose need[i] is
 * true (need NULL: every piece) into digests + 32 * i, with up to threads
 * threads (0: one per online CPU, at most 4) reading with pread. cancel
 * (may be NULL) is looked at between blocks: -ECANCELED once it is set.
 * Returns 0, or a negative errno with a detail; a file shorter than size
 * yields -EIO.
 */
int hash_pieces_fd(int fd, uint64_t size, uint8_t *digests, const bool *need, unsigned threads,
                   const atomic_bool *cancel);

/*
 * Writes the lowercase hex HMAC-SHA256 of data, keyed with key, into hex
 * (65 bytes with NUL). Returns 0, or -EIO when libcrypto fails.
 */
int hash_hmac_sha256_hex(const void *key, size_t key_len, const void *data, size_t len,
                         char hex[HASH_SHA256_HEX_LEN + 1]);

/* Compares two NUL-terminated strings of equal length in constant time. */
bool hash_equal(const char *a, const char *b);

#endif
