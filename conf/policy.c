/* Protection policies and the schedule engine (see policy.h). */
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "err.h"
#include "policy.h"
#include "text.h"

#define DAY_S 86400
/* Nine years of days: a 29 February returns within eight (2096 -> 2104). */
#define SEARCH_DAYS (9 * 366)

struct field {
    const char *name;
    int min, max;
    const char *const *names; /* names of min.. in order, or NULL */
};

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul",
                                          "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const dow_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const struct field fields[5] = {
    {"minute", 0, 59, NULL},          {"hour", 0, 23, NULL},
    {"day of month", 1, 31, NULL},    {"month", 1, 12, month_names},
    {"day of week", 0, 7, dow_names},
};

static const struct {
    const char *macro;
    const char *expr;
} macros[] = {
    {"@hourly", "0 * * * *"},   {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
    {"@weekly", "0 0 * * 0"},   {"@monthly", "0 0 1 * *"}, {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
};

/* A number or a name of field f at s[0..len), into *ret. */
static int
read_value(const struct field *f, const char *s, size_t len, int *ret)
{
    int v = 0;

    if (len == 0)
        return -EINVAL;
    if (isdigit((unsigned char)s[0])) {
        for (size_t i = 0; i < len; i++) {
            if (!isdigit((unsigned char)s[i]) || v > 1000)
                return -EINVAL;
            v = v * 10 + (s[i] - '0');
        }
    } else {
        int i;
        if (!f->names || len != 3)
            return -EINVAL;
        for (i = 0; f->names[i]; i++)
            if (strncasecmp(s, f->names[i], 3) == 0)
                break;
        if (!f->names[i])
            return -EINVAL;
        v = f->min + i;
    }
    if (v < f->min || v > f->max)
        return -ERANGE;
    *ret = v;
    return 0;
}

/* One comma item of field f (s[0..len)) into the bit set *bits. */
static int
read_item(const struct field *f, const char *s, size_t len, uint64_t *bits)
{
    const char *slash = memchr(s, '/', len);
    size_t range_len = slash ? (size_t)(slash - s) : len;
    int lo = f->min, hi = f->max, step = 1, r;

    if (slash) {
        const struct field step_field = {f->name, 1, 1000, NULL};
        r = read_value(&step_field, slash + 1, len - range_len - 1, &step);
        if (r < 0)
            return -EINVAL;
    }
    if (range_len == 1 && (s[0] == '*' || s[0] == '?')) {
        /* the whole field */
    } else {
        const char *dash = memchr(s, '-', range_len);
        if (dash) {
            r = read_value(f, s, (size_t)(dash - s), &lo);
            if (r >= 0)
                r = read_value(f, dash + 1, range_len - (size_t)(dash - s) - 1, &hi);
            if (r < 0)
                return r;
            if (lo > hi)
                return -EDOM;
        } else {
            r = read_value(f, s, range_len, &lo);
            if (r < 0)
                return r;
            hi = slash ? f->max : lo;
        }
    }
    for (int v = lo; v <= hi; v += step)
        *bits |= 1ull << v;
    return 0;
}

static int
read_field(const struct field *f, const char *s, uint64_t *ret, bool *ret_star)
{
    uint64_t bits = 0;

    *ret_star = s[0] == '*' || s[0] == '?';
    while (*s) {
        size_t len = strcspn(s, ",");
        int r = read_item(f, s, len, &bits);
        if (r == -ERANGE)
            return err_set_pointer(-EINVAL, "/schedule", "%s: values run from %d to %d", f->name,
                                   f->min, f->max);
        if (r == -EDOM)
            return err_set_pointer(-EINVAL, "/schedule", "%s: a range must run upwards", f->name);
        if (r < 0)
            return err_set_pointer(-EINVAL, "/schedule", "%s: '%.*s' is not a value, range or step",
                                   f->name, (int)len, s);
        s += len;
        if (*s == ',' && !*++s)
            return err_set_pointer(-EINVAL, "/schedule", "%s: ends with a comma", f->name);
    }
    *ret = bits;
    return 0;
}

static int
days_in_month(int mon /* 1-12 */, bool leap)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return mon == 2 && leap ? 29 : days[mon - 1];
}

int
conf_cron_parse(const char *text, struct conf_cron *ret)
{
    char buf[CONF_CRON_TEXT_MAX];
    char *part[5], *save = NULL, *tok;
    struct conf_cron c = {0};
    uint64_t bits[5];
    bool star[5];
    size_t n = 0;

    if (!text || !*text)
        return err_set_pointer(-EINVAL, "/schedule", "must be a cron expression");
    if (strlen(text) >= sizeof(buf))
        return err_set_pointer(-EINVAL, "/schedule", "must be at most %d characters",
                               CONF_CRON_TEXT_MAX - 1);
    if (text[0] == '@') {
        for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++)
            if (strcasecmp(text, macros[i].macro) == 0)
                return conf_cron_parse(macros[i].expr, ret);
        return err_set_pointer(-EINVAL, "/schedule",
                               "'%s' is not one of @hourly, @daily, @weekly, @monthly, @yearly",
                               text);
    }
    snprintf(buf, sizeof(buf), "%s", text);
    for (tok = strtok_r(buf, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        if (n == 5)
            return err_set_pointer(-EINVAL, "/schedule",
                                   "must have 5 fields: minute hour day-of-month month "
                                   "day-of-week");
        part[n++] = tok;
    }
    if (n != 5)
        return err_set_pointer(-EINVAL, "/schedule",
                               "must have 5 fields: minute hour day-of-month month day-of-week");
    for (size_t i = 0; i < 5; i++) {
        int r = read_field(&fields[i], part[i], &bits[i], &star[i]);
        if (r < 0)
            return r;
    }
    c.minutes = bits[0];
    c.hours = (uint32_t)bits[1];
    c.doms = (uint32_t)bits[2];
    c.months = (uint16_t)bits[3];
    c.dows = (uint8_t)((bits[4] | (bits[4] >> 7)) & 0x7f); /* 7 is Sunday */
    c.dom_star = star[2];
    c.dow_star = star[4];
    /* Days that never come: with the AND rule, a day of month no chosen month has. */
    if (c.dow_star || c.dom_star) {
        bool some = false;
        for (int m = 1; m <= 12 && !some; m++)
            for (int d = 1; (c.months & (1u << m)) && d <= days_in_month(m, true); d++)
                if (c.doms & (1u << d))
                    some = true;
        if (!some)
            return err_set_pointer(-EINVAL, "/schedule",
                                   "never fires: no chosen month has the chosen day of month");
    }
    *ret = c;
    return 0;
}

static bool
day_matches(const struct conf_cron *c, const struct tm *tm)
{
    bool dom = c->doms & (1u << tm->tm_mday);
    bool dow = c->dows & (1u << tm->tm_wday);

    if (!(c->months & (1u << (tm->tm_mon + 1))))
        return false;
    if (c->dom_star || c->dow_star)
        return dom && dow;
    return dom || dow;
}

int64_t
conf_cron_next(const struct conf_cron *c, int64_t after_s)
{
    int64_t t, day0;
    int start_h, start_m;

    if (after_s < 0)
        after_s = -60;
    t = after_s - (after_s % 60) + 60;
    day0 = t - t % DAY_S;
    start_h = (int)(t % DAY_S / 3600);
    start_m = (int)(t % 3600 / 60);
    for (int d = 0; d < SEARCH_DAYS; d++) {
        time_t day = (time_t)(day0 + (int64_t)d * DAY_S);
        struct tm tm;

        if (!gmtime_r(&day, &tm))
            return -1;
        if (!day_matches(c, &tm))
            continue;
        for (int h = d == 0 ? start_h : 0; h < 24; h++) {
            if (!(c->hours & (1u << h)))
                continue;
            for (int m = d == 0 && h == start_h ? start_m : 0; m < 60; m++)
                if (c->minutes & (1ull << m))
                    return (int64_t)day + h * 3600 + m * 60;
        }
    }
    return -1;
}

int64_t
conf_schedule_period(const struct conf_schedule *s, int64_t now_s)
{
    int64_t a, b;

    if (s->kind == CONF_SCHEDULE_INTERVAL)
        return s->interval_s;
    a = conf_cron_next(&s->cron, now_s);
    b = a < 0 ? -1 : conf_cron_next(&s->cron, a);
    return b < 0 ? 0 : b - a;
}

int64_t
conf_schedule_offset(const struct conf_schedule *s, const char *policy, const char *domain_uuid)
{
    int64_t period = conf_schedule_period(s, 0), spread;
    char key[512];

    if (period < 60)
        return 0;
    spread = period / 10 < 300 ? period / 10 : 300;
    snprintf(key, sizeof(key), "%s/%s", policy, domain_uuid);
    return (int64_t)(text_hash(key) % (uint64_t)spread);
}

int64_t
conf_schedule_due(const struct conf_schedule *s, int64_t anchor_ms, bool ran_before,
                  int64_t offset_s)
{
    int64_t next;

    if (s->kind == CONF_SCHEDULE_INTERVAL)
        return anchor_ms + (ran_before ? s->interval_s : offset_s) * 1000;
    /* The run of a slot starts offset_s after it: count slots from the anchor's own slot. */
    next = conf_cron_next(&s->cron, anchor_ms / 1000 - offset_s);
    return next < 0 ? -1 : (next + offset_s) * 1000;
}

static void
strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

void
conf_policy_free(struct conf_policy *p)
{
    if (!p)
        return;
    free(p->name);
    free(p->copy_to);
    strv_free(p->domains, p->n_domains);
    strv_free(p->backup.disks, p->backup.n_disks);
    free(p);
}

void
conf_policy_list_free(struct conf_policy **list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        conf_policy_free(list[i]);
    free(list);
}

bool
conf_policy_is_pattern(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

bool
conf_policy_matches(const struct conf_policy *p, const char *name)
{
    for (size_t i = 0; i < p->n_domains; i++)
        if (fnmatch(p->domains[i], name, 0) == 0)
            return true;
    return false;
}

void
conf_policy_member_clear(struct conf_policy_member *m)
{
    if (!m)
        return;
    free(m->policy);
    free(m->domain);
    free(m->last_result);
    free(m->last_job);
    free(m->last_detail);
    free(m->copy_pending);
    free(m->copy_job);
    memset(m, 0, sizeof(*m));
}

void
conf_policy_member_list_free(struct conf_policy_member *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        conf_policy_member_clear(&list[i]);
    free(list);
}
