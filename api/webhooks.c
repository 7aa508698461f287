/*
 * /v1/webhooks: create, list, get, change and delete webhooks, and list a
 * webhook's deliveries (see core/webhook.h). A webhook's secret is
 * write-only: answers say only "secret_set".
 *
 * Lists are paged with `limit` and an opaque `page_token` (the answer's
 * `next_page_token`, null on the last page): base64url of the position.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "cleanup.h"
#include "core/webhook.h"
#include "err.h"
#include "text.h"

#define EVENTS_MAX 32

static json_t *
webhook_json(const struct conf_webhook *w)
{
    json_t *events = json_array();

    if (!events)
        return NULL;
    if (w->events & CONF_WEBHOOK_ALL_EVENTS)
        json_array_append_new(events, json_string("*"));
    for (int i = 0; i < CONF_WEBHOOK_EVENT_LAST; i++)
        if (!(w->events & CONF_WEBHOOK_ALL_EVENTS) && (w->events & (UINT32_C(1) << i)))
            json_array_append_new(
                events, json_string(conf_webhook_event_to_string((enum conf_webhook_event)i)));
    return json_pack("{s:s, s:s, s:o, s:b, s:o, s:o}", "id", w->id, "url", w->url, "events", events,
                     "secret_set", 1, "created_at", api_time_json(w->created_ms), "updated_at",
                     api_time_json(w->updated_ms));
}

static json_t *
delivery_json(const struct conf_webhook_delivery *d)
{
    json_t *payload = json_loads(d->payload, 0, NULL);
    const char *event = conf_webhook_event_to_string(d->event);

    return json_pack(
        "{s:s, s:s, s:s, s:s, s:i, s:o, s:o, s:s?, s:o, s:o, s:o}", "id", d->id, "webhook_id",
        d->webhook_id, "event", event ? event : "unknown", "state",
        conf_delivery_state_to_string(d->state), "attempts", (int)d->attempts, "last_status_code",
        d->last_status ? json_integer(d->last_status) : json_null(), "next_attempt_at",
        d->state == CONF_DELIVERY_PENDING ? api_time_json(d->next_attempt_ms) : json_null(),
        "last_error", d->last_error, "created_at", api_time_json(d->created_ms), "updated_at",
        api_time_json(d->updated_ms), "payload", payload ? payload : json_null());
}

/* Checks a webhook URL: http or https, a host, at most CONF_WEBHOOK_URL_MAX bytes. */
static int
check_url(const char *url, size_t len)
{
    const char *host;
    size_t hostlen;

    if (strlen(url) != len || len > CONF_WEBHOOK_URL_MAX)
        return err_set_pointer(-EINVAL, "/url", "must be at most %d bytes", CONF_WEBHOOK_URL_MAX);
    if (strncmp(url, "https://", 8) == 0)
        host = url + 8;
    else if (strncmp(url, "http://", 7) == 0)
        host = url + 7;
    else
        return err_set_pointer(-EINVAL, "/url", "must be an http:// or https:// URL");
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
            return err_set_pointer(-EINVAL, "/url",
                                   "must not contain spaces, control or non-ASCII characters");
    hostlen = strcspn(host, "/?#");
    if (hostlen == 0 || host[0] == ':' || host[0] == '@')
        return err_set_pointer(-EINVAL, "/url", "must name a host");
    return 0;
}

/* Reads the events array into a mask. */
static int
read_events(const json_t *events, uint32_t *ret)
{
    size_t i;
    json_t *v;
    uint32_t mask = 0;
    char ptr[32];

    if (json_array_size(events) == 0)
        return err_set_pointer(-EINVAL, "/events", "must name at least one event, or \"*\"");
    if (json_array_size(events) > EVENTS_MAX)
        return err_set_pointer(-EINVAL, "/events", "must have at most %d entries", EVENTS_MAX);
    json_array_foreach(events, i, v)
    {
        enum conf_webhook_event ev;
        const char *name = json_string_value(v);

        snprintf(ptr, sizeof(ptr), "/events/%zu", i);
        if (name && strcmp(name, "*") == 0)
            mask |= CONF_WEBHOOK_ALL_EVENTS;
        else if (name && conf_webhook_event_from_string(name, &ev) == 0)
            mask |= UINT32_C(1) << ev;
        else
            return err_set_pointer(
                -EINVAL, ptr,
                "must be \"*\" or one of job.succeeded, job.failed, job.cancelled, "
                "backup.completed, domain.overdue, checkpoint.broken");
    }
    *ret = mask;
    return 0;
}

/* Checks a secret: 1 to CONF_WEBHOOK_SECRET_MAX bytes, no NUL or control characters. */
static int
check_secret(const char *secret, size_t len)
{
    if (len == 0 || len > CONF_WEBHOOK_SECRET_MAX)
        return err_set_pointer(-EINVAL, "/secret", "must be 1 to %d bytes",
                               CONF_WEBHOOK_SECRET_MAX);
    if (strlen(secret) != len)
        return err_set_pointer(-EINVAL, "/secret", "must not contain NUL characters");
    for (const char *p = secret; *p; p++)
        if ((unsigned char)*p < ' ' || *p == 0x7f)
            return err_set_pointer(-EINVAL, "/secret", "must not contain control characters");
    return 0;
}

/* Reads a create (secret required) or change (secret optional) body into w (borrowing). */
static int
read_body(const struct api_request *req, bool secret_required, struct conf_webhook *w)
{
    const char *url = NULL, *secret = NULL;
    size_t url_len = 0, secret_len = 0;
    json_t *events = NULL;
    int r;

    memset(w, 0, sizeof(*w));
    r = api_body_unpack(
        req,
        (const struct api_field[]){{"url", API_FIELD_STRING, true, false},
                                   {"events", API_FIELD_ARRAY, true, false},
                                   {"secret", API_FIELD_STRING, secret_required, false},
                                   {NULL, API_FIELD_STRING, false, false}},
        "{s:s%, s:o, s?s%}", "url", &url, &url_len, "events", &events, "secret", &secret,
        &secret_len);
    if (r < 0)
        return r;
    r = check_url(url, url_len);
    if (r < 0)
        return r;
    r = read_events(events, &w->events);
    if (r < 0)
        return r;
    if (secret) {
        r = check_secret(secret, secret_len);
        if (r < 0)
            return r;
    }
    w->url = (char *)url;
    w->secret = (char *)secret;
    return 0;
}

/* Checks the {id} of a path: 32 lowercase hex digits, else 404 (no such webhook). */
static int
check_id(const char *id)
{
    size_t n = strlen(id);

    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)id[i]) || isupper((unsigned char)id[i]))
            n = 0;
    if (n != CONF_WEBHOOK_ID_LEN)
        return err_set(-ENOENT, "no webhook '%.64s'", id);
    return 0;
}

/* Answers status with w (cleared). */
static int
reply_webhook(struct api_response *resp, int status, struct conf_webhook *w)
{
    json_t *j = webhook_json(w);

    conf_webhook_clear(w);
    return api_reply(resp, status, j);
}

int
api_webhooks_list(const struct api_request *req, struct api_response *resp)
{
    struct conf_webhook *list = NULL;
    size_t n = 0;
    int64_t before = 0, next = 0;
    unsigned limit = 0;
    json_t *items;
    int r;

    r = api_query_seq_page(req, "webhooks", false, &limit, &before);
    if (r < 0)
        return r;
    r = core_webhook_list(before, limit, &list, &n, &next);
    if (r < 0)
        return r;
    items = json_array();
    for (size_t i = 0; items && i < n; i++)
        json_array_append_new(items, webhook_json(&list[i]));
    conf_webhook_list_free(list, n);
    return api_reply(resp, 200, api_seq_page_json(items, "webhooks", false, next));
}

int
api_webhook_create(const struct api_request *req, struct api_response *resp)
{
    struct conf_webhook in, out;
    int r;

    r = read_body(req, true, &in);
    if (r < 0)
        return r;
    r = core_webhook_create(&in, &out);
    if (r < 0)
        return r;
    api_set_location(resp, "/v1/webhooks/%s", out.id);
    return reply_webhook(resp, 201, &out);
}

int
api_webhook_get(const struct api_request *req, struct api_response *resp)
{
    struct conf_webhook w;
    int r;

    r = check_id(req->params[0]);
    if (r < 0)
        return r;
    r = core_webhook_get(req->params[0], &w);
    if (r < 0)
        return r;
    return reply_webhook(resp, 200, &w);
}

int
api_webhook_update(const struct api_request *req, struct api_response *resp)
{
    struct conf_webhook in, out;
    int r;

    /* The body first: a bad one answers 400 whatever the id names. */
    r = read_body(req, false, &in);
    if (r < 0)
        return r;
    r = check_id(req->params[0]);
    if (r < 0)
        return r;
    snprintf(in.id, sizeof(in.id), "%s", req->params[0]);
    r = core_webhook_update(&in, &out);
    if (r < 0)
        return r;
    return reply_webhook(resp, 200, &out);
}

int
api_webhook_delete(const struct api_request *req, struct api_response *resp)
{
    int r;

    r = check_id(req->params[0]);
    if (r < 0)
        return r;
    r = core_webhook_delete(req->params[0]);
    if (r < 0)
        return r;
    resp->status = 204;
    return 0;
}

int
api_webhook_deliveries(const struct api_request *req, struct api_response *resp)
{
    struct conf_webhook_delivery *list = NULL;
    size_t n = 0;
    int64_t before = 0, next = 0;
    unsigned limit = 0;
    json_t *items;
    int r;

    r = api_query_seq_page(req, "deliveries", false, &limit, &before);
    if (r < 0)
        return r;
    r = check_id(req->params[0]);
    if (r < 0)
        return r;
    r = core_webhook_deliveries(req->params[0], before, limit, &list, &n, &next);
    if (r < 0)
        return r;
    items = json_array();
    for (size_t i = 0; items && i < n; i++)
        json_array_append_new(items, delivery_json(&list[i]));
    conf_webhook_delivery_list_free(list, n);
    return api_reply(resp, 200, api_seq_page_json(items, "deliveries", false, next));
}
