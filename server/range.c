#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "range.h"

/* Reads a decimal number at *p (at most 19 digits); advances *p. */
static bool
read_number(const char **p, uint64_t *ret)
{
    uint64_t v = 0;
    int digits = 0;

    while (**p >= '0' && **p <= '9') {
        if (++digits > 19)
            return false;
        v = v * 10 + (uint64_t)(**p - '0');
        (*p)++;
    }
    *ret = v;
    return digits > 0;
}

static void
skip_ows(const char **p)
{
    while (**p == ' ' || **p == '\t')
        (*p)++;
}

/*
 * Sorts r[0..n) by start and joins ranges that overlap or touch, so no byte
 * is sent twice (RFC 9110 lets a server coalesce them, whatever their
 * order). Returns how many are left.
 */
static size_t
merge(struct range *r, size_t n)
{
    size_t out = 0;

    for (size_t i = 1; i < n; i++) { /* insertion sort: n <= RANGE_MAX */
        struct range k = r[i];
        size_t j = i;
        for (; j > 0 && r[j - 1].first > k.first; j--)
            r[j] = r[j - 1];
        r[j] = k;
    }
    for (size_t i = 1; i < n; i++) {
        if (r[i].first <= r[out].last || r[i].first - r[out].last == 1) {
            if (r[i].last > r[out].last)
                r[out].last = r[i].last;
        } else {
            r[++out] = r[i];
        }
    }
    return out + 1;
}

int
range_parse(const char *header, uint64_t size, struct range ret[RANGE_MAX], size_t *ret_n)
{
    struct range out[RANGE_MAX];
    const char *p = header;
    size_t n = 0, seen = 0;

    if (!header || strncmp(p, "bytes=", 6) != 0)
        return -EINVAL;
    p += 6;
    for (;;) {
        uint64_t a = 0, b = 0;
        bool has_a, has_b;

        skip_ows(&p);
        has_a = read_number(&p, &a);
        if (*p != '-')
            return -EINVAL;
        p++;
        has_b = read_number(&p, &b);
        if (!has_a && !has_b)
            return -EINVAL;
        if (has_a && has_b && b < a)
            return -EINVAL;
        if (++seen > RANGE_MAX)
            return -E2BIG;

        if (!has_a) {
            /* Suffix: the last b bytes. */
            if (b > 0 && size > 0) {
                out[n].first = b >= size ? 0 : size - b;
                out[n].last = size - 1;
                n++;
            }
        } else if (a < size) {
            out[n].first = a;
            out[n].last = has_b && b < size ? b : size - 1;
            n++;
        }

        skip_ows(&p);
        if (*p == '\0')
            break;
        if (*p != ',')
            return -EINVAL;
        p++;
    }
    if (n == 0)
        return -ERANGE;
    n = merge(out, n);
    memcpy(ret, out, n * sizeof(out[0]));
    *ret_n = n;
    return 0;
}
