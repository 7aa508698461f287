/* Fuzzes option parsing: the input, split at NUL bytes, is argv. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    char *argv[32] = {(char *)"virtvaultd"};
    int argc = 1;
    struct options o;
    enum options_action action;
    char err[256];

    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    for (char *p = buf; p < buf + size && argc < 31; p += strlen(p) + 1)
        argv[argc++] = p;
    argv[argc] = NULL;
    if (options_parse(argc, argv, NULL, &o, &action, err, sizeof(err)) == 0)
        options_clear(&o);
    else if (strchr(err, '\n'))
        abort();
    free(buf);
    return 0;
}
