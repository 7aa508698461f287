/*
 * Fuzzes the cron parser of policies' schedules (conf/policy.h) and, for
 * what it accepts, the search of the next fires: whatever the text, a
 * refusal with a detail or a schedule whose fires only move forward.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/policy.h"
#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[CONF_CRON_TEXT_MAX + 16];
    struct conf_cron c;
    int64_t t = 1780000000;

    if (size >= sizeof(text))
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (conf_cron_parse(text, &c) < 0) {
        if (!err_detail())
            abort();
        err_clear();
        return 0;
    }
    for (int i = 0; i < 3; i++) {
        int64_t next = conf_cron_next(&c, t);
        if (next >= 0 && next <= t)
            abort();
        if (next < 0)
            break;
        t = next;
    }
    return 0;
}
