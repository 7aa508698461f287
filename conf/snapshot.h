/*
 * conf/snapshot.h - the record of a domain snapshot as libvirt describes it
 * (read by virt/virt_snapshot.h, rendered by the API), and the choices a
 * revert and a delete take.
 */
#ifndef VV_CONF_SNAPSHOT_H
#define VV_CONF_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cleanup.h"
#include "conf/enum.h"

enum conf_snapshot_location {
    CONF_SNAPSHOT_LOCATION_NONE,
    CONF_SNAPSHOT_LOCATION_INTERNAL,
    CONF_SNAPSHOT_LOCATION_EXTERNAL,
    CONF_SNAPSHOT_LOCATION_LAST,
};

/* "none", "internal", "external" (the API's words). */
CONF_ENUM_DECL(conf_snapshot_location, enum conf_snapshot_location);

/* "full": memory and disks; "disk_only": the disks alone. */
enum conf_snapshot_kind {
    CONF_SNAPSHOT_KIND_FULL,
    CONF_SNAPSHOT_KIND_DISK_ONLY,
    CONF_SNAPSHOT_KIND_LAST,
};
CONF_ENUM_DECL(conf_snapshot_kind, enum conf_snapshot_kind);

struct conf_snapshot_disk {
    char *target; /* "vda" */
    enum conf_snapshot_location location;
    char *file; /* the overlay of an external snapshot, else NULL */
};

struct conf_snapshot {
    char *name;
    char *description;  /* or NULL */
    char *parent;       /* or NULL for a root */
    size_t n_children;  /* direct children */
    int64_t created;    /* seconds since the epoch */
    char *domain_state; /* libvirt's <state>: "running", "shutoff", "disk-snapshot", ... */
    bool is_current;
    enum conf_snapshot_location memory;
    char *memory_file; /* external memory state, else NULL */
    size_t n_disks;
    struct conf_snapshot_disk *disks;
};

enum conf_snapshot_start {
    CONF_SNAPSHOT_START_AS_TAKEN,
    CONF_SNAPSHOT_START_RUNNING,
    CONF_SNAPSHOT_START_PAUSED,
};

enum conf_snapshot_delete_mode {
    CONF_SNAPSHOT_DELETE_ONE,
    CONF_SNAPSHOT_DELETE_CHILDREN,      /* the snapshot and all its descendants */
    CONF_SNAPSHOT_DELETE_CHILDREN_ONLY, /* its descendants, not itself */
};

/* Frees the members of s (not s itself). */
void conf_snapshot_clear(struct conf_snapshot *s);

/* Frees s and everything it owns. Accepts NULL. */
void conf_snapshot_free(struct conf_snapshot *s);

/* Frees an array of n snapshots (as listings return them). */
void conf_snapshot_list_free(struct conf_snapshot *list, size_t n);

DEFINE_TRIVIAL_CLEANUP_FUNC(struct conf_snapshot *, conf_snapshot_free);

#endif
