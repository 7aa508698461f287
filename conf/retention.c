/* The prune rule of retention options (see retention.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "retention.h"

#define BUCKET_LEN 32

enum mark { MARK_NONE, MARK_KEEP, MARK_REMOVE };

static const char *const option_names[CONF_RETENTION_OPTION_LAST] = {
    [CONF_RETENTION_LAST] = "keep_last",       [CONF_RETENTION_HOURLY] = "keep_hourly",
    [CONF_RETENTION_DAILY] = "keep_daily",     [CONF_RETENTION_WEEKLY] = "keep_weekly",
    [CONF_RETENTION_MONTHLY] = "keep_monthly", [CONF_RETENTION_YEARLY] = "keep_yearly",
};

const char *
conf_retention_option_to_string(enum conf_retention_option o)
{
    if ((unsigned)o >= CONF_RETENTION_OPTION_LAST)
        return NULL;
    return option_names[o];
}

bool
conf_retention_keeps_all(const struct conf_retention *r)
{
    for (int o = 0; o < CONF_RETENTION_OPTION_LAST; o++)
        if (r->keep[o])
            return false;
    return true;
}

struct item {
    size_t index;
    int64_t time;
};

static int
item_newest_first(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    if (x->time != y->time)
        return x->time > y->time ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* The bucket of time t for option o into buf; -EINVAL if gmtime fails. */
static int
bucket_of(enum conf_retention_option o, size_t index, int64_t t, char buf[static BUCKET_LEN])
{
    struct tm tm;
    time_t tt = (time_t)t;

    size_t len = 0;

    if (o == CONF_RETENTION_LAST) {
        snprintf(buf, BUCKET_LEN, "#%zu", index);
        return 0;
    }
    if (!gmtime_r(&tt, &tm))
        return -EINVAL;
    /* the bucket formats, literal so that the compiler checks them */
    switch (o) {
    case CONF_RETENTION_HOURLY:
        len = strftime(buf, BUCKET_LEN, "%Y-%m-%d %H", &tm);
        break;
    case CONF_RETENTION_DAILY:
        len = strftime(buf, BUCKET_LEN, "%Y-%m-%d", &tm);
        break;
    case CONF_RETENTION_WEEKLY:
        len = strftime(buf, BUCKET_LEN, "%G-%V", &tm);
        break;
    case CONF_RETENTION_MONTHLY:
        len = strftime(buf, BUCKET_LEN, "%Y-%m", &tm);
        break;
    default:
        len = strftime(buf, BUCKET_LEN, "%Y", &tm);
        break;
    }
    return len ? 0 : -EINVAL;
}

static bool
bucket_in(char (*set)[BUCKET_LEN], size_t n, const char *b)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(set[i], b) == 0)
            return true;
    return false;
}

int
conf_retention_prune(const struct conf_retention *r, const int64_t *times, const bool *protected_,
                     size_t n, bool *ret_keep)
{
    _cleanup_free_ struct item *items = NULL;
    _cleanup_free_ enum mark *mark = NULL;
    _cleanup_free_ char(*buckets)[BUCKET_LEN] = NULL;
    _cleanup_free_ char(*covered)[BUCKET_LEN] = NULL;
    _cleanup_free_ char(*selected)[BUCKET_LEN] = NULL;

    if (!r || (n > 0 && (!times || !ret_keep)))
        return -EINVAL;
    if (n == 0)
        return 0;
    items = calloc(n, sizeof(*items));
    mark = calloc(n, sizeof(*mark));
    buckets = calloc(n, sizeof(*buckets));
    covered = calloc(n, sizeof(*covered));
    selected = calloc(n, sizeof(*selected));
    if (!items || !mark || !buckets || !covered || !selected)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        items[i] = (struct item){.index = i, .time = times[i]};
    qsort(items, n, sizeof(*items), item_newest_first);

    if (!conf_retention_keeps_all(r)) {
        for (int o = 0; o < CONF_RETENTION_OPTION_LAST; o++) {
            size_t ncovered = 0, nselected = 0;

            if (r->keep[o] == 0)
                continue;
            for (size_t k = 0; k < n; k++) {
                size_t i = items[k].index;
                int rc = bucket_of(o, i, items[k].time, buckets[k]);
                if (rc < 0)
                    return rc;
                if (mark[k] == MARK_KEEP && !(protected_ && protected_[i]))
                    strcpy(covered[ncovered++], buckets[k]);
            }
            for (size_t k = 0; k < n; k++) {
                size_t i = items[k].index;
                if ((protected_ && protected_[i]) || mark[k] != MARK_NONE)
                    continue;
                if (bucket_in(covered, ncovered, buckets[k]))
                    continue;
                if (bucket_in(selected, nselected, buckets[k])) {
                    mark[k] = MARK_REMOVE;
                    continue;
                }
                if (nselected >= r->keep[o])
                    break;
                strcpy(selected[nselected++], buckets[k]);
                mark[k] = MARK_KEEP;
            }
        }
    }
    for (size_t k = 0; k < n; k++) {
        size_t i = items[k].index;
        ret_keep[i] =
            conf_retention_keeps_all(r) || (protected_ && protected_[i]) || mark[k] == MARK_KEEP;
    }
    return 0;
}
