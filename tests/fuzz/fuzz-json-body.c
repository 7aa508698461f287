/*
 * Fuzzes request bodies as the server parses them (duplicate keys refused)
 * and the strict unpacking that every resource uses.
 */
#include <stdint.h>

#include "api/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *body =
        json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    struct api_request req = {.method = "POST", .path = "/fuzz", .body = body};
    const char *name = NULL, *desc = NULL;
    json_t *disks = NULL;
    int flag = 0;

    if (!body)
        return 0;
    (void)api_body_unpack(&req, "{s?s, s?s, s?o, s?b}", "name", &name, "description", &desc,
                          "disks", &disks, "force", &flag);
    char *out = json_dumps(body, JSON_COMPACT);
    free(out);
    json_decref(body);
    return 0;
}
