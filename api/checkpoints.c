/*
 * /v1/domains/{domain}/checkpoints[/{name}] and .../checkpoints:reconcile.
 *
 * Names of new checkpoints follow the one name rule (text_name_valid);
 * existing ones, which libvirt may have under other names, are addressed by
 * whatever name the path carries (percent-encoded).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "bodies.h"
#include "cleanup.h"
#include "core/checkpoint.h"
#include "err.h"
#include "text.h"

#define LOOKUP_NAME_MAX 1024

static json_t *
disk_json(const struct conf_checkpoint_disk *d)
{
    json_t *size = d->size_bytes >= 0 ? json_integer(d->size_bytes) : json_null();

    return json_pack("{s:s, s:s, s:s?, s:o}", "target", d->target, "checkpoint",
                     d->bitmap ? "bitmap" : "no", "bitmap", d->bitmap ? d->bitmap_name : NULL,
                     "size_bytes", size);
}

static json_t *
checkpoint_json(const struct core_checkpoint *c)
{
    const struct conf_checkpoint_def *def = c->def;
    json_t *disks = json_array();
    char created[32];

    if (!disks)
        return NULL;
    for (size_t i = 0; i < def->n_disks; i++)
        json_array_append_new(disks, disk_json(&def->disks[i]));
    text_time_rfc3339(created, sizeof(created), (time_t)def->created);
    return json_pack("{s:s, s:s, s:s?, s:s?, s:s, s:s, s:s?, s:b, s:o}", "name", def->name,
                     "domain_uuid", c->domain_uuid, "description", def->description, "parent",
                     def->parent, "created_at", created, "state",
                     conf_checkpoint_state_to_string(c->state), "reason", c->reason, "in_libvirt",
                     c->in_libvirt, "disks", disks);
}

static int
lookup_name(const struct api_request *req, const char **ret)
{
    const char *name = req->params[1];

    if (strlen(name) > LOOKUP_NAME_MAX)
        return err_set(-EINVAL, "the checkpoint name is longer than %d bytes", LOOKUP_NAME_MAX);
    *ret = name;
    return 0;
}

/* Whether c comes strictly after the key (created, stored, name) in the list's order. */
static bool
checkpoint_after(const struct core_checkpoint *c, const int64_t key[2], const char *name)
{
    if (c->created != key[0])
        return c->created > key[0];
    if (c->stored != key[1])
        return c->stored > key[1];
    return strcmp(c->def->name, name) > 0;
}

/* One page of list as JSON text, from after the key on. */
static char *
checkpoints_page(const struct core_checkpoint *list, size_t n, const struct api_page *page,
                 const int64_t key[2], const char *name)
{
    _cleanup_free_ char *next = NULL;
    json_t *items = json_array();
    unsigned taken = 0;
    size_t i = 0;

    while (name && i < n && !checkpoint_after(&list[i], key, name))
        i++;
    for (; items && i < n; i++) {
        if (taken == page->limit) {
            const struct core_checkpoint *last = &list[i - 1];
            if (asprintf(&next, "%lld:%lld:%s", (long long)last->created, (long long)last->stored,
                         last->def->name) < 0) {
                json_decref(items);
                return NULL;
            }
            break;
        }
        json_array_append_new(items, checkpoint_json(&list[i]));
        taken++;
    }
    return api_json_text(api_page_json(items, "checkpoints", next));
}

static int
checkpoints_list_now(const struct api_request *req, struct api_response *resp)
{
    _cleanup_(api_page_clear) struct api_page page = {0};
    struct core_checkpoint_catalog cat;
    struct core_checkpoint *list = NULL;
    unsigned filter = 0;
    int roots, leaves;
    bool refresh;
    size_t n = 0, len;
    int64_t key[2] = {0, 0};
    const char *name = NULL;
    char cache_key[96], *text;
    int r;

    r = api_query_tristate(req, "roots", &roots);
    if (r < 0)
        return r;
    r = api_query_tristate(req, "leaves", &leaves);
    if (r < 0)
        return r;
    r = api_query_bool(req, "refresh", false, &refresh);
    if (r < 0)
        return r;
    r = api_query_page(req, "checkpoints", &page);
    if (r < 0)
        return r;
    if (page.after) {
        r = api_page_key_read(page.after, 2, key, &name);
        if (r < 0)
            return r;
    }
    if (roots >= 0)
        filter |= roots ? CORE_CHECKPOINT_LIST_ROOTS : CORE_CHECKPOINT_LIST_NO_ROOTS;
    if (leaves >= 0)
        filter |= leaves ? CORE_CHECKPOINT_LIST_LEAVES : CORE_CHECKPOINT_LIST_NO_LEAVES;
    r = core_checkpoint_catalog_open(req->params[0], refresh ? CORE_CHECKPOINT_READ_REFRESH : 0,
                                     &cat);
    if (r < 0)
        return r;
    /*
     * The same catalog version gives the same listing: keep first pages, and
     * answer from them (later pages are built each time).
     */
    snprintf(cache_key, sizeof(cache_key), "checkpoints %s %u %u", cat.domain.uuid, filter,
             page.limit);
    text = cat.version && !name ? api_cache_get(cache_key, cat.version, &len) : NULL;
    if (text)
        return api_reply_text(resp, 200, text, "application/json");
    r = core_checkpoint_list(&cat, filter, &list, &n);
    if (r < 0)
        return r;
    text = checkpoints_page(list, n, &page, key, name);
    core_checkpoint_list_free(list, n);
    if (text && cat.version && !name)
        api_cache_put(cache_key, cat.version, text, strlen(text));
    return api_reply_text(resp, 200, text, "application/json");
}

/* ?refresh=true reconciles the domain first: on a worker. */
int
api_checkpoints_list(const struct api_request *req, struct api_response *resp)
{
    static const char *const keys[] = {"roots", "leaves", "refresh", "limit", "page_token", NULL};
    bool refresh;
    int r;

    r = api_query_bool(req, "refresh", false, &refresh);
    if (r < 0)
        return r;
    return refresh ? api_defer(req, resp, checkpoints_list_now, keys)
                   : checkpoints_list_now(req, resp);
}

static int
checkpoint_create_now(const struct api_request *req, struct api_response *resp)
{
    _cleanup_(core_checkpoint_freep) struct core_checkpoint *c = NULL;
    struct api_checkpoint_body body;
    int r;

    r = api_checkpoint_body_read(req, &body);
    if (r < 0)
        return r;
    r = core_checkpoint_create(req->params[0], &body.req, &c);
    if (r < 0)
        return r;
    api_set_location(resp, "/v1/domains/%s/checkpoints/%s", c->domain_uuid, c->def->name);
    return api_reply(resp, 201, checkpoint_json(c));
}

/* Talks to QEMU, which may be slow to answer: on a worker. */
int
api_checkpoint_create(const struct api_request *req, struct api_response *resp)
{
    static const char *const keys[] = {NULL};

    return api_defer(req, resp, checkpoint_create_now, keys);
}

static int
checkpoint_get_now(const struct api_request *req, struct api_response *resp)
{
    static const char *const formats[] = {"json", "xml", NULL};
    _cleanup_(core_checkpoint_freep) struct core_checkpoint *c = NULL;
    const char *format, *name = NULL;
    bool refresh;
    int r;

    r = api_query_enum(req, "format", formats, "json", &format);
    if (r < 0)
        return r;
    r = lookup_name(req, &name);
    if (r < 0)
        return r;
    r = api_query_bool(req, "refresh", false, &refresh);
    if (r < 0)
        return r;
    r = core_checkpoint_get(req->params[0], name, refresh ? CORE_CHECKPOINT_READ_REFRESH : 0, &c);
    if (r < 0)
        return r;
    if (strcmp(format, "xml") == 0)
        return api_reply_text(resp, 200, strdup(c->def->xml), "application/xml");
    return api_reply(resp, 200, checkpoint_json(c));
}

/* ?refresh=true reconciles the domain first: on a worker. */
int
api_checkpoint_get(const struct api_request *req, struct api_response *resp)
{
    static const char *const keys[] = {"format", "refresh", NULL};
    bool refresh;
    int r;

    r = api_query_bool(req, "refresh", false, &refresh);
    if (r < 0)
        return r;
    return refresh ? api_defer(req, resp, checkpoint_get_now, keys) : checkpoint_get_now(req, resp);
}

static int
checkpoint_delete_now(const struct api_request *req, struct api_response *resp)
{
    bool children, metadata_only;
    unsigned flags = 0;
    const char *name = NULL;
    int r;

    r = api_query_bool(req, "children", false, &children);
    if (r < 0)
        return r;
    r = api_query_bool(req, "metadata_only", false, &metadata_only);
    if (r < 0)
        return r;
    r = lookup_name(req, &name);
    if (r < 0)
        return r;
    if (children)
        flags |= CORE_CHECKPOINT_DELETE_CHILDREN;
    if (metadata_only)
        flags |= CORE_CHECKPOINT_DELETE_METADATA_ONLY;
    r = core_checkpoint_delete(req->params[0], name, flags);
    if (r < 0)
        return r;
    resp->status = 204;
    return 0;
}

/* Talks to QEMU, which may be slow to answer: on a worker. */
int
api_checkpoint_delete(const struct api_request *req, struct api_response *resp)
{
    static const char *const keys[] = {"children", "metadata_only", NULL};

    return api_defer(req, resp, checkpoint_delete_now, keys);
}

static int
checkpoints_reconcile_now(const struct api_request *req, struct api_response *resp)
{
    _cleanup_(core_reconcile_report_freep) struct core_reconcile_report *rep = NULL;
    bool adopt;
    json_t *actions;
    int r;

    r = api_reconcile_body_read(req, &adopt);
    if (r < 0)
        return r;
    r = core_checkpoint_reconcile_now(req->params[0], adopt ? CORE_RECONCILE_ADOPT : 0, &rep);
    if (r < 0)
        return r;
    actions = json_array();
    for (size_t i = 0; actions && i < rep->n_actions; i++)
        json_array_append_new(
            actions, json_pack("{s:s, s:s, s:s?}", "checkpoint", rep->actions[i].checkpoint,
                               "action", rep->actions[i].action, "detail", rep->actions[i].detail));
    return api_reply(resp, 200,
                     json_pack("{s:s, s:s, s:I, s:o}", "domain", rep->domain, "domain_uuid",
                               rep->domain_uuid, "checked", (json_int_t)rep->checked, "actions",
                               actions));
}

/* A full reconcile asks libvirt and QEMU about every checkpoint: on a worker. */
int
api_checkpoints_reconcile(const struct api_request *req, struct api_response *resp)
{
    static const char *const keys[] = {NULL};

    return api_defer(req, resp, checkpoints_reconcile_now, keys);
}
