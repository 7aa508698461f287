/* The service's own resources: version, liveness and readiness. */
#include <errno.h>

#include "api.h"
#include "config.h"
#include "core/core.h"
#include "err.h"
#include "problem.h"

int
api_version_get(const struct api_request *req, struct api_response *resp)
{
    struct conf_versions v;
    json_t *out;
    int r;

    r = core_versions_get(&v);
    if (r < 0 && r != -ENOTCONN)
        return r;
    out = json_pack("{s:s, s:{s:s, s:b}}", "virtvault", VV_VERSION, "libvirt", "uri",
                    core_libvirt_uri(), "connected", r == 0);
    if (!out)
        return -ENOMEM;
    if (r == 0) {
        json_t *lv = json_object_get(out, "libvirt");
        json_object_set_new(lv, "library", json_string(v.library));
        json_object_set_new(lv, "driver", json_string(v.driver));
        json_object_set_new(lv, "connection_uri", json_string(v.uri));
        json_object_set_new(lv, "hypervisor",
                            v.hypervisor[0] ? json_string(v.hypervisor) : json_null());
    }
    return api_reply(resp, 200, out);
}

int
api_healthz(const struct api_request *req, struct api_response *resp)
{
    return api_reply(resp, 200, json_pack("{s:s}", "status", "ok"));
}

int
api_readyz(const struct api_request *req, struct api_response *resp)
{
    int r = core_ready();

    if (r < 0) {
        const struct problem_kind *k = problem_for_code("not_ready");
        /* What failed may name a URI or a path: only for callers with a token. */
        json_t *p =
            problem_new(k, req->trusted ? err_detail() : "a readiness check failed", req->path);
        if (p)
            json_object_set_new(p, "checks",
                                json_pack("{s:b, s:b}", "libvirt", core_hypervisor_connected(),
                                          "database", r != -EIO));
        resp->content_type = "application/problem+json";
        return api_reply(resp, 503, p);
    }
    return api_reply(resp, 200,
                     json_pack("{s:s, s:{s:b, s:b}}", "status", "ready", "checks", "libvirt", true,
                               "database", true));
}
