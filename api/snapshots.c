/*
 * /v1/domains/{domain}/snapshots: list (flat or tree, with filters), create,
 * get (JSON or libvirt's XML), current, delete, revert.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "bodies.h"
#include "api_json.h"
#include "cleanup.h"
#include "core/core.h"
#include "core/snapshot.h"
#include "err.h"
#include "log.h"
#include "text.h"

static bool
snapshot_external(const struct conf_snapshot *s)
{
    if (s->memory == CONF_SNAPSHOT_LOCATION_EXTERNAL)
        return true;
    for (size_t i = 0; i < s->n_disks; i++)
        if (s->disks[i].location == CONF_SNAPSHOT_LOCATION_EXTERNAL)
            return true;
    return false;
}

/* The JSON form of a snapshot. Returns a new reference or NULL. */
static json_t *
snapshot_json(const struct conf_snapshot *s)
{
    char created[32], state[32];
    json_t *disks = json_array();

    if (!disks)
        return NULL;
    for (size_t i = 0; i < s->n_disks; i++)
        json_array_append_new(
            disks, json_pack("{s:s, s:s, s:s?}", "target", s->disks[i].target, "location",
                             conf_snapshot_location_to_string(s->disks[i].location), "file",
                             s->disks[i].file));
    text_time_rfc3339(created, sizeof(created), (time_t)s->created);
    /* libvirt says "disk-snapshot"; the API speaks snake_case. */
    snprintf(state, sizeof(state), "%s", s->domain_state ? s->domain_state : "unknown");
    for (char *p = state; *p; p++)
        if (*p == '-')
            *p = '_';
    return json_pack("{s:s, s:s?, s:s?, s:I, s:s, s:s, s:b, s:s, s:{s:s, s:s?}, s:o}", "name",
                     s->name, "description", s->description, "parent", s->parent, "children_count",
                     (json_int_t)s->n_children, "created_at", created, "domain_state", state,
                     "is_current", s->is_current, "kind",
                     s->memory == CONF_SNAPSHOT_LOCATION_NONE ? "disk_only" : "full", "memory",
                     "location", conf_snapshot_location_to_string(s->memory), "file",
                     s->memory_file, "disks", disks);
}

static int
by_time(const void *a, const void *b)
{
    const struct conf_snapshot *x = a, *y = b;

    if (x->created != y->created)
        return x->created < y->created ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The subtree below list[i] as a JSON node with "children". depth guards against cycles. */
static json_t *
tree_node(const struct conf_snapshot *list, size_t n, size_t i, unsigned depth)
{
    json_t *node = snapshot_json(&list[i]);
    json_t *kids = json_array();

    if (!node || !kids || depth > 10000) {
        json_decref(node);
        json_decref(kids);
        return NULL;
    }
    for (size_t k = 0; k < n; k++) {
        if (list[k].parent && strcmp(list[k].parent, list[i].name) == 0) {
            json_t *child = tree_node(list, n, k, depth + 1);
            if (!child) {
                json_decref(node);
                json_decref(kids);
                return NULL;
            }
            json_array_append_new(kids, child);
        }
    }
    json_object_set_new(node, "children", kids);
    return node;
}

static bool
has_name(const struct conf_snapshot *list, size_t n, const char *name)
{
    for (size_t i = 0; name && i < n; i++)
        if (strcmp(list[i].name, name) == 0)
            return true;
    return false;
}

/* Whether s passes the flat view's filters (-1: no filter). */
static bool
snapshot_passes(const struct conf_snapshot *s, const char *location, int roots, int leaves,
                int current, int memory)
{
    return !((roots == 1 && s->parent) || (roots == 0 && !s->parent) ||
             (leaves == 1 && s->n_children > 0) || (leaves == 0 && s->n_children == 0) ||
             (current >= 0 && s->is_current != (current == 1)) ||
             (memory >= 0 && (s->memory != CONF_SNAPSHOT_LOCATION_NONE) != (memory == 1)) ||
             (location && snapshot_external(s) != (strcmp(location, "external") == 0)));
}

/* The paging key of a snapshot: its place in by_time's order. */
static int
snapshot_key(const struct conf_snapshot *s, char **ret)
{
    return asprintf(ret, "%lld:%s", (long long)s->created, s->name) < 0 ? -ENOMEM : 0;
}

/* Whether s comes strictly after the key (created, name) in by_time's order. */
static bool
snapshot_after(const struct conf_snapshot *s, int64_t created, const char *name)
{
    if ((int64_t)s->created != created)
        return (int64_t)s->created > created;
    return strcmp(s->name, name) > 0;
}

/*
 * The tree: every node, unpaged (a tree needs all of its nodes; a snapshot
 * tree is small). Its answer carries next_page_token null like every list.
 */
static json_t *
snapshots_tree(const struct conf_snapshot *list, size_t n)
{
    json_t *items = json_array();

    for (size_t i = 0; items && i < n; i++) {
        json_t *node;

        /* Roots, and orphans whose parent is not listed. */
        if (list[i].parent && has_name(list, n, list[i].parent))
            continue;
        node = tree_node(list, n, i, 0);
        if (!node) {
            json_decref(items);
            return NULL;
        }
        json_array_append_new(items, node);
    }
    return api_page_json(items, "snapshots", NULL);
}

int
api_snapshots_list(const struct api_request *req, struct api_response *resp)
{
    static const char *const views[] = {"flat", "tree", NULL};
    static const char *const locations[] = {"internal", "external", NULL};
    _cleanup_(api_page_clear) struct api_page page = {0};
    _cleanup_free_ char *next = NULL;
    struct conf_snapshot *list = NULL;
    size_t n = 0, last = 0;
    const char *view, *location, *after_name = NULL;
    int64_t after_created = 0;
    int roots, leaves, current, memory;
    unsigned taken = 0;
    json_t *items, *out;
    int r;

    r = api_query_enum(req, "view", views, "flat", &view);
    if (r >= 0)
        r = api_query_enum(req, "location", locations, NULL, &location);
    if (r >= 0)
        r = api_query_tristate(req, "roots", &roots);
    if (r >= 0)
        r = api_query_tristate(req, "leaves", &leaves);
    if (r >= 0)
        r = api_query_tristate(req, "current", &current);
    if (r >= 0)
        r = api_query_tristate(req, "memory", &memory);
    if (r >= 0)
        r = api_query_page(req, "snapshots", &page);
    if (r >= 0 && page.after)
        r = api_page_key_read(page.after, 1, &after_created, &after_name);
    if (r < 0)
        return r;
    if (strcmp(view, "tree") == 0 &&
        (location || roots >= 0 || leaves >= 0 || current >= 0 || memory >= 0))
        return err_set(-EINVAL, "filters apply to the flat view only (a tree needs every node)");
    if (strcmp(view, "tree") == 0 && (req->query(req, "limit") || page.after))
        return err_set_parameter(-EINVAL, req->query(req, "limit") ? "limit" : "page_token",
                                 "applies to the flat view only (a tree needs every node)");

    r = core_snapshot_list(req->params[0], &list, &n);
    if (r < 0)
        return r;
    qsort(list, n, sizeof(*list), by_time);
    if (strcmp(view, "tree") == 0) {
        out = snapshots_tree(list, n);
        conf_snapshot_list_free(list, n);
        return api_reply(resp, 200, out);
    }
    items = json_array();
    for (size_t i = 0; items && i < n; i++) {
        const struct conf_snapshot *s = &list[i];
        json_t *node;

        if (after_name && !snapshot_after(s, after_created, after_name))
            continue;
        if (!snapshot_passes(s, location, roots, leaves, current, memory))
            continue;
        if (taken == page.limit) {
            /* One more passes: the page ends at the last one answered. */
            if (snapshot_key(&list[last], &next) < 0) {
                json_decref(items);
                items = NULL;
            }
            break;
        }
        node = snapshot_json(s);
        if (!node) {
            json_decref(items);
            items = NULL;
            break;
        }
        json_array_append_new(items, node);
        taken++;
        last = i;
    }
    out = items ? api_page_json(items, "snapshots", next) : NULL;
    conf_snapshot_list_free(list, n);
    return api_reply(resp, 200, out);
}

static int
snapshot_create_now(const struct api_request *req, struct api_response *resp)
{
    _cleanup_(conf_snapshot_freep) struct conf_snapshot *snap = NULL;
    _cleanup_(conf_job_freep) struct conf_job *job = NULL;
    struct api_snapshot_body body;
    unsigned wait;
    int r;

    r = api_query_wait(req, &wait);
    if (r < 0)
        return r;
    r = api_snapshot_body_read(req, &body);
    if (r < 0)
        return r;
    r = core_snapshot_create(req->params[0], &body.req, &snap, &job);
    if (r < 0)
        return r;
    if (job) {
        api_set_location(resp, "/v1/jobs/%s", job->id);
        r = api_reply(resp, 202, api_job_json(job));
        if (r >= 0 && api_wait_job(resp, job->id, wait, false) < 0)
            log_warn("job %s: cannot wait for its end; answered at once", job->id);
        return r;
    }
    api_set_location(resp, "%s/%s", req->path, snap->name);
    return api_reply(resp, 201, snapshot_json(snap));
}

/*
 * A snapshot with memory takes seconds: on a worker. One that runs as a job
 * waits for it with ?wait without the worker (the server suspends it anew).
 */
int
api_snapshot_create(const struct api_request *req, struct api_response *resp)
{
    static const char *const keys[] = {"wait", NULL};
    unsigned wait;
    int r;

    r = api_query_wait(req, &wait); /* refused before a worker is spent on it */
    if (r < 0)
        return r;

    return api_defer(req, resp, snapshot_create_now, keys);
}

int
api_snapshot_get(const struct api_request *req, struct api_response *resp)
{
    static const char *const formats[] = {"json", "xml", NULL};
    _cleanup_(conf_snapshot_freep) struct conf_snapshot *snap = NULL;
    const char *format;
    int r;

    r = api_query_enum(req, "format", formats, "json", &format);
    if (r < 0)
        return r;
    if (strcmp(format, "xml") == 0) {
        char *xml = NULL;
        r = core_snapshot_xml(req->params[0], req->params[1], &xml);
        if (r < 0)
            return r;
        return api_reply_text(resp, 200, xml, "application/xml");
    }
    r = core_snapshot_get(req->params[0], req->params[1], &snap);
    if (r < 0)
        return r;
    return api_reply(resp, 200, snapshot_json(snap));
}

int
api_snapshot_current(const struct api_request *req, struct api_response *resp)
{
    _cleanup_(conf_snapshot_freep) struct conf_snapshot *snap = NULL;
    int r;

    r = core_snapshot_current(req->params[0], &snap);
    if (r < 0)
        return r;
    return api_reply(resp, 200, snapshot_json(snap));
}

static int
snapshot_delete_now(const struct api_request *req, struct api_response *resp)
{
    enum conf_snapshot_delete_mode mode = CONF_SNAPSHOT_DELETE_ONE;
    bool children, children_only, metadata_only;
    char **names = NULL;
    size_t n = 0;
    json_t *gone;
    int r;

    r = api_query_bool(req, "children", false, &children);
    if (r >= 0)
        r = api_query_bool(req, "children_only", false, &children_only);
    if (r >= 0)
        r = api_query_bool(req, "metadata_only", false, &metadata_only);
    if (r < 0)
        return r;
    if (children && children_only)
        return err_set(-EINVAL, "children and children_only exclude each other");
    if (children)
        mode = CONF_SNAPSHOT_DELETE_CHILDREN;
    else if (children_only)
        mode = CONF_SNAPSHOT_DELETE_CHILDREN_ONLY;
    r = core_snapshot_delete(req->params[0], req->params[1], mode, metadata_only, &names, &n);
    if (r < 0)
        return r;
    gone = json_array();
    for (size_t i = 0; gone && i < n; i++)
        json_array_append_new(gone, json_string(names[i]));
    core_snapshot_names_free(names, n);
    return api_reply(resp, 200, json_pack("{s:o*}", "deleted", gone));
}

/* Deleting a snapshot may merge images: on a worker. */
int
api_snapshot_delete(const struct api_request *req, struct api_response *resp)
{
    static const char *const keys[] = {"children", "children_only", "metadata_only", NULL};

    return api_defer(req, resp, snapshot_delete_now, keys);
}

static int
snapshot_revert_now(const struct api_request *req, struct api_response *resp)
{
    enum conf_snapshot_start start;
    bool force;
    int r;

    r = api_revert_body_read(req, &start, &force);
    if (r < 0)
        return r;
    r = core_snapshot_revert(req->params[0], req->params[1], start, force);
    if (r < 0)
        return r;
    return api_domain_reply(req->params[0], resp);
}

/* A revert takes seconds: on a worker. */
int
api_snapshot_revert(const struct api_request *req, struct api_response *resp)
{
    static const char *const keys[] = {NULL};

    return api_defer(req, resp, snapshot_revert_now, keys);
}
