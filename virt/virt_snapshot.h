/*
 * virt_snapshot.h - libvirt's domain snapshots, in plain C.
 *
 * A snapshot is read from libvirt's snapshot XML into a struct virt_snapshot
 * whose strings it owns (virt_snapshot_free). Creation takes a struct
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

enum virt_snap_location {
    VIRT_SNAP_NONE,
    VIRT_SNAP_INTERNAL,
    VIRT_SNAP_EXTERNAL,
};

/* "internal", "external" or "none". Static. */
const char *virt_snap_location_name(enum virt_snap_location l);

struct virt_snapshot_disk {
    char *target; /* "vda" */
    enum virt_snap_location location;
    char *file; /* the overlay of an external snapshot, else NULL */
};

struct virt_snapshot {
    char *name;
    char *description;  /* or NULL */
    char *parent;       /* or NULL for a root */
    size_t n_children;  /* direct children */
    int64_t created;    /* seconds since the epoch */
    char *domain_state; /* libvirt's <state>: "running", "shutoff", "disk-snapshot", ... */
    bool is_current;
    enum virt_snap_location memory;
    char *memory_file; /* external memory state, else NULL */
    size_t n_disks;
    struct virt_snapshot_disk *disks;
};

/* What to create; the strings are borrowed from the caller. */
struct virt_snapshot_spec_disk {
    const char *target;
    enum virt_snap_location location;
    const char *file; /* for VIRT_SNAP_EXTERNAL */
};

struct virt_snapshot_spec {
    const char *name;
    const char *description;        /* or NULL */
    bool disk_only;                 /* no memory state */
    bool quiesce;                   /* freeze the guest's file systems (needs the guest agent) */
    enum virt_snap_location memory; /* for !disk_only: internal or external */
    const char *memory_file;        /* for an external memory state */
    size_t n_disks; /* disks named explicitly; the others follow libvirt's default */
    const struct virt_snapshot_spec_disk *disks;
};

enum virt_snap_start {
    VIRT_SNAP_START_AS_TAKEN,
    VIRT_SNAP_START_RUNNING,
    VIRT_SNAP_START_PAUSED,
};

enum virt_snap_delete {
    VIRT_SNAP_DELETE_ONE,
    VIRT_SNAP_DELETE_CHILDREN,      /* the snapshot and all its descendants */
    VIRT_SNAP_DELETE_CHILDREN_ONLY, /* its descendants, not itself */
};

void virt_snapshot_free(struct virt_snapshot *s);
void virt_snapshot_list_free(struct virt_snapshot *list, size_t n);

static inline void
virt_snapshot_freep(struct virt_snapshot **s)
{
    virt_snapshot_free(*s);
}

/* Every snapshot of domain (name or UUID), in libvirt's order, into a new array. */
int virt_snapshot_list(const char *domain, struct virt_snapshot **ret, size_t *ret_n);

/* One snapshot, into a new struct. */
int virt_snapshot_get(const char *domain, const char *name, struct virt_snapshot **ret);

/* The current snapshot; -ENOENT with a detail when the domain has none. */
int virt_snapshot_current(const char *domain, struct virt_snapshot **ret);

/* libvirt's XML of the snapshot (with the domain's XML inside), as a new string. */
int virt_snapshot_xml(const char *domain, const char *name, char **ret);

/* Names of the snapshot's descendants (not itself), into a new array of new strings. */
int virt_snapshot_descendants(const char *domain, const char *name, char ***ret, size_t *ret_n);

/* Creates a snapshot as spec says. Blocks until libvirt is done. */
int virt_snapshot_create(const char *domain, const struct virt_snapshot_spec *spec);

/* Reverts the domain to the snapshot and starts it as asked; force lets libvirt take risks. */
int virt_snapshot_revert(const char *domain, const char *name, enum virt_snap_start start,
                         bool force);

/* Deletes as mode says; metadata_only keeps the disk data and files, forgetting the snapshot. */
int virt_snapshot_delete(const char *domain, const char *name, enum virt_snap_delete mode,
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
