/*
 * The route table: every path the service answers, its method, handler and
 * the least role a token needs. openapi.yaml describes exactly these routes
 * (a test holds the two together).
 *
 * .conditional = true makes a route answer conditional requests: on a GET
 * of one resource, an ETag and If-None-Match/If-Match; on its PUT, PATCH
 * or DELETE, If-Match/If-None-Match checked against the GET of the same
 * path (which must be conditional too; test-router holds the table to it).
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
    {.method = "GET", .path = "/healthz", .handler = api_healthz, .role = ROLE_PUBLIC},
    {.method = "GET", .path = "/readyz", .handler = api_readyz, .role = ROLE_PUBLIC},
    {.method = "GET", .path = "/metrics", .handler = serve_metrics, .role = ROLE_VIEWER},
    {.method = "GET", .path = "/openapi.yaml", .handler = serve_openapi, .role = ROLE_PUBLIC},
    {.method = "GET", .path = "/v1/version", .handler = api_version_get, .role = ROLE_VIEWER},
    {.method = "POST",
     .path = "/v1/retention:simulate",
     .handler = api_retention_simulate,
     .role = ROLE_OPERATOR},
    /* --- policies --- */
    {.method = "GET", .path = "/v1/policies", .handler = api_policies_list, .role = ROLE_VIEWER},
    {.method = "POST", .path = "/v1/policies", .handler = api_policy_create, .role = ROLE_ADMIN},
    {.method = "GET",
     .path = "/v1/policies/{name}",
     .handler = api_policy_get,
     .role = ROLE_VIEWER,
     .conditional = true},
    {.method = "PUT",
     .path = "/v1/policies/{name}",
     .handler = api_policy_put,
     .role = ROLE_ADMIN,
     .conditional = true},
    {.method = "DELETE",
     .path = "/v1/policies/{name}",
     .handler = api_policy_delete,
     .role = ROLE_ADMIN,
     .conditional = true},
    {.method = "POST",
     .path = "/v1/policies/{name}:run",
     .handler = api_policy_run,
     .role = ROLE_OPERATOR},
    /* --- end policies --- */
    {.method = "GET", .path = "/v1/domains", .handler = api_domains_list, .role = ROLE_VIEWER},
    {.method = "GET",
     .path = "/v1/domains/{domain}",
     .handler = api_domain_get,
     .role = ROLE_VIEWER,
     .conditional = true},
    /* snapshots: "current" before "{name}", which would match it too */
    {.method = "GET",
     .path = "/v1/domains/{domain}/snapshots",
     .handler = api_snapshots_list,
     .role = ROLE_VIEWER},
    {.method = "POST",
     .path = "/v1/domains/{domain}/snapshots",
     .handler = api_snapshot_create,
     .role = ROLE_OPERATOR},
    {.method = "GET",
     .path = "/v1/domains/{domain}/snapshots/current",
     .handler = api_snapshot_current,
     .role = ROLE_VIEWER,
     .conditional = true},
    {.method = "GET",
     .path = "/v1/domains/{domain}/snapshots/{name}",
     .handler = api_snapshot_get,
     .role = ROLE_VIEWER,
     .conditional = true},
    {.method = "DELETE",
     .path = "/v1/domains/{domain}/snapshots/{name}",
     .handler = api_snapshot_delete,
     .role = ROLE_ADMIN,
     .conditional = true},
    {.method = "POST",
     .path = "/v1/domains/{domain}/snapshots/{name}/revert",
     .handler = api_snapshot_revert,
     .role = ROLE_ADMIN},
    /* jobs */
    {.method = "GET", .path = "/v1/audit", .handler = api_audit_list, .role = ROLE_ADMIN},
    {.method = "GET", .path = "/v1/jobs", .handler = api_jobs_list, .role = ROLE_VIEWER},
    {.method = "GET",
     .path = "/v1/jobs/{id}",
     .handler = api_job_get,
     .role = ROLE_VIEWER,
     .conditional = true},
    {.method = "DELETE",
     .path = "/v1/jobs/{id}",
     .handler = api_job_cancel,
     .role = ROLE_ADMIN,
     .conditional = true},
    /* backups */
    {.method = "GET",
     .path = "/v1/domains/{domain}/backups",
     .handler = api_backups_list,
     .role = ROLE_VIEWER},
    {.method = "POST",
     .path = "/v1/domains/{domain}/backups",
     .handler = api_backup_create,
     .role = ROLE_OPERATOR},
    {.method = "POST",
     .path = "/v1/domains/{domain}/backups:prune",
     .handler = api_backups_prune,
     .role = ROLE_ADMIN},
    {.method = "GET",
     .path = "/v1/domains/{domain}/backups/{id}",
     .handler = api_backup_get,
     .role = ROLE_VIEWER,
     .conditional = true},
    {.method = "DELETE",
     .path = "/v1/domains/{domain}/backups/{id}",
     .handler = api_backup_delete,
     .role = ROLE_ADMIN,
     .conditional = true},
    {.method = "PATCH",
     .path = "/v1/domains/{domain}/backups/{id}",
     .handler = api_backup_patch,
     .role = ROLE_ADMIN,
     .conditional = true},
    {.method = "POST",
     .path = "/v1/domains/{domain}/backups/{id}/restore",
     .handler = api_backup_restore,
     .role = ROLE_ADMIN},
    {.method = "POST",
     .path = "/v1/domains/{domain}/backups/{id}/instant-recovery",
     .handler = api_backup_instant_recovery,
     .role = ROLE_ADMIN},
    {.method = "POST",
     .path = "/v1/domains/{domain}/backups/{id}/mounts",
     .handler = api_mount_create,
     .role = ROLE_ADMIN},
    {.method = "GET", .path = "/v1/mounts", .handler = api_mounts_list, .role = ROLE_VIEWER},
    {.method = "GET",
     .path = "/v1/mounts/{mount}",
     .handler = api_mount_get,
     .role = ROLE_VIEWER,
     .conditional = true},
    {.method = "DELETE",
     .path = "/v1/mounts/{mount}",
     .handler = api_mount_delete,
     .role = ROLE_ADMIN,
     .conditional = true},
    {.method = "POST",
     .path = "/v1/domains/{domain}/backups/{id}/verify",
     .handler = api_backup_verify,
     .role = ROLE_OPERATOR},
    {.method = "POST",
     .path = "/v1/domains/{domain}/backups/{id}/finish",
     .handler = api_backup_finish,
     .role = ROLE_OPERATOR},
    /* The data plane: these read the guest's disk contents, so admin only. */
    {.method = "GET",
     .path = "/v1/domains/{domain}/backups/{id}/disks/{disk}/extents",
     .handler = api_backup_extents,
     .role = ROLE_ADMIN},
    {.method = "GET",
     .path = "/v1/domains/{domain}/backups/{id}/disks/{disk}/data",
     .handler = api_backup_data,
     .role = ROLE_ADMIN},
    /* Files inside backup points: the guest's contents, so admin only as the data plane. */
    {.method = "GET",
     .path = "/v1/domains/{domain}/backups/{id}/disks/{disk}/filesystems",
     .handler = api_backup_filesystems,
     .role = ROLE_ADMIN},
    {.method = "GET",
     .path = "/v1/domains/{domain}/backups/{id}/disks/{disk}/files",
     .handler = api_backup_files_list,
     .role = ROLE_ADMIN},
    {.method = "GET",
     .path = "/v1/domains/{domain}/backups/{id}/disks/{disk}/files/content",
     .handler = api_backup_file_content,
     .role = ROLE_ADMIN},
    {.method = "GET", .path = "/v1/events", .handler = api_events_stream, .role = ROLE_VIEWER},
    /* --- checkpoints --- */
    {.method = "GET",
     .path = "/v1/domains/{domain}/checkpoints",
     .handler = api_checkpoints_list,
     .role = ROLE_VIEWER},
    {.method = "POST",
     .path = "/v1/domains/{domain}/checkpoints",
     .handler = api_checkpoint_create,
     .role = ROLE_OPERATOR},
    {.method = "POST",
     .path = "/v1/domains/{domain}/checkpoints:reconcile",
     .handler = api_checkpoints_reconcile,
     .role = ROLE_OPERATOR},
    {.method = "GET",
     .path = "/v1/domains/{domain}/checkpoints/{name}",
     .handler = api_checkpoint_get,
     .role = ROLE_VIEWER,
     .conditional = true},
    {.method = "DELETE",
     .path = "/v1/domains/{domain}/checkpoints/{name}",
     .handler = api_checkpoint_delete,
     .role = ROLE_ADMIN,
     .conditional = true},
    /* --- end checkpoints --- */
    /* --- webhooks: they carry secrets and reach out of the host, so admin only --- */
    {.method = "GET", .path = "/v1/webhooks", .handler = api_webhooks_list, .role = ROLE_ADMIN},
    {.method = "POST", .path = "/v1/webhooks", .handler = api_webhook_create, .role = ROLE_ADMIN},
    {.method = "GET",
     .path = "/v1/webhooks/{id}",
     .handler = api_webhook_get,
     .role = ROLE_ADMIN,
     .conditional = true},
    {.method = "PUT",
     .path = "/v1/webhooks/{id}",
     .handler = api_webhook_update,
     .role = ROLE_ADMIN,
     .conditional = true},
    {.method = "DELETE",
     .path = "/v1/webhooks/{id}",
     .handler = api_webhook_delete,
     .role = ROLE_ADMIN,
     .conditional = true},
    {.method = "GET",
     .path = "/v1/webhooks/{id}/deliveries",
     .handler = api_webhook_deliveries,
     .role = ROLE_ADMIN},
    /* --- end webhooks --- */
};

const size_t router_table_len = sizeof(router_table) / sizeof(router_table[0]);
