/*
 * backup.h - backups of domains into the vault, their catalog, restore and
 * verify.
 *
 * A backup is a job (jobs.h, kind "backup"). Creating one plans it in the
 * caller's thread (type, chain, parent, checkpoints, files), records it in
 * the catalog as "running" and queues the job; the job makes the images
 * (qcow2, backed by the parent's images), begins the push backup with the
 * next checkpoint, follows libvirt's job until it ends and then seals the
 * images (fsync, checksum, rename) before the catalog calls it
 * "completed". A job that fails or is cancelled removes its images and the
 * checkpoint it created and leaves the row "failed" or "cancelled".
 *
 * Restore ("restore") and verify ("verify") are jobs too; they need the
 * database and the vault only (define of a restored domain needs libvirt).
 * Every job claims its domain (busy.h): one job per domain at a time.
 *
 * Functions return 0 or a negative errno with a detail (err.h); outputs
 * are filled on success only and owned by the caller.
 */
#ifndef VV_CORE_BACKUP_H
#define VV_CORE_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf/backup.h"
#include "conf/domain.h"
#include "conf/job.h"
#include "conf/retention.h"

struct core_backup_request {
    enum conf_backup_type type; /* full, incremental, differential or auto */
    const char *since;          /* differential: the checkpoint to count from, or NULL */
    const char *const *disks;   /* targets; NULL: every disk that can be backed up */
    size_t n_disks;
    uint64_t bandwidth; /* bytes per second and disk, 0 for no limit */
    enum conf_backup_mode mode;
    bool to_vault;      /* pull: the service reads the exports into the vault itself */
    const char *policy; /* the protection policy that asks (the job says so), or NULL */
};

/* How a client reaches the NBD export of one disk of a pull backup. */
struct core_pull_export {
    char uri[PATH_MAX + 128]; /* "nbd+unix:///vda?socket=<vault>/pull/<id>.sock" */
    char socket[PATH_MAX];
    char name[64]; /* the export name: the disk's target */
    uint64_t size;
    char context[96]; /* the dirty bitmap's context; "" for a full backup */
};

/* A connection of its own to the export of one disk of a ready pull backup. */
struct core_pull_reader;

/* What a defined clone keeps of its original; by default it keeps none of these. */
enum core_restore_keep {
    CORE_RESTORE_KEEP_LUN = 1u << 0,        /* "lun": lun disks that are not in the backup */
    CORE_RESTORE_KEEP_FILESYSTEM = 1u << 1, /* "filesystem": host folders shared in */
    CORE_RESTORE_KEEP_HOSTDEV = 1u << 2,    /* "hostdev": host devices passed through */
    CORE_RESTORE_KEEP_LOGS = 1u << 3,       /* "logs": character devices' log and output files */
};

struct core_restore_request {
    const char *target_dir;  /* absolute, inside a restore root */
    const char *format;      /* "qcow2" or "raw" */
    const char *define_name; /* define a new domain of this name, or NULL */
    unsigned keep;           /* with define_name: CORE_RESTORE_KEEP_* */
    uint64_t bandwidth;      /* bytes per second qemu-img may write, 0 for no limit */
};

/* An instant recovery: a new domain that runs from a backup point, then leaves the vault. */
struct core_instant_recovery_request {
    const char *name;       /* the new domain's name */
    const char *target_dir; /* absolute, inside a restore root: its overlays and final images */
    bool start;             /* start it and move its disks off the vault (else only define) */
    unsigned keep;          /* CORE_RESTORE_KEEP_* */
    uint64_t bandwidth;     /* of the move, bytes per second and disk; 0 for no limit */
};

/* A page of the catalog. */
struct core_backup_query {
    const enum conf_backup_type *type;   /* or NULL */
    const enum conf_backup_state *state; /* or NULL */
    size_t limit;
    size_t offset;        /* deprecated: after_id pages stably */
    const char *after_id; /* or NULL: only backups after (after_started, after_id), newest first */
    int64_t after_started;
};

/*
 * Registers the job kinds; call before core_jobs_start(). db is the open
 * database (borrowed until core_backup_fini). roots is the
 * ':'-separated list of restore roots, or NULL for <vault>/restore.
 * pull_idle_timeout (seconds, 0 for the default) ends a pull backup whose
 * exports nobody read for that long.
 */
struct db;
int core_backup_init(struct db *db, const char *vault_dir, const char *roots,
                     unsigned pull_idle_timeout);

/*
 * After core_jobs_start(): ends the catalog rows that an earlier process
 * left "running" without a job that carries them on.
 */
void core_backup_sweep(void);

/* Frees what core_backup_init made. */
void core_backup_fini(void);

/* For the libvirt event handler: wakes the jobs that wait for a domain's job to end. */
void core_backup_on_event(const struct conf_event *ev);

/*
 * Plans and queues a backup of domain. *ret is the catalog row (state
 * "running") and *ret_job the queued job. -EOPNOTSUPP where the hypervisor
 * has no backup API, -EBUSY when the domain runs a job, -EBADFD when an
 * incremental or differential has nothing sound to count from, -EINVAL for
 * a bad request.
 */
int core_backup_create(const char *domain, const struct core_backup_request *req,
                       struct conf_backup **ret, struct conf_job **ret_job);

/*
 * The catalog's version (db_backup_version): the same version, the same
 * rows. With core_backup_domain_uuid() it lets an answer be kept.
 */
uint64_t core_backup_catalog_version(void);

/* The UUID of domain (a name or UUID known to libvirt or to the catalog), into ret_uuid. */
int core_backup_domain_uuid(const char *domain, char ret_uuid[37]);

/* Lists the catalog of domain (a name or UUID known to libvirt or to the catalog). */
int core_backup_list(const char *domain, const struct core_backup_query *q,
                     struct conf_backup ***ret, size_t *ret_n, size_t *ret_total);

/* Reads one backup of domain. -ENOENT when domain has none of that id. */
int core_backup_get(const char *domain, const char *id, struct conf_backup **ret);

/*
 * Deletes a backup and its files, or with chain every backup of its chain.
 * -ENOTEMPTY with the dependents named in the detail when other backups
 * depend on it, -EBADFD while one of them runs. *ret_ids (NULL-terminated,
 * may be NULL) lists what was deleted.
 */
int core_backup_delete(const char *domain, const char *id, bool chain, char ***ret_ids);

/*
 * Sets (on) or clears the protection of backup id of domain: a protected
 * backup is never pruned nor deleted, and the prune's retention walk passes
 * over it. *ret (may be NULL) is the backup as it is now. -EBUSY while a
 * job of the domain runs.
 */
int core_backup_set_protected(const char *domain, const char *id, bool on,
                              struct conf_backup **ret);

/*
 * Prune: what a retention keeps of a domain's backups, and how the chains
 * stay whole.
 *
 * The candidates are the domain's completed backups whose images are in
 * the vault; conf_retention_prune() decides which stay (protected ones
 * always do). A kept backup whose parent goes is merged: its images are
 * rewritten to show exactly what they showed through the removed part of
 * the chain, standing on the nearest kept ancestor or, when none is left,
 * on nothing (the backup becomes a full of its chain). Its files keep
 * their names, so backups that stand on it are untouched, and its
 * checkpoint stays, so the next incremental counts from it.
 *
 * Each kept backup that is merged is one item of merges: into, and the
 * removed backups (oldest first) whose data it takes in.
 */
struct core_prune_merge {
    char *into;
    char **from; /* NULL-terminated */
    size_t n_from;
};

struct core_prune_plan {
    char **keep; /* NULL-terminated, newest first */
    size_t n_keep;
    char **remove; /* NULL-terminated, newest first */
    size_t n_remove;
    struct core_prune_merge *merges;
    size_t n_merges;
    uint64_t bytes_freed_estimate; /* from the catalog and qemu-img measure */
};

/* Frees a plan. Accepts NULL. */
void core_prune_plan_free(struct core_prune_plan *p);
static inline void
core_prune_plan_freep(struct core_prune_plan **p)
{
    core_prune_plan_free(*p);
}

/*
 * Prunes the backups of domain (a name or UUID) by retention. With dry_run
 * nothing changes: *ret_plan (a new plan) says what would be kept, removed
 * and merged. Without, the prune is queued as a job of kind "prune" on the
 * domain (*ret_job), which plans again when it runs (the domain claimed:
 * no backup of it runs meanwhile) and whose result is {"keep", "remove",
 * "merge", "bytes_freed"}; ret_plan may be NULL then and is not set.
 *
 * The job is safe against a crash at any moment: it records an intent
 * (the images it writes and removes) before it touches a file, writes
 * the merged images beside the old ones as .part files (synced, hashed),
 * then switches the catalog (parents, types, checksums, stored_bytes, the
 * removed rows) and commits the intent in one transaction, and only then
 * renames and removes files. core_backup_init() finishes (committed) or
 * undoes (not) whatever intent a killed process left.
 *
 * For the policy scheduler: call it with the domain's UUID after a policy
 * backup ended. -EINVAL for a retention that keeps everything, -EBUSY when
 * a job of the domain runs, -ENOENT for an unknown domain.
 */
int core_backup_prune(const char *domain, const struct conf_retention *retention, bool dry_run,
                      struct core_prune_plan **ret_plan, struct conf_job **ret_job);

/* Queues the restore of a completed backup (see DESIGN.md). */
int core_backup_restore(const char *domain, const char *id, const struct core_restore_request *req,
                        struct conf_job **ret_job);

/*
 * Queues an instant recovery of completed backup id of domain (see
 * backup_recovery.c): the job defines and starts the new domain on qcow2
 * overlays over the backup's chain in the vault (its result says "phase":
 * "running" as soon as it runs), then moves each disk into target_dir with
 * a block copy and a pivot. From this call on until the domain no longer
 * needs the vault (or is gone), the backups of that chain are locked
 * (core_backup_locked_by). -EEXIST when a domain of that name exists.
 */
int core_backup_instant_recovery(const char *domain, const char *id,
                                 const struct core_instant_recovery_request *req,
                                 struct conf_job **ret_job);

/*
 * Whether backup_id is locked by an instant recovery whose domain still
 * runs from it: 1 with the recovered domain's name in *ret_domain (a new
 * string), 0 when not, or a negative errno. What delete (and prune) must
 * refuse on, with 409 naming the domain. A recovery whose domain is gone
 * is released here.
 */
int core_backup_locked_by(const char *backup_id, char **ret_domain);

/* Queues the verification of a completed backup and the chain it stands on. */
int core_backup_verify(const char *domain, const char *id, struct conf_job **ret_job);

/*
 * Pull mode.
 *
 * A pull backup read by a client ("mode": "pull") is "ready" once libvirt
 * serves its exports on a unix socket in the vault; its job then waits
 * until core_backup_finish() (the checkpoint is kept: "completed"), a
 * cancel of the job (the checkpoint is removed: "cancelled"), or until no
 * one read an export for the idle timeout ("failed", the checkpoint
 * removed). Such a backup stores nothing in the vault.
 */

/* True when b is a pull backup read by a client (the vault holds no images of it). */
bool core_backup_is_client_pull(const struct conf_backup *b);

/*
 * Fills *ret with how to reach the export of disk target of the client
 * pull backup b. -ENOENT when b has no such disk, -EBADFD when b is not a
 * client pull backup.
 */
int core_backup_pull_export(const struct conf_backup *b, const char *target,
                            struct core_pull_export *ret);

/*
 * Ends a ready pull backup: libvirt's job is ended, the checkpoint kept,
 * and the backup recorded completed. *ret is the backup as it ended.
 * -EBADFD when it is not a ready pull backup.
 */
int core_backup_finish(const char *domain, const char *id, struct conf_backup **ret);

/*
 * Connects to the export of disk of ready pull backup id, with the dirty
 * bitmap's context when the backup is incremental. Every read through the
 * reader counts as activity for the idle timeout. -EBADFD when the backup
 * is not ready, -ENOENT for no such backup or disk.
 */
int core_pull_reader_open(const char *domain, const char *id, const char *disk,
                          struct core_pull_reader **ret);
void core_pull_reader_free(struct core_pull_reader *r);
uint64_t core_pull_reader_size(const struct core_pull_reader *r);

/* True when the reader offers a dirty bitmap (an incremental pull backup; never a mount). */
bool core_pull_reader_has_dirty(const struct core_pull_reader *r);

/*
 * A page of the extents of the export from offset on, within
 * [offset, offset+length): with dirty the dirty bitmap's (bit 0 dirty;
 * -EINVAL for a full backup, which has none), else base:allocation. At most
 * limit (>= 1) extents; *ret is a new array, *ret_next where they end (the
 * end of the range, or the offset to ask from next). -EINVAL when offset
 * lies beyond the end.
 */
int core_pull_reader_extents(struct core_pull_reader *r, bool dirty, uint64_t offset,
                             uint64_t length, size_t limit, struct conf_extent **ret, size_t *ret_n,
                             uint64_t *ret_next);
/*
 * What every reader fetched from its export (*ret_read bytes) and answered
 * as zeros without fetching (*ret_zero bytes) since the process started.
 */
void core_pull_reader_counters(uint64_t *ret_read, uint64_t *ret_zero);
/* Announces that [pos, pos+len) will be read in order next (read-ahead, zeros not fetched). */
void core_pull_reader_prepare(struct core_pull_reader *r, uint64_t pos, uint64_t len);
/* Reads up to max bytes at pos into buf: the count (> 0) or a negative errno. */
ssize_t core_pull_reader_read(struct core_pull_reader *r, uint64_t pos, void *buf, size_t max);
/*
 * Passes over up to max bytes at pos that read as zeros, without writing
 * them anywhere: their count, 0 when the bytes at pos are data, or a
 * negative errno (see virt_nbd_read_zeros()).
 */
ssize_t core_pull_reader_zeros(struct core_pull_reader *r, uint64_t pos, size_t max);

/*
 * Mounts: a completed backup point served read-only over NBD (one qemu-nbd
 * per disk, on unix sockets in <vault>/mounts), the whole chain as it was
 * at that point, until core_mount_delete() or nobody read it for the idle
 * timeout. The data plane's readers read a mounted backup as they read a
 * ready pull backup. Needs no libvirt. Several mounts at once, of the same
 * backup too.
 */
struct core_mount_disk {
    char target[64];
    char socket[PATH_MAX];
    char uri[PATH_MAX + 128]; /* "nbd+unix:///vda?socket=..." */
    uint64_t size;
};

struct core_mount {
    char id[17];
    char backup_id[17];
    char domain_uuid[37];
    char *domain; /* the backed-up domain's name */
    int64_t created_ms, last_ms;
    unsigned idle_timeout_s;
    struct core_mount_disk *disks;
    size_t n_disks;
};

void core_mount_free(struct core_mount *m);
void core_mount_list_free(struct core_mount **list, size_t n);

/*
 * Starts the idle reaper (idle_s seconds, 0 for the default of 600) and
 * ends what an earlier process left mounted. Call after core_backup_init().
 */
int core_backup_mount_init(unsigned idle_s);

/* Ends every mount and stops the reaper. */
void core_backup_mount_fini(void);

/* Mounts completed backup id of domain; *ret is the new mount. -EBADFD when it is not one. */
int core_backup_mount(const char *domain, const char *id, struct core_mount **ret);

/* Every mount, oldest first (*ret a new array of *ret_n). */
int core_mount_list(struct core_mount ***ret, size_t *ret_n);

/* Reads mount mid. -ENOENT when there is none. */
int core_mount_get(const char *mid, struct core_mount **ret);

/* Ends mount mid. -ENOENT when there is none. */
int core_mount_delete(const char *mid);

#endif
