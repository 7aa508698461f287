/* Unit tests: the cron engine of policies, tables of expressions and their next fires. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "conf/policy.h"
#include "err.h"
#include "tap.h"

static int64_t
at(const char *s)
{
    struct tm tm = {0};

    if (!strptime(s, "%Y-%m-%d %H:%M:%S", &tm))
        return -2;
    return (int64_t)timegm(&tm);
}

static void
fmt(int64_t t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (t < 0) {
        snprintf(buf, size, "none");
        return;
    }
    gmtime_r(&tt, &tm);
    strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
}

/* The next fires after a time: up to five, "" ends them. */
static const struct {
    const char *expr;
    const char *after;
    const char *want[5];
} next_cases[] = {
    {"*/15 * * * *",
     "2026-01-01 00:00:00",
     {"2026-01-01 00:15:00", "2026-01-01 00:30:00", "2026-01-01 00:45:00", "2026-01-01 01:00:00",
      "2026-01-01 01:15:00"}},
    {"0 0 29 2 *",
     "2026-01-01 00:00:00",
     {"2028-02-29 00:00:00", "2032-02-29 00:00:00", "2036-02-29 00:00:00", "2040-02-29 00:00:00",
      "2044-02-29 00:00:00"}},
    {"0 0 29 2 *", "2096-03-01 00:00:00", {"2104-02-29 00:00:00"}},
    {"0 12 13 * FRI",
     "2026-03-01 00:00:00",
     {"2026-03-06 12:00:00", "2026-03-13 12:00:00", "2026-03-20 12:00:00", "2026-03-27 12:00:00",
      "2026-04-03 12:00:00"}},
    {"0 0 * * 7", "2026-03-01 00:00:00", {"2026-03-08 00:00:00", "2026-03-15 00:00:00"}},
    {"0 0 */10 * *",
     "2026-01-01 00:00:00",
     {"2026-01-11 00:00:00", "2026-01-21 00:00:00", "2026-01-31 00:00:00", "2026-02-01 00:00:00",
      "2026-02-11 00:00:00"}},
    {"0 0 1 * */2", "2026-01-01 00:00:00", {"2026-02-01 00:00:00", "2026-03-01 00:00:00"}},
    {"5-20/5 9-17/4 * jan-mar mon-fri",
     "2026-01-02 16:59:00",
     {"2026-01-02 17:05:00", "2026-01-02 17:10:00", "2026-01-02 17:15:00", "2026-01-02 17:20:00",
      "2026-01-05 09:05:00"}},
    {"@hourly", "2026-01-01 10:59:59", {"2026-01-01 11:00:00", "2026-01-01 12:00:00"}},
    {"@daily", "2026-12-31 00:00:00", {"2027-01-01 00:00:00", "2027-01-02 00:00:00"}},
    {"@weekly", "2026-03-01 00:00:00", {"2026-03-08 00:00:00", "2026-03-15 00:00:00"}},
    {"@monthly", "2026-01-31 12:00:00", {"2026-02-01 00:00:00", "2026-03-01 00:00:00"}},
    {"@yearly", "2026-06-01 00:00:00", {"2027-01-01 00:00:00"}},
    {"30 23 31 * *", "2026-04-01 00:00:00", {"2026-05-31 23:30:00", "2026-07-31 23:30:00"}},
    {"0,30 1 1 1,7 *",
     "2026-01-01 01:00:00",
     {"2026-01-01 01:30:00", "2026-07-01 01:00:00", "2026-07-01 01:30:00"}},
};

static const struct {
    const char *expr;
    bool valid;
} parse_cases[] = {
    {"* * * * *", true},     {"0 0 30 2 *", false},  /* 30 February never comes */
    {"0 0 31 4,6 *", false}, {"0 0 30 2 MON", true}, /* OR rule: Mondays in February */
    {"0 0 29 2 *", true},    {"60 * * * *", false},     {"* 24 * * *", false},
    {"* * 0 * *", false},    {"* * * 13 *", false},     {"* * * * 8", false},
    {"* * * FOO *", false},  {"* * * * *  *", false},   {"* * * *", false},
    {"5-1 * * * *", false},  {"*/0 * * * *", false},    {"1, * * * *", false},
    {"@every 5m", false},    {"@reboot", false},        {"", false},
    {"? * ? * ?", true},     {"0 0 * * sun-SAT", true},
};

int
main(void)
{
    for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        struct conf_cron c;
        int r = conf_cron_parse(parse_cases[i].expr, &c);
        ok((r == 0) == parse_cases[i].valid, "parse '%s': %s (%s)", parse_cases[i].expr,
           parse_cases[i].valid ? "valid" : "refused", r < 0 ? err_detail() : "ok");
    }
    for (size_t i = 0; i < sizeof(next_cases) / sizeof(next_cases[0]); i++) {
        struct conf_cron c;
        int64_t t = at(next_cases[i].after);
        int r = conf_cron_parse(next_cases[i].expr, &c);

        if (!ok(r == 0, "parse '%s'", next_cases[i].expr))
            continue;
        for (size_t k = 0; k < 5 && next_cases[i].want[k]; k++) {
            char got[40];
            t = conf_cron_next(&c, t);
            fmt(t, got, sizeof(got));
            ok(strcmp(got, next_cases[i].want[k]) == 0, "'%s' fire %zu: %s (want %s)",
               next_cases[i].expr, k + 1, got, next_cases[i].want[k]);
        }
    }

    /* Periods, offsets and due times. */
    struct conf_schedule daily = {.kind = CONF_SCHEDULE_CRON};
    conf_cron_parse("@daily", &daily.cron);
    int64_t now = at("2026-05-05 10:00:00");
    ok(conf_schedule_period(&daily, now) == 86400, "@daily period is a day");
    int64_t off = conf_schedule_offset(&daily, "p", "0f5c0c4e-0000-4000-8000-000000000001");
    ok(off >= 0 && off < 300, "@daily offset %lld within 5 min", (long long)off);
    ok(off == conf_schedule_offset(&daily, "p", "0f5c0c4e-0000-4000-8000-000000000001"),
       "offset is deterministic");
    int differ = 0;
    for (int k = 0; k < 50; k++) {
        char uuid[40];
        snprintf(uuid, sizeof(uuid), "0f5c0c4e-0000-4000-8000-%012d", k);
        differ += conf_schedule_offset(&daily, "p", uuid) != off;
    }
    ok(differ > 40, "50 domains are spread (%d differ from the first)", differ);
    ok(conf_schedule_due(&daily, at("2026-05-05 10:00:00") * 1000, true, 0) ==
           at("2026-05-06 00:00:00") * 1000,
       "cron due: the next slot after the last run");
    ok(conf_schedule_due(&daily, at("2026-05-01 10:00:00") * 1000, true, 7) ==
           at("2026-05-02 00:00:07") * 1000,
       "cron due with offset: a slot missed for days is one due time in the past");
    ok(conf_schedule_due(&daily, at("2026-05-02 00:00:07") * 1000 + 500, true, 7) ==
           at("2026-05-03 00:00:07") * 1000,
       "cron due with offset: the run of a slot is not due again");

    struct conf_schedule every = {.kind = CONF_SCHEDULE_INTERVAL, .interval_s = 5};
    ok(conf_schedule_period(&every, now) == 5, "interval period");
    ok(conf_schedule_offset(&every, "p", "u") == 0, "no offset under a minute");
    ok(conf_schedule_due(&every, 1000500, true, 0) == 1005500,
       "interval due: last run + interval, to the millisecond");
    ok(conf_schedule_due(&every, 1000500, false, 0) == 1000500, "interval: the first run at once");
    return tap_done();
}
