/*
 * snapshot.h - the snapshot use cases: revert points of a domain, with or
 * without memory, internal to the qcow2 images or in external files.
 *
 * External overlay and memory files go to a managed folder under the vault,
 * <vault>/<domain-uuid>/snapshots/, unless the request names another place;
 * a place is accepted only when it stays inside the configured roots (the
 * vault): no ".." segment, and the real path of its folder, symlinks
 * resolved, lies inside a root. Anything else is -EINVAL.
 *
 * A full snapshot of a running domain (memory + disks) can take long: it
 * runs as a job of kind "snapshot_create" (jobs.h); everything else is done
 * before the call returns. Operations that change a domain claim it
 * (busy.h) while they run.
 */
#ifndef VV_CORE_SNAPSHOT_H
#define VV_CORE_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/job.h"
#include "conf/snapshot.h"

struct core_snapshot_disk_req {
    const char *target;
    const char *location; /* "internal", "external", "none"; NULL: the request's default */
    const char *file;     /* for external: relative to the managed folder, or absolute */
};

/* A create request as the API received it; every field optional. Borrowed strings. */
struct core_snapshot_req {
    const char *name; /* generated when NULL */
    const char *description;
    const char *kind;        /* "full" or "disk_only"; NULL: full for a running domain */
    const char *location;    /* "internal" or "external"; NULL: see core_snapshot_create */
    const char *memory_file; /* external memory state of a full snapshot */
    bool quiesce;
    size_t n_disks;
    const struct core_snapshot_disk_req *disks;
};

/* Registers the snapshot job kind (jobs.h). Call before core_jobs_start. */
int core_snapshot_init(void);

/* Lists the domain's snapshots (see virt_snapshot.h for ownership). */
int core_snapshot_list(const char *domain, struct conf_snapshot **ret, size_t *ret_n);

/* One snapshot; -EINVAL for a name no snapshot can have, -ENOENT when there is none. */
int core_snapshot_get(const char *domain, const char *name, struct conf_snapshot **ret);

/* The current snapshot, or -ENOENT. */
int core_snapshot_current(const char *domain, struct conf_snapshot **ret);

/* libvirt's XML of one snapshot, as a new string. */
int core_snapshot_xml(const char *domain, const char *name, char **ret);

/*
 * Creates a snapshot. The default kind is full for a running (or paused)
 * domain and disk_only otherwise; the default location is external for a
 * disk-only snapshot of a running domain (the only kind QEMU can take
 * live) and internal otherwise. On success exactly one of *ret_snap (done:
 * the new snapshot) and *ret_job (a queued job that will make it) is set,
 * both new. -EINVAL for a bad request or place, -EEXIST for a taken name,
 * -EBADFD for a full snapshot of a domain that is not running, -EBUSY, or
 * libvirt's refusal.
 */
int core_snapshot_create(const char *domain, const struct core_snapshot_req *req,
                         struct conf_snapshot **ret_snap, struct conf_job **ret_job);

/* Reverts to a snapshot (see virt_snapshot_revert). */
int core_snapshot_revert(const char *domain, const char *name, enum conf_snapshot_start start,
                         bool force);

/*
 * Deletes as mode says. On success *ret_names is a new array of the names
 * that are gone (*ret_n of them), the snapshot first unless only its
 * children went.
 */
int core_snapshot_delete(const char *domain, const char *name, enum conf_snapshot_delete_mode mode,
                         bool metadata_only, char ***ret_names, size_t *ret_n);

/* Frees an array of names from core_snapshot_delete. */
void core_snapshot_names_free(char **names, size_t n);

#endif
