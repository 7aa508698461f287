/*
 * conf/webhook.h - webhooks: a URL told of service events by signed POSTs,
 * and the deliveries of those events (see core/webhook.h).
 *
 * A struct conf_webhook owns its strings (conf_webhook_clear); its secret
 * is NULL in every copy read for an answer: the secret is write-only. A
 * struct conf_webhook_delivery owns its strings too; payload is the JSON
 * text that is POSTed, the same bytes on every attempt.
 */
#ifndef VV_CONF_WEBHOOK_H
#define VV_CONF_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/enum.h"

enum conf_webhook_event {
    CONF_WEBHOOK_JOB_SUCCEEDED,
    CONF_WEBHOOK_JOB_FAILED,
    CONF_WEBHOOK_JOB_CANCELLED,
    CONF_WEBHOOK_BACKUP_COMPLETED,
    CONF_WEBHOOK_DOMAIN_OVERDUE,
    CONF_WEBHOOK_CHECKPOINT_BROKEN,
    CONF_WEBHOOK_EVENT_LAST,
};

/* "job.succeeded", "job.failed", ...; parsing: -EINVAL for none. */
CONF_ENUM_DECL(conf_webhook_event, enum conf_webhook_event);

/* The subscription to every event, present and future ("*"). */
#define CONF_WEBHOOK_ALL_EVENTS (UINT32_C(1) << 31)

enum conf_delivery_state {
    CONF_DELIVERY_PENDING,
    CONF_DELIVERY_DELIVERED,
    CONF_DELIVERY_FAILED,
    CONF_DELIVERY_STATE_LAST,
};

/* "pending", "delivered", "failed"; parsing: -EINVAL for none. */
CONF_ENUM_DECL(conf_delivery_state, enum conf_delivery_state);

#define CONF_WEBHOOK_ID_LEN     32
#define CONF_WEBHOOK_URL_MAX    2048 /* bytes of a webhook's URL */
#define CONF_WEBHOOK_SECRET_MAX 256  /* bytes of a secret */
#define CONF_WEBHOOK_EVENTS_MAX 256  /* bytes of the events as text ("a,b,c") */

struct conf_webhook {
    int64_t seq; /* the row's order; set when read back */
    char id[CONF_WEBHOOK_ID_LEN + 1];
    char *url;
    uint32_t events; /* 1 << enum conf_webhook_event, or CONF_WEBHOOK_ALL_EVENTS */
    char *secret;    /* NULL in copies read for answers */
    int64_t created_ms;
    int64_t updated_ms;
};

struct conf_webhook_delivery {
    int64_t seq;
    char id[CONF_WEBHOOK_ID_LEN + 1];
    char webhook_id[CONF_WEBHOOK_ID_LEN + 1];
    enum conf_webhook_event event;
    char *payload; /* JSON text */
    enum conf_delivery_state state;
    unsigned attempts;
    int64_t next_attempt_ms; /* when the next attempt is due (pending only) */
    int last_status;         /* the HTTP status of the last attempt, 0 for none */
    char *last_error;        /* why the last attempt failed, or NULL */
    int64_t created_ms;
    int64_t updated_ms;
};

/* True when a webhook with this events mask is told of ev. */
bool conf_webhook_wants(uint32_t events, enum conf_webhook_event ev);

/*
 * The events mask as text: "*" for all, else the names joined by ','
 * ("" for none). Writes into buf (CONF_WEBHOOK_EVENTS_MAX bytes suffice).
 */
void conf_webhook_events_format(uint32_t events, char *buf, size_t size);

/*
 * Parses text that conf_webhook_events_format() wrote; names this version
 * does not know are skipped. Returns the mask.
 */
uint32_t conf_webhook_events_parse(const char *text);

/*
 * How long to wait before attempt number `attempt` + 1 after `attempt`
 * (>= 1) failed ones: base_ms doubled for each failure after the first,
 * at most cap_ms. base_ms 1000, cap 300000: 1 s, 2 s, 4 s, ... 5 min.
 */
int64_t conf_webhook_backoff_ms(unsigned attempt, int64_t base_ms, int64_t cap_ms);

#define CONF_WEBHOOK_SIGNATURE_LEN (7 + 64) /* "sha256=" and 64 hex digits */

/*
 * The X-Virtvault-Signature value of a delivery: "sha256=" and the hex
 * HMAC-SHA256, keyed with secret, of timestamp "." body. Returns 0 or
 * -ENOMEM / -EIO.
 */
int conf_webhook_sign(const char *secret, const char *timestamp, const char *body,
                      char ret[CONF_WEBHOOK_SIGNATURE_LEN + 1]);

/* Frees the strings of w (not w). Accepts NULL. */
void conf_webhook_clear(struct conf_webhook *w);

/* Frees an array of n webhooks. Accepts NULL. */
void conf_webhook_list_free(struct conf_webhook *list, size_t n);

/* Frees the strings of d (not d). Accepts NULL. */
void conf_webhook_delivery_clear(struct conf_webhook_delivery *d);

/* Frees an array of n deliveries. Accepts NULL. */
void conf_webhook_delivery_list_free(struct conf_webhook_delivery *list, size_t n);

#endif
