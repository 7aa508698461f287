/*
 * core/offsite.h - offsite copies: remotes (S3-compatible buckets), copies
 * of backups to them, and restores from them on any host.
 *
 * A remote is a bucket (endpoint, region, bucket, prefix, addressing, an
 * access key and its secret, a CA file, an encryption key file). Its secret
 * is write-only: it lives in a file of its own, mode 0600 in a 0700 folder
 * (remote-secrets/ beside the database), never in the database (which the
 * service's group may read), never in an answer or a log line.
 *
 * A copy (job kind backup_copy) uploads a backup's sealed images and then
 * its manifest (the catalog record, conf/remote.h) to a remote, a chain's
 * ancestors first; what the bucket holds already is not uploaded again.
 * Each image streams from the vault through zstd and, with a key, AES-256-GCM
 * (net/frame.h) into a multipart upload with a few parts in flight; each
 * part the bucket confirmed is recorded (db/remote.h), so that a crash, a
 * stop or a network failure resumes where it stopped: a restarted service
 * takes over the copy jobs that were running. The manifest is written
 * last: a manifest in the bucket means a complete copy.
 *
 * Any host lists what a bucket holds from its manifests, and restores any
 * backup in it (job kind offsite_restore): the chain's images are
 * downloaded, opened, decompressed and checked against the manifest's
 * SHA-256 into a folder inside the restore target, flattened like a local
 * restore, then removed. The local catalog is not needed.
 *
 * docs/offsite.md describes the objects in the bucket.
 */
#ifndef VV_CORE_OFFSITE_H
#define VV_CORE_OFFSITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backup.h"
#include "conf/job.h"
#include "conf/remote.h"
#include "conf/retention.h"

/* Registers the job kinds of copies and restores. Call before core_jobs_start(). */
int core_offsite_init(const char *state_dir);

/* Frees what core_offsite_init() took. */
void core_offsite_fini(void);

/*
 * Creates remote in (its secret required), or changes remote in->name
 * (its secret kept when in->secret is NULL). *ret: the stored remote
 * without its secret (conf_remote_clear). -EEXIST / -ENOENT as the name
 * is taken or not; -EINVAL with a detail naming the field for a key file
 * or a CA file that cannot be used.
 */
int core_remote_create(const struct conf_remote *in, struct conf_remote *ret);
int core_remote_update(const struct conf_remote *in, struct conf_remote *ret);

/* Reads a remote without its secret. -ENOENT when there is none. */
int core_remote_get(const char *name, struct conf_remote *ret);

/* Lists the remotes by name, without secrets (conf_remote_list_free). */
int core_remote_list(struct conf_remote **ret, size_t *ret_n);

/* Deletes a remote (not what its bucket holds). -EBUSY while a copy to it runs. */
int core_remote_delete(const char *name);

/* What a check of a remote found. */
struct core_remote_check {
    bool ok;            /* the probe object was written, read back equal and deleted */
    char step[16];      /* the step that failed: "put", "get", "compare", "delete", "bucket" */
    char detail[512];   /* why it failed, or "" */
    bool versioning;    /* the bucket keeps versions */
    bool object_lock;   /* the bucket has object lock */
    bool encrypted;     /* copies to it are encrypted */
    char key_id[65];    /* the key's id when encrypted */
    int64_t elapsed_ms; /* how long the check took */
};

/* Proves access to remote name with a probe object. -ENOENT when there is no such remote. */
int core_remote_check(const char *name, struct core_remote_check *ret);

/*
 * Queues a copy of completed backup id of domain to remote (bandwidth:
 * bytes per second, 0 for no limit): its chain from the newest ancestor
 * the bucket holds, oldest first. -ENOENT for no such backup or
 * remote (naming which), -EBADFD for a backup that is not completed,
 * -EBUSY while the same copy runs.
 */
int core_backup_copy(const char *domain, const char *id, const char *remote, uint64_t bandwidth,
                     struct conf_job **ret_job);

/*
 * core_backup_copy() for protection policy policy (recorded with the job):
 * on a remote that locks copies (lock_days > 0), each new copy is locked
 * for lock_s seconds (> 0) instead of lock_days.
 */
int core_backup_copy_policy(const char *domain, const char *id, const char *remote,
                            uint64_t bandwidth, const char *policy, int64_t lock_s,
                            struct conf_job **ret_job);

/*
 * A remote prune: applies retention r to the backups of domain (a UUID
 * or a name) that remote's bucket holds, by the rule of conf/remote_prune.h
 * (a locked backup is held, never deleted early; a kept backup whose
 * parent goes is merged by upload into a full or onto its kept ancestor,
 * its manifest rewritten once the new objects are in the bucket), then
 * deleting the removed backups (manifests before objects, newest first)
 * and sweeping objects under the domain's folder that no manifest names
 * (core/offsite_prune.c). dry_run: *ret_plan is the plan as JSON text (new
 * string) and nothing changes; else *ret_job is the queued job (kind
 * offsite_prune) whose result is that JSON. -ENOENT naming /domain when
 * the bucket holds no backup of domain.
 */
int core_offsite_prune(const char *remote, const char *domain, const struct conf_retention *r,
                       bool dry_run, const char *policy, char **ret_plan,
                       struct conf_job **ret_job);
/* Lists the copies of backup id of domain (conf_copy_list_free). */
int core_backup_copies(const char *domain, const char *id, struct conf_copy **ret, size_t *ret_n);

/*
 * Lists the backups remote's bucket holds, from their manifests, ordered by
 * backup id; domain (a UUID or a name) and host filter when not NULL.
 * *ret is a new array of *ret_n manifests (free each with conf_manifest_free).
 */
int core_offsite_list(const char *remote, const char *domain, const char *host,
                      struct conf_manifest ***ret, size_t *ret_n);

/*
 * Deletes backup id from remote's bucket: its manifest, then its images.
 * Refused with -EBADFD and the due date while the copy is locked (object
 * lock: never tried early), with -ENOTEMPTY while another backup in the
 * bucket stands on it (a chain is never left broken), -ENOENT when the
 * bucket holds no such backup. Its copy record on this host goes too.
 */
int core_offsite_delete(const char *remote, const char *id);

/* Queues a restore of backup id from remote's bucket on this host (see core_backup_restore). */
int core_offsite_restore(const char *remote, const char *id, const struct core_restore_request *req,
                         struct conf_job **ret_job);

#endif
