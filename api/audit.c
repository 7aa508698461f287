/* GET /v1/audit, and the recording of every state-changing request (see core/audit.h). */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "api_json.h"
#include "cleanup.h"
#include "core/audit.h"
#include "err.h"
#include "log.h"
#include "text.h"

/* The first segment after prefix in path, decoded, or NULL. */
static char *
segment_after(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);
    const char *start, *end;
    char *decoded = NULL;

    if (!path || strncmp(path, prefix, n) != 0)
        return NULL;
    start = path + n;
    end = strchr(start, '/');
    if (!end)
        end = start + strlen(start);
    if (end == start || text_url_decode(start, (size_t)(end - start), &decoded) < 0)
        return NULL;
    return decoded;
}

static json_t *
record_json(const struct conf_audit *r)
{
    return json_pack("{s:o, s:s?, s:s?, s:s, s:s, s:i, s:s?, s:s?}", "time",
                     api_time_json(r->time_ms), "who", r->who, "remote", r->remote, "method",
                     r->method ? r->method : "", "path", r->path ? r->path : "", "status",
                     r->status, "job_id", r->job_id, "domain", r->domain);
}

void
api_audit_record(const char *who, const char *remote, const char *method, const char *path,
                 int status, const char *location)
{
    struct timespec ts;
    struct conf_audit rec = {0};
    _cleanup_free_ char *job_id = segment_after(location, "/v1/jobs/");
    _cleanup_free_ char *domain = segment_after(path, "/v1/domains/");
    _cleanup_free_ char *line = NULL;
    json_t *j;

    clock_gettime(CLOCK_REALTIME, &ts);
    rec.time_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    rec.who = (char *)(who && who[0] ? who : NULL);
    rec.remote = (char *)remote;
    rec.method = (char *)method;
    rec.path = (char *)path;
    rec.status = status;
    rec.job_id = job_id;
    rec.domain = domain;
    j = record_json(&rec);
    if (j) {
        line = json_dumps(j, JSON_COMPACT);
        json_decref(j);
    }
    log_info("audit %s", line ? line : "(out of memory)");
    core_audit_record(&rec);
}

/* Parses an RFC 3339 time ("2026-12-06T06:00:00Z", fraction and offset allowed) into ms. */
static int
parse_time(const char *key, const char *s, int64_t *ret)
{
    struct tm tm = {0};
    const char *p;
    int64_t ms = 0, frac = 0, scale = 1000;
    long offset = 0;
    time_t t;

    if (!s) {
        *ret = 0;
        return 0;
    }
    p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p || s[0] < '0' || s[0] > '9')
        goto bad;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            goto bad;
        for (; isdigit((unsigned char)*p); p++)
            if (scale > 1) {
                scale /= 10;
                frac += (*p - '0') * scale;
            }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) &&
               isdigit((unsigned char)p[2]) && p[3] == ':' && isdigit((unsigned char)p[4]) &&
               isdigit((unsigned char)p[5])) {
        offset =
            ((p[1] - '0') * 10 + (p[2] - '0')) * 3600 + ((p[4] - '0') * 10 + (p[5] - '0')) * 60;
        if (*p == '-')
            offset = -offset;
        p += 6;
    } else {
        goto bad;
    }
    if (*p)
        goto bad;
    t = timegm(&tm);
    if (t == (time_t)-1)
        goto bad;
    ms = ((int64_t)t - offset) * 1000 + frac;
    if (ms <= 0)
        goto bad;
    *ret = ms;
    return 0;
bad:
    return err_set_parameter(-EINVAL, key, "must be an RFC 3339 time after 1970");
}

int
api_audit_list(const struct api_request *req, struct api_response *resp)
{
    struct conf_audit_filter f = {0};
    struct conf_audit *list = NULL;
    size_t n = 0;
    int64_t next = 0;
    json_t *items;
    int r;

    f.domain = req->query(req, "domain");
    if (f.domain && !f.domain[0])
        return err_set_parameter(-EINVAL, "domain", "must not be empty");
    r = parse_time("since", req->query(req, "since"), &f.since_ms);
    if (r < 0)
        return r;
    r = parse_time("until", req->query(req, "until"), &f.until_ms);
    if (r < 0)
        return r;
    r = api_query_seq_page(req, "audit", true, &f.limit, &f.before_seq);
    if (r < 0)
        return r;
    r = core_audit_list(&f, &list, &n, &next);
    if (r < 0)
        return r;
    items = json_array();
    for (size_t i = 0; items && i < n; i++)
        json_array_append_new(items, record_json(&list[i]));
    conf_audit_list_free(list, n);
    return api_reply(resp, 200, api_seq_page_json(items, "audit", true, next));
}
