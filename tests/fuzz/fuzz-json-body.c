/*
 * Fuzzes request bodies as the server parses them (duplicate keys refused)
 * and then as every resource reads them (api/bodies.h): checkpoint, reconcile,
 * snapshot, revert, backup, restore, prune, protect and policy bodies, each on every input.
 */
#include <stdint.h>

#include "api/bodies.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *body =
        json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    struct api_request req = {.method = "POST", .path = "/fuzz", .body = body};
    struct api_checkpoint_body checkpoint;
    struct api_snapshot_body snapshot;
    struct api_backup_body backup;
    struct core_restore_request restore;
    struct conf_retention retention;
    enum conf_snapshot_start start;
    bool flag;

    if (!body)
        return 0;
    (void)api_checkpoint_body_read(&req, &checkpoint);
    (void)api_reconcile_body_read(&req, &flag);
    (void)api_snapshot_body_read(&req, &snapshot);
    (void)api_revert_body_read(&req, &start, &flag);
    (void)api_backup_body_read(&req, &backup);
    (void)api_restore_body_read(&req, &restore);
    (void)api_prune_body_read(&req, &retention, &flag);
    (void)api_protect_body_read(&req, &flag);
    struct conf_policy *policy = NULL;
    if (api_policy_body_read(&req, NULL, &policy) == 0)
        conf_policy_free(policy);
    policy = NULL;
    if (api_policy_body_read(&req, "fuzz", &policy) == 0)
        conf_policy_free(policy);
    char *out = json_dumps(body, JSON_COMPACT);
    free(out);
    json_decref(body);
    return 0;
}
