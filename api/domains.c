/* GET /v1/domains and /v1/domains/{domain}. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "api_json.h"
#include "cleanup.h"
#include "core/core.h"

static json_t *
feature_json(const struct conf_feature *f)
{
    return json_pack("{s:b, s:s?}", "supported", f->supported, "reason", f->reason);
}

static json_t *
disk_json(const struct conf_disk *k)
{
    return json_pack("{s:s, s:s?, s:s?, s:s?, s:s?, s:s?}", "target", k->target, "device",
                     k->device, "bus", k->bus, "type", k->type, "source", k->source, "format",
                     k->format);
}

json_t *
api_domain_json(const struct conf_domain *d)
{
    json_t *disks = json_array();
    json_t *out;

    if (!disks)
        return NULL;
    for (size_t i = 0; i < d->n_disks; i++)
        json_array_append_new(disks, disk_json(&d->disks[i]));
    out = json_pack("{s:s, s:s, s:s, s:b, s:i, s:I, s:o, s:{s:o, s:o, s:o, s:o, s:o}}", "name",
                    d->name, "uuid", d->uuid, "state", conf_domain_state_to_string(d->state),
                    "persistent", d->persistent, "vcpus", (int)d->vcpus, "memory_bytes",
                    (json_int_t)d->memory_bytes, "disks", disks, "supports", "snapshots",
                    feature_json(&d->snapshots), "checkpoints", feature_json(&d->checkpoints),
                    "push_backup", feature_json(&d->push_backup), "pull_backup",
                    feature_json(&d->pull_backup), "incremental", feature_json(&d->incremental));
    return out;
}

/* Paged by name: a page_token holds the last name answered. */
int
api_domains_list(const struct api_request *req, struct api_response *resp)
{
    _cleanup_(api_page_clear) struct api_page page = {0};
    struct conf_domain *list = NULL;
    const char *next = NULL;
    size_t n = 0;
    bool more = false;
    json_t *out, *items;
    int r;

    r = api_query_page(req, "domains", &page);
    if (r < 0)
        return r;
    /* Only the page's domains are read in full: the others cost a name each. */
    r = core_domain_list_page(page.after, page.limit, &list, &n, &more);
    if (r < 0)
        return r;
    items = json_array();
    for (size_t i = 0; items && i < n; i++)
        json_array_append_new(items, api_domain_json(&list[i]));
    if (more && n > 0)
        next = list[n - 1].name;
    out = api_page_json(items, "domains", next);
    conf_domain_list_free(list, n);
    return api_reply(resp, 200, out);
}

int
api_domain_reply(const char *domain, struct api_response *resp)
{
    struct conf_domain *d = NULL;
    json_t *out;
    int r;

    r = core_domain_get(domain, &d);
    if (r < 0)
        return r;
    out = api_domain_json(d);
    conf_domain_free(d);
    return api_reply(resp, 200, out);
}

int
api_domain_get(const struct api_request *req, struct api_response *resp)
{
    return api_domain_reply(req->params[0], resp);
}
