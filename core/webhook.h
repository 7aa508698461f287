/*
 * core/webhook.h - webhooks: URLs told of the service's events by signed
 * POSTs, retried until they answer 2xx.
 *
 * An event (core_webhook_emit) becomes one delivery per webhook that asked
 * for it, stored in the database before anyone is told, so that a restart
 * loses none. One worker thread sends the deliveries due, oldest first:
 * a POST of the event's JSON with X-Virtvault-Event, X-Virtvault-Delivery,
 * X-Virtvault-Timestamp and X-Virtvault-Signature ("sha256=" HMAC-SHA256,
 * keyed with the webhook's secret, of timestamp "." body). A 2xx answer
 * makes it delivered; anything else (another status, a 3xx too: redirects
 * are not followed; no answer within the timeouts) is tried again after
 * retry_base_ms, doubled after each failure up to retry_cap_ms, until
 * retry_for_ms have passed since the event: then it is failed.
 * Delivered and failed deliveries are deleted 30 days after their last
 * attempt.
 *
 * The jobs' ends (job.succeeded, job.failed, job.cancelled) are heard
 * through the jobs runner's listeners; other modules call
 * core_webhook_emit() where their events happen.
 */
#ifndef VV_CORE_WEBHOOK_H
#define VV_CORE_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "conf/backup.h"
#include "conf/webhook.h"

struct core_webhook_config {
    int64_t retry_base_ms; /* the first retry's delay; 0: 1000 */
    int64_t retry_cap_ms;  /* the longest delay between attempts; 0: 300000 */
    int64_t retry_for_ms;  /* how long after the event a delivery is tried; 0: 24 h */
};

/*
 * Starts the delivery worker and listens to the jobs runner. Call after the
 * database is open and before the jobs runner starts. Returns 0 or a
 * negative errno with a detail.
 */
int core_webhook_start(const struct core_webhook_config *cfg);

/* Stops the worker (an attempt in flight ends first). Safe without a start. */
void core_webhook_stop(void);

/*
 * Records event ev with data, the text of one JSON object (borrowed), as a
 * pending delivery for every webhook that asked for ev, and wakes the
 * worker. Never fails its caller: what cannot be stored is logged. Safe on
 * any thread, also with other modules' locks held (it takes only the
 * database's and its own).
 */
void core_webhook_emit(enum conf_webhook_event ev, const char *data);

/* backup.completed for b (borrowed). */
void core_webhook_emit_backup(const struct conf_backup *b);

/* checkpoint.broken for checkpoint name of a domain, broken for why. */
void core_webhook_emit_checkpoint_broken(const char *domain, const char *domain_uuid,
                                         const char *name, const char *why);

/*
 * domain.overdue for a domain of policy: no successful backup since
 * last_success_ms (0: never) within twice the schedule's period.
 */
void core_webhook_emit_domain_overdue(const char *domain, const char *domain_uuid,
                                      const char *policy, int64_t last_success_ms);

/*
 * Creates a webhook from w (url, events, secret; the rest is set here).
 * *ret is the stored webhook without its secret (conf_webhook_clear).
 */
int core_webhook_create(const struct conf_webhook *w, struct conf_webhook *ret);

/*
 * Changes webhook w->id: url and events, and the secret when w->secret is
 * not NULL. *ret as for create. -ENOENT when there is none.
 */
int core_webhook_update(const struct conf_webhook *w, struct conf_webhook *ret);

/* Reads a webhook without its secret. -ENOENT when there is none. */
int core_webhook_get(const char *id, struct conf_webhook *ret);

/* Lists webhooks newest first (see db_webhook_list for paging and ownership). */
int core_webhook_list(int64_t before_seq, unsigned limit, struct conf_webhook **ret, size_t *ret_n,
                      int64_t *ret_next);

/* Deletes a webhook and its deliveries. -ENOENT when there is none. */
int core_webhook_delete(const char *id);

/* Lists a webhook's deliveries newest first; -ENOENT when there is no such webhook. */
int core_webhook_deliveries(const char *id, int64_t before_seq, unsigned limit,
                            struct conf_webhook_delivery **ret, size_t *ret_n, int64_t *ret_next);

#endif
