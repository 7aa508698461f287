/*
 * net/frame.h - the frames of an offsite object: each part of an uploaded
 * image is one frame, the image's bytes compressed with zstd and, when the
 * remote has a key, sealed with AES-256-GCM (libcrypto's EVP AEAD) under a
 * fresh random 96-bit nonce. docs/offsite.md describes the layout.
 *
 *   header (FRAME_HEADER_LEN bytes, big-endian numbers):
 *     "VVOF" | version 1 | flags (bit 0: encrypted) | 2 zero bytes
 *     | index (u32, the part number) | raw_off (u64) | raw_len (u64)
 *     | body_len (u32) | nonce (12 bytes, zero when not encrypted)
 *   body: body_len bytes, one zstd frame (ciphertext when encrypted)
 *   tag:  16 bytes when encrypted (GCM, the header as additional data)
 *
 * An encoder makes one frame at a time from data fed to it; a decoder
 * takes an object's bytes in any pieces and hands each frame's bytes, once
 * checked (tag, lengths, order), to a writer. Neither does I/O.
 */
#ifndef VV_NET_FRAME_H
#define VV_NET_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_HEADER_LEN 44
#define FRAME_TAG_LEN    16
#define FRAME_BODY_MAX   (64u * 1024 * 1024)     /* the largest body a decoder accepts */
#define FRAME_RAW_MAX    (1024ull * 1024 * 1024) /* the most image bytes in one frame */
#define FRAME_KEY_ID_LEN 64

/* An encryption key and its id (hex SHA-256 of the key: what a manifest may name). */
struct frame_key {
    unsigned char key[32];
    char id[FRAME_KEY_ID_LEN + 1];
};

/*
 * Reads a key file: 32 bytes, or 64 hex digits (a trailing newline allowed).
 * Returns 0, or a negative errno with a detail (err_set).
 */
int frame_key_load(const char *path, struct frame_key *ret);

/* Fills key's id from its bytes. */
void frame_key_set_id(struct frame_key *key);

struct frame_enc;

/* A new encoder at zstd level (1..19). NULL when out of memory. */
struct frame_enc *frame_enc_new(int level);
void frame_enc_free(struct frame_enc *e);

/* Starts a frame numbered index for the image bytes from raw_off. */
int frame_enc_begin(struct frame_enc *e, uint32_t index, uint64_t raw_off);

/* Adds len image bytes to the frame. Returns 0, -EFBIG past FRAME_RAW_MAX, -EIO, -ENOMEM. */
int frame_enc_feed(struct frame_enc *e, const void *data, size_t len);

/* The compressed bytes of the frame so far (what its body will be, near enough). */
size_t frame_enc_size(const struct frame_enc *e);

/* The image bytes fed into the frame so far. */
uint64_t frame_enc_raw(const struct frame_enc *e);

/*
 * Ends the frame and seals it with key (NULL: not encrypted). *ret points
 * into the encoder (valid until the next begin); *ret_len its length.
 */
int frame_enc_end(struct frame_enc *e, const struct frame_key *key, const unsigned char **ret,
                  size_t *ret_len);

/* Receives the checked bytes of the image at raw_off. Returns 0 or a negative errno. */
typedef int (*frame_write_fn)(void *opaque, uint64_t raw_off, const void *data, size_t len);

struct frame_dec;

/*
 * A new decoder. key: the key the frames must be sealed with, or NULL for
 * frames that must not be encrypted. NULL when out of memory.
 */
struct frame_dec *frame_dec_new(const struct frame_key *key, frame_write_fn write, void *opaque);
void frame_dec_free(struct frame_dec *d);

/*
 * Feeds len bytes of the object. Returns 0, -EBADMSG for bytes that are
 * not frames (bad magic, lengths, order, tag, zstd data; a detail in
 * frame_dec_error), or the writer's error.
 */
int frame_dec_feed(struct frame_dec *d, const void *data, size_t len);

/* The object ended: -EBADMSG when a frame is cut short. *ret_raw: the image bytes written. */
int frame_dec_finish(struct frame_dec *d, uint64_t *ret_raw);

/* Why the last feed failed ("" when it did not). Borrowed. */
const char *frame_dec_error(const struct frame_dec *d);

#endif
