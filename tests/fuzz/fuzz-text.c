/* Fuzzes the name rule, the XML escape, percent-decoding and time parsing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = strndup((const char *)data, size);
    char *d = NULL;
    time_t t;

    if (!s)
        return 0;
    if (text_name_valid(s) && (strlen(s) > NAME_MAX_LEN || s[0] == '.' || strchr(s, '/')))
        abort();
    char *e = text_xml_escape(s);
    if (e && (strchr(e, '<') || strchr(e, '>') || strchr(e, '"') || strchr(e, '\'')))
        abort();
    free(e);
    if (text_url_decode((const char *)data, size, &d) == 0) {
        if (strlen(d) > size)
            abort();
        free(d);
    }
    (void)text_time_parse(s, &t);
    (void)text_is_uuid(s);
    free(s);
    return 0;
}
