/*
 * Fuzzes page tokens as a list reads them: base64url decoding, the version
 * and list prefix, and the keys of every list; a key that reads must encode
 * back to the same token.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const lists[] = {"jobs",      "audit",       "domains",
                                        "snapshots", "checkpoints", "backups"};
    char *s = strndup((const char *)data, size);
    char *plain = NULL;
    size_t len;

    if (!s)
        return 0;
    if (text_base64url_decode(s, &plain, &len) == 0) {
        char *again = text_base64url_encode(plain, len);
        if (!again || strcmp(again, s) != 0) /* one spelling per value */
            abort();
        free(again);
        free(plain);
    }
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        char *key = NULL;
        int64_t ints[2];
        const char *rest = NULL;

        if (api_page_token_parse(s, lists[i], &key) < 0)
            continue;
        char *token = api_page_token(lists[i], key);
        if (!token || strcmp(token, s) != 0)
            abort();
        free(token);
        (void)api_page_key_read(key, 1, ints, NULL);
        (void)api_page_key_read(key, 1, ints, &rest);
        (void)api_page_key_read(key, 2, ints, &rest);
        (void)api_page_key_read(key, 0, ints, &rest);
        free(key);
    }
    free(s);
    return 0;
}
