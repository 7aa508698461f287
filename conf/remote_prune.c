/* The plan of a remote prune and a policy copy's lock span (see remote_prune.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "conf/remote_prune.h"

ptrdiff_t
conf_remote_prune_find(const struct conf_remote_prune_item *items, size_t n, const char *id)
{
    for (size_t i = 0; id && i < n; i++)
        if (strcmp(items[i].id, id) == 0)
            return (ptrdiff_t)i;
    return -1;
}

int
conf_remote_prune_plan(const struct conf_retention *r, int64_t now_ms,
                       struct conf_remote_prune_item *items, size_t n)
{
    _cleanup_free_ int64_t *times = NULL;
    _cleanup_free_ bool *prot = NULL;
    _cleanup_free_ bool *keep = NULL;
    int rc;

    if (!r || (n && !items))
        return -EINVAL;
    if (n == 0)
        return 0;
    times = calloc(n, sizeof(*times));
    prot = calloc(n, sizeof(*prot));
    keep = calloc(n, sizeof(*keep));
    if (!times || !prot || !keep)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        times[i] = items[i].started_s;
        items[i].locked = items[i].retain_until_ms > now_ms;
        prot[i] = items[i].locked || items[i].is_protected;
    }
    rc = conf_retention_prune(r, times, prot, n, keep);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        items[i].keep = keep[i];
        items[i].merge = false;
        items[i].onto = -1;
        if (!keep[i])
            items[i].locked = false; /* not held: only kept ones are reported as held */
    }
    /* A kept backup whose parent goes stands on its nearest kept ancestor, or on none. */
    for (size_t i = 0; i < n; i++) {
        ptrdiff_t a = conf_remote_prune_find(items, n, items[i].parent_id);
        size_t steps = 0;

        if (!items[i].keep || a < 0 || items[a].keep)
            continue;
        while (a >= 0 && !items[a].keep && steps++ < n)
            a = conf_remote_prune_find(items, n, items[a].parent_id);
        items[i].merge = true;
        items[i].onto = a >= 0 && items[a].keep ? a : -1;
    }
    return 0;
}

int64_t
conf_remote_lock_span(const struct conf_retention *r, int64_t period_s, unsigned lock_days)
{
    static const int64_t unit[CONF_RETENTION_OPTION_LAST] = {
        0, 3600, 86400, 7 * 86400, 30 * 86400, 365 * 86400,
    };

    for (int o = 0; r && o < CONF_RETENTION_OPTION_LAST; o++) {
        int64_t u = o == CONF_RETENTION_LAST ? period_s : unit[o];
        if (!r->keep[o])
            continue;
        if (u <= 0)
            break;
        return (int64_t)r->keep[o] * u;
    }
    return (int64_t)lock_days * 86400;
}
