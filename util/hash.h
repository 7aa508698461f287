/*
 * hash.h - SHA-256, for token hashes and stored-file checksums.
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

/* Compares two NUL-terminated strings of equal length in constant time. */
bool hash_equal(const char *a, const char *b);

#endif
