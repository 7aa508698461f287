/*
 * db/webhook.h - the webhooks and webhook_deliveries tables (see
 * conf/webhook.h for the records, core/webhook.h for their use).
 *
 * Deleting a webhook deletes its deliveries. Lists are newest first and
 * paged by seq: *ret_next is the before_seq of the next page, 0 after the
 * last one.
 */
#ifndef VV_DB_WEBHOOK_H
#define VV_DB_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "conf/webhook.h"

struct db;

/* Stores a new webhook (its seq is ignored). 0, or a negative errno with a detail. */
int db_webhook_put(struct db *db, const struct conf_webhook *w);

/*
 * Changes the URL, events and updated time of webhook w->id, and its secret
 * when w->secret is not NULL. -ENOENT when there is none.
 */
int db_webhook_update(struct db *db, const struct conf_webhook *w);

/*
 * Reads webhook id into *ret (conf_webhook_clear), with its secret when
 * with_secret. -ENOENT when there is none.
 */
int db_webhook_get(struct db *db, const char *id, bool with_secret, struct conf_webhook *ret);

/* Lists webhooks without their secrets (conf_webhook_list_free). limit 0: 100. */
int db_webhook_list(struct db *db, int64_t before_seq, unsigned limit, struct conf_webhook **ret,
                    size_t *ret_n, int64_t *ret_next);

/* Lists every webhook told of ev, with its secret (conf_webhook_list_free). */
int db_webhook_list_for(struct db *db, enum conf_webhook_event ev, struct conf_webhook **ret,
                        size_t *ret_n);

/* Deletes webhook id and its deliveries. -ENOENT when there is none. */
int db_webhook_delete(struct db *db, const char *id);

/* Stores a new delivery (its seq is ignored). */
int db_delivery_put(struct db *db, const struct conf_webhook_delivery *d);

/*
 * Reads the pending delivery due first into *ret (conf_webhook_delivery_clear).
 * -ENOENT when none is pending.
 */
int db_delivery_next(struct db *db, struct conf_webhook_delivery *ret);

/* Records the outcome of an attempt: state, attempts, next attempt, last status and error. */
int db_delivery_update(struct db *db, const struct conf_webhook_delivery *d);

/*
 * Deletes the delivered and failed deliveries last changed before before_ms;
 * *ret_deleted (may be NULL) says how many.
 */
int db_delivery_prune(struct db *db, int64_t before_ms, int64_t *ret_deleted);

/* Lists the deliveries of webhook_id (conf_webhook_delivery_list_free). limit 0: 100. */
int db_delivery_list(struct db *db, const char *webhook_id, int64_t before_seq, unsigned limit,
                     struct conf_webhook_delivery **ret, size_t *ret_n, int64_t *ret_next);

#endif
