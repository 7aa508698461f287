/*
 * core/backup_priv.h - what the files of backups share inside core/.
 *
 * The use cases of backup.h are cut by file:
 *   backup_job.c      the shared state, the run record of the three job kinds
 *                     and how one is submitted, the domain and catalog reads
 *                     every use case starts with, paths in the vault, waiting
 *                     for libvirt's job events
 *   backup_plan.c     planning: disks, type, chain and parent, as a pure
 *                     function of the catalog's records (backup_plan_choose)
 *   backup_push.c     the backup job: begin, follow, seal, abandon; create
 *   backup_pull.c     pull mode: exports for clients, copies into the vault,
 *                     finish and the readers of the data plane
 *   backup_offline.c  backups of stopped domains (images read with qemu-nbd)
 *   backup_catalog.c  list, get, delete
 *   backup_restore.c  the restore job
 *   backup_verify.c   the verify job
 *   backup_prune.c    prune: the plan, the merge job, recovery of its intents
 *   backup.c          the table of job kinds, start-up, sweep, events
 *
 * Calls go one way: backup.c -> push -> {offline -> pull, pull, plan} ->
 * job; catalog, restore and verify -> job. Nothing calls back up the list
 * (backup.c's table of kinds points at the run functions; it calls none).
 */
#ifndef VV_CORE_BACKUP_PRIV_H
#define VV_CORE_BACKUP_PRIV_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "backup.h"
#include "backup_plan.h"
#include "conf/backup.h"
#include "conf/checkpoint.h"
#include "conf/domain.h"
#include "conf/job.h"
#include "jobs.h"

#define POLL_MS 250
/* How long a job waits for a lost libvirt connection before it gives up. */
#define RECONNECT_WAIT_MS (5 * 60 * 1000)
#define MAX_DISKS         64
#define MAX_CHAIN         1024
#define MAX_ROOTS         16
#define MAX_PULLS         64
#define PULL_IDLE_DEFAULT 600
/* How long finish waits for the job to record the end of a pull backup. */
#define FINISH_WAIT_MS (60 * 1000)
/* A unix socket path must fit into sun_path. */
#define SOCKET_PATH_MAX 107

struct db;

/* A pull backup whose exports are ready for clients (guarded by backup_ctx.lock). */
struct pull_session {
    bool used;
    char id[17];
    int64_t last_ms; /* the last read of one of its exports */
    bool finish;     /* finish was asked for */
};

/* What the backup use cases work with, set by core_backup_init(). */
struct backup_ctx {
    struct db *db; /* borrowed from the core */
    char *vault;
    char *roots[MAX_ROOTS];
    size_t n_roots;
    /* Woken by every job-completed event; waiters poll libvirt anyway. */
    pthread_mutex_t lock;
    pthread_cond_t ended;
    uint64_t generation;
    unsigned pull_idle_s;
    struct pull_session pulls[MAX_PULLS];
};
extern struct backup_ctx backup_ctx;

/* The job kinds of backups; their table is backup_kinds[] (backup.c). */
enum backup_job_kind {
    BACKUP_JOB_BACKUP,
    BACKUP_JOB_RESTORE,
    BACKUP_JOB_VERIFY,
    BACKUP_JOB_PRUNE,
    BACKUP_JOB_KIND_LAST,
};
extern const struct job_kind backup_kinds[BACKUP_JOB_KIND_LAST];

/* The run of one job of any of the kinds: the backup it is about, and each kind's own part. */
struct vault_follow;

struct backup_job {
    struct conf_cancel cancel; /* restore and verify: stops the qemu-img in flight */
    struct conf_backup *b;
    /* backup */
    uint64_t bandwidth;
    char **skip; /* targets of the domain's other disks (NULL-terminated) */
    size_t n_skip;
    bool begun;           /* libvirt's job was started by this process */
    bool pull;            /* a pull backup: libvirt serves exports on pull_socket */
    bool to_vault;        /* pull: the service copies the exports into the vault */
    bool offline;         /* the domain is shut off: its images are read with qemu-nbd */
    bool offline_defined; /* offline: the new checkpoint was given to libvirt */
    char **sources;       /* offline: the image of each disk of b, in b's order */
    char pull_socket[PATH_MAX];
    char *policy;    /* the protection policy that started the job, or NULL */
    char *plan_note; /* why planning chose the type (backup_plan), or NULL */
    /* push: per disk of b (NULL where none runs), hashing each image while QEMU writes it */
    struct vault_follow **follow;
    /* restore */
    char *target_dir;
    enum conf_image_format format;
    char *offsite_remote; /* b stands on offsite_parent, offsite only in this remote, or NULL */
    char *offsite_parent;
    char *define_name;
    unsigned keep;              /* CORE_RESTORE_KEEP_* */
    uint64_t restore_bandwidth; /* bytes per second qemu-img may write, 0 for no limit */
};

/* The last component of a (vault-relative) path: borrowed, inside path. */
static inline const char *
backup_base_name(const char *path)
{
    const char *slash = strrchr(path, '/');

    return slash ? slash + 1 : path;
}

/* The disk of b with target target, or NULL. */
static inline const struct conf_backup_disk *
backup_disk_of(const struct conf_backup *b, const char *target)
{
    for (size_t i = 0; i < b->n_disks; i++)
        if (strcmp(b->disks[i].target, target) == 0)
            return &b->disks[i];
    return NULL;
}

/* backup_job.c */

/* Frees a NULL-terminated array of strings. Accepts NULL. */
void backup_strv_free(char **v);

static inline void
backup_listp(struct conf_backup ***list, size_t n)
{
    conf_backup_list_free(*list, n);
}

/* Frees a run (the job kinds' free_data). Accepts NULL. */
void backup_job_free(void *data);

/*
 * Queues a job of kind on bj->b's domain (named domain_name), its backup id
 * as the job's params. bj is taken in every case. As core_job_submit().
 */
int backup_job_submit(enum backup_job_kind kind, const char *domain_name, struct backup_job *bj,
                      struct conf_job **ret);

/* Resolves name_or_uuid into its UUID and name (a new string), through libvirt or the catalog. */
int backup_domain_resolve(const char *name_or_uuid, char ret_uuid[37], char **ret_name);

/* Reads backup id and checks that it belongs to domain uuid. -ENOENT when not. */
int backup_of(const char *uuid, const char *id, struct conf_backup **ret);

/*
 * Reads backup id of domain (a name or UUID, as backup_domain_resolve) into
 * *ret, and the domain's name into *ret_name unless NULL. -ENOENT when the
 * domain has no such backup.
 */
int backup_find(const char *domain, const char *id, char **ret_name, struct conf_backup **ret);

/*
 * Reads a completed backup of domain for restore or verify (-EBADFD when it
 * is not one, or when it is offsite only: conf_backup.location).
 */
int backup_completed(const char *domain, const char *id, char **ret_name, struct conf_backup **ret);

/*
 * backup_completed(), and -EBADFD with a detail naming the remote when a
 * backup the one read stands on is offsite only: for mount, files and
 * instant recovery, which read the vault alone.
 */
int backup_completed_local(const char *domain, const char *id, char **ret_name,
                           struct conf_backup **ret);

/*
 * The newest backup b stands on that is offsite only: its remote and id
 * into new *ret_remote and *ret_id (both NULL when every one is local).
 */
int backup_chain_offsite(const struct conf_backup *b, char **ret_remote, char **ret_id);

/* The absolute path of a vault-relative one. */
int backup_abs_path(const char *rel, char *buf, size_t size);

/* Removes the images of b and the folders they leave empty. */
void backup_remove_images(const struct conf_backup *b);

/* The unix socket of pull backup b's exports; the scratch file of its disk target. */
int backup_pull_socket_path(const struct conf_backup *b, char *buf, size_t size);
int backup_pull_scratch_path(const struct conf_backup *b, const char *target, char *buf,
                             size_t size);

/* Makes the folder of pull sockets and scratch files. */
int backup_pull_prepare_dir(const struct conf_backup *b);

/* Removes the socket and scratch files a pull backup leaves once libvirt's job ended. */
void backup_pull_cleanup_files(const struct conf_backup *b);

/* Sleeps until a job-completed event (or a wake) or ms milliseconds pass. */
void backup_wait_event(uint64_t *seen, unsigned ms);

/* Wakes every job waiting in backup_wait_event(). */
void backup_wake_jobs(void);

/* Aborts libvirt's job on domain uuid when it still runs and waits (a little) for it to end. */
void backup_job_stop(const char *uuid);

/* backup_plan.c */

/*
 * backup_plan_select_disks() for domain d, with each disk's virtual size
 * read from libvirt (virt_disk_capacity).
 */
int backup_plan_disks(const struct conf_domain *d, const struct core_backup_request *req,
                      struct backup_plan_disk *ret, size_t max, size_t *ret_n);

/*
 * Plans a backup of domain d (its definition as libvirt has it now): picks
 * the disks, settles the type and the parent, and fills a new catalog row
 * (state running) into *ret. *ret_note is a new string saying why an auto
 * backup is a full where a chain could have been adopted from a remote
 * (core/offsite_adopt.h), else NULL.
 */
int backup_plan(const struct conf_domain *d, const struct core_backup_request *req,
                struct conf_backup **ret, char **ret_note);

/* backup_pull.c */

int backup_pull_serve(struct job *job, struct backup_job *br);
int backup_pull_complete(struct job *job, struct backup_job *br);
int backup_pull_to_vault(struct job *job, struct backup_job *br);
void backup_pull_unregister(const char *id);

struct virt_nbd;
/*
 * Copies what backup br needs of each disk from its source export into the
 * vault's image (.part). contexts: the dirty bitmap context of each disk
 * (NULL entries or array for a full backup).
 */
int backup_copy_into_vault(struct job *job, struct backup_job *br, struct virt_nbd **srcs,
                           char *const *contexts);

/* backup_offline.c */

int backup_offline_run(struct job *job, struct backup_job *br);
int backup_offline_sources(const struct conf_domain *d, const struct conf_backup *b, char ***ret);

/* backup_push.c: the backup kind, and how a backup that did not complete is undone. */

int backup_job_run(struct job *job, void *data);
int backup_job_cancel(struct job *job, void *data);
int backup_job_recover(const struct conf_job *rec, void **ret_data);
int backup_abandon(struct backup_job *br, int err);

/* backup_recovery.c: the instant recovery kind, and the recoveries a restart left. */

extern const struct job_kind backup_recovery_kind;
void backup_recovery_sweep(void);

/* backup_mount.c: what the data plane's readers need of mounts. */

/*
 * The NBD URI of disk of a mount of backup_id (any, when several) into uri
 * and its size, counted as a read for the idle timeout. -ENOENT when none.
 */
int backup_mount_uri(const char *backup_id, const char *disk, char *uri, size_t size,
                     uint64_t *ret_size);

/* Counts as a read of every mount of backup_id. */
void backup_mount_touch(const char *backup_id);

/*
 * backup_files.c: takes the file handles (files.h) of backup_id out of use
 * before its images go (delete, prune); the last request on one closes it.
 */
void backup_files_forget(const char *backup_id);

/* backup_restore.c, backup_verify.c: the run() of the restore and verify kinds. */

int backup_restore_run(struct job *job, void *data);

/* The VIRT_CLONE_KEEP_* flags of a request's CORE_RESTORE_KEEP_* flags. */
unsigned backup_restore_keep_flags(unsigned keep);

/*
 * The result JSON of a restore job of b into the files dest (one a disk):
 * backup_id, remote (left out when NULL), format, disks and, when
 * define_name is set, the domain defined as uuid with its changes. Sets
 * *ret to a new string the caller frees; returns 0 or -ENOMEM.
 */
struct virt_clone_changes;
int backup_restore_result(const struct conf_backup *b, const char *remote,
                          enum conf_image_format format, const char *define_name,
                          char (*dest)[PATH_MAX], const char *uuid,
                          const struct virt_clone_changes *changes, char **ret);
int backup_verify_run(struct job *job, void *data);

/* backup_prune.c: the prune kind, and start-up's finish of intents a killed prune left. */

int backup_prune_run(struct job *job, void *data);
int backup_prune_cancel(struct job *job, void *data);
void backup_prune_free(void *data);

/* backup_pin.c: what offsite copies read, kept from prunes and deletes meanwhile. */

/*
 * Pins backup id of domain uuid (the newest of the chain a copy reads):
 * neither it nor its ancestors are rewritten or removed until
 * backup_unpin(). Waits while a prune or a delete of the domain runs (job,
 * when not NULL, ends the wait: -ECANCELED or -ESHUTDOWN). Returns the pin's
 * slot (>= 0) for backup_unpin().
 */
int backup_pin(const char *uuid, const char *id, struct job *job);
void backup_unpin(int slot);

/*
 * Marks domain uuid's images as being rewritten (a prune, a delete): pins
 * wait until backup_rewrite_end(). *ret_pinned: a new NULL-terminated array
 * of the ids pinned now (backup_strv_free); they and their ancestors must be
 * left as they are. -EBUSY when too many run at once.
 */
int backup_rewrite_begin(const char *uuid, char ***ret_pinned);
void backup_rewrite_end(const char *uuid);

static inline void
backup_rewrite_endp(const char **uuid)
{
    if (*uuid)
        backup_rewrite_end(*uuid);
}

static inline void
backup_strv_freep(char ***v)
{
    backup_strv_free(*v);
}
void backup_prune_recover(void);

#endif
