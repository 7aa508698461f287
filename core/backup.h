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
#include <stdint.h>

#include "db/backup.h"
#include "db/jobs.h"
#include "virt/virt.h"

struct core_backup_request {
    const char *type;         /* "full", "incremental", "differential" or "auto" */
    const char *since;        /* differential: the checkpoint to count from, or NULL */
    const char *const *disks; /* targets; NULL: every disk that can be backed up */
    size_t n_disks;
    uint64_t bandwidth; /* bytes per second and disk, 0 for no limit */
};

struct core_restore_request {
    const char *target_dir;  /* absolute, inside a restore root */
    const char *format;      /* "qcow2" or "raw" */
    const char *define_name; /* define a new domain of this name, or NULL */
};

/* A page of the catalog. */
struct core_backup_query {
    const char *type;  /* or NULL */
    const char *state; /* or NULL */
    size_t limit;
    size_t offset;
};

/*
 * Registers the job kinds; call before core_jobs_start(). roots is the
 * ':'-separated list of restore roots, or NULL for <vault>/restore.
 */
int core_backup_init(const char *vault_dir, const char *roots);

/*
 * After core_jobs_start(): ends the catalog rows that an earlier process
 * left "running" without a job that carries them on.
 */
void core_backup_sweep(void);

/* Frees what core_backup_init made. */
void core_backup_fini(void);

/* For the libvirt event handler: wakes the jobs that wait for a domain's job to end. */
void core_backup_on_event(const struct virt_event *ev);

/*
 * Plans and queues a backup of domain. *ret is the catalog row (state
 * "running") and *ret_job the queued job. -EOPNOTSUPP where the hypervisor
 * has no backup API, -EBUSY when the domain runs a job, -EBADFD when an
 * incremental or differential has nothing sound to count from, -EINVAL for
 * a bad request.
 */
int core_backup_create(const char *domain, const struct core_backup_request *req,
                       struct db_backup **ret, struct db_job **ret_job);

/* Lists the catalog of domain (a name or UUID known to libvirt or to the catalog). */
int core_backup_list(const char *domain, const struct core_backup_query *q, struct db_backup ***ret,
                     size_t *ret_n, size_t *ret_total);

/* Reads one backup of domain. -ENOENT when domain has none of that id. */
int core_backup_get(const char *domain, const char *id, struct db_backup **ret);

/*
 * Deletes a backup and its files, or with chain every backup of its chain.
 * -ENOTEMPTY with the dependents named in the detail when other backups
 * depend on it, -EBADFD while one of them runs. *ret_ids (NULL-terminated,
 * may be NULL) lists what was deleted.
 */
int core_backup_delete(const char *domain, const char *id, bool chain, char ***ret_ids);

/* Queues the restore of a completed backup (see DESIGN.md). */
int core_backup_restore(const char *domain, const char *id, const struct core_restore_request *req,
                        struct db_job **ret_job);

/* Queues the verification of a completed backup and the chain it stands on. */
int core_backup_verify(const char *domain, const char *id, struct db_job **ret_job);

#endif
