/*
 * /v1/remotes: S3-compatible buckets for offsite copies (see core/offsite.h):
 * create, list, get, change, delete, check; what a bucket holds and its
 * restores; and the copies of a backup (/v1/domains/{d}/backups/{id}/copies).
 * A remote's secret is write-only: answers say only "secret_set". Calls
 * that reach the bucket run off the HTTP threads (api_defer).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "api_json.h"
#include "bodies.h"
#include "cleanup.h"
#include "core/offsite.h"
#include "err.h"
#include "log.h"
#include "text.h"

static json_t *
remote_json(const struct conf_remote *r)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:b, s:s?, s:s?, s:b, s:i, s:o, s:o}",
                     "name", r->name, "endpoint", r->endpoint, "region", r->region, "bucket",
                     r->bucket, "prefix", r->prefix ? r->prefix : "", "path_style", r->path_style,
                     "access_key", r->access_key, "secret_set", 1, "ca_file", r->ca_file,
                     "key_file", r->key_file, "encrypted", r->key_file != NULL, "lock_days",
                     (int)r->lock_days, "created_at", api_time_json(r->created_ms), "updated_at",
                     api_time_json(r->updated_ms));
}

/* Checks a string field: 1..max bytes (min 0 with allow_empty), no NUL, no control characters. */
static int
check_text(const char *field, const char *s, size_t len, size_t max, bool allow_empty)
{
    if ((len == 0 && !allow_empty) || len > max)
        return err_set_pointer(-EINVAL, field, "must be %s to %zu bytes", allow_empty ? "0" : "1",
                               max);
    if (strlen(s) != len)
        return err_set_pointer(-EINVAL, field, "must not contain NUL characters");
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < ' ' || *p == 0x7f)
            return err_set_pointer(-EINVAL, field, "must not contain control characters");
    return 0;
}

/* Checks an endpoint: http(s)://host[:port], nothing after but an optional '/'. */
static int
check_endpoint(const char *s, size_t len)
{
    const char *host;
    size_t hostlen;
    int r = check_text("/endpoint", s, len, 512, false);

    if (r < 0)
        return r;
    if (strncmp(s, "https://", 8) == 0)
        host = s + 8;
    else if (strncmp(s, "http://", 7) == 0)
        host = s + 7;
    else
        return err_set_pointer(-EINVAL, "/endpoint", "must be an http:// or https:// URL");
    hostlen = strcspn(host, "/?#@ ");
    if (hostlen == 0 || host[0] == ':')
        return err_set_pointer(-EINVAL, "/endpoint", "must name a host");
    if (host[hostlen] && strcmp(host + hostlen, "/") != 0)
        return err_set_pointer(-EINVAL, "/endpoint",
                               "must be scheme, host and port only (no path, query or user)");
    return 0;
}

/* Checks a bucket name as S3 has them: 3..63 of a-z 0-9 . -, starting and ending alphanumeric. */
static int
check_bucket(const char *s, size_t len)
{
    if (len < 3 || len > 63 || strlen(s) != len ||
        strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789.-") != len ||
        !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[len - 1]))
        return err_set_pointer(-EINVAL, "/bucket",
                               "must be 3 to 63 of a-z 0-9 . -, starting and ending with a "
                               "letter or digit");
    return 0;
}

/* Checks a prefix: "" or segments of A-Z a-z 0-9 . _ - joined by '/', no "." or ".." segment. */
static int
check_prefix(const char *s, size_t len)
{
    char buf[520];
    char *save = NULL;

    if (len == 0)
        return 0;
    if (len > 512 || strlen(s) != len ||
        strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-/") != len ||
        s[0] == '/' || s[len - 1] == '/' || strstr(s, "//"))
        return err_set_pointer(-EINVAL, "/prefix",
                               "must be at most 512 of A-Z a-z 0-9 . _ - in segments joined by "
                               "'/' (none first or last)");
    snprintf(buf, sizeof(buf), "%s", s);
    for (char *t = strtok_r(buf, "/", &save); t; t = strtok_r(NULL, "/", &save))
        if (strcmp(t, ".") == 0 || strcmp(t, "..") == 0)
            return err_set_pointer(-EINVAL, "/prefix", "must not have a '.' or '..' segment");
    return 0;
}

static int
check_region(const char *s, size_t len)
{
    if (len == 0 || len > 64 || strlen(s) != len ||
        strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-_") != len)
        return err_set_pointer(-EINVAL, "/region", "must be 1 to 64 of a-z 0-9 - _");
    return 0;
}

static int
check_access_key(const char *s, size_t len)
{
    int r = check_text("/access_key", s, len, CONF_REMOTE_KEY_MAX, false);

    if (r >= 0 && strchr(s, ' '))
        return err_set_pointer(-EINVAL, "/access_key", "must not contain spaces");
    if (r >= 0 && strchr(s, ':'))
        return err_set_pointer(-EINVAL, "/access_key", "must not contain ':'");
    return r;
}

static int
check_path(const char *field, const char *s, size_t len)
{
    int r = check_text(field, s, len, CONF_REMOTE_FIELD_MAX, false);

    if (r >= 0 && s[0] != '/')
        return err_set_pointer(-EINVAL, field, "must be an absolute path");
    return r;
}

/* Reads a create (name and secret required) or change body into r (borrowing). */
static int
read_body(const struct api_request *req, bool create, struct conf_remote *out)
{
    const char *name = NULL, *endpoint = NULL, *region = NULL, *bucket = NULL, *prefix = NULL,
               *access_key = NULL, *secret = NULL, *ca_file = NULL, *key_file = NULL;
    size_t name_len = 0, endpoint_len = 0, region_len = 0, bucket_len = 0, prefix_len = 0,
           ak_len = 0, secret_len = 0, ca_len = 0, key_len = 0;
    int path_style = 1;
    json_int_t lock_days = 0;
    json_t *ca_j = NULL, *key_j = NULL; /* a string, or null as absent */
    int r;

    memset(out, 0, sizeof(*out));
    if (create)
        r = api_body_unpack(
            req,
            (const struct api_field[]){{"name", API_FIELD_STRING, true, false},
                                       {"endpoint", API_FIELD_STRING, true, false},
                                       {"region", API_FIELD_STRING, false, false},
                                       {"bucket", API_FIELD_STRING, true, false},
                                       {"prefix", API_FIELD_STRING, false, false},
                                       {"path_style", API_FIELD_BOOL, false, false},
                                       {"access_key", API_FIELD_STRING, true, false},
                                       {"secret", API_FIELD_STRING, true, false},
                                       {"ca_file", API_FIELD_STRING, false, true},
                                       {"key_file", API_FIELD_STRING, false, true},
                                       {"lock_days", API_FIELD_INTEGER, false, false},
                                       {NULL, API_FIELD_STRING, false, false}},
            "{s:s%, s:s%, s?s%, s:s%, s?s%, s?b, s:s%, s:s%, s?o, s?o, s?I}", "name", &name,
            &name_len, "endpoint", &endpoint, &endpoint_len, "region", &region, &region_len,
            "bucket", &bucket, &bucket_len, "prefix", &prefix, &prefix_len, "path_style",
            &path_style, "access_key", &access_key, &ak_len, "secret", &secret, &secret_len,
            "ca_file", &ca_j, "key_file", &key_j, "lock_days", &lock_days);
    else
        r = api_body_unpack(
            req,
            (const struct api_field[]){{"endpoint", API_FIELD_STRING, true, false},
                                       {"region", API_FIELD_STRING, false, false},
                                       {"bucket", API_FIELD_STRING, true, false},
                                       {"prefix", API_FIELD_STRING, false, false},
                                       {"path_style", API_FIELD_BOOL, false, false},
                                       {"access_key", API_FIELD_STRING, true, false},
                                       {"secret", API_FIELD_STRING, false, false},
                                       {"ca_file", API_FIELD_STRING, false, true},
                                       {"key_file", API_FIELD_STRING, false, true},
                                       {"lock_days", API_FIELD_INTEGER, false, false},
                                       {NULL, API_FIELD_STRING, false, false}},
            "{s:s%, s?s%, s:s%, s?s%, s?b, s:s%, s?s%, s?o, s?o, s?I}", "endpoint", &endpoint,
            &endpoint_len, "region", &region, &region_len, "bucket", &bucket, &bucket_len, "prefix",
            &prefix, &prefix_len, "path_style", &path_style, "access_key", &access_key, &ak_len,
            "secret", &secret, &secret_len, "ca_file", &ca_j, "key_file", &key_j, "lock_days",
            &lock_days);
    if (r < 0)
        return r;
    /* ca_file and key_file may be null (none), as a GET answers them. */
    if (json_is_string(ca_j)) {
        ca_file = json_string_value(ca_j);
        ca_len = json_string_length(ca_j);
    }
    if (json_is_string(key_j)) {
        key_file = json_string_value(key_j);
        key_len = json_string_length(key_j);
    }
    if (lock_days < 0 || lock_days > CONF_REMOTE_LOCK_DAYS_MAX)
        return err_set_pointer(-EINVAL, "/lock_days", "must be days from 0 (no lock) to %d",
                               CONF_REMOTE_LOCK_DAYS_MAX);
    if (create && (name_len != strlen(name) || !text_name_valid(name)))
        return err_set_pointer(-EINVAL, "/name", "must be 1 to %d of A-Z a-z 0-9 . _ -",
                               NAME_MAX_LEN);
    r = check_endpoint(endpoint, endpoint_len);
    if (r >= 0 && region)
        r = check_region(region, region_len);
    if (r >= 0)
        r = check_bucket(bucket, bucket_len);
    if (r >= 0 && prefix)
        r = check_prefix(prefix, prefix_len);
    if (r >= 0)
        r = check_access_key(access_key, ak_len);
    if (r >= 0 && secret)
        r = check_text("/secret", secret, secret_len, CONF_REMOTE_KEY_MAX, false);
    if (r >= 0 && ca_file)
        r = check_path("/ca_file", ca_file, ca_len);
    if (r >= 0 && key_file)
        r = check_path("/key_file", key_file, key_len);
    if (r < 0)
        return r;
    out->name = (char *)name;
    out->endpoint = (char *)endpoint;
    out->region = (char *)(region ? region : "us-east-1");
    out->bucket = (char *)bucket;
    out->prefix = (char *)(prefix ? prefix : "");
    out->path_style = path_style != 0;
    out->access_key = (char *)access_key;
    out->secret = (char *)secret;
    out->ca_file = (char *)ca_file;
    out->key_file = (char *)key_file;
    out->lock_days = (unsigned)lock_days;
    return 0;
}

/* Checks the {name} of a path: a valid name, else 404 (no such remote). */
static int
check_name(const char *name)
{
    if (!text_name_valid(name))
        return err_set(-ENOENT, "no remote '%.64s'", name);
    return 0;
}

static int
reply_remote(struct api_response *resp, int status, struct conf_remote *r)
{
    json_t *j = remote_json(r);

    conf_remote_clear(r);
    return api_reply(resp, status, j);
}

int
api_remotes_list(const struct api_request *req, struct api_response *resp)
{
    struct conf_remote *list = NULL;
    _cleanup_(api_page_clear) struct api_page page = {0};
    size_t n = 0, shown = 0;
    const char *next = NULL;
    json_t *items;
    int r;

    r = api_query_page(req, "remotes", &page);
    if (r < 0)
        return r;
    r = core_remote_list(&list, &n);
    if (r < 0)
        return r;
    items = json_array();
    for (size_t i = 0; items && i < n; i++) {
        if (page.after && strcmp(list[i].name, page.after) <= 0)
            continue;
        if (shown == page.limit) {
            next = list[i - 1].name;
            break;
        }
        json_array_append_new(items, remote_json(&list[i]));
        shown++;
    }
    r = items ? api_reply(resp, 200, api_page_json(items, "remotes", next)) : -ENOMEM;
    conf_remote_list_free(list, n);
    return r;
}

int
api_remote_create(const struct api_request *req, struct api_response *resp)
{
    struct conf_remote in, out;
    int r;

    r = read_body(req, true, &in);
    if (r < 0)
        return r;
    r = core_remote_create(&in, &out);
    if (r < 0)
        return r;
    api_set_location(resp, "/v1/remotes/%s", out.name);
    return reply_remote(resp, 201, &out);
}

int
api_remote_get(const struct api_request *req, struct api_response *resp)
{
    struct conf_remote out;
    int r;

    r = check_name(req->params[0]);
    if (r < 0)
        return r;
    r = core_remote_get(req->params[0], &out);
    if (r < 0)
        return r;
    return reply_remote(resp, 200, &out);
}

int
api_remote_update(const struct api_request *req, struct api_response *resp)
{
    struct conf_remote in, out;
    int r;

    /* The name first: a path that cannot name a remote is 404 whatever the body. */
    r = check_name(req->params[0]);
    if (r < 0)
        return r;
    r = read_body(req, false, &in);
    if (r < 0)
        return r;
    in.name = (char *)req->params[0];
    r = core_remote_update(&in, &out);
    if (r < 0)
        return r;
    return reply_remote(resp, 200, &out);
}

int
api_remote_delete(const struct api_request *req, struct api_response *resp)
{
    int r;

    r = check_name(req->params[0]);
    if (r < 0)
        return r;
    r = core_remote_delete(req->params[0]);
    if (r < 0)
        return r;
    resp->status = 204;
    return 0;
}

static int
remote_check_now(const struct api_request *req, struct api_response *resp)
{
    struct core_remote_check c;
    int r;

    r = core_remote_check(req->params[0], &c);
    if (r < 0)
        return r;
    return api_reply(
        resp, 200,
        json_pack("{s:b, s:s?, s:s?, s:b, s:b, s:b, s:s?, s:I}", "ok", c.ok, "failed_step",
                  c.ok ? NULL : c.step, "detail", c.ok ? NULL : c.detail, "versioning",
                  c.versioning, "object_lock", c.object_lock, "encrypted", c.encrypted, "key_id",
                  c.encrypted ? c.key_id : NULL, "elapsed_ms", (json_int_t)c.elapsed_ms));
}

int
api_remote_check(const struct api_request *req, struct api_response *resp)
{
    static const char *const keys[] = {NULL};
    int r;

    r = api_body_unpack(req, API_NO_FIELDS, "{}");
    if (r < 0)
        return r;
    r = check_name(req->params[0]);
    if (r < 0)
        return r;
    return api_defer(req, resp, remote_check_now, keys);
}

static json_t *
manifest_json(const struct conf_manifest *m)
{
    const struct conf_backup *b = m->b;
    json_t *disks = json_array();
    uint64_t total = 0;

    for (size_t i = 0; disks && i < b->n_disks; i++) {
        total += m->object_bytes[i];
        json_array_append_new(disks,
                              json_pack("{s:s, s:I, s:I, s:s?, s:s, s:I}", "target",
                                        b->disks[i].target, "size", (json_int_t)b->disks[i].size,
                                        "stored_bytes", (json_int_t)b->disks[i].stored_bytes,
                                        "sha256", b->disks[i].sha256, "object", m->objects[i],
                                        "object_bytes", (json_int_t)m->object_bytes[i]));
    }
    if (!disks)
        return NULL;
    return json_pack("{s:s, s:s, s:s?, s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:I, s:I, s:s, s:s?, "
                     "s:o, s:o, s:o, s:o, s:o}",
                     "id", b->id, "domain_uuid", b->domain_uuid, "domain_name", b->domain_name,
                     "host", m->host, "type", conf_backup_type_to_string(b->type), "chain_id",
                     b->chain_id, "parent_id", b->parent_id, "base_checkpoint", b->base_checkpoint,
                     "checkpoint", b->checkpoint, "stored_bytes", (json_int_t)b->stored_bytes,
                     "object_bytes", (json_int_t)total, "encryption", m->encryption, "key_id",
                     m->key_id, "started_at", api_time_json(b->started_at), "finished_at",
                     api_time_json(b->finished_at), "copied_at", api_time_json(m->copied_ms),
                     "retain_until", api_time_json(m->retain_until_ms), "disks", disks);
}

static int
remote_backups_now(const struct api_request *req, struct api_response *resp)
{
    const char *domain = req->query(req, "domain"), *host = req->query(req, "host");
    struct conf_manifest **list = NULL;
    _cleanup_(api_page_clear) struct api_page page = {0};
    size_t n = 0, shown = 0;
    const char *next = NULL;
    json_t *items;
    int r;

    r = api_query_page(req, "remote_backups", &page);
    if (r < 0)
        return r;
    r = core_offsite_list(req->params[0], domain, host, &list, &n);
    if (r < 0)
        return r;
    items = json_array();
    for (size_t i = 0; items && i < n; i++) {
        if (page.after && strcmp(list[i]->b->id, page.after) <= 0)
            continue;
        if (shown == page.limit) {
            next = list[i - 1]->b->id;
            break;
        }
        json_array_append_new(items, manifest_json(list[i]));
        shown++;
    }
    r = items ? api_reply(resp, 200, api_page_json(items, "remote_backups", next)) : -ENOMEM;
    conf_manifest_list_free(list, n);
    return r;
}

int
api_remote_backups(const struct api_request *req, struct api_response *resp)
{
    static const char *const keys[] = {"domain", "host", "limit", "page_token", NULL};
    const char *domain = req->query(req, "domain"), *host = req->query(req, "host");
    struct api_page page;
    int r;

    /* The parameters first, on this thread: a bad one answers at once. */
    r = api_query_page(req, "remote_backups", &page);
    if (r < 0)
        return r;
    api_page_clear(&page);
    if (domain && (strlen(domain) == 0 || strlen(domain) > 128))
        return err_set_parameter(-EINVAL, "domain", "must be a domain name or UUID");
    if (host && (strlen(host) == 0 || strlen(host) > 255))
        return err_set_parameter(-EINVAL, "host", "must be a host name");
    r = check_name(req->params[0]);
    if (r < 0)
        return r;
    return api_defer(req, resp, remote_backups_now, keys);
}

static int
remote_restore_now(const struct api_request *req, struct api_response *resp)
{
    struct core_restore_request body;
    struct conf_job *job = NULL;
    unsigned wait;
    int r;

    r = api_query_wait(req, &wait);
    if (r < 0)
        return r;
    r = api_restore_body_read(req, &body);
    if (r < 0)
        return r;
    r = core_offsite_restore(req->params[0], req->params[1], &body, &job);
    if (r < 0)
        return r;
    return api_reply_job(resp, job, wait);
}

int
api_remote_restore(const struct api_request *req, struct api_response *resp)
{
    static const char *const keys[] = {"wait", NULL};
    struct core_restore_request body;
    unsigned wait;
    int r;

    r = api_query_wait(req, &wait);
    if (r < 0)
        return r;
    r = api_restore_body_read(req, &body);
    if (r < 0)
        return r;
    r = check_name(req->params[0]);
    if (r < 0)
        return r;
    if (!text_name_valid(req->params[1]))
        return err_set(-ENOENT, "no backup '%.64s' in remote '%s'", req->params[1], req->params[0]);
    return api_defer(req, resp, remote_restore_now, keys);
}

static int
remote_backup_delete_now(const struct api_request *req, struct api_response *resp)
{
    int r = core_offsite_delete(req->params[0], req->params[1]);

    if (r < 0)
        return r;
    resp->status = 204;
    return 0;
}

int
api_remote_backup_delete(const struct api_request *req, struct api_response *resp)
{
    static const char *const keys[] = {NULL};
    int r;

    r = check_name(req->params[0]);
    if (r < 0)
        return r;
    if (!text_name_valid(req->params[1]))
        return err_set(-ENOENT, "no backup '%.64s' in remote '%s'", req->params[1], req->params[0]);
    return api_defer(req, resp, remote_backup_delete_now, keys);
}

static json_t *
copy_json(const struct conf_copy *c)
{
    return json_pack("{s:s, s:s, s:s?, s:I, s:s?, s:o, s:o}", "remote", c->remote, "state",
                     conf_copy_state_to_string(c->state), "job_id", c->job_id, "object_bytes",
                     (json_int_t)c->object_bytes, "error", c->error, "created_at",
                     api_time_json(c->created_ms), "finished_at",
                     c->finished_ms ? api_time_json(c->finished_ms) : json_null());
}

int
api_backup_copies(const struct api_request *req, struct api_response *resp)
{
    struct conf_copy *list = NULL;
    size_t n = 0;
    json_t *items;
    int r;

    r = core_backup_copies(req->params[0], req->params[1], &list, &n);
    if (r < 0)
        return r;
    items = json_array();
    for (size_t i = 0; items && i < n; i++)
        json_array_append_new(items, copy_json(&list[i]));
    conf_copy_list_free(list, n);
    return items ? api_reply(resp, 200, json_pack("{s:o}", "items", items)) : -ENOMEM;
}

int
api_backup_copy(const struct api_request *req, struct api_response *resp)
{
    const char *remote = NULL;
    size_t remote_len = 0;
    json_int_t bandwidth = 0;
    struct conf_job *job = NULL;
    unsigned wait;
    int r;

    r = api_query_wait(req, &wait);
    if (r < 0)
        return r;
    r = api_body_unpack(req,
                        (const struct api_field[]){{"remote", API_FIELD_STRING, true, false},
                                                   {"bandwidth", API_FIELD_INTEGER, false, false},
                                                   {NULL, API_FIELD_STRING, false, false}},
                        "{s:s%, s?I}", "remote", &remote, &remote_len, "bandwidth", &bandwidth);
    if (r < 0)
        return r;
    if (remote_len != strlen(remote) || !text_name_valid(remote))
        return err_set_pointer(-EINVAL, "/remote", "must be a remote's name");
    if (bandwidth < 0)
        return err_set_pointer(-EINVAL, "/bandwidth", "must be bytes per second, 0 or more");
    r = core_backup_copy(req->params[0], req->params[1], remote, (uint64_t)bandwidth, &job);
    if (r < 0)
        return r;
    return api_reply_job(resp, job, wait);
}

int
api_remote_prune(const struct api_request *req, struct api_response *resp)
{
    const char *domain = NULL;
    size_t domain_len = 0;
    json_t *retention = NULL;
    int dry_run = 0;
    struct conf_retention keep = {0};
    _cleanup_free_ char *plan = NULL;
    struct conf_job *job = NULL;
    unsigned wait;
    json_t *out;
    int r;

    r = check_name(req->params[0]);
    if (r < 0)
        return r;
    r = api_query_wait(req, &wait);
    if (r < 0)
        return r;
    r = api_body_unpack(req,
                        (const struct api_field[]){{"domain", API_FIELD_STRING, true, false},
                                                   {"retention", API_FIELD_OBJECT, true, false},
                                                   {"dry_run", API_FIELD_BOOL, false, false},
                                                   {NULL, API_FIELD_STRING, false, false}},
                        "{s:s%, s:o, s?b}", "domain", &domain, &domain_len, "retention", &retention,
                        "dry_run", &dry_run);
    if (r < 0)
        return r;
    if (domain_len != strlen(domain) || domain_len == 0 || domain_len > 128)
        return err_set_pointer(-EINVAL, "/domain", "must be a domain's name or UUID");
    r = api_retention_read(retention, "/retention", &keep);
    if (r < 0)
        return r;
    r = core_offsite_prune(req->params[0], domain, &keep, dry_run, NULL, &plan, &job);
    if (r < 0)
        return r;
    if (dry_run) {
        out = json_loads(plan, 0, NULL);
        return out ? api_reply(resp, 200, out) : -ENOMEM;
    }
    return api_reply_job(resp, job, wait);
}
