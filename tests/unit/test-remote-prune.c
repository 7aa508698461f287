/* Unit tests: the plan of a remote prune and a policy copy's lock span, as tables. */
#include <stdio.h>
#include <string.h>

#include "conf/remote_prune.h"
#include "tap.h"

#define MAXN  6
#define NOW   1000000000000LL /* ms */
#define HOURS 3600

/* Items: "ID[<PARENT][!][@]" - '!' protected, '@' locked past NOW; started an hour apart. */
static const struct {
    const char *what;
    uint32_t keep[CONF_RETENTION_OPTION_LAST];
    const char *items[MAXN]; /* oldest first */
    const char *want; /* per item: 'k' kept by the rule, 'n' needed, 'l' locked, 'r' removed */
} cases[] = {
    {"keep-all keeps all", {0}, {"a", "b<a", "c<b"}, "kkk"},
    {"fulls: last 2 of 4", {2}, {"a", "b", "c", "d"}, "rrkk"},
    {"chain: the oldest kept becomes a full", {2}, {"a", "b<a", "c<b", "d<c"}, "rrmk"},
    {"two chains: the old one goes", {1}, {"a", "b<a", "c", "d<c"}, "rrrm"},
    {"a locked ancestor is stood on", {1}, {"a@", "b<a", "c<b"}, "lra"},
    {"a protected ancestor is stood on", {1}, {"a!", "b<a", "c<b"}, "kra"},
    {"locked ones are held and passed over", {2}, {"a@", "b@", "c", "d"}, "llkk"},
    {"lock due: removed", {1}, {"a", "b", "c"}, "rrk"},
    {"protected kept, walk passes over", {1}, {"a", "b!", "c"}, "rkk"},
    {"a parent not in the bucket", {1}, {"b<x", "c<b"}, "rm"},
};

static int
run_case(size_t c)
{
    struct conf_remote_prune_item it[MAXN] = {0};
    char ids[MAXN][8], parents[MAXN][8];
    struct conf_retention r = {0};
    size_t n = 0;
    char got[MAXN + 1] = "";

    memcpy(r.keep, cases[c].keep, sizeof(r.keep));
    for (; n < MAXN && cases[c].items[n]; n++) {
        const char *s = cases[c].items[n];
        size_t len = strcspn(s, "<!@");
        snprintf(ids[n], sizeof(ids[n]), "%.*s", (int)len, s);
        it[n].id = ids[n];
        if (s[len] == '<') {
            size_t pl = strcspn(s + len + 1, "!@");
            snprintf(parents[n], sizeof(parents[n]), "%.*s", (int)pl, s + len + 1);
            it[n].parent_id = parents[n];
        }
        it[n].is_protected = strchr(s, '!') != NULL;
        it[n].retain_until_ms = strchr(s, '@') ? NOW + 1 : NOW - 1;
        it[n].started_s = 1700000000 + (int64_t)n * HOURS;
    }
    if (conf_remote_prune_plan(&r, NOW, it, n) < 0)
        return ok(0, "%s: plans", cases[c].what);
    for (size_t i = 0; i < n; i++)
        got[i] = !it[i].keep      ? 'r'
                 : it[i].locked   ? 'l'
                 : !it[i].merge   ? 'k'
                 : it[i].onto < 0 ? 'm'
                                  : (char)('a' + it[i].onto);
    got[n] = '\0';
    return ok(strcmp(got, cases[c].want) == 0, "%s: %s (want %s)", cases[c].what, got,
              cases[c].want);
}

int
main(void)
{
    struct conf_retention none = {0}, last3 = {{3}}, daily2 = {{0, 0, 2}},
                          hourly_after = {{0, 5, 7}};

    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
        run_case(c);
    ok(conf_remote_prune_plan(&none, NOW, NULL, 0) == 0, "an empty bucket plans nothing");
    ok(conf_remote_lock_span(&none, 60, 7) == 7 * 86400, "keep-all: lock_days");
    ok(conf_remote_lock_span(&last3, 10, 7) == 30, "keep_last 3 every 10 s: 30 s");
    ok(conf_remote_lock_span(&last3, 0, 2) == 2 * 86400, "keep_last with no period: lock_days");
    ok(conf_remote_lock_span(&daily2, 10, 7) == 2 * 86400, "keep_daily 2: two days");
    ok(conf_remote_lock_span(&hourly_after, 10, 7) == 5 * 3600, "the first non-zero option");
    return tap_done();
}
