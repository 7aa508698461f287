/* Webhook records, their event names and the signature of a delivery (see webhook.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "hash.h"
#include "webhook.h"

CONF_ENUM_IMPL(conf_webhook_event, enum conf_webhook_event, CONF_WEBHOOK_EVENT_LAST,
               "job.succeeded", "job.failed", "job.cancelled", "backup.completed", "domain.overdue",
               "checkpoint.broken");

CONF_ENUM_IMPL(conf_delivery_state, enum conf_delivery_state, CONF_DELIVERY_STATE_LAST, "pending",
               "delivered", "failed");

bool
conf_webhook_wants(uint32_t events, enum conf_webhook_event ev)
{
    if ((int)ev < 0 || ev >= CONF_WEBHOOK_EVENT_LAST)
        return false;
    return (events & CONF_WEBHOOK_ALL_EVENTS) || (events & (UINT32_C(1) << ev));
}

void
conf_webhook_events_format(uint32_t events, char *buf, size_t size)
{
    size_t used = 0;

    if (size == 0)
        return;
    buf[0] = '\0';
    if (events & CONF_WEBHOOK_ALL_EVENTS) {
        snprintf(buf, size, "*");
        return;
    }
    for (int i = 0; i < CONF_WEBHOOK_EVENT_LAST; i++) {
        int n;

        if (!(events & (UINT32_C(1) << i)))
            continue;
        n = snprintf(buf + used, size - used, "%s%s", used ? "," : "",
                     conf_webhook_event_to_string((enum conf_webhook_event)i));
        if (n < 0 || (size_t)n >= size - used)
            return;
        used += (size_t)n;
    }
}

uint32_t
conf_webhook_events_parse(const char *text)
{
    uint32_t mask = 0;
    const char *p = text;

    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char name[64];
        enum conf_webhook_event ev;

        if (len == 1 && p[0] == '*')
            mask |= CONF_WEBHOOK_ALL_EVENTS;
        else if (len < sizeof(name)) {
            memcpy(name, p, len);
            name[len] = '\0';
            if (conf_webhook_event_from_string(name, &ev) == 0)
                mask |= UINT32_C(1) << ev;
        }
        p = end ? end + 1 : NULL;
    }
    return mask;
}

int64_t
conf_webhook_backoff_ms(unsigned attempt, int64_t base_ms, int64_t cap_ms)
{
    int64_t d = base_ms > 0 ? base_ms : 1;

    for (unsigned i = 1; i < attempt && d < cap_ms; i++)
        d *= 2;
    return d < cap_ms ? d : cap_ms;
}

int
conf_webhook_sign(const char *secret, const char *timestamp, const char *body,
                  char ret[CONF_WEBHOOK_SIGNATURE_LEN + 1])
{
    size_t tl = strlen(timestamp), bl = strlen(body);
    _cleanup_free_ char *msg = malloc(tl + 1 + bl + 1);
    char hex[HASH_SHA256_HEX_LEN + 1];
    int r;

    if (!msg)
        return -ENOMEM;
    memcpy(msg, timestamp, tl);
    msg[tl] = '.';
    memcpy(msg + tl + 1, body, bl + 1);
    r = hash_hmac_sha256_hex(secret, strlen(secret), msg, tl + 1 + bl, hex);
    if (r < 0)
        return r;
    snprintf(ret, CONF_WEBHOOK_SIGNATURE_LEN + 1, "sha256=%s", hex);
    return 0;
}

void
conf_webhook_clear(struct conf_webhook *w)
{
    if (!w)
        return;
    free(w->url);
    if (w->secret)
        explicit_bzero(w->secret, strlen(w->secret));
    free(w->secret);
    memset(w, 0, sizeof(*w));
}

void
conf_webhook_list_free(struct conf_webhook *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        conf_webhook_clear(&list[i]);
    free(list);
}

void
conf_webhook_delivery_clear(struct conf_webhook_delivery *d)
{
    if (!d)
        return;
    free(d->payload);
    free(d->last_error);
    memset(d, 0, sizeof(*d));
}

void
conf_webhook_delivery_list_free(struct conf_webhook_delivery *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        conf_webhook_delivery_clear(&list[i]);
    free(list);
}
