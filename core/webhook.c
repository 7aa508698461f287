/*
 * Webhooks (see webhook.h): their records, the events that become
 * deliveries, and the worker that sends them. The worker holds its lock
 * only to wait; the database and the network are used without it, so that
 * an event may be emitted from under any other module's lock.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "core.h"
#include "db/webhook.h"
#include "err.h"
#include "jobs.h"
#include "log.h"
#include "net/net.h"
#include "text.h"
#include "webhook.h"

#define RETRY_BASE_MS  1000
#define RETRY_CAP_MS   (300 * 1000)
#define RETRY_FOR_MS   (24 * 3600 * 1000LL)
#define IDLE_WAIT_MS   (60 * 1000)
#define PAYLOAD_MAX    (256 * 1024)
#define KEEP_MS        (30 * 24 * 3600 * 1000LL) /* ended deliveries are kept this long */
#define PRUNE_EVERY_MS (3600 * 1000LL)

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool started, stopping;
    uint64_t generation; /* bumped by every emit: a wait that saw it change looks again */
    int listener;
    struct core_webhook_config cfg;
} wh = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .listener = -1,
};

/* --- JSON text, built without a JSON library (core stays free of one) --- */

struct jtext {
    FILE *f;
    char *buf;
    size_t len;
    bool first;
};

static int
jt_open(struct jtext *j)
{
    memset(j, 0, sizeof(*j));
    j->f = open_memstream(&j->buf, &j->len);
    if (!j->f)
        return -ENOMEM;
    j->first = true;
    fputc('{', j->f);
    return 0;
}

static void
jt_key(struct jtext *j, const char *key)
{
    fprintf(j->f, "%s\"%s\": ", j->first ? "" : ", ", key);
    j->first = false;
}

/* A string member; null for NULL. */
static void
jt_str(struct jtext *j, const char *key, const char *value)
{
    _cleanup_free_ char *q = value ? text_json_quote(value) : NULL;

    jt_key(j, key);
    fputs(q ? q : "null", j->f);
}

static void
jt_int(struct jtext *j, const char *key, int64_t v)
{
    jt_key(j, key);
    fprintf(j->f, "%" PRId64, v);
}

/* A time in ms as RFC 3339 UTC with milliseconds; null for <= 0. */
static void
jt_time(struct jtext *j, const char *key, int64_t ms)
{
    char base[32], buf[40];

    if (ms <= 0) {
        jt_str(j, key, NULL);
        return;
    }
    text_time_rfc3339(base, sizeof(base), (time_t)(ms / 1000));
    snprintf(buf, sizeof(buf), "%.*s.%03dZ", (int)strlen(base) - 1, base, (int)(ms % 1000));
    jt_str(j, key, buf);
}

/* A member whose value is JSON text made by the service itself; null for NULL. */
static void
jt_raw(struct jtext *j, const char *key, const char *json)
{
    jt_key(j, key);
    fputs(json ? json : "null", j->f);
}

/* Closes the object; the text (caller frees) or NULL when out of memory. */
static char *
jt_close(struct jtext *j)
{
    fputc('}', j->f);
    if (fclose(j->f) != 0) {
        free(j->buf);
        return NULL;
    }
    return j->buf;
}

/* --- events --- */

/* Stores one delivery of ev with data for webhook w. */
static int
delivery_add(const struct conf_webhook *w, enum conf_webhook_event ev, const char *data,
             int64_t now)
{
    struct conf_webhook_delivery d = {0};
    _cleanup_free_ char *payload = NULL;
    struct jtext j;
    int r;

    r = text_random_hex(d.id, sizeof(d.id), CONF_WEBHOOK_ID_LEN / 2);
    if (r < 0)
        return r;
    r = jt_open(&j);
    if (r < 0)
        return r;
    jt_str(&j, "id", d.id);
    jt_str(&j, "event", conf_webhook_event_to_string(ev));
    jt_time(&j, "time", now);
    jt_str(&j, "webhook_id", w->id);
    jt_raw(&j, "data", data);
    payload = jt_close(&j);
    if (!payload)
        return -ENOMEM;
    snprintf(d.webhook_id, sizeof(d.webhook_id), "%s", w->id);
    d.event = ev;
    d.payload = payload;
    d.state = CONF_DELIVERY_PENDING;
    d.next_attempt_ms = now;
    d.created_ms = now;
    d.updated_ms = now;
    return db_delivery_put(core_db(), &d);
}

void
core_webhook_emit(enum conf_webhook_event ev, const char *data)
{
    struct conf_webhook *list = NULL;
    size_t n = 0, added = 0;
    int64_t now = text_now_ms();
    struct err_state saved;
    int r;

    if (!core_db() || !conf_webhook_event_to_string(ev))
        return;
    if (!data || strlen(data) > PAYLOAD_MAX) {
        log_warn("webhooks: %s: the event's data is missing or too large; not sent",
                 conf_webhook_event_to_string(ev));
        return;
    }
    err_save(&saved); /* the caller's error, if any, is still its own */
    r = db_webhook_list_for(core_db(), ev, &list, &n);
    if (r < 0)
        log_warn("webhooks: cannot read the webhooks for %s: %s", conf_webhook_event_to_string(ev),
                 err_detail() ? err_detail() : strerror(-r));
    for (size_t i = 0; r >= 0 && i < n; i++) {
        int e = delivery_add(&list[i], ev, data, now);
        if (e < 0)
            log_warn("webhooks: cannot store the %s delivery for webhook %s: %s",
                     conf_webhook_event_to_string(ev), list[i].id,
                     err_detail() ? err_detail() : strerror(-e));
        else
            added++;
    }
    conf_webhook_list_free(list, n);
    err_restore(&saved);
    if (!added)
        return;
    pthread_mutex_lock(&wh.lock);
    wh.generation++;
    pthread_cond_signal(&wh.wake);
    pthread_mutex_unlock(&wh.lock);
}

void
core_webhook_emit_backup(const struct conf_backup *b)
{
    _cleanup_free_ char *data = NULL;
    struct jtext j;

    if (jt_open(&j) < 0)
        return;
    jt_str(&j, "id", b->id);
    jt_str(&j, "domain", b->domain_name);
    jt_str(&j, "domain_uuid", b->domain_uuid);
    jt_str(&j, "mode", conf_backup_mode_to_string(b->mode));
    jt_str(&j, "type", conf_backup_type_to_string(b->type));
    jt_str(&j, "state", conf_backup_state_to_string(b->state));
    jt_str(&j, "job_id", b->job_id);
    jt_str(&j, "chain_id", b->chain_id);
    jt_str(&j, "parent_id", b->parent_id);
    jt_str(&j, "base_checkpoint", b->base_checkpoint);
    jt_str(&j, "checkpoint", b->checkpoint);
    jt_int(&j, "stored_bytes", (int64_t)b->stored_bytes);
    jt_time(&j, "started_at", b->started_at);
    jt_time(&j, "finished_at", b->finished_at);
    data = jt_close(&j);
    if (data)
        core_webhook_emit(CONF_WEBHOOK_BACKUP_COMPLETED, data);
}

void
core_webhook_emit_checkpoint_broken(const char *domain, const char *domain_uuid, const char *name,
                                    const char *why)
{
    _cleanup_free_ char *data = NULL;
    struct jtext j;

    if (jt_open(&j) < 0)
        return;
    jt_str(&j, "domain", domain);
    jt_str(&j, "domain_uuid", domain_uuid);
    jt_str(&j, "name", name);
    jt_str(&j, "reason", why);
    data = jt_close(&j);
    if (data)
        core_webhook_emit(CONF_WEBHOOK_CHECKPOINT_BROKEN, data);
}

void
core_webhook_emit_domain_overdue(const char *domain, const char *domain_uuid, const char *policy,
                                 int64_t last_success_ms)
{
    _cleanup_free_ char *data = NULL;
    struct jtext j;

    if (jt_open(&j) < 0)
        return;
    jt_str(&j, "domain", domain);
    jt_str(&j, "domain_uuid", domain_uuid);
    jt_str(&j, "policy", policy);
    jt_time(&j, "last_success", last_success_ms);
    data = jt_close(&j);
    if (data)
        core_webhook_emit(CONF_WEBHOOK_DOMAIN_OVERDUE, data);
}

/* The jobs runner's listener: a job that ended is an event. */
static void
on_job(const struct conf_job *job, void *opaque)
{
    static const enum conf_webhook_event events[] = {
        [CONF_JOB_SUCCEEDED] = CONF_WEBHOOK_JOB_SUCCEEDED,
        [CONF_JOB_FAILED] = CONF_WEBHOOK_JOB_FAILED,
        [CONF_JOB_CANCELLED] = CONF_WEBHOOK_JOB_CANCELLED,
    };
    _cleanup_free_ char *data = NULL;
    const char *kind = conf_job_kind_to_string(job->kind);
    struct jtext j;

    (void)opaque;
    if (!conf_job_state_final(job->state) || jt_open(&j) < 0)
        return;
    jt_str(&j, "id", job->id);
    jt_str(&j, "kind", kind ? kind : "unknown");
    jt_str(&j, "domain", job->domain);
    jt_str(&j, "domain_uuid", job->domain_uuid);
    jt_str(&j, "state", conf_job_state_to_string(job->state));
    jt_str(&j, "error", job->error_errno ? job->error_detail : NULL);
    jt_raw(&j, "result", job->result);
    jt_time(&j, "created_at", job->created_ms);
    jt_time(&j, "started_at", job->started_ms);
    jt_time(&j, "finished_at", job->finished_ms);
    data = jt_close(&j);
    if (data)
        core_webhook_emit(events[job->state], data);
}

/* --- the worker --- */

/* Sends d once and records how it went. */
static void
attempt(struct conf_webhook_delivery *d)
{
    struct conf_webhook w = {0};
    struct net_result res = {0};
    char ts[32], sig[CONF_WEBHOOK_SIGNATURE_LEN + 1];
    char h_event[96], h_delivery[96], h_ts[64], h_sig[128];
    const char *headers[4] = {h_event, h_delivery, h_ts, h_sig};
    int64_t now;
    int r;

    r = db_webhook_get(core_db(), d->webhook_id, true, &w);
    if (r == -ENOENT)
        return; /* deleted meanwhile: its deliveries went with it */
    if (r >= 0) {
        snprintf(ts, sizeof(ts), "%" PRId64, text_now_ms() / 1000);
        r = conf_webhook_sign(w.secret ? w.secret : "", ts, d->payload, sig);
    }
    if (r >= 0) {
        snprintf(h_event, sizeof(h_event), "X-Virtvault-Event: %s",
                 conf_webhook_event_to_string(d->event) ? conf_webhook_event_to_string(d->event)
                                                        : "unknown");
        snprintf(h_delivery, sizeof(h_delivery), "X-Virtvault-Delivery: %s", d->id);
        snprintf(h_ts, sizeof(h_ts), "X-Virtvault-Timestamp: %s", ts);
        snprintf(h_sig, sizeof(h_sig), "X-Virtvault-Signature: %s", sig);
        net_post(w.url, headers, 4, d->payload, strlen(d->payload), &res);
    } else {
        snprintf(res.error, sizeof(res.error), "%s", err_detail() ? err_detail() : strerror(-r));
    }
    conf_webhook_clear(&w);

    now = text_now_ms();
    d->attempts++;
    d->last_status = res.status;
    free(d->last_error);
    d->last_error = NULL;
    d->updated_ms = now;
    if (res.status >= 200 && res.status < 300) {
        d->state = CONF_DELIVERY_DELIVERED;
        log_info("webhook %s: delivery %s (%s) delivered, HTTP %d, attempt %u", d->webhook_id,
                 d->id, conf_webhook_event_to_string(d->event), res.status, d->attempts);
    } else {
        if (res.status)
            snprintf(res.error, sizeof(res.error), "the receiver answered HTTP %d", res.status);
        d->last_error = strdup(res.error);
        d->next_attempt_ms =
            now + conf_webhook_backoff_ms(d->attempts, wh.cfg.retry_base_ms, wh.cfg.retry_cap_ms);
        if (d->next_attempt_ms - d->created_ms > wh.cfg.retry_for_ms) {
            d->state = CONF_DELIVERY_FAILED;
            log_warn("webhook %s: delivery %s failed after %u attempt(s): %s", d->webhook_id, d->id,
                     d->attempts, res.error);
        } else {
            log_info("webhook %s: delivery %s attempt %u failed (%s); next in %" PRId64 " ms",
                     d->webhook_id, d->id, d->attempts, res.error, d->next_attempt_ms - now);
        }
    }
    r = db_delivery_update(core_db(), d);
    if (r < 0)
        log_warn("webhook %s: cannot record delivery %s: %s", d->webhook_id, d->id,
                 err_detail() ? err_detail() : strerror(-r));
}

/* Waits up to ms, or until an emit or a stop; returns at once if gen is stale. */
static void
wait_for(uint64_t gen, int64_t ms)
{
    struct timespec until;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&wh.lock);
    while (!wh.stopping && wh.generation == gen)
        if (pthread_cond_timedwait(&wh.wake, &wh.lock, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&wh.lock);
}

/* Deletes the deliveries that ended more than KEEP_MS ago. */
static void
prune(int64_t now)
{
    int64_t deleted = 0;
    int r = db_delivery_prune(core_db(), now - KEEP_MS, &deleted);

    if (r < 0)
        log_warn("webhooks: cannot delete old deliveries: %s",
                 err_detail() ? err_detail() : strerror(-r));
    else if (deleted > 0)
        log_info("webhooks: deleted %" PRId64 " delivery record(s) older than 30 days", deleted);
}

static void *
worker_main(void *arg)
{
    int64_t pruned_ms = 0;

    (void)arg;
    for (;;) {
        struct conf_webhook_delivery d;
        uint64_t gen;
        int64_t now, wait_ms = IDLE_WAIT_MS;
        int r;

        pthread_mutex_lock(&wh.lock);
        if (wh.stopping) {
            pthread_mutex_unlock(&wh.lock);
            break;
        }
        gen = wh.generation;
        pthread_mutex_unlock(&wh.lock);

        now = text_now_ms();
        if (now - pruned_ms >= PRUNE_EVERY_MS) {
            prune(now);
            pruned_ms = now;
        }
        r = db_delivery_next(core_db(), &d);
        if (r == 0 && d.next_attempt_ms <= now) {
            attempt(&d);
            conf_webhook_delivery_clear(&d);
            continue;
        }
        if (r == 0) {
            wait_ms = d.next_attempt_ms - now;
            conf_webhook_delivery_clear(&d);
        } else if (r != -ENOENT) {
            log_warn("webhooks: cannot read the deliveries due: %s",
                     err_detail() ? err_detail() : strerror(-r));
            wait_ms = 5000;
        }
        wait_for(gen, wait_ms < IDLE_WAIT_MS ? wait_ms : IDLE_WAIT_MS);
    }
    return NULL;
}

int
core_webhook_start(const struct core_webhook_config *cfg)
{
    pthread_condattr_t attr;
    int r;

    if (wh.started)
        return 0;
    wh.cfg.retry_base_ms = cfg && cfg->retry_base_ms > 0 ? cfg->retry_base_ms : RETRY_BASE_MS;
    wh.cfg.retry_cap_ms = cfg && cfg->retry_cap_ms > 0 ? cfg->retry_cap_ms : RETRY_CAP_MS;
    wh.cfg.retry_for_ms = cfg && cfg->retry_for_ms > 0 ? cfg->retry_for_ms : RETRY_FOR_MS;
    if (wh.cfg.retry_cap_ms < wh.cfg.retry_base_ms)
        wh.cfg.retry_cap_ms = wh.cfg.retry_base_ms;
    r = net_init();
    if (r < 0)
        return err_set(r, "cannot set up the HTTP client for webhooks");
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&wh.wake, &attr);
    pthread_condattr_destroy(&attr);
    wh.stopping = false;
    r = -pthread_create(&wh.thread, NULL, worker_main, NULL);
    if (r < 0) {
        pthread_cond_destroy(&wh.wake);
        net_fini();
        return err_set(r, "cannot start the webhook worker");
    }
    wh.listener = core_jobs_listen(on_job, NULL);
    if (wh.listener < 0)
        log_warn("webhooks: cannot listen to jobs; job events are not sent");
    wh.started = true;
    return 0;
}

void
core_webhook_stop(void)
{
    if (!wh.started)
        return;
    if (wh.listener >= 0)
        core_jobs_unlisten(wh.listener);
    wh.listener = -1;
    pthread_mutex_lock(&wh.lock);
    wh.stopping = true;
    pthread_cond_broadcast(&wh.wake);
    pthread_mutex_unlock(&wh.lock);
    pthread_join(wh.thread, NULL);
    pthread_cond_destroy(&wh.wake);
    net_fini();
    wh.started = false;
}

/* --- records --- */

int
core_webhook_create(const struct conf_webhook *w, struct conf_webhook *ret)
{
    struct conf_webhook rec = *w;
    int r;

    r = text_random_hex(rec.id, sizeof(rec.id), CONF_WEBHOOK_ID_LEN / 2);
    if (r < 0)
        return err_set(r, "cannot make a webhook id");
    rec.created_ms = rec.updated_ms = text_now_ms();
    r = db_webhook_put(core_db(), &rec);
    if (r < 0)
        return r;
    log_info("webhook %s created", rec.id);
    return db_webhook_get(core_db(), rec.id, false, ret);
}

int
core_webhook_update(const struct conf_webhook *w, struct conf_webhook *ret)
{
    struct conf_webhook rec = *w;
    int r;

    rec.updated_ms = text_now_ms();
    r = db_webhook_update(core_db(), &rec);
    if (r < 0)
        return r;
    log_info("webhook %s changed%s", rec.id, rec.secret ? " (with a new secret)" : "");
    return db_webhook_get(core_db(), rec.id, false, ret);
}

int
core_webhook_get(const char *id, struct conf_webhook *ret)
{
    return db_webhook_get(core_db(), id, false, ret);
}

int
core_webhook_list(int64_t before_seq, unsigned limit, struct conf_webhook **ret, size_t *ret_n,
                  int64_t *ret_next)
{
    return db_webhook_list(core_db(), before_seq, limit, ret, ret_n, ret_next);
}

int
core_webhook_delete(const char *id)
{
    int r = db_webhook_delete(core_db(), id);

    if (r == 0)
        log_info("webhook %s deleted", id);
    return r;
}

int
core_webhook_deliveries(const char *id, int64_t before_seq, unsigned limit,
                        struct conf_webhook_delivery **ret, size_t *ret_n, int64_t *ret_next)
{
    struct conf_webhook w;
    int r;

    r = db_webhook_get(core_db(), id, false, &w);
    if (r < 0)
        return r;
    conf_webhook_clear(&w);
    return db_delivery_list(core_db(), id, before_seq, limit, ret, ret_n, ret_next);
}
