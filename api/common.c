/* Helpers that every resource handler uses. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "err.h"
#include "text.h"

int
api_reply(struct api_response *resp, int status, json_t *json)
{
    if (!json)
        return -ENOMEM;
    json_decref(resp->json);
    resp->status = status;
    resp->json = json;
    return 0;
}

char *
api_json_text(json_t *json)
{
    char *text = json ? json_dumps(json, JSON_COMPACT) : NULL;
    char *nl;
    size_t len;

    json_decref(json);
    if (!text)
        return NULL;
    len = strlen(text);
    /* A trailing newline, for people reading with curl. */
    nl = realloc(text, len + 2);
    if (!nl)
        return text;
    nl[len] = '\n';
    nl[len + 1] = '\0';
    return nl;
}

int
api_reply_text(struct api_response *resp, int status, char *text, const char *content_type)
{
    if (!text)
        return -ENOMEM;
    free(resp->text);
    resp->status = status;
    resp->text = text;
    resp->text_len = strlen(text);
    resp->content_type = content_type;
    return 0;
}

int
api_reply_stream(struct api_response *resp, struct api_stream *stream)
{
    if (!stream)
        return -ENOMEM;
    resp->status = 200;
    resp->stream = stream;
    return 0;
}

void
api_set_location(struct api_response *resp, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(resp->location, sizeof(resp->location), fmt, ap);
    va_end(ap);
}

int
api_body_unpack(const struct api_request *req, const char *fmt, ...)
{
    json_t *empty = NULL;
    json_t *body = req->body;
    json_error_t jerr;
    va_list ap;
    int r;

    if (!body)
        body = empty = json_object();
    if (!json_is_object(body)) {
        json_decref(empty);
        return err_set(-EINVAL, "the request body must be a JSON object");
    }
    va_start(ap, fmt);
    r = json_vunpack_ex(body, &jerr, JSON_STRICT, fmt, ap);
    va_end(ap);
    json_decref(empty);
    if (r < 0) {
        return err_set(-EINVAL, "invalid request body: %s", jerr.text);
    }
    return 0;
}

int
api_query_bool(const struct api_request *req, const char *key, bool def, bool *ret)
{
    const char *v = req->query ? req->query(req, key) : NULL;

    if (!v) {
        *ret = def;
        return 0;
    }
    if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcmp(v, "") == 0)
        *ret = true;
    else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
        *ret = false;
    else
        return err_set(-EINVAL, "query parameter '%s' must be true or false", key);
    return 0;
}

int
api_query_tristate(const struct api_request *req, const char *key, int *ret)
{
    bool v;
    int r;

    if (!req->query || !req->query(req, key)) {
        *ret = -1;
        return 0;
    }
    r = api_query_bool(req, key, false, &v);
    if (r < 0)
        return r;
    *ret = v;
    return 0;
}

int
api_query_limit(const struct api_request *req, unsigned max, unsigned *ret)
{
    const char *s = req->query(req, "limit");
    char *end;
    unsigned long v;

    if (!s) {
        *ret = 0;
        return 0;
    }
    errno = 0;
    v = strtoul(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || errno || *end || v < 1 || v > max)
        return err_set(-EINVAL, "query parameter 'limit' must be a number from 1 to %u", max);
    *ret = (unsigned)v;
    return 0;
}

int
api_query_cursor(const struct api_request *req, int64_t *ret)
{
    const char *s = req->query(req, "cursor");
    char *end;
    long long v;

    if (!s) {
        *ret = 0;
        return 0;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (s[0] < '1' || s[0] > '9' || errno || *end || v <= 0)
        return err_set(-EINVAL, "query parameter 'cursor' is not one this service gave out");
    *ret = v;
    return 0;
}

int
api_query_enum(const struct api_request *req, const char *key, const char *const *choices,
               const char *def, const char **ret)
{
    const char *v = req->query ? req->query(req, key) : NULL;
    char list[256] = "";

    if (!v) {
        *ret = def;
        return 0;
    }
    for (size_t i = 0; choices[i]; i++) {
        if (strcmp(v, choices[i]) == 0) {
            *ret = choices[i];
            return 0;
        }
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "",
                 choices[i]);
    }
    return err_set(-EINVAL, "query parameter '%s' must be one of: %s", key, list);
}

json_t *
api_list(json_t *items)
{
    if (!items)
        return NULL;
    return json_pack("{s:o}", "items", items);
}

json_t *
api_page(json_t *items, int64_t next)
{
    json_t *out = api_list(items);
    char cursor[32];

    if (!out)
        return NULL;
    snprintf(cursor, sizeof(cursor), "%" PRId64, next);
    json_object_set_new(out, "next_cursor", next ? json_string(cursor) : json_null());
    return out;
}

json_t *
api_time_json(int64_t ms)
{
    char base[32], buf[40];

    if (ms <= 0)
        return json_null();
    text_time_rfc3339(base, sizeof(base), (time_t)(ms / 1000));
    /* "...:SSZ" -> "...:SS.mmmZ" */
    snprintf(buf, sizeof(buf), "%.*s.%03dZ", (int)strlen(base) - 1, base, (int)(ms % 1000));
    return json_string(buf);
}
