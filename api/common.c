/* Helpers that every resource handler uses. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "err.h"
#include "log.h"
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

static const char *const field_type_words[] = {
    [API_FIELD_STRING] = "must be a string",    [API_FIELD_BOOL] = "must be true or false",
    [API_FIELD_INTEGER] = "must be an integer", [API_FIELD_OBJECT] = "must be an object",
    [API_FIELD_ARRAY] = "must be an array",
};

static bool
field_type_is(const json_t *v, enum api_field_type type)
{
    switch (type) {
    case API_FIELD_STRING:
        return json_is_string(v);
    case API_FIELD_BOOL:
        return json_is_boolean(v);
    case API_FIELD_INTEGER:
        return json_is_integer(v);
    case API_FIELD_OBJECT:
        return json_is_object(v);
    case API_FIELD_ARRAY:
        return json_is_array(v);
    }
    return false;
}

int
api_fields_check(const json_t *obj, const char *at, const struct api_field *fields)
{
    char ptr[TEXT_POINTER_MAX];
    const char *key;
    json_t *v;

    if (!json_is_object(obj))
        return err_set_pointer(-EINVAL, at, "must be a JSON object");
    json_object_foreach((json_t *)obj, key, v)
    {
        const struct api_field *f = fields;

        while (f->name && strcmp(f->name, key) != 0)
            f++;
        text_pointer_join(ptr, sizeof(ptr), at, key, 0);
        if (!f->name)
            return err_set_pointer(-EINVAL, ptr, "is not a field of this %s",
                                   at[0] ? "object" : "request body");
        if (!field_type_is(v, f->type) && !(f->nullable && json_is_null(v)))
            return err_set_pointer(-EINVAL, ptr, "%s%s", field_type_words[f->type],
                                   f->nullable ? " or null" : "");
    }
    for (const struct api_field *f = fields; f->name; f++)
        if (f->required && !json_object_get(obj, f->name)) {
            text_pointer_join(ptr, sizeof(ptr), at, f->name, 0);
            return err_set_pointer(-EINVAL, ptr, "is required");
        }
    return 0;
}

int
api_body_unpack(const struct api_request *req, const struct api_field *fields, const char *fmt, ...)
{
    json_t *empty = NULL;
    json_t *body = req->body;
    json_error_t jerr;
    va_list ap;
    int r;

    if (!body)
        body = empty = json_object();
    r = api_fields_check(body, "", fields);
    if (r < 0) {
        json_decref(empty);
        return r;
    }
    va_start(ap, fmt);
    r = json_vunpack_ex(body, &jerr, JSON_STRICT, fmt, ap);
    va_end(ap);
    json_decref(empty);
    if (r < 0) { /* fields and fmt disagree: a fault here, not the client's */
        log_warn("a request body passed its field checks, not its format: %s", jerr.text);
        return err_set(-EIO, "the request body could not be read");
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
    if (strcmp(v, "true") == 0)
        *ret = true;
    else if (strcmp(v, "false") == 0)
        *ret = false;
    else
        return err_set_parameter(-EINVAL, key, "must be true or false");
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
        return err_set_parameter(-EINVAL, "limit", "must be a number from 1 to %u", max);
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
        return err_set_parameter(-EINVAL, "cursor", "is not one this service gave out");
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
    return err_set_parameter(-EINVAL, key, "must be one of: %s", list);
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
