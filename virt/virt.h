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

/* A feature of a domain, and why not when it is not available. */
struct virt_feature {
    bool supported;
    char *reason; /* NULL when supported */
};

struct virt_disk {
    char *target; /* "vda" */
    char *device; /* "disk", "cdrom", ... */
    char *bus;    /* "virtio", ... or NULL */
    char *type;   /* "file", "block", "network", ... */
    char *source; /* file or device path, or NULL */
    char *format; /* "qcow2", "raw", ... or NULL */
    char *alias;  /* device alias while running ("virtio-disk0"), or NULL */
};

struct virt_domain {
    char *name;
    char uuid[37];
    int id; /* -1 when not running */
    const char *state; /* static: "running", "paused", "shutoff", ... */
    bool persistent;
    unsigned vcpus;
    uint64_t memory_bytes;
    size_t n_disks;
    struct virt_disk *disks;
    struct virt_feature snapshots;
    struct virt_feature checkpoints;
    struct virt_feature push_backup;
    struct virt_feature pull_backup;
    struct virt_feature incremental;
};

struct virt_versions {
    char library[32];    /* libvirt library version "9.0.0" */
    char driver[32];     /* hypervisor driver name, e.g. "QEMU" or "Test" */
    char hypervisor[32]; /* hypervisor version "7.2.0", or "" when unknown */
    char uri[256];       /* the canonical URI of the connection */
};

/* What a domain event says (see virt_set_event_handler). */
enum virt_event_kind {
    VIRT_EVENT_DEFINED,
    VIRT_EVENT_UNDEFINED,
    VIRT_EVENT_STARTED,
    VIRT_EVENT_STOPPED,
    VIRT_EVENT_SUSPENDED,
    VIRT_EVENT_RESUMED,
    VIRT_EVENT_OTHER,
    VIRT_EVENT_JOB_COMPLETED,
    VIRT_EVENT_CONNECTED, /* a (re)connection was made; no domain */
};

struct virt_event {
    enum virt_event_kind kind;
    const char *domain; /* borrowed, NULL for VIRT_EVENT_CONNECTED */
    const char *uuid;   /* borrowed */
};

/* Called on the event thread: it must return quickly (queue real work). */
typedef void (*virt_event_fn)(const struct virt_event *ev, void *opaque);

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
int virt_versions_get(struct virt_versions *ret);

/*
 * Lists every domain (active and inactive), ordered by name. *ret is a new
 * array of *ret_n domains; free it with virt_domain_list_free().
 */
int virt_domain_list(struct virt_domain **ret, size_t *ret_n);
void virt_domain_list_free(struct virt_domain *list, size_t n);

/* Looks a domain up by name or UUID. -ENOENT when there is none. */
int virt_domain_get(const char *name_or_uuid, struct virt_domain **ret);
void virt_domain_free(struct virt_domain *d);

/* Frees the members of d (not d itself). */
void virt_domain_clear(struct virt_domain *d);

#endif
