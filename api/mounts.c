/*
 * Mounts of backup points: POST /v1/domains/{domain}/backups/{id}/mounts,
 * GET /v1/mounts[/{mount}], DELETE /v1/mounts/{mount}. A mount's disks are
 * read over NBD (their uri) or through the backup's data plane routes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "api_json.h"
#include "cleanup.h"
#include "core/backup.h"
#include "err.h"

static json_t *
mount_json(const struct core_mount *m)
{
    json_t *disks = json_array();

    if (!disks)
        return NULL;
    for (size_t i = 0; i < m->n_disks; i++) {
        const struct core_mount_disk *d = &m->disks[i];
        char data[256];

        snprintf(data, sizeof(data), "/v1/domains/%s/backups/%s/disks/%s/data", m->domain_uuid,
                 m->backup_id, d->target);
        json_array_append_new(disks, json_pack("{s:s, s:I, s:s, s:s, s:s}", "target", d->target,
                                               "size", (json_int_t)d->size, "uri", d->uri, "socket",
                                               d->socket, "data", data));
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:I, s:o}", "id", m->id, "domain", m->domain,
                     "domain_uuid", m->domain_uuid, "backup_id", m->backup_id, "created_at",
                     api_time_json(m->created_ms), "last_read_at", api_time_json(m->last_ms),
                     "idle_timeout", (json_int_t)m->idle_timeout_s, "disks", disks);
}

int
api_mount_create(const struct api_request *req, struct api_response *resp)
{
    struct core_mount *m = NULL;
    json_t *out;
    int r;

    r = api_body_unpack(req, API_NO_FIELDS, "{}");
    if (r < 0)
        return r;
    r = core_backup_mount(req->params[0], req->params[1], &m);
    if (r < 0)
        return r;
    api_set_location(resp, "/v1/mounts/%s", m->id);
    out = mount_json(m);
    core_mount_free(m);
    return api_reply(resp, 201, out);
}

int
api_mounts_list(const struct api_request *req, struct api_response *resp)
{
    _cleanup_(api_page_clear) struct api_page page = {0};
    struct core_mount **list = NULL;
    size_t n = 0, start = 0;
    _cleanup_free_ char *next = NULL;
    json_t *items;
    int r;

    r = api_query_page(req, "mounts", &page);
    if (r < 0)
        return r;
    r = core_mount_list(&list, &n);
    if (r < 0)
        return r;
    /* Few at most (32), oldest first: the key is the last id answered. */
    if (page.after)
        for (size_t i = 0; i < n; i++)
            if (strcmp(list[i]->id, page.after) == 0)
                start = i + 1;
    items = json_array();
    for (size_t i = start; items && i < n && i < start + page.limit; i++)
        json_array_append_new(items, mount_json(list[i]));
    if (start + page.limit < n && !(next = strdup(list[start + page.limit - 1]->id))) {
        core_mount_list_free(list, n);
        json_decref(items);
        return -ENOMEM;
    }
    core_mount_list_free(list, n);
    return api_reply(resp, 200, api_page_json(items, "mounts", next));
}

int
api_mount_get(const struct api_request *req, struct api_response *resp)
{
    struct core_mount *m = NULL;
    json_t *out;
    int r;

    r = core_mount_get(req->params[0], &m);
    if (r < 0)
        return r;
    out = mount_json(m);
    core_mount_free(m);
    return api_reply(resp, 200, out);
}

int
api_mount_delete(const struct api_request *req, struct api_response *resp)
{
    int r = core_mount_delete(req->params[0]);

    if (r < 0)
        return r;
    resp->status = 204;
    return 0;
}
