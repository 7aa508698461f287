/*
 * range.h - the HTTP Range header (RFC 9110, bytes unit only).
 *
 * range_parse("bytes=0-99,200-", size) resolves every range against the
 * size of the representation into [first, last] pairs. Suffix ranges
 * ("-500") count from the end. At most RANGE_MAX ranges are accepted (counted
 * as written); they come back sorted by start, with ranges that overlap or
 * touch merged into one, so no byte is sent twice.
 */
#ifndef VV_RANGE_H
#define VV_RANGE_H

#include <stddef.h>
#include <stdint.h>

#define RANGE_MAX 16

struct range {
    uint64_t first; /* inclusive */
    uint64_t last;  /* inclusive */
};

/*
 * Parses header against a representation of size bytes. On success fills
 * ret[0..*ret_n) and returns 0. Returns -EINVAL when the header is not a
 * valid bytes range set (the caller then ignores it, as RFC 9110 allows,
 * or refuses it), -ERANGE when it is valid but no range overlaps the
 * representation (416), -E2BIG for more than RANGE_MAX ranges.
 */
int range_parse(const char *header, uint64_t size, struct range ret[RANGE_MAX], size_t *ret_n);

#endif
