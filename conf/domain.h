/*
 * conf/domain.h - the record of a domain with its disks, as virt/ reads it
 * from libvirt and the API renders it; the reference to a domain that
 * travels between the layers; the versions and the domain events.
 *
 * Strings are owned by the struct and freed by conf_domain_free() unless
 * said otherwise.
 */
#ifndef VV_CONF_DOMAIN_H
#define VV_CONF_DOMAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cleanup.h"
#include "conf/enum.h"

/* A feature of a domain, and why not when it is not available. */
struct conf_feature {
    bool supported;
    char *reason; /* NULL when supported */
};

/* What libvirt says a domain is doing (virDomainState); "unknown" for a state it added later. */
enum conf_domain_state {
    CONF_DOMAIN_NOSTATE,
    CONF_DOMAIN_RUNNING,
    CONF_DOMAIN_BLOCKED,
    CONF_DOMAIN_PAUSED,
    CONF_DOMAIN_SHUTDOWN,
    CONF_DOMAIN_SHUTOFF,
    CONF_DOMAIN_CRASHED,
    CONF_DOMAIN_PMSUSPENDED,
    CONF_DOMAIN_UNKNOWN,
    CONF_DOMAIN_STATE_LAST,
};
CONF_ENUM_DECL(conf_domain_state, enum conf_domain_state);

/* True for running and paused: a domain with a QEMU process (checkpoints, live snapshots). */
bool conf_domain_state_active(enum conf_domain_state s);

struct conf_disk {
    char *target; /* "vda" */
    char *device; /* "disk", "cdrom", ... */
    char *bus;    /* "virtio", ... or NULL */
    char *type;   /* "file", "block", "network", ... */
    char *source; /* file or device path, or NULL */
    char *format; /* "qcow2", "raw", ... or NULL */
    char *alias;  /* device alias while running ("virtio-disk0"), or NULL */
};

struct conf_domain {
    char *name;
    char uuid[37];
    int id; /* -1 when not running */
    enum conf_domain_state state;
    bool persistent;
    unsigned vcpus;
    uint64_t memory_bytes;
    size_t n_disks;
    struct conf_disk *disks;
    struct conf_feature snapshots;
    struct conf_feature checkpoints;
    struct conf_feature push_backup;
    struct conf_feature pull_backup;
    struct conf_feature incremental;
    /* The persistent definition, redacted (virt_domain_get_definition()), else NULL. */
    char *xml;
};

struct conf_versions {
    char library[32];    /* libvirt library version "9.0.0" */
    char driver[32];     /* hypervisor driver name, e.g. "QEMU" or "Test" */
    char hypervisor[32]; /* hypervisor version "7.2.0", or "" when unknown */
    char uri[256];       /* the canonical URI of the connection */
};

/* What a domain event says (see virt_set_event_handler). */
enum conf_event_kind {
    CONF_EVENT_DEFINED,
    CONF_EVENT_UNDEFINED,
    CONF_EVENT_STARTED,
    CONF_EVENT_STOPPED,
    CONF_EVENT_SUSPENDED,
    CONF_EVENT_RESUMED,
    CONF_EVENT_OTHER,
    CONF_EVENT_JOB_COMPLETED,
    CONF_EVENT_CONNECTED, /* a (re)connection was made; no domain */
};

struct conf_event {
    enum conf_event_kind kind;
    const char *domain; /* borrowed, NULL for CONF_EVENT_CONNECTED */
    const char *uuid;   /* borrowed */
};

/* Which domain a name or UUID means: enough to address it and to name it in a message. */
struct conf_domain_ref {
    char uuid[37];
    char name[256]; /* cut short (never in the middle of a UTF-8 character) past 255 bytes */
};

/*
 * What a disk is, in libvirt's words (its XML's values are kept as libvirt
 * wrote them, as the API shows them): device "disk" (not a cdrom, floppy or
 * lun), format "qcow2", type "file". False when libvirt gave none.
 */
bool conf_disk_is_disk(const struct conf_disk *d);
bool conf_disk_is_qcow2(const struct conf_disk *d);
bool conf_disk_is_file(const struct conf_disk *d);

/* Frees the members of disk d (not d itself). */
void conf_disk_clear(struct conf_disk *d);

/* Frees d and everything it owns. Accepts NULL. */
void conf_domain_free(struct conf_domain *d);

/* Frees the members of d (not d itself). */
void conf_domain_clear(struct conf_domain *d);

/* Frees an array of n domains (as listings return them). */
void conf_domain_list_free(struct conf_domain *list, size_t n);

DEFINE_TRIVIAL_CLEANUP_FUNC(struct conf_domain *, conf_domain_free);
#define _cleanup_domain_ _cleanup_(conf_domain_freep)

#endif
