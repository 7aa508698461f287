/*
 * Fuzzes the If-Match / If-None-Match list parser: the input, split at its
 * first NUL, is the If-Match and the If-None-Match field value; both are
 * evaluated for a GET and a write, with and without a current ETag.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "err.h"

#define TAG "\"0123456789abcdef0123456789abcdef\""

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 2);
    const char *im, *inm;
    enum api_cond_result res;

    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = buf[size + 1] = '\0';
    im = buf;
    inm = buf + strlen(buf) + 1;
    for (int i = 0; i < 4; i++) {
        const char *etag = i & 1 ? TAG : NULL;
        bool match;
        if (api_cond_evaluate(im, inm[0] ? inm : NULL, etag, i & 2, &res) < 0 && !err_detail())
            abort(); /* a refusal says why */
        if (api_etag_match("If-Match", im, etag, i & 2, &match) == 0 && match && !etag &&
            strchr(im, '*') == NULL)
            abort(); /* only "*" can match when there is nothing */
        err_clear();
    }
    free(buf);
    return 0;
}
