/*
 * api/bodies.h - the request bodies of every resource, read and checked
 * into core's request structs. Pure: nothing here calls into core or
 * changes anything, so the fuzzer (tests/fuzz/fuzz-json-body.c) runs every
 * one of them on each input. Strings are borrowed from the request's JSON;
 * a body struct points into itself (do not copy it). Each function returns
 * 0, or -EINVAL with a detail that says what is wrong with the body,
 * recorded with err_set_pointer() (util/err.h) naming the field.
 */
#ifndef VV_API_BODIES_H
#define VV_API_BODIES_H

#include <stdbool.h>

#include "api.h"
#include "core/backup.h"
#include "core/checkpoint.h"
#include "conf/policy.h"
#include "conf/retention.h"
#include "core/snapshot.h"

#define API_BODY_DISKS_MAX 64

/* POST .../checkpoints: {name?, description?, disks?: ["vda", ...]} */
struct api_checkpoint_body {
    struct core_checkpoint_request req;
    const char *disks[API_BODY_DISKS_MAX];
};
int api_checkpoint_body_read(const struct api_request *req, struct api_checkpoint_body *out);

/* POST .../checkpoints:reconcile: {adopt?} */
int api_reconcile_body_read(const struct api_request *req, bool *adopt);

/* POST .../snapshots: {name?, description?, kind?, location?, memory_file?, quiesce?, disks?} */
struct api_snapshot_body {
    struct core_snapshot_req req;
    struct core_snapshot_disk_req disks[API_BODY_DISKS_MAX];
};
int api_snapshot_body_read(const struct api_request *req, struct api_snapshot_body *out);

/* POST .../snapshots/{name}/revert: {start?, force?} */
int api_revert_body_read(const struct api_request *req, enum conf_snapshot_start *start,
                         bool *force);

/* POST .../backups: {type?, since?, disks?, bandwidth?, mode?, target?} */
struct api_backup_body {
    struct core_backup_request req;
    const char *disks[API_BODY_DISKS_MAX];
};
int api_backup_body_read(const struct api_request *req, struct api_backup_body *out);

/* POST .../backups/{id}/restore: {target_dir, format?, bandwidth?, define?: {name, keep?}} */
int api_restore_body_read(const struct api_request *req, struct core_restore_request *out);

/* POST .../backups:prune: {retention, dry_run?} */
int api_prune_body_read(const struct api_request *req, struct conf_retention *retention,
                        bool *dry_run);

/* PATCH .../backups/{id}: exactly {protected} */
int api_protect_body_read(const struct api_request *req, bool *on);

/* The body of POST .../instant-recovery: {"name", "target_dir", "start"?} (start: true). */
int api_instant_recovery_body_read(const struct api_request *req,
                                   struct core_instant_recovery_request *out);

#define API_RETENTION_TIMES_MAX 100000

/*
 * A retention object {keep_last?, keep_hourly?, ..., keep_yearly?} (borrowed),
 * found at JSON pointer `at` of the body, into out: unknown keys and counts
 * that are not non-negative integers are refused naming the field.
 */
int api_retention_read(const json_t *obj, const char *at, struct conf_retention *out);

/*
 * POST /v1/policies and PUT /v1/policies/{name} (api/policies.c): {name,
 * domains, schedule, backup?, retention?, verify_after_days?, enabled?};
 * the backup is checked by api_backup_body_read() and the retention by
 * api_retention_read(), their fields named under /backup and /retention.
 * path_name is the name in the path (PUT), or NULL (POST: the body names
 * it). On success *ret is a new record (conf_policy_free).
 */
int api_policy_body_read(const struct api_request *req, const char *path_name,
                         struct conf_policy **ret);

#endif
