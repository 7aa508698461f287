/* Fuzzes the Range header parser: every accepted range lies inside the size. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/range.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = strndup((const char *)data, size);
    struct range r[RANGE_MAX];
    size_t n = 0;
    const uint64_t sizes[] = {0, 1, 4096, 1ull << 40};

    if (!s)
        return 0;
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        if (range_parse(s, sizes[k], r, &n) == 0) {
            if (n == 0 || n > RANGE_MAX)
                abort();
            for (size_t i = 0; i < n; i++)
                if (r[i].first > r[i].last || r[i].last >= sizes[k])
                    abort();
        }
    }
    free(s);
    return 0;
}
