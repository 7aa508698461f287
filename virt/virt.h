/*
 * virt.h - the service's only door to libvirt.
 *
 * One connection is shared by every thread. libvirt's event loop runs in
 * its own thread; keepalive detects a dead libvirtd within seconds, and a
 * reconnect thread opens the connection again with backoff. While there is
 * no connection every call answers -ENOTCONN at once (never hangs).
 *
 * Nothing outside virt/ includes libvirt's headers: callers see plain C
 * structs whose strings they own and free with the matching *_free().
 * Functions return 0 or a negative errno with a detail (err.h); libvirt's
 * error codes are mapped in one table (virt_error()).
 */
#ifndef VV_VIRT_H
#define VV_VIRT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/checkpoint.h"
#include "conf/domain.h"

/* Called on the event thread: it must return quickly (queue real work). */
typedef void (*virt_event_fn)(const struct conf_event *ev, void *opaque);

/*
 * Starts the event loop and reconnect threads and makes the first attempt
 * to connect to uri. A first attempt that fails is not an error: the
 * reconnect thread keeps trying. Returns a negative errno only when the
 * machinery itself cannot start.
 */
int virt_open(const char *uri);

/* Closes the connection and stops the threads. */
void virt_close(void);

/* Sets the one handler for domain events (NULL to remove). */
void virt_set_event_handler(virt_event_fn fn, void *opaque);

/* True while a live connection exists. */
bool virt_connected(void);

/* The URI the service was asked to use. Borrowed, static for the process. */
const char *virt_uri(void);

/* Fills *ret with the versions of libvirt and of the hypervisor. */
int virt_versions_get(struct conf_versions *ret);

/*
 * Lists every domain (active and inactive), ordered by name. *ret is a new
 * array of *ret_n domains; free it with conf_domain_list_free().
 */
int virt_domain_list(struct conf_domain **ret, size_t *ret_n);

/*
 * One page of virt_domain_list(): the first limit domains whose names sort
 * after after (NULL: from the first), read in full; the others are only
 * named. *ret is a new array of *ret_n (<= limit) domains, free it with
 * conf_domain_list_free(); *ret_more tells whether domains follow the page.
 */
int virt_domain_list_page(const char *after, size_t limit, struct conf_domain **ret, size_t *ret_n,
                          bool *ret_more);

/*
 * Every domain with only its name and UUID filled in (nothing else is asked
 * of libvirt), ordered by name. *ret is a new array of *ret_n domains; free
 * it with conf_domain_list_free().
 */
int virt_domain_list_brief(struct conf_domain **ret, size_t *ret_n);

/*
 * Resolves a domain once for the calling thread: until
 * virt_domain_scope_end(), every call here on this thread that names that
 * domain (by its name or UUID) uses the handle looked up now instead of
 * asking libvirt again. One scope per thread: a begin ends the one before.
 * -ENOENT when there is no such domain, -ENOTCONN without a connection.
 */
int virt_domain_scope_begin(const char *name_or_uuid);

/* Ends this thread's scope, if any. */
void virt_domain_scope_end(void);

static inline void
virt_domain_scope_endp(bool *scoped)
{
    if (*scoped)
        virt_domain_scope_end();
}

/*
 * A debug counter: how many times this thread asked libvirt to look a
 * domain up (by UUID or by name) since the last call, which resets it.
 */
unsigned virt_domain_lookups_take(void);

/*
 * A debug counter beside it: how many times this thread asked libvirt for
 * a domain's XML since the last call, which resets it.
 */
unsigned virt_domain_xml_fetches_take(void);

/*
 * Looks a domain up by name or UUID and reads it, its disks from its live
 * XML. -ENOENT when there is none. d->xml stays NULL.
 */
int virt_domain_get(const char *name_or_uuid, struct conf_domain **ret);

/*
 * As virt_domain_get(), from the domain's persistent (inactive) definition,
 * read once with libvirt's secure flag and parsed once: the disks come from
 * it, and it is kept in (*ret)->xml, redacted (a graphics password is there
 * as passwd='', so that a restore knows one was set, never its value). What
 * a backup records and plans from. The disks are those the domain runs
 * with all the same: when a running domain's definition was changed while
 * it ran, or libvirt's block statistics show other disks, they are read
 * from its live XML (a second fetch, in that case only).
 */
int virt_domain_get_definition(const char *name_or_uuid, struct conf_domain **ret);

/*
 * Resolves a name or UUID as virt_domain_get() does, without reading the
 * domain's definition. Answers come from a small cache that every domain
 * event and every (re)connection empties and whose entries live at most
 * VIRT_DOMAIN_REF_TTL_MS, so a read that only needs to know which domain is
 * meant seldom costs a round trip to libvirt. -ENOTCONN without a
 * connection, -ENOENT when there is no such domain.
 */
#define VIRT_DOMAIN_REF_TTL_MS 2000
int virt_domain_resolve(const char *name_or_uuid, struct conf_domain_ref *ret);

/* --- backups --- */

/*
 * One disk of a backup: the libvirt target and, in push mode, the qcow2
 * image made beforehand that QEMU writes into; in pull mode the scratch
 * file QEMU creates to keep the frozen view (absolute paths).
 */
struct virt_backup_disk {
    const char *target; /* "vda" */
    const char *file;
};

struct virt_backup_spec {
    const char *incremental; /* checkpoint the changes are counted from, or NULL for full */
    const char *checkpoint;  /* name of the checkpoint created with the backup */
    const char *description; /* of that checkpoint, or NULL */
    const struct virt_backup_disk *disks;
    size_t n_disks;
    const char *const *skip; /* targets of the domain's other disks, left out of both */
    size_t n_skip;
    uint64_t bandwidth; /* bytes per second and disk, 0 for no limit */
    const char *socket; /* pull mode: the unix socket QEMU serves NBD on; NULL: push */
};

/*
 * Says whether the domain's connection can take push backups: 0, or
 * -EOPNOTSUPP with a detail saying why not (the test driver, a hypervisor
 * without the backup API), or another negative errno.
 */
int virt_backup_supported_for(const char *uuid);

/*
 * Begins a backup of the domain: a push backup into the files of spec (which exist
 * already: REUSE_EXTERNAL) and creates the checkpoint spec->checkpoint in
 * the same step, or with spec->socket a pull backup whose exports (one per
 * disk, named after its target) QEMU serves on that socket until the job is
 * aborted. On success *ret_checkpoint_xml holds the new checkpoint's
 * full XML (with <domain>), a new string. When reading that XML fails the
 * job is aborted and the checkpoint removed before the error is returned.
 */
int virt_backup_begin(const char *uuid, const struct virt_backup_spec *spec,
                      char **ret_checkpoint_xml);

enum virt_job_state {
    VIRT_JOB_NONE, /* no job is running and none is known to have ended */
    VIRT_JOB_RUNNING,
    VIRT_JOB_SUCCEEDED,
    VIRT_JOB_FAILED,
    VIRT_JOB_CANCELLED,
};

struct virt_job_info {
    enum virt_job_state state;
    bool backup;     /* the job is (was) a backup */
    uint64_t done;   /* bytes processed */
    uint64_t total;  /* bytes to process */
    char error[256]; /* libvirt's message for a failed job, or "" */
};

/*
 * Reads the domain's job: the running one, or with completed the last one
 * that ended (libvirt keeps it until the next job starts or libvirtd
 * restarts; VIRT_JOB_NONE when it does not know).
 */
int virt_job_get(const char *uuid, bool completed, struct virt_job_info *ret);

/* Aborts the domain's running job. -EBADFD when none runs. */
int virt_job_abort(const char *uuid);

/* The capacity (virtual size) of the domain's disk target, in bytes. */
int virt_disk_capacity(const char *uuid, const char *target, uint64_t *ret);

/* One disk of a restored domain. */
struct virt_restored_disk {
    const char *target;
    const char *path;
    const char *format; /* "qcow2" or "raw" */
};

/* What a restored clone may keep of its original (the request's "keep"). */
enum {
    VIRT_CLONE_KEEP_LUN = 1u << 0,        /* disks of device 'lun' not in the backup */
    VIRT_CLONE_KEEP_FILESYSTEM = 1u << 1, /* <filesystem>: host folders shared in */
    VIRT_CLONE_KEEP_HOSTDEV = 1u << 2,    /* <hostdev> and hostdev interfaces */
    VIRT_CLONE_KEEP_LOGS = 1u << 3,       /* log files and output files of serial and the like */
};

/* One change made to the definition of a clone: a short kind and a sentence. */
struct virt_clone_change {
    char what[16]; /* "uuid", "mac", "disk", "lun", "nvram", "graphics", ... */
    char *detail;  /* owned */
};

struct virt_clone_changes {
    struct virt_clone_change *items;
    size_t n;
};

/* Frees the items of c (not c) and empties it. Accepts NULL. */
void virt_clone_changes_clear(struct virt_clone_changes *c);

/* Where a clone's files go: the checked folder of the restored disks. */
struct virt_clone_target {
    int dirfd;       /* the folder, opened */
    const char *dir; /* its absolute path, for the XML */
    unsigned keep;   /* VIRT_CLONE_KEEP_* */
};

/*
 * Defines a new domain from xml (a domain's XML as stored with a backup)
 * as a safe clone: a new name, a new UUID and new MAC addresses; disks
 * listed in disks point at the restored images, the domain's other disks
 * of device "disk" are dropped, and so are disks of device "lun" unless
 * kept; the NVRAM file is copied next to the disks; graphics listen on
 * 127.0.0.1 without a password; <filesystem>, <hostdev> and character
 * device log/output files go unless kept (see virt_clone.h). *ret_uuid (37
 * bytes) receives the new UUID and *ret_changes every change made (clear
 * it with virt_clone_changes_clear). On failure nothing is defined and no
 * file is left.
 */
int virt_domain_define_restored(const char *xml, const char *name,
                                const struct virt_restored_disk *disks, size_t n_disks,
                                const struct virt_clone_target *where, char ret_uuid[37],
                                struct virt_clone_changes *ret_changes);

/* --- instant recovery: start, block copy, pivot (blockcopy.c) --- */

/* Starts the defined domain uuid. */
int virt_domain_start(const char *uuid);

/* 1 when domain uuid runs, 0 when not, -ENOENT when there is no such domain. */
int virt_domain_is_active(const char *uuid);

/*
 * Begins a full block copy of the running domain's disk target into dest,
 * an existing empty qcow2 file without a backing file (REUSE_EXT), as a
 * transient job (what libvirt 9.0 needs for a persistent domain). The copy
 * mirrors the guest's writes until it is pivoted or aborted. bandwidth:
 * bytes per second, 0 for no limit.
 */
int virt_block_copy_start(const char *uuid, const char *target, const char *dest,
                          uint64_t bandwidth);

struct virt_block_job {
    bool active; /* a block job runs on the disk */
    bool copy;   /* it is a block copy */
    bool ready;  /* the copy caught up: it may be pivoted */
    uint64_t done, total;
};

/* Reads the block job of the domain's disk target (active false when none runs). */
int virt_block_job_get(const char *uuid, const char *target, struct virt_block_job *ret);

/*
 * Ends the block job of the disk target: with pivot the disk switches to
 * the copy (the domain's definition follows), else the copy is abandoned
 * and the disk stays where it was.
 */
int virt_block_job_end(const char *uuid, const char *target, bool pivot);

/* The file the running domain's disk target reads from now, as a new *ret. */
int virt_disk_source(const char *uuid, const char *target, char **ret);

/* --- checkpoints --- */

/* What libvirt can do with a domain's checkpoints now (driver and domain state). */
struct virt_checkpoint_caps {
    bool active;        /* the domain is running or paused */
    bool validate;      /* a redefine can be validated against the bitmaps (QEMU, active) */
    bool sizes;         /* libvirt reports the size of each bitmap (QEMU, active) */
    bool image_bitmaps; /* the bitmaps can be read from the qcow2 files (QEMU, inactive) */
};

/* What to create: name and description are raw text (escaped here). */
struct virt_checkpoint_spec {
    const char *name;
    const char *description;  /* NULL: none */
    const char *const *disks; /* targets that take part; NULL: all that can */
    size_t n_disks;
};

enum {
    VIRT_CHECKPOINT_DELETE_CHILDREN = 1 << 0,      /* the descendants too */
    VIRT_CHECKPOINT_DELETE_METADATA_ONLY = 1 << 1, /* libvirt forgets; bitmaps stay */
};

/* A persistent dirty bitmap of a qcow2 image, as qemu-img reports it. */
struct virt_image_bitmap {
    char *name;
    bool recording;       /* flag "auto": the bitmap records writes */
    bool in_use;          /* flag "in-use": not closed cleanly, contents unreliable */
    uint32_t granularity; /* bytes */
};

/* Fills *ret with what libvirt can do with domain's checkpoints now. */
int virt_checkpoint_caps_get(const char *domain, struct virt_checkpoint_caps *ret);

/*
 * Parses checkpoint XML (with or without <domain>). *ret is new; its xml
 * member is a copy of xml. Returns -EINVAL when xml is not checkpoint XML.
 */
int virt_checkpoint_parse(const char *xml, struct conf_checkpoint_def **ret);

/*
 * Lists the checkpoints libvirt knows for domain, parents before children,
 * each with its full XML. *ret is a new array of *ret_n entries (free with
 * conf_checkpoint_def_list_free()). -ENOENT when there is no such domain.
 */
int virt_checkpoint_list(const char *domain, struct conf_checkpoint_def **ret, size_t *ret_n);

/*
 * The names of the domain's checkpoints in libvirt, without their XML (for
 * presence checks on hot read paths). *ret is a new NULL-terminated array of
 * new strings (free each, then the array); *ret_n their count. -ENOENT when
 * there is no such domain.
 */
int virt_checkpoint_names(const char *domain, char ***ret, size_t *ret_n);

/*
 * Looks one checkpoint up. With with_size, each disk's size_bytes is filled
 * where the driver reports it (else -1). -ENOENT for an unknown domain or
 * checkpoint (the detail says which).
 */
int virt_checkpoint_get(const char *domain, const char *name, bool with_size,
                        struct conf_checkpoint_def **ret);

/*
 * Creates a checkpoint as spec says and returns it as libvirt made it (*ret
 * new, with its full XML). The caller has validated the name; every value
 * is escaped into the XML here.
 */
int virt_checkpoint_create(const char *domain, const struct virt_checkpoint_spec *spec,
                           struct conf_checkpoint_def **ret);

/*
 * Gives libvirt a checkpoint back from its full XML (REDEFINE), with
 * validation against the disks' bitmaps when validate is set. A failed
 * validation answers -EBADFD with libvirt's reason.
 */
int virt_checkpoint_redefine(const char *domain, const char *xml, bool validate);

/* Deletes a checkpoint (VIRT_CHECKPOINT_DELETE_* flags). -ENOENT when unknown. */
int virt_checkpoint_delete(const char *domain, const char *name, unsigned flags);

/* Free what the functions above return; both accept NULL. */

/*
 * Says whether libvirt runs a job (backup, migration, dump, ...) on domain:
 * 1 with its kind written into what, 0 when none (or the driver has no job
 * API), or a negative errno.
 */
int virt_domain_job_active(const char *domain, char *what, size_t size);

/*
 * Reads the persistent bitmaps of the qcow2 image at path with
 * "qemu-img info -U --output=json" (safe while QEMU has the image open, but
 * only what QEMU has written back: read it for stopped domains). *ret is a
 * new array of *ret_n (free with virt_image_bitmaps_free()); an image
 * without bitmaps gives 0 entries. -ENOENT when qemu-img is missing, -EIO
 * with qemu-img's message when it fails.
 */
int virt_image_bitmaps(const char *path, struct virt_image_bitmap **ret, size_t *ret_n);
void virt_image_bitmaps_free(struct virt_image_bitmap *list, size_t n);

/*
 * Adds (add true) or removes the persistent dirty bitmap name of the qcow2
 * image at path with "qemu-img bitmap"; the image must not be in use (a
 * stopped domain). Returns 0, or -EIO with qemu-img's message.
 */
int virt_image_bitmap_set(const char *path, const char *name, bool add);

/*
 * Gives a stopped domain the checkpoint name (child of parent, or a root
 * when parent is NULL) whose bitmaps, named name, were added to the images
 * of disks already: libvirt cannot create checkpoints of inactive domains,
 * so it is redefined from XML built like libvirt's own (with the domain's
 * inactive XML). *ret_xml is the new checkpoint's full XML as libvirt now
 * has it (a new string).
 */
int virt_checkpoint_define_offline(const char *uuid, const char *name, const char *parent,
                                   const char *const *disks, size_t n_disks,
                                   const char *const *skip, size_t n_skip, char **ret_xml);
/* --- end checkpoints --- */

#endif
