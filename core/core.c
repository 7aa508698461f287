#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "core.h"
#include "db/db.h"
#include "err.h"
#include "jobs.h"
#include "log.h"
#include "snapshot.h"
#include "vault/vault.h"

#define JOB_WORKERS 4

static struct {
    struct db *db;
    char *vault_dir;
    bool started;
} core;

/* libvirt's events, on its event thread: hand them to whoever queues work for them. */
static void
on_virt_event(const struct virt_event *ev, void *opaque)
{
    (void)opaque;
    core_checkpoint_on_event(ev);
}

int
core_start(const struct core_config *cfg)
{
    int r;

    r = vault_prepare(cfg->vault_dir);
    if (r < 0)
        return r;
    core.vault_dir = strdup(cfg->vault_dir);
    if (!core.vault_dir)
        return -ENOMEM;
    r = db_open(cfg->db_path, &core.db);
    if (r < 0)
        return r;
    r = core_checkpoint_start();
    if (r < 0) {
        db_close(core.db);
        core.db = NULL;
        return r;
    }
    virt_set_event_handler(on_virt_event, NULL);
    r = virt_open(cfg->libvirt_uri);
    if (r < 0) {
        virt_set_event_handler(NULL, NULL);
        core_checkpoint_stop();
        db_close(core.db);
        core.db = NULL;
        return r;
    }
    /* Job kinds first: the jobs an earlier process left are recovered by kind. */
    r = core_snapshot_init();
    if (r >= 0)
        r = core_jobs_start(core.db, JOB_WORKERS);
    if (r < 0) {
        virt_set_event_handler(NULL, NULL);
        core_checkpoint_stop();
        virt_close();
        db_close(core.db);
        core.db = NULL;
        return r;
    }
    core.started = true;
    return 0;
}

void
core_stop(void)
{
    if (!core.started)
        return;
    virt_set_event_handler(NULL, NULL);
    core_jobs_stop();
    core_checkpoint_stop();
    virt_close();
    db_close(core.db);
    core.db = NULL;
    free(core.vault_dir);
    core.vault_dir = NULL;
    core.started = false;
}

struct db *
core_db(void)
{
    return core.db;
}

const char *
core_vault_dir(void)
{
    return core.vault_dir;
}

int
core_ready(void)
{
    int r;

    if (!virt_connected())
        return err_set(-ENOTCONN, "libvirt at %s is not reachable", virt_uri());
    r = db_ping(core.db);
    if (r < 0)
        return r;
    return 0;
}

int
core_versions_get(struct virt_versions *ret)
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
core_domain_list(struct virt_domain **ret, size_t *ret_n)
{
    return virt_domain_list(ret, ret_n);
}

int
core_domain_get(const char *name_or_uuid, struct virt_domain **ret)
{
    return virt_domain_get(name_or_uuid, ret);
}
