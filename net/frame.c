/* The frames of offsite objects (see frame.h). */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "cleanup.h"
#include "err.h"
#include "frame.h"
#include "hash.h"
#include "text.h"

static const unsigned char MAGIC[4] = {'V', 'V', 'O', 'F'};
#define FRAME_VERSION 1
#define FLAG_ENC      1u
#define NONCE_LEN     12

static void
put_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

static uint64_t
get_be(const unsigned char *p, int n)
{
    uint64_t v = 0;

    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

void
frame_key_set_id(struct frame_key *key)
{
    hash_sha256_hex(key->key, sizeof(key->key), key->id);
}

/* Wipes a key file's bytes read into a buffer, on every way out. */
static void
key_buf_wipe(unsigned char (*buf)[80])
{
    explicit_bzero(*buf, sizeof(*buf));
}

int
frame_key_load(const char *path, struct frame_key *ret)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    __attribute__((cleanup(key_buf_wipe))) unsigned char buf[80];
    ssize_t n;
    size_t len;

    if (fd < 0)
        return err_set(-errno, "cannot read the key file %s: %s", path, strerror(errno));
    n = read(fd, buf, sizeof(buf));
    if (n < 0)
        return err_set(-errno, "cannot read the key file %s: %s", path, strerror(errno));
    len = (size_t)n;
    if (len == 32) {
        memcpy(ret->key, buf, 32);
    } else {
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
            len--;
        if (len != 64)
            return err_set(-EINVAL, "the key file %s must hold 32 bytes or 64 hex digits", path);
        for (size_t i = 0; i < 32; i++) {
            int hi = text_hex_value((char)buf[2 * i]), lo = text_hex_value((char)buf[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                explicit_bzero(ret->key, sizeof(ret->key));
                return err_set(-EINVAL, "the key file %s must hold 32 bytes or 64 hex digits",
                               path);
            }
            ret->key[i] = (unsigned char)(hi << 4 | lo);
        }
    }
    frame_key_set_id(ret);
    return 0;
}

/* Seals (enc) or opens a body in place with AES-256-GCM; aad: the header. */
static int
gcm(bool enc, const struct frame_key *key, const unsigned char *nonce, const unsigned char *aad,
    unsigned char *body, size_t len, unsigned char *tag)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int outl = 0, ok;

    if (!c)
        return -ENOMEM;
    ok = (enc ? EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL)
              : EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL)) == 1 &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1 &&
         (enc ? EVP_EncryptInit_ex(c, NULL, NULL, key->key, nonce)
              : EVP_DecryptInit_ex(c, NULL, NULL, key->key, nonce)) == 1;
    if (ok)
        ok = (enc ? EVP_EncryptUpdate(c, NULL, &outl, aad, FRAME_HEADER_LEN)
                  : EVP_DecryptUpdate(c, NULL, &outl, aad, FRAME_HEADER_LEN)) == 1;
    /* EVP takes int lengths: bodies are below FRAME_BODY_MAX. */
    if (ok && len > 0)
        ok = (enc ? EVP_EncryptUpdate(c, body, &outl, body, (int)len)
                  : EVP_DecryptUpdate(c, body, &outl, body, (int)len)) == 1;
    if (ok && !enc)
        ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, FRAME_TAG_LEN, tag) == 1;
    if (ok)
        ok = (enc ? EVP_EncryptFinal_ex(c, body + len, &outl)
                  : EVP_DecryptFinal_ex(c, body + len, &outl)) == 1;
    if (ok && enc)
        ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, FRAME_TAG_LEN, tag) == 1;
    EVP_CIPHER_CTX_free(c);
    return ok ? 0 : -EBADMSG;
}

struct frame_enc {
    ZSTD_CCtx *z;
    int level;
    uint32_t index;
    uint64_t raw_off, raw;
    unsigned char *buf; /* header, body, room for the tag */
    size_t len, cap;    /* len: header + body so far */
};

struct frame_enc *
frame_enc_new(int level)
{
    struct frame_enc *e = calloc(1, sizeof(*e));

    if (!e)
        return NULL;
    e->z = ZSTD_createCCtx();
    if (!e->z) {
        free(e);
        return NULL;
    }
    e->level = level;
    return e;
}

void
frame_enc_free(struct frame_enc *e)
{
    if (!e)
        return;
    ZSTD_freeCCtx(e->z);
    free(e->buf);
    free(e);
}

int
frame_enc_begin(struct frame_enc *e, uint32_t index, uint64_t raw_off)
{
    ZSTD_CCtx_reset(e->z, ZSTD_reset_session_and_parameters);
    if (ZSTD_isError(ZSTD_CCtx_setParameter(e->z, ZSTD_c_compressionLevel, e->level)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(e->z, ZSTD_c_checksumFlag, 1)))
        return -EIO;
    e->index = index;
    e->raw_off = raw_off;
    e->raw = 0;
    e->len = FRAME_HEADER_LEN;
    if (e->cap < FRAME_HEADER_LEN + FRAME_TAG_LEN + 4096) {
        unsigned char *nb = realloc(e->buf, FRAME_HEADER_LEN + FRAME_TAG_LEN + 4096);
        if (!nb)
            return -ENOMEM;
        e->buf = nb;
        e->cap = FRAME_HEADER_LEN + FRAME_TAG_LEN + 4096;
    }
    return 0;
}

/* Runs the compressor over in with mode until it has taken all (and, for end, flushed). */
static int
enc_run(struct frame_enc *e, ZSTD_inBuffer *in, ZSTD_EndDirective mode)
{
    for (;;) {
        size_t left;
        ZSTD_outBuffer out;

        if (e->cap - e->len < ZSTD_CStreamOutSize() + FRAME_TAG_LEN) {
            size_t ncap = e->cap * 2 + ZSTD_CStreamOutSize() + FRAME_TAG_LEN;
            unsigned char *nb = realloc(e->buf, ncap);
            if (!nb)
                return -ENOMEM;
            e->buf = nb;
            e->cap = ncap;
        }
        out = (ZSTD_outBuffer){e->buf + e->len, e->cap - e->len - FRAME_TAG_LEN, 0};
        left = ZSTD_compressStream2(e->z, &out, in, mode);
        if (ZSTD_isError(left))
            return err_set(-EIO, "zstd: %s", ZSTD_getErrorName(left));
        e->len += out.pos;
        if (e->len - FRAME_HEADER_LEN > FRAME_BODY_MAX)
            return err_set(-EFBIG, "a frame larger than %u bytes", FRAME_BODY_MAX);
        if (mode == ZSTD_e_continue ? in->pos == in->size : left == 0)
            return 0;
    }
}

int
frame_enc_feed(struct frame_enc *e, const void *data, size_t len)
{
    ZSTD_inBuffer in = {data, len, 0};
    int r;

    if (e->raw + len > FRAME_RAW_MAX)
        return -EFBIG;
    r = enc_run(e, &in, ZSTD_e_flush);
    if (r < 0)
        return r;
    e->raw += len;
    return 0;
}

size_t
frame_enc_size(const struct frame_enc *e)
{
    return e->len - FRAME_HEADER_LEN;
}

uint64_t
frame_enc_raw(const struct frame_enc *e)
{
    return e->raw;
}

int
frame_enc_end(struct frame_enc *e, const struct frame_key *key, const unsigned char **ret,
              size_t *ret_len)
{
    ZSTD_inBuffer in = {NULL, 0, 0};
    unsigned char *h;
    size_t body;
    int r;

    r = enc_run(e, &in, ZSTD_e_end);
    if (r < 0)
        return r;
    body = e->len - FRAME_HEADER_LEN;
    h = e->buf;
    memcpy(h, MAGIC, 4);
    h[4] = FRAME_VERSION;
    h[5] = key ? FLAG_ENC : 0;
    h[6] = h[7] = 0;
    put_be(h + 8, e->index, 4);
    put_be(h + 12, e->raw_off, 8);
    put_be(h + 20, e->raw, 8);
    put_be(h + 28, body, 4);
    memset(h + 32, 0, NONCE_LEN);
    if (key) {
        if (RAND_bytes(h + 32, NONCE_LEN) != 1)
            return err_set(-EIO, "no random nonce from libcrypto");
        r = gcm(true, key, h + 32, h, h + FRAME_HEADER_LEN, body, h + e->len);
        if (r < 0)
            return err_set(-EIO, "AES-256-GCM failed");
        e->len += FRAME_TAG_LEN;
    }
    *ret = e->buf;
    *ret_len = e->len;
    return 0;
}

struct frame_dec {
    const struct frame_key *key;
    frame_write_fn write;
    void *opaque;
    ZSTD_DCtx *z;
    unsigned char hdr[FRAME_HEADER_LEN];
    size_t hdr_len;
    unsigned char *body; /* body + tag */
    size_t body_need, body_len;
    uint32_t next_index;
    uint64_t next_off;
    char error[160];
    unsigned char out[128 * 1024];
};

struct frame_dec *
frame_dec_new(const struct frame_key *key, frame_write_fn write, void *opaque)
{
    struct frame_dec *d = calloc(1, sizeof(*d));

    if (!d)
        return NULL;
    d->z = ZSTD_createDCtx();
    if (!d->z) {
        free(d);
        return NULL;
    }
    d->key = key;
    d->write = write;
    d->opaque = opaque;
    d->next_index = 1;
    return d;
}

void
frame_dec_free(struct frame_dec *d)
{
    if (!d)
        return;
    ZSTD_freeDCtx(d->z);
    free(d->body);
    free(d);
}

const char *
frame_dec_error(const struct frame_dec *d)
{
    return d->error;
}

__attribute__((format(printf, 2, 3))) static int
bad(struct frame_dec *d, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(d->error, sizeof(d->error), fmt, ap);
    va_end(ap);
    return -EBADMSG;
}

/* Checks a whole header; sets body_need. */
static int
dec_header(struct frame_dec *d)
{
    const unsigned char *h = d->hdr;
    uint64_t body = get_be(h + 28, 4), raw = get_be(h + 20, 8);
    bool enc = h[5] & FLAG_ENC;

    if (memcmp(h, MAGIC, 4) != 0 || h[4] != FRAME_VERSION || (h[5] & ~FLAG_ENC) || h[6] || h[7])
        return bad(d, "not an offsite frame (magic or version)");
    if (get_be(h + 8, 4) != d->next_index)
        return bad(d, "frame %u where %u was due", (unsigned)get_be(h + 8, 4), d->next_index);
    if (get_be(h + 12, 8) != d->next_off)
        return bad(d, "a frame out of place in the image");
    if (body > FRAME_BODY_MAX || raw > FRAME_RAW_MAX)
        return bad(d, "a frame larger than allowed");
    if (enc != (d->key != NULL))
        return bad(d, enc ? "an encrypted frame, and no key" : "a frame that is not encrypted");
    d->body_need = body + (enc ? FRAME_TAG_LEN : 0);
    d->body_len = 0;
    free(d->body);
    d->body = malloc(d->body_need ? d->body_need : 1);
    return d->body ? 0 : -ENOMEM;
}

/* Opens and decompresses a whole frame, handing its bytes to the writer. */
static int
dec_body(struct frame_dec *d)
{
    const unsigned char *h = d->hdr;
    size_t body = (size_t)get_be(h + 28, 4);
    uint64_t raw = get_be(h + 20, 8), got = 0;
    ZSTD_inBuffer in;
    size_t left = 1;
    int r;

    if (d->key) {
        r = gcm(false, d->key, h + 32, h, d->body, body, d->body + body);
        if (r < 0)
            return bad(d,
                       "frame %u: the authentication tag does not match (wrong key, or "
                       "changed data)",
                       d->next_index);
    }
    ZSTD_DCtx_reset(d->z, ZSTD_reset_session_only);
    in = (ZSTD_inBuffer){d->body, body, 0};
    while (in.pos < in.size || left != 0) {
        ZSTD_outBuffer out = {d->out, sizeof(d->out), 0};
        size_t before = in.pos;
        left = ZSTD_decompressStream(d->z, &out, &in);
        if (ZSTD_isError(left))
            return bad(d, "frame %u: zstd: %s", d->next_index, ZSTD_getErrorName(left));
        if (got + out.pos > raw)
            return bad(d, "frame %u holds more than it says", d->next_index);
        if (out.pos > 0) {
            r = d->write(d->opaque, d->next_off + got, d->out, out.pos);
            if (r < 0)
                return r;
        }
        got += out.pos;
        if (in.pos == before && out.pos == 0)
            return bad(d, "frame %u: zstd data cut short", d->next_index);
    }
    if (got != raw)
        return bad(d, "frame %u holds less than it says", d->next_index);
    d->next_index++;
    d->next_off += raw;
    d->hdr_len = 0;
    d->body_need = 0;
    return 0;
}

int
frame_dec_feed(struct frame_dec *d, const void *data, size_t len)
{
    const unsigned char *p = data;
    int r;

    while (len > 0) {
        size_t take;
        if (d->hdr_len < FRAME_HEADER_LEN) {
            take = FRAME_HEADER_LEN - d->hdr_len < len ? FRAME_HEADER_LEN - d->hdr_len : len;
            memcpy(d->hdr + d->hdr_len, p, take);
            d->hdr_len += take;
            p += take;
            len -= take;
            if (d->hdr_len == FRAME_HEADER_LEN) {
                r = dec_header(d);
                if (r < 0)
                    return r;
                if (d->body_need == 0) {
                    r = dec_body(d);
                    if (r < 0)
                        return r;
                }
            }
            continue;
        }
        take = d->body_need - d->body_len < len ? d->body_need - d->body_len : len;
        memcpy(d->body + d->body_len, p, take);
        d->body_len += take;
        p += take;
        len -= take;
        if (d->body_len == d->body_need) {
            r = dec_body(d);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

int
frame_dec_finish(struct frame_dec *d, uint64_t *ret_raw)
{
    if (d->hdr_len != 0)
        return bad(d, "the object ends inside frame %u", d->next_index);
    if (d->next_index == 1)
        return bad(d, "the object holds no frame");
    if (ret_raw)
        *ret_raw = d->next_off;
    return 0;
}
