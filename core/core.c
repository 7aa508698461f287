#include <errno.h>
#include <libgen.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "backup.h"
#include "checkpoint.h"
#include "cleanup.h"
#include "core.h"
#include "ctx.h"
#include "db/db.h"
#include "err.h"
#include "files.h"
#include "jobs.h"
#include "log.h"
#include "policy.h"
#include "snapshot.h"
#include "vault/vault.h"
#include "virt/virt.h"
#include "offsite.h"
#include "webhook.h"

#define JOB_WORKERS 4

static struct {
    bool started;
    pthread_mutex_t lock;
    core_domain_event_fn listener;
    void *listener_opaque;
} core = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
};

/*
 * The one handler of libvirt's events, on its event thread: each module
 * takes what concerns it and queues its work; the event stream hears of
 * domain lifecycle events.
 */
static void
on_virt_event(const struct conf_event *ev, void *opaque)
{
    core_domain_event_fn fn;
    void *fn_opaque;
    (void)opaque;

    core_checkpoint_on_event(ev);
    core_backup_on_event(ev);
    core_policy_on_event(ev);
    pthread_mutex_lock(&core.lock);
    fn = core.listener;
    fn_opaque = core.listener_opaque;
    pthread_mutex_unlock(&core.lock);
    if (fn && ev->kind != CONF_EVENT_CONNECTED)
        fn(ev, fn_opaque);
}

void
core_domain_events_listen(core_domain_event_fn fn, void *opaque)
{
    pthread_mutex_lock(&core.lock);
    core.listener = fn;
    core.listener_opaque = opaque;
    pthread_mutex_unlock(&core.lock);
}

const char *
core_domain_event_name(enum conf_event_kind kind)
{
    static const char *const names[] = {
        [CONF_EVENT_DEFINED] = "defined",     [CONF_EVENT_UNDEFINED] = "undefined",
        [CONF_EVENT_STARTED] = "started",     [CONF_EVENT_STOPPED] = "stopped",
        [CONF_EVENT_SUSPENDED] = "suspended", [CONF_EVENT_RESUMED] = "resumed",
        [CONF_EVENT_OTHER] = "other",         [CONF_EVENT_JOB_COMPLETED] = "job_completed",
        [CONF_EVENT_CONNECTED] = "connected",
    };

    return (size_t)kind < ARRAY_SIZE(names) && names[kind] ? names[kind] : "other";
}

int
core_start(const struct core_config *cfg)
{
    int r;

    r = vault_prepare(cfg->vault_dir);
    if (r < 0)
        return r;
    core_ctx.vault_dir = strdup(cfg->vault_dir);
    if (!core_ctx.vault_dir)
        return -ENOMEM;
    r = db_open(cfg->db_path, &core_ctx.db);
    if (r < 0)
        return r;
    core_checkpoint_set_max_age(cfg->reconcile_max_age);
    r = core_checkpoint_start();
    if (r < 0) {
        db_close(core_ctx.db);
        core_ctx.db = NULL;
        return r;
    }
    virt_set_event_handler(on_virt_event, NULL);
    r = virt_open(cfg->libvirt_uri);
    if (r < 0) {
        virt_set_event_handler(NULL, NULL);
        core_checkpoint_stop();
        db_close(core_ctx.db);
        core_ctx.db = NULL;
        return r;
    }
    /* Job kinds first: the jobs an earlier process left are recovered by kind. */
    r = core_snapshot_init();
    if (r >= 0)
        r = core_backup_init(core_ctx.db, cfg->vault_dir, cfg->restore_roots,
                             cfg->pull_idle_timeout);
    if (r >= 0)
        r = core_backup_mount_init(cfg->mount_idle_seconds);
    if (r >= 0) {
        struct core_files_config fcfg = {
            .idle_s = cfg->files_idle_seconds,
            .max_handles = cfg->files_max_handles,
            .backend_settings = cfg->guestfs_backend_settings,
        };
        r = core_files_init(&fcfg);
    }
    if (r >= 0) {
        /* The remotes' secrets live beside the database. */
        _cleanup_free_ char *db_copy = strdup(cfg->db_path);
        r = db_copy ? core_offsite_init(dirname(db_copy)) : -ENOMEM;
    }
    if (r >= 0) {
        /* Before the jobs: the ends of jobs an earlier process left are events too. */
        struct core_webhook_config wcfg = {
            .retry_base_ms = cfg->webhook_retry_base_ms,
            .retry_cap_ms = cfg->webhook_retry_cap_ms,
            .retry_for_ms = cfg->webhook_retry_for_ms,
        };
        r = core_webhook_start(&wcfg);
    }
    if (r >= 0)
        r = core_jobs_start(core_ctx.db, JOB_WORKERS);
    if (r < 0) {
        core_webhook_stop();
        virt_set_event_handler(NULL, NULL);
        core_checkpoint_stop();
        virt_close();
        db_close(core_ctx.db);
        core_ctx.db = NULL;
        return r;
    }
    core_backup_sweep();
    if (core_policy_start(cfg->max_policy_jobs ? cfg->max_policy_jobs : 2) < 0)
        log_warn("policies will not run: %s", err_detail());
    core.started = true;
    return 0;
}

void
core_stop(void)
{
    if (!core.started)
        return;
    /* The scheduler first: it starts jobs. */
    core_policy_stop();
    /* Jobs next: a running backup still follows libvirt's events while it ends. */
    core_jobs_stop();
    core_webhook_stop(); /* after the jobs, whose ends are events */
    virt_set_event_handler(NULL, NULL);
    core_checkpoint_stop();
    core_files_fini();
    core_backup_mount_fini();
    core_offsite_fini();
    core_backup_fini();
    virt_close();
    db_close(core_ctx.db);
    core_ctx.db = NULL;
    free(core_ctx.vault_dir);
    core_ctx.vault_dir = NULL;
    core.started = false;
}

int
core_ready(void)
{
    int r;

    if (!virt_connected())
        return err_set(-ENOTCONN, "libvirt at %s is not reachable", virt_uri());
    r = db_ping(core_ctx.db);
    if (r < 0)
        return r;
    return 0;
}

int
core_versions_get(struct conf_versions *ret)
{
    return virt_versions_get(ret);
}

const char *
core_libvirt_uri(void)
{
    return virt_uri();
}

bool
core_hypervisor_connected(void)
{
    return virt_connected();
}

int
core_domain_list(struct conf_domain **ret, size_t *ret_n)
{
    return virt_domain_list(ret, ret_n);
}

int
core_domain_list_page(const char *after, size_t limit, struct conf_domain **ret, size_t *ret_n,
                      bool *ret_more)
{
    return virt_domain_list_page(after, limit, ret, ret_n, ret_more);
}

int
core_domain_list_brief(struct conf_domain **ret, size_t *ret_n)
{
    return virt_domain_list_brief(ret, ret_n);
}

int
core_domain_get(const char *name_or_uuid, struct conf_domain **ret)
{
    return virt_domain_get(name_or_uuid, ret);
}
