#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "text.h"

bool
text_name_valid(const char *s)
{
    size_t n = 0;

    if (!s || s[0] == '\0' || s[0] == '.')
        return false;
    for (const char *p = s; *p; p++, n++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok || n >= NAME_MAX_LEN)
            return false;
    }
    return true;
}

char *
text_xml_escape(const char *s)
{
    size_t len = 0;
    char *out, *o;

    for (const char *p = s; *p; p++) {
        switch (*p) {
        case '&':
            len += 5;
            break;
        case '<':
        case '>':
            len += 4;
            break;
        case '"':
        case '\'':
            len += 6;
            break;
        default:
            len++;
        }
    }
    out = malloc(len + 1);
    if (!out)
        return NULL;
    o = out;
    for (const char *p = s; *p; p++) {
        const char *rep = NULL;
        switch (*p) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&apos;";
            break;
        default:
            *o++ = *p;
            continue;
        }
        size_t n = strlen(rep);
        memcpy(o, rep, n);
        o += n;
    }
    *o = '\0';
    return out;
}

int
text_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int
text_url_decode(const char *s, size_t len, char **ret)
{
    char *out = malloc(len + 1);
    size_t o = 0;

    if (!out)
        return -ENOMEM;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            int hi, lo;
            if (i + 2 >= len) {
                free(out);
                return -EINVAL;
            }
            hi = text_hex_value(s[i + 1]);
            lo = text_hex_value(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(out);
                return -EINVAL;
            }
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (s[i] == '\0') {
            free(out);
            return -EINVAL;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    *ret = out;
    return 0;
}

void
text_time_rfc3339(char *buf, size_t size, time_t t)
{
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void
text_time_now_rfc3339(char *buf, size_t size, bool millis)
{
    struct timespec ts;
    struct tm tm;
    char base[32];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    if (millis)
        snprintf(buf, size, "%s.%03ldZ", base, ts.tv_nsec / 1000000);
    else
        snprintf(buf, size, "%sZ", base);
}

int
text_time_parse(const char *s, time_t *ret)
{
    struct tm tm = {0};
    const char *p;

    p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        return -EINVAL;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return -EINVAL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (strcmp(p, "Z") != 0)
        return -EINVAL;
    *ret = timegm(&tm);
    return 0;
}

int64_t
text_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
text_generated_name(char *buf, size_t size, const char *prefix)
{
    char stamp[32], rnd[5];
    time_t now = time(NULL);
    struct tm tm;
    int r;

    r = text_random_hex(rnd, sizeof(rnd), 2);
    if (r < 0)
        return r;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
    snprintf(buf, size, "%s-%s-%s", prefix, stamp, rnd);
    return 0;
}

void
text_copy_utf8(char *buf, size_t size, const char *s)
{
    size_t len = strlen(s);

    if (len >= size) {
        len = size - 1;
        while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
            len--; /* s[len] continues a sequence: cut before its first byte */
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
}

uint32_t
text_hash(const char *s)
{
    uint32_t h = 2166136261u;

    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

uint64_t
text_mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int
text_random_hex(char *buf, size_t size, size_t nbytes)
{
    unsigned char raw[64];

    if (nbytes > sizeof(raw) || size < 2 * nbytes + 1)
        return -EINVAL;
    if (getrandom(raw, nbytes, 0) != (ssize_t)nbytes)
        return -errno;
    for (size_t i = 0; i < nbytes; i++)
        snprintf(buf + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

bool
text_startswith(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool
text_is_uuid(const char *s)
{
    static const int dash[] = {8, 13, 18, 23};
    size_t d = 0;

    if (strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        if (d < 4 && i == dash[d]) {
            if (s[i] != '-')
                return false;
            d++;
        } else if (text_hex_value(s[i]) < 0) {
            return false;
        }
    }
    return true;
}

char *
text_json_quote(const char *s)
{
    size_t len = 2;
    char *out, *o;

    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        len += *p == '"' || *p == '\\' ? 2 : *p < 0x20 ? 6 : 1;
    out = malloc(len + 1);
    if (!out)
        return NULL;
    o = out;
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            *o++ = '\\';
            *o++ = (char)*p;
        } else if (*p < 0x20) {
            snprintf(o, 7, "\\u%04x", *p);
            o += 6;
        } else {
            *o++ = (char)*p;
        }
    }
    *o++ = '"';
    *o = '\0';
    return out;
}

bool
text_pointer_join(char *buf, size_t size, const char *base, const char *key, size_t index)
{
    size_t used = (size_t)snprintf(buf, size, "%s/", base);

    if (used >= size)
        goto too_long;
    if (!key) {
        if ((size_t)snprintf(buf + used, size - used, "%zu", index) >= size - used)
            goto too_long;
        return true;
    }
    for (; *key; key++) {
        const char *esc = *key == '~' ? "~0" : *key == '/' ? "~1" : NULL;
        size_t n = esc ? 2 : 1;

        if (used + n >= size)
            goto too_long;
        if (esc)
            memcpy(buf + used, esc, 2);
        else
            buf[used] = *key;
        used += n;
    }
    buf[used] = '\0';
    return true;
too_long:
    snprintf(buf, size, "%s", base);
    return false;
}

static const char base64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *
text_base64url_encode(const void *data, size_t len)
{
    const unsigned char *in = data;
    char *out = malloc(len / 3 * 4 + 5);
    size_t o = 0;

    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        size_t left = len - i;

        if (left > 1)
            v |= (uint32_t)in[i + 1] << 8;
        if (left > 2)
            v |= in[i + 2];
        out[o++] = base64url[(v >> 18) & 63];
        out[o++] = base64url[(v >> 12) & 63];
        if (left > 1)
            out[o++] = base64url[(v >> 6) & 63];
        if (left > 2)
            out[o++] = base64url[v & 63];
    }
    out[o] = '\0';
    return out;
}

static int
base64url_value(char c)
{
    const char *p = c ? strchr(base64url, c) : NULL;

    return p ? (int)(p - base64url) : -1;
}

int
text_base64url_decode(const char *s, char **ret, size_t *ret_len)
{
    size_t len = strlen(s), o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    char *out;

    if (len % 4 == 1)
        return -EINVAL;
    out = malloc(len / 4 * 3 + 3);
    if (!out)
        return -ENOMEM;
    for (size_t i = 0; i < len; i++) {
        int v = base64url_value(s[i]);

        if (v < 0) {
            free(out);
            return -EINVAL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    if (acc & ((1u << bits) - 1)) { /* leftover bits must be zero: one spelling per value */
        free(out);
        return -EINVAL;
    }
    out[o] = '\0';
    *ret = out;
    if (ret_len)
        *ret_len = o;
    return 0;
}
