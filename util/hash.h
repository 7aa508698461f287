/*
 * hash.h - SHA-256, for token hashes and stored-file checksums; HMAC-SHA256,
 * for the signatures of webhook deliveries.
 */
#ifndef VV_HASH_H
#define VV_HASH_H

#include <stdbool.h>
#include <stddef.h>

#define HASH_SHA256_HEX_LEN 64

/* Writes the lowercase hex SHA-256 of data into hex (65 bytes with NUL). */
void hash_sha256_hex(const void *data, size_t len, char hex[HASH_SHA256_HEX_LEN + 1]);

/*
 * Writes the lowercase hex SHA-256 of the whole file at path into hex,
 * reading it in large blocks. Returns 0, or a negative errno with a detail
 * when the file cannot be read.
 */
int hash_sha256_file(const char *path, char hex[HASH_SHA256_HEX_LEN + 1]);

/*
 * Writes the lowercase hex HMAC-SHA256 of data, keyed with key, into hex
 * (65 bytes with NUL). Returns 0, or -EIO when libcrypto fails.
 */
int hash_hmac_sha256_hex(const void *key, size_t key_len, const void *data, size_t len,
                         char hex[HASH_SHA256_HEX_LEN + 1]);

/* Compares two NUL-terminated strings of equal length in constant time. */
bool hash_equal(const char *a, const char *b);

#endif
