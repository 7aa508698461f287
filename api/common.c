/* Helpers that every resource handler uses. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "cleanup.h"
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

static int
bad_limit(void)
{
    return err_set_parameter(-EINVAL, "limit", "must be a number from 1 to %u", API_PAGE_LIMIT_MAX);
}

static int
bad_token(void)
{
    return err_set_parameter(-EINVAL, "page_token", "is not one this service gave out");
}

int
api_page_token_invalid(void)
{
    return bad_token();
}

char *
api_page_token(const char *list, const char *key)
{
    _cleanup_free_ char *plain = NULL;

    if (asprintf(&plain, "%d:%s:%s", API_PAGE_TOKEN_VERSION, list, key) < 0)
        return NULL;
    return text_base64url_encode(plain, strlen(plain));
}

int
api_page_token_parse(const char *token, const char *list, char **ret_key)
{
    _cleanup_free_ char *plain = NULL;
    char prefix[64];
    size_t len, n;
    int r;

    if (strlen(token) > API_PAGE_TOKEN_MAX)
        return bad_token();
    r = text_base64url_decode(token, &plain, &len);
    if (r == -ENOMEM)
        return r;
    if (r < 0 || strlen(plain) != len) /* not base64url, or a NUL inside */
        return bad_token();
    n = (size_t)snprintf(prefix, sizeof(prefix), "%d:%s:", API_PAGE_TOKEN_VERSION, list);
    if (n >= sizeof(prefix) || strncmp(plain, prefix, n) != 0 || !plain[n])
        return bad_token();
    *ret_key = strdup(plain + n);
    return *ret_key ? 0 : -ENOMEM;
}

void
api_page_clear(struct api_page *p)
{
    free(p->after);
    p->after = NULL;
}

int
api_query_page(const struct api_request *req, const char *list, struct api_page *ret)
{
    const char *s = req->query(req, "limit");
    const char *token = req->query(req, "page_token");
    struct api_page p = {.limit = API_PAGE_LIMIT_DEFAULT};
    char *end;
    unsigned long v;
    int r;

    if (s) {
        errno = 0;
        v = strtoul(s, &end, 10);
        if (s[0] < '0' || s[0] > '9' || errno || *end || v < 1 || v > API_PAGE_LIMIT_MAX)
            return bad_limit();
        p.limit = (unsigned)v;
    }
    if (token) {
        r = api_page_token_parse(token, list, &p.after);
        if (r < 0)
            return r;
    }
    *ret = p;
    return 0;
}

int
api_page_key_read(const char *key, size_t n, int64_t *ret_ints, const char **ret_rest)
{
    const char *p = key;

    for (size_t i = 0; i < n; i++) {
        bool last = i + 1 == n && !ret_rest;
        char *end;
        long long v;

        if ((*p < '0' || *p > '9') && !(*p == '-' && p[1] >= '0' && p[1] <= '9'))
            return bad_token();
        errno = 0;
        v = strtoll(p, &end, 10);
        if (errno || *end != (last ? '\0' : ':'))
            return bad_token();
        ret_ints[i] = v;
        p = last ? end : end + 1;
    }
    if (ret_rest) {
        if (!*p)
            return bad_token();
        *ret_rest = p;
    }
    return 0;
}

int
api_query_seq_page(const struct api_request *req, const char *list, bool with_cursor,
                   unsigned *ret_limit, int64_t *ret_before_seq)
{
    struct api_page p;
    int64_t seq = 0;
    int r;

    r = api_query_page(req, list, &p);
    if (r < 0)
        return r;
    if (p.after)
        r = api_page_key_read(p.after, 1, &seq, NULL);
    else if (with_cursor)
        r = api_query_cursor(req, &seq); /* the deprecated spelling */
    if (r >= 0 && p.after && seq <= 0)
        r = bad_token();
    free(p.after);
    if (r < 0)
        return r;
    *ret_limit = p.limit;
    *ret_before_seq = seq;
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
api_page_json(json_t *items, const char *list, const char *next_key)
{
    json_t *out = api_list(items);
    _cleanup_free_ char *token = next_key ? api_page_token(list, next_key) : NULL;

    if (!out)
        return NULL;
    if ((next_key && !token) ||
        json_object_set_new(out, "next_page_token", token ? json_string(token) : json_null()) < 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}

json_t *
api_seq_page_json(json_t *items, const char *list, bool with_cursor, int64_t next)
{
    char key[32], cursor[32];
    json_t *out;

    snprintf(key, sizeof(key), "%" PRId64, next);
    snprintf(cursor, sizeof(cursor), "%" PRId64, next);
    out = api_page_json(items, list, next ? key : NULL);
    if (out && with_cursor &&
        json_object_set_new(out, "next_cursor", next ? json_string(cursor) : json_null()) < 0) {
        json_decref(out);
        return NULL;
    }
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
