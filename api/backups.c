/*
 * /v1/domains/{domain}/backups[/{id}], .../restore, .../verify, and the
 * event stream GET /v1/events.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "bodies.h"
#include "api_json.h"
#include "cleanup.h"
#include "core/backup.h"
#include "err.h"
#include "log.h"
#include "problem.h"
#include "text.h"

/* A page of extents: bounded whatever the disk looks like. */
#define EXTENTS_LIMIT_DEFAULT 1000
#define EXTENTS_LIMIT_MAX     10000

static const char *const backup_types[] = {"full", "incremental", "differential", NULL};
static const char *const backup_states[] = {"running", "ready",     "completed",
                                            "failed",  "cancelled", NULL};

/* How a client reaches a disk's export while a pull backup runs or is ready, else null. */
static json_t *
export_json(const struct conf_backup *b, const struct conf_backup_disk *k)
{
    struct core_pull_export e;

    if (!core_backup_is_client_pull(b) ||
        (b->state != CONF_BACKUP_STATE_RUNNING && b->state != CONF_BACKUP_STATE_READY) ||
        core_backup_pull_export(b, k->target, &e) < 0) {
        err_clear();
        return json_null();
    }
    return json_pack("{s:s, s:s, s:s, s:I, s:s?}", "uri", e.uri, "name", e.name, "socket", e.socket,
                     "size", (json_int_t)e.size, "dirty_context", e.context[0] ? e.context : NULL);
}

static json_t *
disk_json(const struct conf_backup *b, const struct conf_backup_disk *k)
{
    const char *alg = k->sha256 ? (k->checksum_algorithm ? k->checksum_algorithm : "sha256") : NULL;

    return json_pack("{s:s, s:s?, s:s?, s:I, s:I, s:s?, s:s?, s:o}", "target", k->target, "file",
                     k->file[0] ? k->file : NULL, "backing", k->backing, "size",
                     (json_int_t)k->size, "stored_bytes", (json_int_t)k->stored_bytes, "sha256",
                     k->sha256, "checksum_algorithm", alg, "export", export_json(b, k));
}

/* The verification record: null, or {ok, checked_at, problems: [lines]}. */
static json_t *
verification_json(const struct conf_backup *b)
{
    json_t *problems;

    if (b->verify_ok < 0)
        return json_null();
    problems = json_array();
    if (!problems)
        return NULL;
    for (const char *p = b->verify_detail; p && *p;) {
        size_t n = strcspn(p, "\n");
        if (n)
            json_array_append_new(problems, json_stringn(p, n));
        p += n + (p[n] == '\n');
    }
    return json_pack("{s:b, s:o, s:o}", "ok", b->verify_ok == 1, "checked_at",
                     api_time_json(b->verified_at), "problems", problems);
}

/* The JSON form of a backup (DESIGN.md's backup object). Returns a new reference or NULL. */
static json_t *
backup_json(const struct conf_backup *b)
{
    const char *mode = conf_backup_mode_to_string(b->mode);
    const char *type = conf_backup_type_to_string(b->type);
    const char *state = conf_backup_state_to_string(b->state);
    json_auto_t *disks = json_array();
    json_t *error = json_null();
    uint64_t disk_size = 0;

    if (!disks)
        return NULL;
    for (size_t i = 0; i < b->n_disks; i++) {
        json_array_append_new(disks, disk_json(b, &b->disks[i]));
        disk_size += b->disks[i].size;
    }
    if (b->error_errno) {
        char instance[160];
        snprintf(instance, sizeof(instance), "/v1/domains/%s/backups/%s", b->domain_uuid, b->id);
        json_decref(error);
        error = problem_new(problem_for_errno(b->error_errno), b->error_detail, instance);
    }
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:s, s:s?, s:s?, s:s?, s:I, s:I, "
        "s:O, s:o, s:o, s:o, s:o, s:o, s:b, s:s, s:s?}",
        "id", b->id, "domain", b->domain_name, "domain_uuid", b->domain_uuid, "mode", mode, "type",
        type, "state", state, "job_id", b->job_id, "chain_id", b->chain_id, "parent_id",
        b->parent_id, "base_checkpoint", b->base_checkpoint, "checkpoint", b->checkpoint,
        "stored_bytes", (json_int_t)b->stored_bytes, "disk_size", (json_int_t)disk_size, "disks",
        disks, "started_at", api_time_json(b->started_at), "finished_at",
        api_time_json(b->finished_at), "duration_ms",
        b->finished_at ? json_integer(b->finished_at - b->started_at) : json_null(), "error", error,
        "verification", verification_json(b), "protected", b->is_protected, "location",
        b->location ? "remote" : "local", "remote", b->location);
}

/* Reads a non-negative integer query parameter in [0, max]; absent -> def. */
static int
query_size(const struct api_request *req, const char *key, size_t def, size_t max, size_t *ret)
{
    const char *v = req->query ? req->query(req, key) : NULL;
    char *end;
    unsigned long long n;

    if (!v) {
        *ret = def;
        return 0;
    }
    errno = 0;
    n = strtoull(v, &end, 10);
    if (!*v || *v == '-' || *end || errno || n > max)
        return err_set_parameter(-EINVAL, key, "must be a number from 0 to %zu", max);
    *ret = (size_t)n;
    return 0;
}

/* Paged newest first by (started_at, id): a page_token holds the last one answered. */
int
api_backups_list(const struct api_request *req, struct api_response *resp)
{
    _cleanup_(api_page_clear) struct api_page page = {0};
    _cleanup_free_ char *next = NULL;
    struct core_backup_query q = {0};
    enum conf_backup_type type;
    enum conf_backup_state state;
    const char *type_s = NULL, *state_s = NULL;
    struct conf_backup **list = NULL;
    size_t n = 0, total = 0, len = 0;
    char uuid[37], cache_key[160] = "";
    uint64_t version;
    bool keep = true;
    char *text;
    json_t *items, *out;
    int r;

    r = api_query_enum(req, "type", backup_types, NULL, &type_s);
    if (r >= 0)
        r = api_query_enum(req, "state", backup_states, NULL, &state_s);
    if (r >= 0)
        r = api_query_page(req, "backups", &page);
    if (r >= 0 && page.after)
        r = api_page_key_read(page.after, 1, &q.after_started, &q.after_id);
    if (r >= 0)
        r = query_size(req, "offset", 0, SIZE_MAX / 2, &q.offset);
    if (r < 0)
        return r;
    if (q.offset && page.after)
        return err_set_parameter(-EINVAL, "offset", "cannot be used with page_token");
    if (type_s && conf_backup_type_from_string(type_s, &type) == 0)
        q.type = &type;
    if (state_s && conf_backup_state_from_string(state_s, &state) == 0)
        q.state = &state;
    q.limit = (size_t)page.limit + 1; /* one more tells whether a next page exists */
    /*
     * The same catalog version gives the same page: keep it, and answer from
     * it. Not a page that shows a running or ready backup (its exports are
     * not in the catalog). The version is read before the rows.
     */
    version = core_backup_catalog_version();
    r = core_backup_domain_uuid(req->params[0], uuid);
    if (r < 0)
        return r;
    if (snprintf(cache_key, sizeof(cache_key), "backups %s %s %s %u %zu %s", uuid,
                 type_s ? type_s : "-", state_s ? state_s : "-", page.limit, q.offset,
                 page.after ? page.after : "-") < (int)sizeof(cache_key)) {
        text = api_cache_get(cache_key, version, &len);
        if (text)
            return api_reply_text(resp, 200, text, "application/json");
    }
    r = core_backup_list(uuid, &q, &list, &n, &total);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n && i < page.limit; i++)
        if (list[i]->state == CONF_BACKUP_STATE_RUNNING ||
            list[i]->state == CONF_BACKUP_STATE_READY)
            keep = false;
    if (n > page.limit) {
        const struct conf_backup *last = list[page.limit - 1];
        if (asprintf(&next, "%lld:%s", (long long)last->started_at, last->id) < 0) {
            conf_backup_list_free(list, n);
            return -ENOMEM;
        }
    }
    items = json_array();
    for (size_t i = 0; items && i < n && i < page.limit; i++)
        json_array_append_new(items, backup_json(list[i]));
    conf_backup_list_free(list, n);
    out = api_page_json(items, "backups", next);
    if (out && (json_object_set_new(out, "total", json_integer((json_int_t)total)) < 0 ||
                json_object_set_new(out, "limit", json_integer(page.limit)) < 0 ||
                json_object_set_new(out, "offset", json_integer((json_int_t)q.offset)) < 0)) {
        json_decref(out);
        out = NULL;
    }
    if (!keep || !out)
        return api_reply(resp, 200, out);
    text = api_json_text(out);
    if (!text)
        return -ENOMEM;
    api_cache_put(cache_key, version, text, strlen(text));
    return api_reply_text(resp, 200, text, "application/json");
}

int
api_backup_create(const struct api_request *req, struct api_response *resp)
{
    struct api_backup_body body;
    struct conf_backup *b = NULL;
    _cleanup_(conf_job_freep) struct conf_job *job = NULL;
    unsigned wait;
    json_t *out;
    int r;

    r = api_query_wait(req, &wait);
    if (r < 0)
        return r;
    r = api_backup_body_read(req, &body);
    if (r < 0)
        return r;
    r = core_backup_create(req->params[0], &body.req, &b, &job);
    if (r < 0)
        return r;
    api_set_location(resp, "/v1/jobs/%s", job->id);
    out = backup_json(b);
    conf_backup_free(b);
    r = api_reply(resp, 202, out);
    if (r < 0)
        return r;
    /* The job started: a failure to wait must not hide it, so the 202 stands then. */
    if (api_wait_job(resp, job->id, wait, false) < 0)
        log_warn("job %s: cannot wait for its end; answered at once", job->id);
    return 0;
}

int
api_backup_get(const struct api_request *req, struct api_response *resp)
{
    struct conf_backup *b = NULL;
    json_t *out;
    int r;

    r = core_backup_get(req->params[0], req->params[1], &b);
    if (r < 0)
        return r;
    out = backup_json(b);
    conf_backup_free(b);
    return api_reply(resp, 200, out);
}

int
api_backup_delete(const struct api_request *req, struct api_response *resp)
{
    char **ids = NULL;
    bool chain;
    json_t *deleted;
    int r;

    r = api_query_bool(req, "chain", false, &chain);
    if (r < 0)
        return r;
    r = core_backup_delete(req->params[0], req->params[1], chain, &ids);
    if (r < 0)
        return r;
    deleted = json_array();
    for (size_t i = 0; deleted && ids[i]; i++)
        json_array_append_new(deleted, json_string(ids[i]));
    for (size_t i = 0; ids[i]; i++)
        free(ids[i]);
    free(ids);
    if (!deleted)
        return -ENOMEM;
    return api_reply(resp, 200, json_pack("{s:o}", "deleted", deleted));
}

int
api_backup_patch(const struct api_request *req, struct api_response *resp)
{
    struct conf_backup *b = NULL;
    bool on = false;
    json_t *out;
    int r;

    r = api_protect_body_read(req, &on);
    if (r < 0)
        return r;
    r = core_backup_set_protected(req->params[0], req->params[1], on, &b);
    if (r < 0)
        return r;
    out = backup_json(b);
    conf_backup_free(b);
    return api_reply(resp, 200, out);
}

/* A NULL-terminated list of ids as a new JSON array, or NULL. */
static json_t *
ids_json(char *const *ids)
{
    json_t *a = json_array();

    for (size_t i = 0; a && ids && ids[i]; i++)
        if (json_array_append_new(a, json_string(ids[i])) < 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* The dry run's answer: {keep, remove, merge: [{into, from}], bytes_freed_estimate}. */
static json_t *
prune_plan_json(const struct core_prune_plan *p)
{
    json_t *merges = json_array();

    for (size_t i = 0; merges && i < p->n_merges; i++)
        if (json_array_append_new(merges, json_pack("{s:s, s:o}", "into", p->merges[i].into, "from",
                                                    ids_json(p->merges[i].from))) < 0) {
            json_decref(merges);
            return NULL;
        }
    if (!merges)
        return NULL;
    return json_pack("{s:o, s:o, s:o, s:I}", "keep", ids_json(p->keep), "remove",
                     ids_json(p->remove), "merge", merges, "bytes_freed_estimate",
                     (json_int_t)p->bytes_freed_estimate);
}

int
api_backups_prune(const struct api_request *req, struct api_response *resp)
{
    _cleanup_(core_prune_plan_freep) struct core_prune_plan *plan = NULL;
    struct conf_retention retention;
    struct conf_job *job = NULL;
    bool dry = false;
    unsigned wait;
    int r;

    r = api_query_wait(req, &wait);
    if (r < 0)
        return r;
    r = api_prune_body_read(req, &retention, &dry);
    if (r < 0)
        return r;
    r = core_backup_prune(req->params[0], &retention, dry, &plan, &job);
    if (r < 0)
        return r;
    if (dry)
        return api_reply(resp, 200, prune_plan_json(plan));
    return api_reply_job(resp, job, wait);
}

int
api_backup_restore(const struct api_request *req, struct api_response *resp)
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
    r = core_backup_restore(req->params[0], req->params[1], &body, &job);
    if (r < 0)
        return r;
    return api_reply_job(resp, job, wait);
}

int
api_backup_instant_recovery(const struct api_request *req, struct api_response *resp)
{
    struct core_instant_recovery_request body;
    struct conf_job *job = NULL;
    unsigned wait;
    int r;

    r = api_query_wait(req, &wait);
    if (r < 0)
        return r;
    r = api_instant_recovery_body_read(req, &body);
    if (r < 0)
        return r;
    r = core_backup_instant_recovery(req->params[0], req->params[1], &body, &job);
    if (r < 0)
        return r;
    return api_reply_job(resp, job, wait);
}

int
api_backup_verify(const struct api_request *req, struct api_response *resp)
{
    struct conf_job *job = NULL;
    unsigned wait;
    int r;

    r = api_query_wait(req, &wait);
    if (r < 0)
        return r;
    r = api_body_unpack(req, API_NO_FIELDS, "{}");
    if (r < 0)
        return r;
    r = core_backup_verify(req->params[0], req->params[1], &job);
    if (r < 0)
        return r;
    return api_reply_job(resp, job, wait);
}

static int
backup_finish_now(const struct api_request *req, struct api_response *resp)
{
    struct conf_backup *b = NULL;
    json_t *out;
    int r;

    r = api_body_unpack(req, API_NO_FIELDS, "{}");
    if (r < 0)
        return r;
    r = core_backup_finish(req->params[0], req->params[1], &b);
    if (r < 0)
        return r;
    out = backup_json(b);
    conf_backup_free(b);
    return api_reply(resp, 200, out);
}

/* Waits up to a minute for the backup to end: on a worker. */
int
api_backup_finish(const struct api_request *req, struct api_response *resp)
{
    static const char *const keys[] = {NULL};

    return api_defer(req, resp, backup_finish_now, keys);
}

static void
reader_freep(struct core_pull_reader **r)
{
    core_pull_reader_free(*r);
}

int
api_backup_extents(const struct api_request *req, struct api_response *resp)
{
    static const char *const contexts[] = {"dirty", "allocation", NULL};
    __attribute__((cleanup(reader_freep))) struct core_pull_reader *rd = NULL;
    _cleanup_free_ struct conf_extent *ext = NULL;
    const char *context = NULL;
    size_t n = 0, offset = 0, length = 0, limit = 0;
    uint64_t next = 0, end;
    bool dirty;
    json_t *items;
    int r;

    r = api_query_enum(req, "context", contexts, NULL, &context);
    if (r >= 0)
        r = query_size(req, "offset", 0, SIZE_MAX / 2, &offset);
    if (r >= 0)
        r = query_size(req, "length", SIZE_MAX / 2, SIZE_MAX / 2, &length);
    if (r >= 0)
        r = query_size(req, "limit", EXTENTS_LIMIT_DEFAULT, EXTENTS_LIMIT_MAX, &limit);
    if (r < 0)
        return r;
    if (limit == 0)
        return err_set_parameter(-EINVAL, "limit", "must be at least 1");
    if (length == 0)
        return err_set_parameter(-EINVAL, "length", "must be at least 1");
    r = core_pull_reader_open(req->params[0], req->params[1], req->params[2], &rd);
    if (r < 0)
        return r;
    /* Without a choice: the dirty bitmap of an incremental's export, else the allocation. */
    dirty = context ? strcmp(context, "dirty") == 0 : core_pull_reader_has_dirty(rd);
    r = core_pull_reader_extents(rd, dirty, offset, length, limit, &ext, &n, &next);
    if (r < 0)
        return r;
    end = offset + length < core_pull_reader_size(rd) ? offset + length : core_pull_reader_size(rd);
    items = json_array();
    for (size_t i = 0; items && i < n; i++) {
        json_t *it = dirty
                         ? json_pack("{s:I, s:I, s:b}", "start", (json_int_t)ext[i].start, "length",
                                     (json_int_t)ext[i].length, "dirty", (ext[i].flags & 1) != 0)
                         : json_pack("{s:I, s:I, s:b, s:b}", "start", (json_int_t)ext[i].start,
                                     "length", (json_int_t)ext[i].length, "zero",
                                     (ext[i].flags & 2) != 0, "data", (ext[i].flags & 1) == 0);
        if (!it || json_array_append_new(items, it) < 0) {
            json_decref(items);
            return -ENOMEM;
        }
    }
    if (!items)
        return -ENOMEM;
    return api_reply(resp, 200,
                     json_pack("{s:o, s:s, s:I, s:I, s:o}", "items", items, "context",
                               dirty ? "dirty" : "allocation", "size",
                               (json_int_t)core_pull_reader_size(rd), "offset", (json_int_t)offset,
                               "next_offset",
                               next < end ? json_integer((json_int_t)next) : json_null()));
}

static ssize_t
data_read(void *opaque, uint64_t pos, char *buf, size_t max)
{
    return core_pull_reader_read(opaque, pos, buf, max);
}

static ssize_t
data_zeros(void *opaque, uint64_t pos, size_t max)
{
    return core_pull_reader_zeros(opaque, pos, max);
}

static void
data_prepare(void *opaque, uint64_t pos, uint64_t len)
{
    core_pull_reader_prepare(opaque, pos, len);
}

static void
data_free(void *opaque)
{
    core_pull_reader_free(opaque);
}

int
api_backup_data(const struct api_request *req, struct api_response *resp)
{
    struct core_pull_reader *rd = NULL;
    struct api_stream *st;
    int r;

    /* A connection of its own: several range requests are read in parallel. */
    r = core_pull_reader_open(req->params[0], req->params[1], req->params[2], &rd);
    if (r < 0)
        return r;
    st = calloc(1, sizeof(*st));
    if (!st) {
        core_pull_reader_free(rd);
        return -ENOMEM;
    }
    *st = (struct api_stream){
        .size = core_pull_reader_size(rd),
        .ranges = true,
        .content_type = "application/octet-stream",
        .read = data_read,
        .prepare = data_prepare,
        .zeros = data_zeros,
        .free = data_free,
        .opaque = rd,
    };
    return api_reply_stream(resp, st);
}

void
api_data_plane_metrics(FILE *f)
{
    uint64_t read = 0, zero = 0;

    core_pull_reader_counters(&read, &zero);
    fprintf(f,
            "# HELP virtvault_data_plane_bytes_total Bytes of disk data the data plane "
            "(.../disks/{disk}/data) read from NBD exports (source=\"nbd\") or answered as "
            "zeros without reading them (source=\"zero\").\n"
            "# TYPE virtvault_data_plane_bytes_total counter\n"
            "virtvault_data_plane_bytes_total{source=\"nbd\"} %" PRIu64 "\n"
            "virtvault_data_plane_bytes_total{source=\"zero\"} %" PRIu64 "\n",
            read, zero);
}

int
api_events_stream(const struct api_request *req, struct api_response *resp)
{
    resp->status = 200;
    resp->event_stream = true;
    return 0;
}
