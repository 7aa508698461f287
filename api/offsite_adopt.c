/*
 * POST /v1/domains/{domain}/checkpoints:adopt {"remote": NAME}: a domain
 * without backups in the local catalog takes its chain back from a
 * remote's bucket (core/offsite_adopt.h).
 */
#include <errno.h>
#include <stdbool.h>

#include "api.h"
#include "cleanup.h"
#include "core/offsite_adopt.h"
#include "err.h"
#include "text.h"

static int
adopt_now(const struct api_request *req, struct api_response *resp)
{
    static const struct api_field fields[] = {{"remote", API_FIELD_STRING, true, false},
                                              {NULL, API_FIELD_STRING, false, false}};
    __attribute__((cleanup(offsite_adoption_clear))) struct offsite_adoption a = {0};
    const char *remote = NULL;
    json_t *backups, *checkpoints;
    int r;

    r = api_body_unpack(req, fields, "{s:s}", "remote", &remote);
    if (r < 0)
        return r;
    if (!text_name_valid(remote))
        return err_set_pointer(-EINVAL, "/remote", "must be a remote's name");
    r = core_checkpoints_adopt(req->params[0], remote, &a);
    if (r < 0)
        return r;
    backups = json_array();
    checkpoints = json_array();
    for (size_t i = 0; backups && checkpoints && i < a.n; i++) {
        json_array_append_new(backups, json_string(a.backups[i]));
        json_array_append_new(checkpoints, json_string(a.checkpoints[i]));
    }
    return api_reply(resp, 200,
                     json_pack("{s:s, s:s, s:o*, s:o*}", "remote", a.remote, "chain_id", a.chain_id,
                               "backups", backups, "checkpoints", checkpoints));
}

/* A few reads of the bucket and libvirt redefines: on a worker. */
int
api_checkpoints_adopt(const struct api_request *req, struct api_response *resp)
{
    static const char *const keys[] = {NULL};

    return api_defer(req, resp, adopt_now, keys);
}
