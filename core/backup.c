/* Backups: the table of their job kinds, start-up and sweep (see backup.h, backup_priv.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup_priv.h"
#include "vault/vault.h"
#include "cleanup.h"
#include "db/backup.h"
#include "err.h"
#include "log.h"

/* Cancels a restore or verify run: qemu-img is stopped through its conf_cancel. */
static int
vault_job_cancel(struct job *job, void *data)
{
    struct backup_job *bj = data;

    atomic_store(&bj->cancel.cancelled, true);
    return 0;
}

/* The job kinds of backups: the run record of the first three is struct backup_job. */
const struct job_kind backup_kinds[BACKUP_JOB_KIND_LAST] = {
    [BACKUP_JOB_BACKUP] =
        {
            .kind = CONF_JOB_KIND_BACKUP,
            .run = backup_job_run,
            .cancel = backup_job_cancel,
            .recover = backup_job_recover,
            .free_data = backup_job_free,
        },
    [BACKUP_JOB_RESTORE] =
        {
            .kind = CONF_JOB_KIND_RESTORE,
            .run = backup_restore_run,
            .cancel = vault_job_cancel,
            .free_data = backup_job_free,
        },
    [BACKUP_JOB_VERIFY] =
        {
            .kind = CONF_JOB_KIND_VERIFY,
            .run = backup_verify_run,
            .cancel = vault_job_cancel,
            .free_data = backup_job_free,
        },
    [BACKUP_JOB_PRUNE] =
        {
            .kind = CONF_JOB_KIND_PRUNE,
            .run = backup_prune_run,
            .cancel = backup_prune_cancel,
            .free_data = backup_prune_free,
        },
};

void
core_backup_on_event(const struct conf_event *ev)
{
    if (ev->kind != CONF_EVENT_JOB_COMPLETED && ev->kind != CONF_EVENT_STOPPED &&
        ev->kind != CONF_EVENT_CONNECTED)
        return;
    backup_wake_jobs();
}

int
core_backup_init(struct db *db, const char *vault_dir, const char *roots,
                 unsigned pull_idle_timeout)
{
    char *copy, *save = NULL;
    int r = 0;

    backup_ctx.db = db;
    backup_ctx.pull_idle_s = pull_idle_timeout ? pull_idle_timeout : PULL_IDLE_DEFAULT;
    /* libvirt takes absolute paths only: the vault may have been given relative. */
    backup_ctx.vault = realpath(vault_dir, NULL);
    if (!backup_ctx.vault)
        return err_set(-errno, "cannot resolve the vault folder %s: %s", vault_dir,
                       strerror(errno));
    if (roots) {
        copy = strdup(roots);
        if (!copy)
            return -ENOMEM;
        for (char *p = strtok_r(copy, ":", &save); p && backup_ctx.n_roots < MAX_ROOTS;
             p = strtok_r(NULL, ":", &save))
            if (!(backup_ctx.roots[backup_ctx.n_roots++] = strdup(p))) {
                free(copy);
                return -ENOMEM;
            }
        free(copy);
    } else {
        char *def = NULL;
        if (asprintf(&def, "%s/restore", backup_ctx.vault) < 0)
            return -ENOMEM;
        r = vault_prepare(def);
        if (r < 0) {
            free(def);
            return r;
        }
        backup_ctx.roots[backup_ctx.n_roots++] = def;
    }
    for (size_t i = 0; r >= 0 && i < BACKUP_JOB_KIND_LAST; i++)
        r = core_jobs_register(&backup_kinds[i]);
    /* Before any job runs: a prune a killed process left is finished or undone. */
    if (r >= 0)
        backup_prune_recover();
    if (r >= 0)
        r = core_jobs_register(&backup_recovery_kind);
    return r;
}

void
core_backup_sweep(void)
{
    enum conf_backup_state state = CONF_BACKUP_STATE_RUNNING;
    struct db_backup_filter f = {.state = &state};
    struct conf_backup **list = NULL;
    size_t n = 0;

    if (db_backup_list(backup_ctx.db, &f, &list, &n, NULL) < 0) {
        log_warn("cannot read the backups left running: %s", err_detail());
        return;
    }
    for (size_t i = 0; i < n; i++) {
        _cleanup_(conf_job_freep) struct conf_job *job = NULL;
        bool pull = list[i]->mode == CONF_BACKUP_MODE_PULL;
        struct backup_job br = {.b = list[i], .pull = pull, .begun = pull};

        if (list[i]->job_id && core_job_get(list[i]->job_id, &job) == 0 &&
            !conf_job_state_final(job->state))
            continue; /* a resumed job carries it on */
        err_set(-EINTR, "interrupted: virtvaultd stopped before the backup's job could go on");
        backup_abandon(&br, -EINTR);
    }
    backup_listp(&list, n);

    /* Pull backups left ready: their exports end with the process that served them. */
    state = CONF_BACKUP_STATE_READY;
    if (db_backup_list(backup_ctx.db, &f, &list, &n, NULL) < 0) {
        log_warn("cannot read the pull backups left ready: %s", err_detail());
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct backup_job br = {.b = list[i], .pull = true, .begun = true};

        err_set(-EINTR, "interrupted: virtvaultd stopped while the pull backup was ready");
        backup_abandon(&br, -EINTR);
    }
    backup_listp(&list, n);
    backup_recovery_sweep();
}

void
core_backup_fini(void)
{
    free(TAKE_PTR(backup_ctx.vault));
    for (size_t i = 0; i < backup_ctx.n_roots; i++)
        free(backup_ctx.roots[i]);
    backup_ctx.n_roots = 0;
}
