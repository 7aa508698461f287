/*
 * core.h - the service's use cases, free of HTTP. The process has one core:
 * core_start() opens the database, the vault and the libvirt connection;
 * core_stop() closes them. Every other core_* function may be called from
 * any thread between the two.
 */
#ifndef VV_CORE_H
#define VV_CORE_H

#include <stdbool.h>
#include <stdint.h>

#include "conf/domain.h"

struct db;

struct core_config {
    const char *db_path;
    const char *vault_dir;
    const char *libvirt_uri;
    const char *restore_roots;     /* ':'-separated folders, or NULL for <vault>/restore */
    unsigned pull_idle_timeout;    /* seconds; 0 for the default */
    unsigned mount_idle_seconds;   /* seconds a mount may go unread; 0 for the default */
    unsigned reconcile_max_age;    /* seconds; 0 reconciles before every read (checkpoint.h) */
    int64_t webhook_retry_base_ms; /* see core/webhook.h; 0 for the defaults */
    int64_t webhook_retry_cap_ms;
    int64_t webhook_retry_for_ms;
    unsigned max_policy_jobs; /* policy jobs at once on the host; 0 for the default (2) */
    /* Files inside backups (files.h): */
    unsigned files_idle_seconds;          /* close a file handle unused this long; 0: 300 */
    unsigned files_max_handles;           /* file handles open at once; 0: 2 */
    const char *guestfs_backend_settings; /* ':'-separated, for libguestfs; NULL: none */
};

/*
 * Opens what the service stands on. A libvirt that cannot be reached is no
 * failure (it is reconnected in the background); a database or vault that
 * cannot be used is. Returns 0 or a negative errno with a detail.
 */
int core_start(const struct core_config *cfg);

/* Closes the libvirt connection and the database. Safe to call once after start. */
void core_stop(void);

/* The open database (for the core's own files). Borrowed. */
struct db *core_db(void);

/* The vault folder. Borrowed. */
const char *core_vault_dir(void);

/*
 * Says whether the service can do its work now: 0 when libvirt and the
 * database are usable, else -ENOTCONN or -EIO with a detail.
 */
int core_ready(void);

/* Versions of libvirt and the hypervisor (see virt.h); the URI the service was given. */
int core_versions_get(struct conf_versions *ret);
const char *core_libvirt_uri(void);

/* True while the libvirt connection is up. */
bool core_hypervisor_connected(void);

/*
 * Domain events for the event stream: fn is called on libvirt's event
 * thread for each lifecycle event and must return quickly. One listener;
 * NULL removes it.
 */
typedef void (*core_domain_event_fn)(const struct conf_event *ev, void *opaque);
void core_domain_events_listen(core_domain_event_fn fn, void *opaque);

/* "started", "stopped", ... for an event kind. Static. */
const char *core_domain_event_name(enum conf_event_kind kind);

/* Domains, as libvirt sees them (see virt.h for ownership). */
int core_domain_list(struct conf_domain **ret, size_t *ret_n);

/* One page of the domains, by name, after after (see virt_domain_list_page). */
int core_domain_list_page(const char *after, size_t limit, struct conf_domain **ret, size_t *ret_n,
                          bool *ret_more);

/* Every domain with its name and UUID only (see virt_domain_list_brief). */
int core_domain_list_brief(struct conf_domain **ret, size_t *ret_n);
int core_domain_get(const char *name_or_uuid, struct conf_domain **ret);

#endif
