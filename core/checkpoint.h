/*
 * core/checkpoint.h - checkpoints, with SQLite as the source of truth.
 *
 * libvirt forgets checkpoint metadata (a domain undefined and defined again,
 * a lost state directory, ...) while the dirty bitmaps live on in the qcow2
 * files. So every checkpoint the service creates or finds is stored with
 * its full XML, and a reconciler puts back into libvirt what libvirt lacks.
 *
 * Each stored checkpoint has a state:
 *   ok         created through the service (or adopted) and present in libvirt
 *   redefined  was missing from libvirt and was put back from the stored XML
 *   broken     its bitmap is gone or inconsistent; never usable as a base again
 *   orphaned   found in libvirt but not created through the service: recorded and
 *              listed, but not the service's to keep: when it disappears from
 *              libvirt it is forgotten, not redefined (unless checkpoints the
 *              service keeps descend from it). Adopting it (reconcile with
 *              CORE_RECONCILE_ADOPT) makes it "ok": protected and usable.
 * together with the reason it has that state. "broken" is final: a bitmap
 * that has missed writes cannot become trustworthy again.
 *
 * The reconciler runs at start-up (for every domain, on each connection to
 * libvirt), when a domain is defined, started or stopped (on a worker
 * thread, queued from libvirt's events), before every write here, when a
 * read finds the last reconcile too old (see below), and on demand. It
 * never runs while another operation holds the domain's busy claim (busy.h),
 * except when that holder calls core_checkpoint_reconcile() itself.
 *
 * Domains are named by name or UUID where the parameter says "domain", by
 * UUID where it says "domain_uuid". All functions return 0 or a negative
 * errno with a detail (err.h); ret_* outputs are filled only on success.
 */
#ifndef VV_CORE_CHECKPOINT_H
#define VV_CORE_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cleanup.h"
#include "conf/checkpoint.h"
#include "conf/domain.h"

struct core_checkpoint {
    char domain_uuid[37];
    struct conf_checkpoint_def *def; /* name, parent, description, disks, full XML */
    enum conf_checkpoint_state state;
    char *reason;    /* why it has that state, or NULL */
    bool in_libvirt; /* libvirt knows it right now */
    /* Its place in a list: (created, stored, def->name) ascending, fixed once stored. */
    int64_t created; /* libvirt's creationTime, seconds since the epoch */
    int64_t stored;  /* when the service first stored it, ms since the epoch */
};

/* What a new checkpoint should be. */
struct core_checkpoint_request {
    const char *name;         /* NULL: one is generated ("cp-20261126-110537-3fa2") */
    const char *description;  /* NULL: none */
    const char *const *disks; /* targets that take part; NULL: every disk that can */
    size_t n_disks;
};

/* One thing the reconciler did. */
struct core_reconcile_action {
    char *checkpoint;
    const char *action; /* static: "recorded", "redefined", "broken", "updated", "pending",
                           "failed", "adopted", "forgotten" */
    char *detail;
};

struct core_reconcile_report {
    char domain[256];
    char domain_uuid[37];
    size_t checked; /* checkpoints looked at (stored and in libvirt, each once) */
    size_t n_actions;
    struct core_reconcile_action *actions;
};

enum {
    CORE_CHECKPOINT_LIST_ROOTS = 1 << 0,     /* only those without a parent */
    CORE_CHECKPOINT_LIST_LEAVES = 1 << 1,    /* only those without children */
    CORE_CHECKPOINT_LIST_NO_ROOTS = 1 << 2,  /* only those with a parent */
    CORE_CHECKPOINT_LIST_NO_LEAVES = 1 << 3, /* only those with children */
};

enum {
    CORE_CHECKPOINT_DELETE_CHILDREN = 1 << 0,      /* the descendants too */
    CORE_CHECKPOINT_DELETE_METADATA_ONLY = 1 << 1, /* leave the bitmaps in the images */
};

enum {
    CORE_RECONCILE_ADOPT = 1 << 0, /* also turn every orphaned checkpoint into an ok one */
};

/* Starts the reconcile worker; call once before the libvirt connection opens. */
int core_checkpoint_start(void);

/* Stops the worker (waiting for a reconcile in progress). */
void core_checkpoint_stop(void);

/* Queues the reconciles that a libvirt event calls for (safe on libvirt's event thread). */
void core_checkpoint_on_event(const struct conf_event *ev);

/*
 * Reading. Reads answer from the store, not from libvirt: a domain is
 * compared with libvirt (reconciled) before the first read after the
 * process starts (unless an operation holds it: libvirt is then asked live
 * which checkpoints it knows), and then again in the background when a read
 * finds its last comparison older than the max age (seconds; 0 reconciles
 * before every read). So a change made behind the service's back (with
 * virsh) shows within about the max age; CORE_CHECKPOINT_READ_REFRESH
 * reconciles in full before answering. Writes, backups and libvirt's events
 * reconcile in full as before.
 */
enum {
    CORE_CHECKPOINT_READ_REFRESH = 1 << 0, /* reconcile before answering */
};

/* Sets the max age (core_start() does, from its configuration); call before any read. */
void core_checkpoint_set_max_age(unsigned seconds);

/*
 * What a listing reads from: the domain, and a version of everything a
 * listing shows (0 when what is built now must not be kept: the domain
 * could not be reconciled yet, and presence in libvirt is asked live).
 */
struct core_checkpoint_catalog {
    struct conf_domain_ref domain;
    uint64_t version;
};

/* Resolves domain and gets its catalog ready to be read. -ENOENT when there is no such domain. */
int core_checkpoint_catalog_open(const char *domain, unsigned flags,
                                 struct core_checkpoint_catalog *ret);

/*
 * Lists the checkpoints of an open catalog in the order of their
 * (created, stored, name), which puts parents before children, filtered by
 * CORE_CHECKPOINT_LIST_* flags. *ret is a new array
 * (core_checkpoint_list_free).
 */
int core_checkpoint_list(const struct core_checkpoint_catalog *cat, unsigned filter,
                         struct core_checkpoint **ret, size_t *ret_n);

/*
 * One checkpoint (read as above, CORE_CHECKPOINT_READ_* flags), with each
 * disk's size_bytes (the data written since the checkpoint) and in_libvirt
 * as libvirt reports them now. -ENOENT for an unknown domain or checkpoint.
 */
int core_checkpoint_get(const char *domain, const char *name, unsigned flags,
                        struct core_checkpoint **ret);

/*
 * Creates a checkpoint and stores it in the same step (if it cannot be
 * stored, it is deleted from libvirt again). The caller has checked the
 * request's values against the name rule. -EBUSY when the domain is busy
 * (with an operation of the service or a libvirt job), -EEXIST for a name
 * in use, -EBADFD when the domain is not running, -EINVAL for an unknown or
 * unsuitable disk, -EOPNOTSUPP when the driver has no checkpoints.
 */
int core_checkpoint_create(const char *domain, const struct core_checkpoint_request *req,
                           struct core_checkpoint **ret);

/*
 * Deletes a checkpoint from libvirt (which merges its bitmap into the
 * parent's) and from the store, with CORE_CHECKPOINT_DELETE_* flags. A
 * broken checkpoint whose bitmap libvirt cannot remove any more is deleted
 * as metadata. -EBADFD when libvirt does not know the checkpoint now and it
 * has children (only children=true can remove it then).
 */
int core_checkpoint_delete(const char *domain, const char *name, unsigned flags);

/*
 * Runs the reconciler for domain now, on behalf of a client: claims the
 * domain (-EBUSY when it is busy) and reports what was done in *ret
 * (core_reconcile_report_free). CORE_RECONCILE_* flags.
 */
int core_checkpoint_reconcile_now(const char *domain, unsigned flags,
                                  struct core_reconcile_report **ret);

/*
 * The reconciler, for a job that holds the domain's busy claim (a backup
 * calls it before relying on a checkpoint), on domain dom as the caller
 * read it (borrowed; not read again). ret may be NULL when the caller does
 * not want the report.
 */
int core_checkpoint_reconcile(const struct conf_domain *dom, unsigned flags,
                              struct core_reconcile_report **ret);

/*
 * Stores a checkpoint that the caller has just made in libvirt (for example
 * atomically with a backup), from its full XML (virDomainCheckpointGetXMLDesc
 * with flags 0, including <domain>). Its state is "ok". Call it while
 * holding the domain's busy claim, in the same step as the creation.
 */
int core_checkpoint_store_created(const char *domain_uuid, const char *xml);

/*
 * The name of the newest checkpoint in state ok or redefined (*ret new), the
 * base an incremental backup can use. Run core_checkpoint_reconcile() first.
 * -ENOENT when there is none.
 */
int core_checkpoint_newest_healthy(const char *domain_uuid, char **ret);

/* Free what the functions above return; all accept NULL. */
void core_checkpoint_free(struct core_checkpoint *c);
void core_checkpoint_list_free(struct core_checkpoint *list, size_t n);
void core_reconcile_report_free(struct core_reconcile_report *r);

DEFINE_TRIVIAL_CLEANUP_FUNC(struct core_checkpoint *, core_checkpoint_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct core_reconcile_report *, core_reconcile_report_free);

#endif
