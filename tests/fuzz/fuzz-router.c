/* Fuzzes the router: input is "METHOD PATH" against the real route table. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = strndup((const char *)data, size);
    char *sp;
    struct router_match m;

    if (!s)
        return 0;
    sp = strchr(s, ' ');
    if (sp) {
        *sp = '\0';
        enum router_result r = router_find(router_table, router_table_len, s, sp + 1, &m);
        if (r == ROUTER_MATCH) {
            for (size_t i = 0; i < m.n_params; i++)
                if (!m.params[i] || strlen(m.params[i]) > strlen(sp + 1))
                    abort();
        }
        router_match_clear(&m);
    }
    free(s);
    return 0;
}
