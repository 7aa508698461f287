/*
 * The route table: every path the service answers, its method, handler and
 * the least role a token needs. openapi.yaml describes exactly these routes
 * (a test holds the two together).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "metrics.h"
#include "router.h"

extern const unsigned char vv_openapi_yaml[];
extern const size_t vv_openapi_yaml_len;

static int
serve_openapi(const struct api_request *req, struct api_response *resp)
{
    char *copy = malloc(vv_openapi_yaml_len + 1);

    if (!copy)
        return -ENOMEM;
    memcpy(copy, vv_openapi_yaml, vv_openapi_yaml_len + 1);
    return api_reply_text(resp, 200, copy, "application/yaml");
}

static int
serve_metrics(const struct api_request *req, struct api_response *resp)
{
    return api_reply_text(resp, 200, metrics_render(), "text/plain; version=0.0.4");
}

const struct route router_table[] = {
    {"GET", "/healthz", api_healthz, ROLE_PUBLIC},
    {"GET", "/readyz", api_readyz, ROLE_PUBLIC},
    {"GET", "/metrics", serve_metrics, ROLE_VIEWER},
    {"GET", "/openapi.yaml", serve_openapi, ROLE_PUBLIC},
    {"GET", "/v1/version", api_version_get, ROLE_VIEWER},
    {"POST", "/v1/retention:simulate", api_retention_simulate, ROLE_OPERATOR},
    /* --- policies --- */
    {"GET", "/v1/policies", api_policies_list, ROLE_VIEWER},
    {"POST", "/v1/policies", api_policy_create, ROLE_ADMIN},
    {"GET", "/v1/policies/{name}", api_policy_get, ROLE_VIEWER},
    {"PUT", "/v1/policies/{name}", api_policy_put, ROLE_ADMIN},
    {"DELETE", "/v1/policies/{name}", api_policy_delete, ROLE_ADMIN},
    {"POST", "/v1/policies/{name}:run", api_policy_run, ROLE_OPERATOR},
    /* --- end policies --- */
    {"GET", "/v1/domains", api_domains_list, ROLE_VIEWER},
    {"GET", "/v1/domains/{domain}", api_domain_get, ROLE_VIEWER},
    /* snapshots: "current" before "{name}", which would match it too */
    {"GET", "/v1/domains/{domain}/snapshots", api_snapshots_list, ROLE_VIEWER},
    {"POST", "/v1/domains/{domain}/snapshots", api_snapshot_create, ROLE_OPERATOR},
    {"GET", "/v1/domains/{domain}/snapshots/current", api_snapshot_current, ROLE_VIEWER},
    {"GET", "/v1/domains/{domain}/snapshots/{name}", api_snapshot_get, ROLE_VIEWER},
    {"DELETE", "/v1/domains/{domain}/snapshots/{name}", api_snapshot_delete, ROLE_ADMIN},
    {"POST", "/v1/domains/{domain}/snapshots/{name}/revert", api_snapshot_revert, ROLE_ADMIN},
    /* jobs */
    {"GET", "/v1/audit", api_audit_list, ROLE_ADMIN},
    {"GET", "/v1/jobs", api_jobs_list, ROLE_VIEWER},
    {"GET", "/v1/jobs/{id}", api_job_get, ROLE_VIEWER},
    {"DELETE", "/v1/jobs/{id}", api_job_cancel, ROLE_ADMIN},
    /* backups */
    {"GET", "/v1/domains/{domain}/backups", api_backups_list, ROLE_VIEWER},
    {"POST", "/v1/domains/{domain}/backups", api_backup_create, ROLE_OPERATOR},
    {"GET", "/v1/domains/{domain}/backups/{id}", api_backup_get, ROLE_VIEWER},
    {"DELETE", "/v1/domains/{domain}/backups/{id}", api_backup_delete, ROLE_ADMIN},
    {"POST", "/v1/domains/{domain}/backups/{id}/restore", api_backup_restore, ROLE_ADMIN},
    {"POST", "/v1/domains/{domain}/backups/{id}/verify", api_backup_verify, ROLE_OPERATOR},
    {"POST", "/v1/domains/{domain}/backups/{id}/finish", api_backup_finish, ROLE_OPERATOR},
    /* The data plane: these read the guest's disk contents, so admin only. */
    {"GET", "/v1/domains/{domain}/backups/{id}/disks/{disk}/extents", api_backup_extents,
     ROLE_ADMIN},
    {"GET", "/v1/domains/{domain}/backups/{id}/disks/{disk}/data", api_backup_data, ROLE_ADMIN},
    {"GET", "/v1/events", api_events_stream, ROLE_VIEWER},
    /* --- checkpoints --- */
    {"GET", "/v1/domains/{domain}/checkpoints", api_checkpoints_list, ROLE_VIEWER},
    {"POST", "/v1/domains/{domain}/checkpoints", api_checkpoint_create, ROLE_OPERATOR},
    {"POST", "/v1/domains/{domain}/checkpoints:reconcile", api_checkpoints_reconcile,
     ROLE_OPERATOR},
    {"GET", "/v1/domains/{domain}/checkpoints/{name}", api_checkpoint_get, ROLE_VIEWER},
    {"DELETE", "/v1/domains/{domain}/checkpoints/{name}", api_checkpoint_delete, ROLE_ADMIN},
    /* --- end checkpoints --- */
};

const size_t router_table_len = sizeof(router_table) / sizeof(router_table[0]);
