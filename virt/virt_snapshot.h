/*
 * virt_snapshot.h - libvirt's domain snapshots, in plain C.
 *
 * A snapshot is read from libvirt's snapshot XML into a struct conf_snapshot
 * (conf/snapshot.h) whose strings it owns (conf_snapshot_free). Creation takes a struct
 * virt_snapshot_spec whose strings the caller keeps; every one of them is
 * XML-escaped here. Functions return 0 or a negative errno with a detail
 * (err.h): -ENOENT for an unknown domain or snapshot, libvirt's own refusals
 * mapped by virt_error() (for instance -EOPNOTSUPP with libvirt's reason for
 * reverting to an external snapshot on libvirt 9.0).
 */
#ifndef VV_VIRT_SNAPSHOT_H
#define VV_VIRT_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/snapshot.h"

/* What to create; the strings are borrowed from the caller. */
struct virt_snapshot_spec_disk {
    const char *target;
    enum conf_snapshot_location location;
    const char *file; /* for CONF_SNAPSHOT_LOCATION_EXTERNAL */
};

struct virt_snapshot_spec {
    const char *name;
    const char *description;        /* or NULL */
    bool disk_only;                 /* no memory state */
    bool quiesce;                   /* freeze the guest's file systems (needs the guest agent) */
    enum conf_snapshot_location memory; /* for !disk_only: internal or external */
    const char *memory_file;        /* for an external memory state */
    size_t n_disks; /* disks named explicitly; the others follow libvirt's default */
    const struct virt_snapshot_spec_disk *disks;
};

/* Every snapshot of domain (name or UUID), in libvirt's order, into a new array. */
int virt_snapshot_list(const char *domain, struct conf_snapshot **ret, size_t *ret_n);

/* One snapshot, into a new struct. */
int virt_snapshot_get(const char *domain, const char *name, struct conf_snapshot **ret);

/* The current snapshot; -ENOENT with a detail when the domain has none. */
int virt_snapshot_current(const char *domain, struct conf_snapshot **ret);

/* libvirt's XML of the snapshot (with the domain's XML inside), as a new string. */
int virt_snapshot_xml(const char *domain, const char *name, char **ret);

/* Names of the snapshot's descendants (not itself), into a new array of new strings. */
int virt_snapshot_descendants(const char *domain, const char *name, char ***ret, size_t *ret_n);

/* Creates a snapshot as spec says. Blocks until libvirt is done. */
int virt_snapshot_create(const char *domain, const struct virt_snapshot_spec *spec);

/* Reverts the domain to the snapshot and starts it as asked; force lets libvirt take risks. */
int virt_snapshot_revert(const char *domain, const char *name, enum conf_snapshot_start start,
                         bool force);

/* Deletes as mode says; metadata_only keeps the disk data and files, forgetting the snapshot. */
int virt_snapshot_delete(const char *domain, const char *name, enum conf_snapshot_delete_mode mode,
                         bool metadata_only);

/*
 * Says whether libvirt runs a snapshot operation on the domain now (*ret
 * true). Drivers without job information answer false.
 */
int virt_snapshot_job_active(const char *domain, bool *ret);

/*
 * Reads the bytes processed and in all of the domain's running job, or with
 * completed of the job that ended last. -ENOENT when there is no such job or
 * libvirt gives no byte counts for it (internal snapshots, the test driver).
 */
int virt_domain_job_progress(const char *domain, bool completed, uint64_t *ret_done,
                             uint64_t *ret_total);

#endif
