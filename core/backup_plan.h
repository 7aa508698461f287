/*
 * core/backup_plan.h - the choices of backup planning, as pure functions of
 * records: which disks, which type, which parent. No database, libvirt or
 * vault is asked here; core/backup_plan.c reads the catalog (and libvirt's
 * checkpoints) into a struct backup_plan_catalog and calls these, and the
 * unit tests call them on catalogs made in memory.
 *
 * Functions return 0 or a negative errno with a detail (err.h).
 */
#ifndef VV_CORE_BACKUP_PLAN_H
#define VV_CORE_BACKUP_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backup.h"
#include "conf/backup.h"
#include "conf/checkpoint.h"
#include "conf/domain.h"

/* A checkpoint the service stores for the domain, and whether libvirt has it. */
struct backup_plan_checkpoint {
    const char *name;
    enum conf_checkpoint_state state;
    const char *reason; /* why it has that state, or NULL */
    bool in_libvirt;
};

/* What planning chooses from: the domain's catalog, as records. */
struct backup_plan_catalog {
    struct conf_backup *const *backups; /* its completed backups, newest first */
    size_t n_backups;
    const struct backup_plan_checkpoint *checkpoints; /* every checkpoint stored for it */
    size_t n_checkpoints;
    /* 0, or the error (with its detail) with which libvirt could not be asked for checkpoints */
    int libvirt_error;
    const char *libvirt_detail;
};

/* One disk of the plan: its target and virtual size. */
struct backup_plan_disk {
    const char *target;
    uint64_t size;
};

/*
 * The disks a backup of domain d takes, in the domain's order: those
 * req->disks names (each must be a qcow2 disk, named once), or every qcow2
 * disk. Fills at most max entries of ret (targets borrowed from d; size 0).
 * -EINVAL with the reason for a bad request or a domain without such disks.
 */
int backup_plan_select_disks(const struct conf_domain *d, const struct core_backup_request *req,
                             struct backup_plan_disk *ret, size_t max, size_t *ret_n);

/*
 * Settles the type of a backup of disks (n of them) and the backup it
 * counts from: full has no parent; incremental counts from the newest
 * completed backup, differential from the full backup of the current chain
 * (or the backup of that chain that created req->since). A parent must be
 * sound: it created a checkpoint that is stored, healthy (ok or redefined:
 * not broken, not orphaned) and known to libvirt, over the same disks at
 * the same sizes. auto is incremental when
 * that holds, else full. With images to go into the vault, backups a
 * client read in pull mode (no images) do not count.
 *
 * *ret_type is the type and *ret_parent the parent (borrowed from cat, NULL
 * for a full). -EBADFD with the reason when an incremental or differential
 * has nothing sound to count from.
 */
int backup_plan_choose(const struct backup_plan_catalog *cat, const struct core_backup_request *req,
                       const struct backup_plan_disk *disks, size_t n,
                       enum conf_backup_type *ret_type, const struct conf_backup **ret_parent);

#endif
