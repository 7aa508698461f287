/* Unit tests: the name rule, the XML escape, percent-decoding, times. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "text.h"

static const struct {
    const char *name;
    int valid;
} names[] = {
    {"a", 1},
    {"cp-1", 1},
    {"Snap_2026.11.26", 1},
    {"0123456789012345678901234567890123456789012345678901234567890123", 1},  /* 64 */
    {"01234567890123456789012345678901234567890123456789012345678901234", 0}, /* 65 */
    {"", 0},
    {".hidden", 0},
    {"a/b", 0},
    {"..", 0},
    {"a b", 0},
    {"<x>", 0},
    {"a&b", 0},
    {"caf\xc3\xa9", 0},
    {"semi;colon", 0},
    {"quote'", 0},
};

static const struct {
    const char *in, *out;
} escapes[] = {
    {"plain", "plain"},
    {"a<b>c", "a&lt;b&gt;c"},
    {"&&", "&amp;&amp;"},
    {"\"'", "&quot;&apos;"},
    {"", ""},
    {"</name><evil/>", "&lt;/name&gt;&lt;evil/&gt;"},
};

static const struct {
    const char *in, *out; /* out NULL: must fail */
} decodes[] = {
    {"abc", "abc"}, {"a%20b", "a b"}, {"%2F", "/"},
    {"%2f", "/"},   {"%", NULL},      {"%2", NULL},
    {"%zz", NULL},  {"%00", NULL},    {"caf%C3%A9", "caf\xc3\xa9"},
};

static const struct {
    const char *in;
    long long t; /* -1: must fail */
} times[] = {
    {"2026-11-26T10:56:25Z", 1795690585},
    {"1970-01-01T00:00:00Z", 0},
    {"2026-11-26T10:56:25.123Z", 1795690585},
    {"2026-11-26T10:56:25", -1},
    {"2026-11-26T10:56:25+01:00", -1},
    {"yesterday", -1},
    {"", -1},
};

int
main(void)
{
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        ok(text_name_valid(names[i].name) == names[i].valid, "name '%s' valid=%d", names[i].name,
           names[i].valid);

    for (size_t i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++) {
        char *e = text_xml_escape(escapes[i].in);
        ok(e && strcmp(e, escapes[i].out) == 0, "xml escape '%s' -> '%s'", escapes[i].in,
           e ? e : "(null)");
        free(e);
    }

    for (size_t i = 0; i < sizeof(decodes) / sizeof(decodes[0]); i++) {
        char *d = NULL;
        int r = text_url_decode(decodes[i].in, strlen(decodes[i].in), &d);
        if (decodes[i].out)
            ok(r == 0 && strcmp(d, decodes[i].out) == 0, "decode '%s'", decodes[i].in);
        else
            ok(r == -EINVAL, "decode '%s' is refused", decodes[i].in);
        free(d);
    }

    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        time_t t = 0;
        int r = text_time_parse(times[i].in, &t);
        if (times[i].t >= 0)
            ok(r == 0 && (long long)t == times[i].t, "time '%s' = %lld", times[i].in, (long long)t);
        else
            ok(r == -EINVAL, "time '%s' is refused", times[i].in);
    }

    char buf[40];
    text_time_rfc3339(buf, sizeof(buf), 1795690585);
    ok(strcmp(buf, "2026-11-26T10:56:25Z") == 0, "format time: %s", buf);

    ok(text_is_uuid("c7a5fdbd-edaf-9455-926a-d65c16db1809"), "uuid accepted");
    ok(!text_is_uuid("c7a5fdbd-edaf-9455-926a-d65c16db180"), "short uuid refused");
    ok(!text_is_uuid("c7a5fdbdxedaf-9455-926a-d65c16db1809"), "uuid without dash refused");

    char small[6];
    text_copy_utf8(small, sizeof(small), "abc");
    ok(strcmp(small, "abc") == 0, "copy that fits: %s", small);
    text_copy_utf8(small, sizeof(small), "abcdefg");
    ok(strcmp(small, "abcde") == 0, "copy cut short: %s", small);
    text_copy_utf8(small, sizeof(small), "abcd\xc3\xa9");
    ok(strcmp(small, "abcd") == 0, "copy never cuts a UTF-8 sequence: %s", small);
    text_copy_utf8(small, sizeof(small), "a\xe2\x82\xac\xe2\x82\xac");
    ok(strcmp(small, "a\xe2\x82\xac") == 0, "copy keeps whole sequences: %s", small);

    char gen[NAME_MAX_LEN + 1];
    ok(text_generated_name(gen, sizeof(gen), "cp") == 0 && strncmp(gen, "cp-", 3) == 0 &&
           strlen(gen) == strlen("cp-20261126-110537-3fa2") && text_name_valid(gen),
       "generated name %s follows the name rule", gen);

    char hex[17];
    ok(text_random_hex(hex, sizeof(hex), 8) == 0 && strlen(hex) == 16, "random hex %s", hex);
    ok(text_random_hex(hex, sizeof(hex), 9) == -EINVAL, "random hex refuses a small buffer");
    return tap_done();
}
