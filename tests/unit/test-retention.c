/* Unit tests: the retention prune rule, a table of cases written from the rules. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "conf/retention.h"
#include "tap.h"

#define MAXN 8

/* keep counts: last, hourly, daily, weekly, monthly, yearly */
static const struct {
    const char *what;
    uint32_t keep[CONF_RETENTION_OPTION_LAST];
    const char *times[MAXN]; /* "YYYY-MM-DD HH:MM:SS" UTC; a leading '!' = protected */
    const char *want;        /* 'k' keep / 'r' remove, per time in the order given */
} cases[] = {
    {"all zero keeps all", {0}, {"2026-01-01 00:00:00", "2025-01-01 00:00:00"}, "kk"},
    {"last 2 of 3",
     {2},
     {"2026-01-03 00:00:00", "2026-01-02 00:00:00", "2026-01-01 00:00:00"},
     "kkr"},
    {"last 2, oldest first",
     {2},
     {"2026-01-01 00:00:00", "2026-01-02 00:00:00", "2026-01-03 00:00:00"},
     "rkk"},
    {"hourly 2: several in one hour",
     {0, 2},
     {"2026-05-05 10:50:00", "2026-05-05 10:10:00", "2026-05-05 09:30:00", "2026-05-05 08:00:00"},
     "krkr"},
    {"last 1 then hourly 1: covered hour",
     {1, 1},
     {"2026-05-05 10:50:00", "2026-05-05 10:10:00", "2026-05-05 09:30:00"},
     "krk"},
    {"hourly boundary",
     {0, 2},
     {"2026-05-05 11:00:00", "2026-05-05 10:59:59", "2026-05-05 10:00:00"},
     "kkr"},
    {"daily 2 across midnight",
     {0, 0, 2},
     {"2026-01-02 00:30:00", "2026-01-01 23:59:59", "2026-01-01 12:00:00", "2025-12-31 23:00:00"},
     "kkrr"},
    {"weekly 2: ISO week 53 spans the year",
     {0, 0, 0, 2},
     {"2021-01-04 00:00:00", "2021-01-03 23:59:59", "2020-12-31 12:00:00", "2020-12-27 12:00:00"},
     "kkrr"},
    {"weekly 3: Sunday and Monday differ",
     {0, 0, 0, 3},
     {"2026-03-09 00:00:00", "2026-03-08 23:00:00", "2026-03-02 00:00:00", "2026-03-01 23:59:59"},
     "kkrk"},
    {"monthly 2 at month ends",
     {0, 0, 0, 0, 2},
     {"2026-03-01 00:00:00", "2026-02-28 23:59:59", "2026-02-01 00:00:00", "2026-01-31 00:00:00"},
     "kkrr"},
    {"yearly 1 at the year change",
     {0, 0, 0, 0, 0, 1},
     {"2027-01-01 00:00:00", "2026-12-31 23:59:59"},
     "kr"},
    {"yearly 2 at the year change",
     {0, 0, 0, 0, 0, 2},
     {"2027-01-01 00:00:00", "2026-12-31 23:59:59", "2026-01-01 00:00:00"},
     "kkr"},
    {"daily 1 then monthly 2: covered day and month",
     {0, 0, 1, 0, 2},
     {"2026-03-02 10:00:00", "2026-03-02 09:00:00", "2026-03-01 09:00:00", "2026-02-10 00:00:00",
      "2026-02-01 00:00:00", "2026-01-01 00:00:00"},
     "krrkrk"},
    {"protected is kept and passed over by last",
     {1},
     {"!2026-01-03 00:00:00", "2026-01-02 00:00:00", "2026-01-01 00:00:00"},
     "kkr"},
    {"protected does not cover its day",
     {0, 0, 1},
     {"!2026-01-01 10:00:00", "2026-01-01 09:00:00", "2026-01-01 08:00:00"},
     "kkr"},
    {"protected kept when all would go",
     {0, 0, 0, 0, 0, 1},
     {"2027-06-01 00:00:00", "!2020-01-01 00:00:00", "2019-01-01 00:00:00"},
     "kkr"},
    {"equal times: first given wins", {1}, {"2026-01-01 00:00:00", "2026-01-01 00:00:00"}, "kr"},
};

static int64_t
parse(const char *s)
{
    struct tm tm = {0};
    strptime(s, "%Y-%m-%d %H:%M:%S", &tm);
    return (int64_t)timegm(&tm);
}

int
main(void)
{
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct conf_retention r;
        int64_t times[MAXN];
        bool prot[MAXN], keep[MAXN];
        char got[MAXN + 1] = "";
        size_t n = 0;

        memcpy(r.keep, cases[c].keep, sizeof(r.keep));
        for (; n < MAXN && cases[c].times[n]; n++) {
            const char *t = cases[c].times[n];
            prot[n] = t[0] == '!';
            times[n] = parse(t + prot[n]);
        }
        int rc = conf_retention_prune(&r, times, prot, n, keep);
        for (size_t i = 0; i < n; i++)
            got[i] = keep[i] ? 'k' : 'r';
        got[n] = '\0';
        ok(rc == 0 && strcmp(got, cases[c].want) == 0, "%s: %s (want %s)", cases[c].what, got,
           cases[c].want);
    }

    struct conf_retention zero = {{0}};
    ok(conf_retention_prune(&zero, NULL, NULL, 0, NULL) == 0, "no backups");
    ok(conf_retention_prune(NULL, NULL, NULL, 0, NULL) == -EINVAL, "NULL options");
    ok(strcmp(conf_retention_option_to_string(CONF_RETENTION_WEEKLY), "keep_weekly") == 0,
       "option name");
    return tap_done();
}
