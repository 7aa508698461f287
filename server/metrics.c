#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/feed.h"
#include "defer.h"
#include "timer.h"
#include "metrics.h"
#include "router.h"

#define MAX_SERIES 512

static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                 0.05,   0.1,   0.25,   0.5,   1,    2.5};
#define N_BUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct series {
    const char *method; /* static strings from the route table, or "other" */
    const char *route;
    int status;
    uint64_t count;
};

static struct {
    pthread_mutex_t lock;
    struct series series[MAX_SERIES];
    size_t n;
    uint64_t hist[N_BUCKETS + 1];
    uint64_t hist_count;
    double hist_sum;
    struct defer_pool *deferred;
    struct timers *waits;
} m = {.lock = PTHREAD_MUTEX_INITIALIZER};

void
metrics_watch_deferred(struct defer_pool *pool)
{
    pthread_mutex_lock(&m.lock);
    m.deferred = pool;
    pthread_mutex_unlock(&m.lock);
}

void
metrics_watch_waits(struct timers *timers)
{
    pthread_mutex_lock(&m.lock);
    m.waits = timers;
    pthread_mutex_unlock(&m.lock);
}

/* Keeps label values to the route table's own strings, so series stay few. */
static const char *
canonical_method(const char *method)
{
    static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};

    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(method, known[i]) == 0)
            return known[i];
    return "other";
}

void
metrics_request_done(const char *method, const char *route, int status, uint64_t duration_ns)
{
    double secs = (double)duration_ns / 1e9;
    size_t b = 0;

    method = canonical_method(method);
    route = route ? route : "unmatched";
    pthread_mutex_lock(&m.lock);
    size_t i;
    for (i = 0; i < m.n; i++) {
        struct series *s = &m.series[i];
        if (s->status == status && s->method == method && s->route == route)
            break;
    }
    if (i == m.n && m.n < MAX_SERIES)
        m.series[m.n++] = (struct series){method, route, status, 0};
    if (i < m.n)
        m.series[i].count++;
    while (b < N_BUCKETS && secs > buckets[b])
        b++;
    m.hist[b]++;
    m.hist_count++;
    m.hist_sum += secs;
    pthread_mutex_unlock(&m.lock);
}

char *
metrics_render(void)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    uint64_t cumulative = 0;

    if (!f)
        return NULL;
    fputs("# HELP virtvault_up Whether the service is running.\n"
          "# TYPE virtvault_up gauge\nvirtvault_up 1\n",
          f);
    fprintf(f,
            "# HELP virtvault_libvirt_connected Whether the libvirt connection is up.\n"
            "# TYPE virtvault_libvirt_connected gauge\nvirtvault_libvirt_connected %d\n",
            api_hypervisor_connected() ? 1 : 0);
    fputs("# HELP virtvault_http_requests_total HTTP requests by method, route and status.\n"
          "# TYPE virtvault_http_requests_total counter\n",
          f);
    pthread_mutex_lock(&m.lock);
    for (size_t i = 0; i < m.n; i++)
        fprintf(f, "virtvault_http_requests_total{method=\"%s\",route=\"%s\",status=\"%d\"} %llu\n",
                m.series[i].method, m.series[i].route, m.series[i].status,
                (unsigned long long)m.series[i].count);
    fputs("# HELP virtvault_http_request_duration_seconds Time to answer a request.\n"
          "# TYPE virtvault_http_request_duration_seconds histogram\n",
          f);
    for (size_t b = 0; b < N_BUCKETS; b++) {
        cumulative += m.hist[b];
        fprintf(f, "virtvault_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n", buckets[b],
                (unsigned long long)cumulative);
    }
    fprintf(f, "virtvault_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
            (unsigned long long)m.hist_count);
    fprintf(f, "virtvault_http_request_duration_seconds_sum %.6f\n", m.hist_sum);
    fprintf(f, "virtvault_http_request_duration_seconds_count %llu\n",
            (unsigned long long)m.hist_count);
    if (m.deferred) {
        unsigned running = 0, queued = 0;
        defer_pool_counts(m.deferred, &running, &queued);
        fprintf(f,
                "# HELP virtvault_http_deferred_requests Slow requests suspended off the HTTP "
                "threads, by state.\n"
                "# TYPE virtvault_http_deferred_requests gauge\n"
                "virtvault_http_deferred_requests{state=\"running\"} %u\n"
                "virtvault_http_deferred_requests{state=\"queued\"} %u\n",
                running, queued);
    }
    if (m.waits)
        fprintf(f,
                "# HELP virtvault_http_waiting_requests Requests suspended until a job ends "
                "(?wait), holding no thread.\n"
                "# TYPE virtvault_http_waiting_requests gauge\n"
                "virtvault_http_waiting_requests %u\n",
                timers_count(m.waits));
    pthread_mutex_unlock(&m.lock);
    (void)api_policy_metrics(f);
    (void)api_files_metrics(f);
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}
