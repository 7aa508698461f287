/* Fuzzes the token file parser and the Authorization header check. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct auth a = {0};
    char err[256];

    if (auth_parse((const char *)data, size, &a, err, sizeof(err)) == 0) {
        const struct auth_token *t;
        char *header = strndup((const char *)data, size > 200 ? 200 : size);
        if (header) {
            (void)auth_check(&a, header, 0, &t);
            free(header);
        }
        auth_clear(&a);
    } else if (!memchr(err, '\0', sizeof(err))) {
        abort();
    }
    return 0;
}
