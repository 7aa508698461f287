/* The event feed (see feed.h). */
#include <jansson.h>
#include <stdlib.h>

#include "api_json.h"
#include "cleanup.h"
#include "core/core.h"
#include "core/jobs.h"
#include "feed.h"

static struct {
    api_feed_fn fn;
    void *opaque;
    int job_listener;
} feed = {.job_listener = -1};

/* Every job change (jobs.h listener: quick, on the thread that made it). */
static void
on_job(const struct conf_job *job, void *opaque)
{
    json_auto_t *j = api_job_json(job);
    _cleanup_free_ char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    (void)opaque;

    if (text && feed.fn)
        feed.fn("job", text, feed.opaque);
}

/* Every domain lifecycle event (on libvirt's event thread). */
static void
on_domain(const struct conf_event *ev, void *opaque)
{
    json_auto_t *j = json_pack("{s:s?, s:s?, s:s}", "domain", ev->domain, "uuid", ev->uuid, "event",
                               core_domain_event_name(ev->kind));
    _cleanup_free_ char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    (void)opaque;

    if (text && feed.fn)
        feed.fn("domain", text, feed.opaque);
}

int
api_feed_start(api_feed_fn fn, void *opaque)
{
    int r;

    feed.fn = fn;
    feed.opaque = opaque;
    r = core_jobs_listen(on_job, NULL);
    if (r < 0)
        return r;
    feed.job_listener = r;
    core_domain_events_listen(on_domain, NULL);
    return 0;
}

void
api_feed_stop(void)
{
    if (feed.job_listener >= 0)
        core_jobs_unlisten(feed.job_listener);
    feed.job_listener = -1;
    core_domain_events_listen(NULL, NULL);
}

bool
api_hypervisor_connected(void)
{
    return core_hypervisor_connected();
}
