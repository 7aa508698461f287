/* Unit tests: the Range header parser. */
#include <errno.h>

#include "server/range.h"
#include "tap.h"

static const struct {
    const char *header;
    unsigned long long size;
    int want; /* return value */
    size_t n; /* ranges on success */
    unsigned long long f0, l0, f1, l1;
} cases[] = {
    {"bytes=0-99", 1000, 0, 1, 0, 99, 0, 0},
    {"bytes=0-0", 1000, 0, 1, 0, 0, 0, 0},
    {"bytes=900-", 1000, 0, 1, 900, 999, 0, 0},
    {"bytes=-100", 1000, 0, 1, 900, 999, 0, 0},
    {"bytes=-5000", 1000, 0, 1, 0, 999, 0, 0},
    {"bytes=0-5000", 1000, 0, 1, 0, 999, 0, 0},
    {"bytes=0-9,20-29", 1000, 0, 2, 0, 9, 20, 29},
    {"bytes= 0-9 , 20-29 ", 1000, 0, 2, 0, 9, 20, 29},
    {"bytes=20-29,0-9", 1000, 0, 2, 0, 9, 20, 29},
    /* Overlapping and adjacent ranges are merged, in any order. */
    {"bytes=0-99,50-149", 1000, 0, 1, 0, 149, 0, 0},
    {"bytes=0-9,10-19", 1000, 0, 1, 0, 19, 0, 0},
    {"bytes=10-19,0-9,40-49", 1000, 0, 2, 0, 19, 40, 49},
    {"bytes=0-9,0-9,0-9", 1000, 0, 1, 0, 9, 0, 0},
    {"bytes=100-199,-950", 1000, 0, 1, 50, 999, 0, 0},
    {"bytes=0-,5-9", 1000, 0, 1, 0, 999, 0, 0},
    {"bytes=0-9,11-19", 1000, 0, 2, 0, 9, 11, 19},
    {"bytes=0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0", 1000, -E2BIG, 0,
     0, 0, 0, 0},
    {"bytes=5000-6000", 1000, -ERANGE, 0, 0, 0, 0, 0},
    {"bytes=1000-", 1000, -ERANGE, 0, 0, 0, 0, 0},
    {"bytes=-0", 1000, -ERANGE, 0, 0, 0, 0, 0},
    {"bytes=0-9,5000-", 1000, 0, 1, 0, 9, 0, 0},
    {"bytes=0-", 0, -ERANGE, 0, 0, 0, 0, 0},
    {"bytes=9-0", 1000, -EINVAL, 0, 0, 0, 0, 0},
    {"bytes=-", 1000, -EINVAL, 0, 0, 0, 0, 0},
    {"bytes=", 1000, -EINVAL, 0, 0, 0, 0, 0},
    {"bytes=a-b", 1000, -EINVAL, 0, 0, 0, 0, 0},
    {"bytes=0-9;", 1000, -EINVAL, 0, 0, 0, 0, 0},
    {"bytes=0-9,", 1000, -EINVAL, 0, 0, 0, 0, 0},
    {"bits=0-9", 1000, -EINVAL, 0, 0, 0, 0, 0},
    {"bytes=99999999999999999999-", 1000, -EINVAL, 0, 0, 0, 0, 0},
    {"bytes=18446744073709551615-", 1000, -EINVAL, 0, 0, 0, 0, 0},
    {"bytes=1-1,3-3,5-5,7-7,9-9,11-11,13-13,15-15,17-17,19-19,21-21,23-23,25-25,27-27,29-29,31-31",
     1000, 0, 16, 1, 1, 3, 3},
    {"bytes=1-1,2-2,3-3,4-4,5-5,6-6,7-7,8-8,9-9,10-10,11-11,12-12,13-13,14-14,15-15,16-16", 1000, 0,
     1, 1, 16, 0, 0},
    {"bytes=1-1,2-2,3-3,4-4,5-5,6-6,7-7,8-8,9-9,10-10,11-11,12-12,13-13,14-14,15-15,16-16,17-17",
     1000, -E2BIG, 0, 0, 0, 0, 0},
    {"bytes=0-1099511627775", 4294967296ULL, 0, 1, 0, 4294967295ULL, 0, 0},
};

int
main(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct range r[RANGE_MAX];
        size_t n = 0;
        int got = range_parse(cases[i].header, cases[i].size, r, &n);
        int good = got == cases[i].want;
        if (good && got == 0) {
            good = n == cases[i].n && r[0].first == cases[i].f0 && r[0].last == cases[i].l0;
            if (n > 1)
                good = good && r[1].first == cases[i].f1 && r[1].last == cases[i].l1;
        }
        ok(good, "'%s' of %llu -> %d (%zu ranges)", cases[i].header, cases[i].size, got, n);
    }
    return tap_done();
}
