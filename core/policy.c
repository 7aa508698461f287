/*
 * Protection policies: their records and the scheduler thread that runs
 * them (see policy.h). The thread owns the passes; the API's threads read
 * the records and set the "run now" flags, under sched.lock, which is never
 * held while calling into the job runner (its listener takes sched.lock
 * with the jobs lock held).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backup.h"
#include "cleanup.h"
#include "conf/remote_prune.h"
#include "core.h"
#include "ctx.h"
#include "db/policy.h"
#include "db/remote.h"
#include "err.h"
#include "jobs.h"
#include "log.h"
#include "offsite.h"
#include "policy.h"
#include "text.h"
#include "webhook.h"

#define RETRY_BUSY_MS      3000  /* a busy domain is tried again after this */
#define DOMAINS_REFRESH_MS 5000  /* the domain list is read again after this */
#define IDLE_WAKE_MS       10000 /* the longest sleep: new domains are seen this soon */
#define POLL_RUNNING_MS    1000  /* while runs are in flight */
#define VERIFY_LIST_MAX    500   /* backups of a domain looked at for verification */
#define MAX_ENTRIES        4096
#define MAX_RUN_SERIES     256

/* What the scheduler keeps in memory per policy and domain. */
struct entry {
    char policy[NAME_MAX_LEN + 1];
    char uuid[37];
    bool force;          /* run now (POST :run); kept while the domain is busy */
    int64_t retry_at_ms; /* the domain was busy: not before then */
    int64_t verify_at_ms;
    char verify_job[CONF_JOB_ID_LEN + 1]; /* a verify job in flight, or "" */
    bool overdue;
    int64_t prune_at_ms; /* the policy's retention is to be applied from then on; 0: not */
    char prune_job[CONF_JOB_ID_LEN + 1]; /* the policy's prune in flight, or "" */
    int64_t copy_retry_at_ms;            /* copy_to: the backup was busy; not before then */
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool running, stop, kick, refresh;
    unsigned max_jobs;
    int listener;
    int64_t started_ms;
    struct entry *entries;
    size_t n_entries;
    struct core_policy_runs runs[MAX_RUN_SERIES];
    size_t n_runs;
    struct core_policy_ticks ticks;
    /* the scheduler thread's own: */
    struct conf_domain *domains;
    size_t n_domains;
    int64_t domains_ms;
} sched = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .listener = -1,
};

static void
kick(void)
{
    pthread_mutex_lock(&sched.lock);
    sched.kick = true;
    pthread_cond_signal(&sched.wake);
    pthread_mutex_unlock(&sched.lock);
}

/* Where entries are found: an open-addressed table of entry index + 1 (0: free). */
#define ENTRY_SLOTS (2 * MAX_ENTRIES)

static uint32_t entry_slot[ENTRY_SLOTS];

static size_t
entry_hash(const char *policy, const char *uuid)
{
    return (text_hash(uuid) * 31u + text_hash(policy)) % ENTRY_SLOTS;
}

/* Builds entry_slot again from sched.entries (after they moved); sched.lock held. */
static void
entries_reindex(void)
{
    memset(entry_slot, 0, sizeof(entry_slot));
    for (size_t i = 0; i < sched.n_entries; i++) {
        size_t h = entry_hash(sched.entries[i].policy, sched.entries[i].uuid);
        while (entry_slot[h])
            h = (h + 1) % ENTRY_SLOTS;
        entry_slot[h] = (uint32_t)i + 1;
    }
}

/*
 * The entry of (policy, uuid), made when missing; sched.lock held. NULL when
 * full. A pass asks for each domain's a few times: a lookup, not a scan.
 */
static struct entry *
entry_get(const char *policy, const char *uuid)
{
    size_t h = entry_hash(policy, uuid);
    struct entry *grown;

    for (; entry_slot[h]; h = (h + 1) % ENTRY_SLOTS) {
        struct entry *e = &sched.entries[entry_slot[h] - 1];
        if (strcmp(e->uuid, uuid) == 0 && strcmp(e->policy, policy) == 0)
            return e;
    }
    if (sched.n_entries >= MAX_ENTRIES)
        return NULL;
    if ((sched.n_entries & (sched.n_entries - 1)) == 0) { /* 0, 1, 2, 4, ...: grow twofold */
        size_t cap = sched.n_entries ? sched.n_entries * 2 : 1;
        grown = realloc(sched.entries, cap * sizeof(*grown));
        if (!grown)
            return NULL;
        sched.entries = grown;
    }
    entry_slot[h] = (uint32_t)sched.n_entries + 1;
    grown = &sched.entries[sched.n_entries++];
    memset(grown, 0, sizeof(*grown));
    snprintf(grown->policy, sizeof(grown->policy), "%s", policy);
    snprintf(grown->uuid, sizeof(grown->uuid), "%s", uuid);
    return grown;
}

static void
count_run(const char *policy, const char *result)
{
    pthread_mutex_lock(&sched.lock);
    size_t i;
    for (i = 0; i < sched.n_runs; i++)
        if (strcmp(sched.runs[i].policy, policy) == 0 && strcmp(sched.runs[i].result, result) == 0)
            break;
    if (i == sched.n_runs && sched.n_runs < MAX_RUN_SERIES) {
        snprintf(sched.runs[i].policy, sizeof(sched.runs[i].policy), "%s", policy);
        snprintf(sched.runs[i].result, sizeof(sched.runs[i].result), "%s", result);
        sched.runs[i].count = 0;
        sched.n_runs++;
    }
    if (i < sched.n_runs)
        sched.runs[i].count++;
    pthread_mutex_unlock(&sched.lock);
}

static int
set_str(char **field, const char *value)
{
    char *copy = NULL;

    if (value && !(copy = strdup(value)))
        return -ENOMEM;
    free(*field);
    *field = copy;
    return 0;
}

/* The policy (of list, by name) that has domain name: the first that matches. */
static const struct conf_policy *
owner_of(struct conf_policy *const *list, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (conf_policy_matches(list[i], name))
            return list[i];
    return NULL;
}

/* Whether m is overdue under p at now, and until when it is protected. */
static bool
overdue_of(const struct conf_policy *p, const struct conf_policy_member *m, int64_t now_ms,
           int64_t *ret_protected_until)
{
    int64_t period = conf_schedule_period(&p->schedule, now_ms / 1000) * 1000;
    int64_t ref = m->last_success_ms ? m->last_success_ms : m->since_ms;

    *ret_protected_until = m->last_success_ms && period ? m->last_success_ms + 2 * period : 0;
    return p->enabled && period > 0 && now_ms - ref > 2 * period;
}

/* When the next run of m under p is due (ms), or -1 for none. */
static int64_t
due_of(const struct conf_policy *p, const struct conf_policy_member *m)
{
    int64_t offset = conf_schedule_offset(&p->schedule, p->name, m->domain_uuid);
    bool ran = m->last_run_ms != 0;

    return conf_schedule_due(&p->schedule, ran ? m->last_run_ms : m->since_ms, ran, offset);
}

/* Asks for m's policy's retention to be applied by the next pass, from at_ms on. */
static void
prune_after(const struct conf_policy_member *m, int64_t at_ms)
{
    struct entry *e;

    pthread_mutex_lock(&sched.lock);
    e = entry_get(m->policy, m->domain_uuid);
    if (e)
        e->prune_at_ms = at_ms;
    pthread_mutex_unlock(&sched.lock);
}

/* Records how the run of m ended (result, detail) and what follows from it. */
static void
settle(struct conf_policy_member *m, const struct conf_job *job, const char *result, int64_t now)
{
    if (set_str(&m->last_result, result) < 0 ||
        set_str(&m->last_detail, job && job->error_errno ? job->error_detail : NULL) < 0)
        return;
    if (strcmp(result, "succeeded") == 0) {
        struct entry *e;

        const char *id = job && job->result ? strstr(job->result, "\"backup_id\": \"") : NULL;
        char backup[64];

        pthread_mutex_lock(&sched.lock);
        e = entry_get(m->policy, m->domain_uuid);
        if (e)
            e->verify_at_ms = 0; /* a new backup to verify, perhaps */
        pthread_mutex_unlock(&sched.lock);
        /* A new backup to copy, when the policy copies (maybe_copy() decides); stored below. */
        if (id && sscanf(id + 14, "%63[^\"]", backup) == 1 && set_str(&m->copy_pending, backup) < 0)
            return;
        m->last_success_ms = job && job->finished_ms ? job->finished_ms : now;
        prune_after(m, now);
    }
    count_run(m->policy, result);
    if (db_policy_member_put(core_ctx.db, m) < 0)
        log_warn("policy %s: %s: cannot record the run: %s", m->policy, m->domain, err_detail());
    log_info("policy %s: %s: backup job %s %s", m->policy, m->domain,
             m->last_job ? m->last_job : "-", result);
    kick();
}

/* Follows the runs in flight; returns how many are. */
static unsigned
follow_runs(struct conf_policy_member *mem, size_t n_mem, int64_t now)
{
    unsigned running = 0;
    char ids[64][CONF_JOB_ID_LEN + 1];
    size_t n_ids = 0;

    for (size_t i = 0; i < n_mem; i++) {
        struct conf_policy_member *m = &mem[i];
        _cleanup_(conf_job_freep) struct conf_job *job = NULL;
        int r;

        if (!m->last_result || strcmp(m->last_result, "running") != 0)
            continue;
        r = m->last_job ? core_job_get(m->last_job, &job) : -ENOENT;
        if (r == -ENOENT) {
            settle(m, NULL, "failed", now);
            continue;
        }
        if (r < 0 || job->state == CONF_JOB_QUEUED || job->state == CONF_JOB_RUNNING) {
            running++;
            continue;
        }
        settle(m, job, conf_job_state_to_string(job->state), now);
    }
    /* Verifications in flight. */
    pthread_mutex_lock(&sched.lock);
    for (size_t i = 0; i < sched.n_entries && n_ids < 64; i++)
        if (sched.entries[i].verify_job[0])
            memcpy(ids[n_ids++], sched.entries[i].verify_job, CONF_JOB_ID_LEN + 1);
    pthread_mutex_unlock(&sched.lock);
    for (size_t k = 0; k < n_ids; k++) {
        _cleanup_(conf_job_freep) struct conf_job *job = NULL;
        int r = core_job_get(ids[k], &job);

        if (r >= 0 && (job->state == CONF_JOB_QUEUED || job->state == CONF_JOB_RUNNING)) {
            running++;
            continue;
        }
        pthread_mutex_lock(&sched.lock);
        for (size_t i = 0; i < sched.n_entries; i++)
            if (strcmp(sched.entries[i].verify_job, ids[k]) == 0)
                sched.entries[i].verify_job[0] = '\0';
        pthread_mutex_unlock(&sched.lock);
    }
    err_clear();
    return running;
}

/*
 * The oldest kept backup of uuid that is due for verification under
 * verify_after_s, into id; *ret_next_ms is when the next one falls due (0:
 * none). Returns 1 when one is due now, 0 when none, or a negative errno.
 */
static int
verify_due(const char *uuid, int64_t verify_after_s, int64_t now, char *id, size_t size,
           int64_t *ret_next_ms)
{
    enum conf_backup_state completed = CONF_BACKUP_STATE_COMPLETED;
    struct core_backup_query q = {.state = &completed, .limit = VERIFY_LIST_MAX};
    struct conf_backup **list = NULL;
    size_t n = 0, total = 0;
    int64_t best = -1, next = 0;
    int r;

    r = core_backup_list(uuid, &q, &list, &n, &total);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        const struct conf_backup *b = list[i];
        int64_t due;

        if (core_backup_is_client_pull(b))
            continue;
        if (b->verify_ok >= 0 && verify_after_s == 0)
            continue; /* 0: each backup once */
        due = b->verify_ok >= 0
                  ? b->verified_at + verify_after_s * 1000
                  : (b->finished_at ? b->finished_at : b->started_at) + verify_after_s * 1000;
        if (due <= now) {
            if (best < 0 || due < best) {
                best = due;
                snprintf(id, size, "%s", b->id);
            }
        } else if (!next || due < next) {
            next = due;
        }
    }
    conf_backup_list_free(list, n);
    *ret_next_ms = next;
    return best >= 0;
}

static void
wake_at(int64_t *wake, int64_t t)
{
    if (t > 0 && t < *wake)
        *wake = t;
}

/* Starts verification of m's domain when one of its backups is due; true when it started. */
static bool
maybe_verify(const struct conf_policy *p, const struct conf_policy_member *m, int64_t now,
             int64_t *wake)
{
    _cleanup_(conf_job_freep) struct conf_job *job = NULL;
    char id[64];
    int64_t next = 0;
    struct entry *e;
    bool go;
    int r;

    pthread_mutex_lock(&sched.lock);
    e = entry_get(p->name, m->domain_uuid);
    go = e && !e->verify_job[0] && now >= e->verify_at_ms;
    pthread_mutex_unlock(&sched.lock);
    if (!go)
        return false;
    r = verify_due(m->domain_uuid, p->verify_after_s, now, id, sizeof(id), &next);
    if (r > 0)
        r = core_backup_verify(m->domain_uuid, id, &job);
    pthread_mutex_lock(&sched.lock);
    e = entry_get(p->name, m->domain_uuid);
    if (e && r >= 0 && job)
        snprintf(e->verify_job, sizeof(e->verify_job), "%s", job->id);
    /* Busy or failed to list: look again soon; else when the next falls due. */
    if (e)
        e->verify_at_ms = r < 0 ? now + RETRY_BUSY_MS : next ? next : INT64_MAX;
    pthread_mutex_unlock(&sched.lock);
    if (r < 0) {
        wake_at(wake, now + RETRY_BUSY_MS);
        err_clear();
        return false;
    }
    wake_at(wake, next);
    if (job)
        log_info("policy %s: %s: verifying backup %s (job %s)", p->name, m->domain, id, job->id);
    return job != NULL;
}

/* Starts the backup of m under p; returns true when a job started. */
static bool
start_run(const struct conf_policy *p, struct conf_policy_member *m, bool catch_up, int64_t now,
          int64_t *wake)
{
    struct core_backup_request req = {
        .type = p->backup.type,
        .disks = (const char *const *)p->backup.disks,
        .n_disks = p->backup.n_disks,
        .bandwidth = p->backup.bandwidth,
        .mode = p->backup.mode,
        .to_vault = p->backup.to_vault,
        .policy = p->name,
    };
    _cleanup_(conf_job_freep) struct conf_job *job = NULL;
    struct conf_backup *b = NULL;
    struct entry *e;
    bool retry;
    int r;

    /* The run starts now, not when the pass began: the next is due an interval after it. */
    now = text_now_ms();
    r = core_backup_create(m->domain_uuid, &req, &b, &job);
    conf_backup_free(b);
    /* Busy, or libvirt away for a moment: not skipped but tried again; the anchor stays. */
    retry = r == -EBUSY || r == -ENOTCONN || r == -EAGAIN;
    pthread_mutex_lock(&sched.lock);
    e = entry_get(p->name, m->domain_uuid);
    if (e && !retry)
        e->force = false;
    if (e && retry)
        e->retry_at_ms = now + RETRY_BUSY_MS;
    pthread_mutex_unlock(&sched.lock);
    if (retry) {
        const char *result = r == -EBUSY ? "busy" : "unavailable";
        set_str(&m->last_result, result);
        set_str(&m->last_detail, err_detail());
        wake_at(wake, now + RETRY_BUSY_MS);
        count_run(p->name, result);
        log_info("policy %s: %s: %s; trying again in %d s", p->name, m->domain,
                 err_detail() ? err_detail() : result, RETRY_BUSY_MS / 1000);
    } else if (r < 0) {
        set_str(&m->last_result, "error");
        set_str(&m->last_detail, err_detail() ? err_detail() : strerror(-r));
        set_str(&m->last_job, NULL);
        m->last_run_ms = now;
        m->last_catch_up = catch_up;
        count_run(p->name, "error");
        log_warn("policy %s: %s: the backup cannot start: %s", p->name, m->domain,
                 m->last_detail ? m->last_detail : "");
    } else {
        set_str(&m->last_result, "running");
        set_str(&m->last_detail, NULL);
        set_str(&m->last_job, job->id);
        m->last_run_ms = now;
        m->last_catch_up = catch_up;
        wake_at(wake, now + POLL_RUNNING_MS);
        log_info("policy %s: %s: backup job %s started%s", p->name, m->domain, job->id,
                 catch_up ? " (catching up a run missed while the service was down)" : "");
    }
    err_clear();
    if (db_policy_member_put(core_ctx.db, m) < 0) {
        log_warn("policy %s: %s: cannot record the run: %s", p->name, m->domain, err_detail());
        err_clear();
    }
    return r >= 0;
}

static int
member_cmp(const void *a, const void *b)
{
    const struct conf_policy_member *x = a, *y = b;
    int c = strcmp(x->domain_uuid, y->domain_uuid);

    return c ? c : strcmp(x->policy, y->policy);
}

/* Orders mem for member_find(). */
static void
members_sort(struct conf_policy_member *mem, size_t n)
{
    if (n > 1)
        qsort(mem, n, sizeof(*mem), member_cmp);
}

/* The member of (policy, uuid) in mem (ordered by members_sort()), or NULL. */
static struct conf_policy_member *
member_find(struct conf_policy_member *mem, size_t n, const char *policy, const char *uuid)
{
    struct conf_policy_member key = {.policy = (char *)policy};

    snprintf(key.domain_uuid, sizeof(key.domain_uuid), "%s", uuid);
    return n ? bsearch(&key, mem, n, sizeof(*mem), member_cmp) : NULL;
}

/*
 * Applies p's retention to m's domain when a successful run asked for it:
 * a prune job (core_backup_prune), which merges what kept backups need. A
 * domain still busy (the backup's job letting go of it, a job of
 * someone else) is tried again after RETRY_BUSY_MS. Returns true when a
 * prune job started.
 */
static bool
maybe_prune(const struct conf_policy *p, const struct conf_policy_member *m, int64_t now,
            int64_t *wake)
{
    _cleanup_(conf_job_freep) struct conf_job *job = NULL;
    struct entry *e;
    int64_t at = 0;
    int r;

    pthread_mutex_lock(&sched.lock);
    e = entry_get(p->name, m->domain_uuid);
    if (e)
        at = e->prune_at_ms;
    pthread_mutex_unlock(&sched.lock);
    if (!at)
        return false;
    if (at > now) {
        wake_at(wake, at);
        return false;
    }
    if (conf_retention_keeps_all(&p->retention)) {
        prune_after(m, 0);
        return false;
    }
    r = core_backup_prune(m->domain_uuid, &p->retention, false, NULL, &job);
    if (r == -EBUSY) {
        prune_after(m, now + RETRY_BUSY_MS);
        wake_at(wake, now + RETRY_BUSY_MS);
        err_clear();
        return false;
    }
    prune_after(m, 0);
    if (r < 0) {
        log_warn("policy %s: %s: cannot apply the retention: %s", p->name, m->domain, err_detail());
        err_clear();
        return false;
    }
    pthread_mutex_lock(&sched.lock);
    e = entry_get(p->name, m->domain_uuid);
    if (e)
        memcpy(e->prune_job, job->id, sizeof(e->prune_job));
    pthread_mutex_unlock(&sched.lock);
    log_info("policy %s: %s: retention applied by prune job %s", p->name, m->domain, job->id);
    return true;
}

/* Whether job id is queued or running (a job that cannot be read is not). */
static bool
job_in_flight(const char *id)
{
    _cleanup_(conf_job_freep) struct conf_job *job = NULL;

    if (!id[0] || core_job_get(id, &job) < 0) {
        err_clear();
        return false;
    }
    return job->state == CONF_JOB_QUEUED || job->state == CONF_JOB_RUNNING;
}

/* Stores m's copy state (copy_pending, copy_job, and what copy_failed() set). */
static void
copy_store(struct conf_policy_member *m)
{
    if (db_policy_member_put(core_ctx.db, m) < 0) {
        log_warn("policy %s: %s: cannot record the copy: %s", m->policy, m->domain, err_detail());
        err_clear();
    }
}

/* Forgets that m's backup is to be copied, when it is still the one pending. */
static void
copy_ended(struct conf_policy_member *m, const char *backup)
{
    if (m->copy_pending && strcmp(m->copy_pending, backup) == 0)
        set_str(&m->copy_pending, NULL);
}

/*
 * Records on m that the copy of its policy's backup failed (result
 * "copy_failed"); the next run copies it with its own.
 */
static void
copy_failed(struct conf_policy_member *m, const char *job_id, const char *backup,
            const char *remote, const char *why)
{
    char detail[1024];

    snprintf(detail, sizeof(detail), "the copy of backup %s to remote '%s' failed: %s", backup,
             remote, why && *why ? why : "unknown error");
    copy_ended(m, backup); /* backup may be m->copy_pending: not read after this */
    log_warn("policy %s: %s: %s", m->policy, m->domain, detail);
    if (set_str(&m->last_result, "copy_failed") < 0 || set_str(&m->last_detail, detail) < 0 ||
        (job_id && set_str(&m->last_job, job_id) < 0))
        return;
    count_run(m->policy, "copy_failed");
    copy_store(m);
}

/*
 * The remote retention m's policy applied after a copy (job) has ended:
 * when it failed, the member says so (result "remote_prune_failed"; the
 * bucket holds more than the retention keeps until the next copy's prune).
 */
static void
remote_prune_settle(struct conf_policy_member *m, const struct conf_job *job, const char *remote)
{
    char detail[1024];

    if (job->state == CONF_JOB_SUCCEEDED || job->error_errno == -EINTR)
        return;
    snprintf(detail, sizeof(detail), "the remote retention of remote '%s' failed: %s", remote,
             job->error_detail && *job->error_detail ? job->error_detail : "unknown error");
    log_warn("policy %s: %s: %s", m->policy, m->domain, detail);
    if (set_str(&m->last_result, "remote_prune_failed") < 0 ||
        set_str(&m->last_detail, detail) < 0 || set_str(&m->last_job, job->id) < 0)
        return;
    count_run(m->policy, "remote_prune_failed");
}

/*
 * m's copy job (m->copy_job) has ended: records how, and when it
 * succeeded, applies remote_retention to the domain's backups in the
 * bucket (core_offsite_prune), whose job m->copy_job then follows
 * (remote_prune_settle). A copy the service's stop interrupted before it
 * could go on leaves its backup pending: it is copied again. Returns true
 * when a job started.
 */
static bool
copy_settle(const struct conf_policy *p, struct conf_policy_member *m)
{
    _cleanup_(conf_job_freep) struct conf_job *job = NULL;
    char copied[64] = "", job_id[CONF_JOB_ID_LEN + 1];
    int r;

    snprintf(job_id, sizeof(job_id), "%s", m->copy_job);
    set_str(&m->copy_job, NULL);
    r = core_job_get(job_id, &job);
    if (r >= 0 && job->kind == CONF_JOB_KIND_OFFSITE_PRUNE) {
        remote_prune_settle(m, job, p->copy_to ? p->copy_to : "?");
        copy_store(m);
        return false;
    }
    if (r >= 0 && (!job->params || sscanf(job->params, "%63s", copied) != 1))
        copied[0] = '\0';
    if (r >= 0 && job->state == CONF_JOB_FAILED && job->error_errno == -EINTR) {
        log_info("policy %s: %s: copy job %s was interrupted; backup %s is copied again", p->name,
                 m->domain, job_id, m->copy_pending ? m->copy_pending : "-");
        copy_store(m);
        return false;
    }
    if (r < 0 || job->state != CONF_JOB_SUCCEEDED) {
        copy_failed(m, job_id, copied[0] ? copied : "?", p->copy_to ? p->copy_to : "?",
                    r < 0 ? "the copy job is gone" : job->error_detail);
        err_clear();
        return false;
    }
    conf_job_free(TAKE_PTR(job));
    copy_ended(m, copied);
    copy_store(m);
    if (!p->copy_to || conf_retention_keeps_all(&p->remote_retention))
        return false;
    r = core_offsite_prune(p->copy_to, m->domain_uuid, &p->remote_retention, false, p->name, NULL,
                           &job);
    if (r < 0) {
        log_warn("policy %s: %s: cannot apply the remote retention to remote %s: %s", p->name,
                 m->domain, p->copy_to, err_detail());
        err_clear();
        return false;
    }
    log_info("policy %s: %s: remote retention applied to remote %s by job %s", p->name, m->domain,
             p->copy_to, job->id);
    if (set_str(&m->copy_job, job->id) >= 0)
        copy_store(m);
    return true;
}

/*
 * copy_to: once a successful run's local prune has ended, queues the copy
 * of its backup (m->copy_pending) to the policy's remote (its chain's
 * ancestors first, what the bucket holds skipped), locked, when the remote
 * locks, for what remote_retention keeps the newest backup
 * (conf_remote_lock_span), then follows that job and the remote
 * retention's after it (m->copy_job) to their ends (copy_settle). Both are
 * stored: after a restart, a pending copy starts at once and a job that
 * goes on is followed. When a copy failed, the member says so and the next
 * run copies again. Returns true when a job started.
 */
static bool
maybe_copy(const struct conf_policy *p, struct conf_policy_member *m, int64_t now, int64_t *wake)
{
    _cleanup_(conf_job_freep) struct conf_job *job = NULL;
    char prune_job[CONF_JOB_ID_LEN + 1];
    int64_t retry_at = 0, prune_at = 0, lock_s = 0;
    struct conf_remote rem = {0};
    struct entry *e;
    int r;

    if (m->copy_job)
        return !job_in_flight(m->copy_job) && copy_settle(p, m); /* its end kicks the scheduler */
    if (!m->copy_pending)
        return false;
    if (!p->copy_to) { /* copy_to was taken off the policy */
        set_str(&m->copy_pending, NULL);
        copy_store(m);
        return false;
    }
    pthread_mutex_lock(&sched.lock);
    e = entry_get(p->name, m->domain_uuid);
    if (e) {
        memcpy(prune_job, e->prune_job, sizeof(prune_job));
        retry_at = e->copy_retry_at_ms;
        prune_at = e->prune_at_ms;
    }
    pthread_mutex_unlock(&sched.lock);
    if (!e)
        return false;
    /* After the local prune: it may merge into the backup to copy. */
    if (prune_at || job_in_flight(prune_job))
        return false;
    if (now < retry_at) {
        wake_at(wake, retry_at);
        return false;
    }
    r = db_remote_get(core_ctx.db, p->copy_to, &rem);
    if (r >= 0 && rem.lock_days)
        lock_s = conf_remote_lock_span(
            &p->remote_retention, conf_schedule_period(&p->schedule, now / 1000), rem.lock_days);
    conf_remote_clear(&rem);
    if (r >= 0)
        r = core_backup_copy_policy(m->domain_uuid, m->copy_pending, p->copy_to, 0, p->name, lock_s,
                                    &job);
    pthread_mutex_lock(&sched.lock);
    if ((e = entry_get(p->name, m->domain_uuid)))
        e->copy_retry_at_ms = r == -EBUSY ? now + RETRY_BUSY_MS : 0;
    pthread_mutex_unlock(&sched.lock);
    if (r == -EBUSY) {
        wake_at(wake, now + RETRY_BUSY_MS);
        err_clear();
        return false;
    }
    if (r < 0) {
        copy_failed(m, NULL, m->copy_pending, p->copy_to, err_detail());
        err_clear();
        return false;
    }
    log_info("policy %s: %s: backup %s is copied to remote %s by job %s", p->name, m->domain,
             m->copy_pending, p->copy_to, job->id);
    if (set_str(&m->copy_job, job->id) < 0)
        return true; /* not followed: its backup stays pending, copied again next time */
    copy_store(m);
    return true;
}

/* One domain of one enabled policy: joins it, runs it when due, verifies, watches overdue. */
static void
schedule_one(const struct conf_policy *p, const struct conf_domain *d,
             struct conf_policy_member *found, unsigned *running, int64_t now, int64_t *wake)
{
    struct conf_policy_member fresh = {0};
    struct conf_policy_member *m = found;
    int64_t due, prot;
    bool force = false, was_overdue = false, overdue;
    int64_t retry_at = 0;
    struct entry *e;

    if (!m) {
        m = &fresh;
        if (set_str(&m->policy, p->name) < 0 || set_str(&m->domain, d->name) < 0)
            goto out;
        memcpy(m->domain_uuid, d->uuid, sizeof(m->domain_uuid));
        m->since_ms = now;
        if (db_policy_member_put(core_ctx.db, m) < 0) {
            log_warn("policy %s: %s: cannot record it: %s", p->name, d->name, err_detail());
            goto out;
        }
        log_info("policy %s: domain %s joins it", p->name, d->name);
    } else if (strcmp(m->domain, d->name) != 0) {
        set_str(&m->domain, d->name); /* renamed: stored with the next change */
    }
    pthread_mutex_lock(&sched.lock);
    e = entry_get(p->name, d->uuid);
    if (e) {
        force = e->force;
        retry_at = e->retry_at_ms;
    }
    pthread_mutex_unlock(&sched.lock);

    if (!m->last_result || strcmp(m->last_result, "running") != 0) {
        due = due_of(p, m);
        if (force || (due >= 0 && due <= now)) {
            if (now < retry_at)
                wake_at(wake, retry_at);
            else if (*running >= sched.max_jobs)
                wake_at(wake, now + POLL_RUNNING_MS); /* --max-policy-jobs: wait for a slot */
            else if (start_run(p, m, !force && due < sched.started_ms, now, wake))
                ++*running;
        } else if (due >= 0) {
            wake_at(wake, due);
        }
    }
    if ((!m->last_result || strcmp(m->last_result, "running") != 0) && *running < sched.max_jobs &&
        maybe_prune(p, m, now, wake))
        ++*running;
    if ((!m->last_result || strcmp(m->last_result, "running") != 0) && maybe_copy(p, m, now, wake))
        ++*running;
    if (p->verify_after_s >= 0 && (!m->last_result || strcmp(m->last_result, "running") != 0) &&
        *running < sched.max_jobs && maybe_verify(p, m, now, wake))
        ++*running;

    overdue = overdue_of(p, m, now, &prot);
    pthread_mutex_lock(&sched.lock);
    e = entry_get(p->name, d->uuid);
    if (e) {
        was_overdue = e->overdue;
        e->overdue = overdue;
    }
    pthread_mutex_unlock(&sched.lock);
    if (overdue && !was_overdue) {
        log_warn("policy %s: domain %s is overdue: no successful backup within twice the "
                 "schedule's period",
                 p->name, d->name);
        core_webhook_emit_domain_overdue(d->name, d->uuid, p->name, m->last_success_ms);
    }
out:
    err_clear();
    conf_policy_member_clear(&fresh);
}

/* One pass over every policy; *ret_wake is when the next is needed. */
static void
pass(int64_t now, int64_t *ret_wake)
{
    struct conf_policy **pols = NULL;
    struct conf_policy_member *mem = NULL;
    size_t n_pols = 0, n_mem = 0;
    int64_t wake = now + IDLE_WAKE_MS;
    unsigned running;

    bool refresh;

    pthread_mutex_lock(&sched.lock);
    refresh = sched.refresh;
    sched.refresh = false;
    pthread_mutex_unlock(&sched.lock);
    if (refresh || !sched.domains_ms || now - sched.domains_ms >= DOMAINS_REFRESH_MS) {
        struct conf_domain *list = NULL;
        size_t n = 0;
        if (core_domain_list_brief(&list, &n) >= 0) {
            conf_domain_list_free(sched.domains, sched.n_domains);
            sched.domains = list;
            sched.n_domains = n;
            sched.domains_ms = now;
        }
    }
    if (db_policy_list(core_ctx.db, &pols, &n_pols) < 0 ||
        db_policy_member_list(core_ctx.db, NULL, &mem, &n_mem) < 0) {
        log_warn("policies: cannot read them: %s", err_detail());
        wake = now + POLL_RUNNING_MS * 5;
        goto out;
    }
    members_sort(mem, n_mem);
    running = follow_runs(mem, n_mem, now);
    if (running)
        wake_at(&wake, now + POLL_RUNNING_MS);
    for (size_t i = 0; i < sched.n_domains; i++) {
        const struct conf_domain *d = &sched.domains[i];
        const struct conf_policy *p = owner_of(pols, n_pols, d->name);

        if (!p || !p->enabled)
            continue;
        schedule_one(p, d, member_find(mem, n_mem, p->name, d->uuid), &running, now, &wake);
    }
out:
    err_clear();
    conf_policy_list_free(pols, n_pols);
    conf_policy_member_list_free(mem, n_mem);
    *ret_wake = wake;
}

const double core_policy_tick_bounds[CORE_POLICY_TICK_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

/* Counts one pass of secs seconds over n_domains domains. */
static void
count_tick(double secs, size_t n_domains)
{
    size_t b = 0;

    while (b < CORE_POLICY_TICK_BUCKETS && secs > core_policy_tick_bounds[b])
        b++;
    pthread_mutex_lock(&sched.lock);
    sched.ticks.count[b]++;
    sched.ticks.total++;
    sched.ticks.sum_s += secs;
    if (secs > sched.ticks.max_s)
        sched.ticks.max_s = secs;
    pthread_mutex_unlock(&sched.lock);
    log_debug("policies: a pass over %zu domains took %.3f ms", n_domains, secs * 1000.0);
}

void
core_policy_ticks_get(struct core_policy_ticks *ret)
{
    pthread_mutex_lock(&sched.lock);
    *ret = sched.ticks;
    pthread_mutex_unlock(&sched.lock);
}

static void *
scheduler_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&sched.lock);
    while (!sched.stop) {
        int64_t wake = 0;
        struct timespec until;

        sched.kick = false;
        pthread_mutex_unlock(&sched.lock);
        uint64_t t0 = text_mono_ns();
        pass(text_now_ms(), &wake);
        count_tick((double)(text_mono_ns() - t0) / 1e9, sched.n_domains);
        pthread_mutex_lock(&sched.lock);
        until.tv_sec = (time_t)(wake / 1000);
        until.tv_nsec = (long)(wake % 1000) * 1000000L;
        while (!sched.stop && !sched.kick && text_now_ms() < wake)
            if (pthread_cond_timedwait(&sched.wake, &sched.lock, &until) != 0)
                break;
    }
    pthread_mutex_unlock(&sched.lock);
    return NULL;
}

/* Wakes the scheduler when a job ends (with the jobs lock held: quick, no call back). */
static void
on_job(const struct conf_job *job, void *opaque)
{
    (void)opaque;
    if (job->state == CONF_JOB_QUEUED || job->state == CONF_JOB_RUNNING)
        return;
    kick();
}

void
core_policy_on_event(const struct conf_event *ev)
{
    if (ev->kind != CONF_EVENT_DEFINED && ev->kind != CONF_EVENT_UNDEFINED &&
        ev->kind != CONF_EVENT_CONNECTED)
        return;
    pthread_mutex_lock(&sched.lock);
    sched.refresh = true;
    sched.kick = true;
    pthread_cond_signal(&sched.wake);
    pthread_mutex_unlock(&sched.lock);
}

int
core_policy_start(unsigned max_jobs)
{
    int r;

    sched.max_jobs = max_jobs ? max_jobs : 1;
    sched.stop = false;
    sched.started_ms = text_now_ms();
    sched.listener = core_jobs_listen(on_job, NULL);
    r = -pthread_create(&sched.thread, NULL, scheduler_main, NULL);
    if (r < 0) {
        core_jobs_unlisten(sched.listener);
        sched.listener = -1;
        return err_set(r, "cannot start the policy scheduler");
    }
    sched.running = true;
    return 0;
}

void
core_policy_stop(void)
{
    if (!sched.running)
        return;
    pthread_mutex_lock(&sched.lock);
    sched.stop = true;
    pthread_cond_signal(&sched.wake);
    pthread_mutex_unlock(&sched.lock);
    pthread_join(sched.thread, NULL);
    if (sched.listener >= 0)
        core_jobs_unlisten(sched.listener);
    sched.listener = -1;
    sched.running = false;
    conf_domain_list_free(sched.domains, sched.n_domains);
    sched.domains = NULL;
    sched.n_domains = 0;
    sched.domains_ms = 0;
    free(sched.entries);
    sched.entries = NULL;
    sched.n_entries = 0;
    entries_reindex();
}

/* -EEXIST naming the other policy when p would take a domain another policy has. */
static int
check_overlap(const struct conf_policy *p)
{
    struct conf_policy **pols = NULL;
    struct conf_domain *doms = NULL;
    size_t n_pols = 0, n_doms = 0;
    int r;

    r = db_policy_list(core_ctx.db, &pols, &n_pols);
    if (r < 0)
        return r;
    if (core_domain_list_brief(&doms, &n_doms) < 0) {
        err_clear(); /* libvirt away: the literal names are still checked */
        doms = NULL;
        n_doms = 0;
    }
    for (size_t i = 0; r == 0 && i < n_pols; i++) {
        const struct conf_policy *q = pols[i];
        const char *clash = NULL;

        if (strcmp(q->name, p->name) == 0)
            continue;
        for (size_t k = 0; !clash && k < p->n_domains; k++)
            if (!conf_policy_is_pattern(p->domains[k]) && conf_policy_matches(q, p->domains[k]))
                clash = p->domains[k];
        for (size_t k = 0; !clash && k < q->n_domains; k++)
            if (!conf_policy_is_pattern(q->domains[k]) && conf_policy_matches(p, q->domains[k]))
                clash = q->domains[k];
        for (size_t k = 0; !clash && k < n_doms; k++)
            if (conf_policy_matches(p, doms[k].name) && conf_policy_matches(q, doms[k].name))
                clash = doms[k].name;
        if (clash)
            r = err_set(-EEXIST,
                        "domain '%s' is in policy '%s' already: a domain is in at most "
                        "one policy",
                        clash, q->name);
    }
    conf_policy_list_free(pols, n_pols);
    conf_domain_list_free(doms, n_doms);
    return r;
}

/* -ENOENT naming /copy_to when p copies to a remote that does not exist. */
static int
check_copy_to(const struct conf_policy *p)
{
    struct conf_remote rem = {0};
    int r;

    if (!p->copy_to)
        return 0;
    r = db_remote_get(core_ctx.db, p->copy_to, &rem);
    conf_remote_clear(&rem);
    if (r == -ENOENT)
        return err_set_pointer(-ENOENT, "/copy_to", "no remote '%.64s'", p->copy_to);
    return r;
}

int
core_policy_create(struct conf_policy *p)
{
    int r = check_copy_to(p);

    if (r >= 0)
        r = check_overlap(p);

    if (r < 0)
        return r;
    p->created_ms = p->updated_ms = text_now_ms();
    r = db_policy_put(core_ctx.db, p, true);
    if (r >= 0)
        kick();
    return r;
}

int
core_policy_update(struct conf_policy *p)
{
    _cleanup_(conf_policy_freep) struct conf_policy *old = NULL;
    int r;

    r = db_policy_get(core_ctx.db, p->name, &old);
    if (r < 0)
        return r;
    r = check_copy_to(p);
    if (r >= 0)
        r = check_overlap(p);
    if (r < 0)
        return r;
    p->created_ms = old->created_ms;
    p->updated_ms = text_now_ms();
    r = db_policy_put(core_ctx.db, p, false);
    if (r < 0)
        return r;
    /* The verification rule may have changed: look at every domain's backups again. */
    pthread_mutex_lock(&sched.lock);
    for (size_t i = 0; i < sched.n_entries; i++)
        if (strcmp(sched.entries[i].policy, p->name) == 0)
            sched.entries[i].verify_at_ms = 0;
    pthread_mutex_unlock(&sched.lock);
    kick();
    return 0;
}

int
core_policy_get(const char *name, struct conf_policy **ret)
{
    return db_policy_get(core_ctx.db, name, ret);
}

int
core_policy_list(struct conf_policy ***ret, size_t *ret_n)
{
    return db_policy_list(core_ctx.db, ret, ret_n);
}

int
core_policy_delete(const char *name)
{
    int r = db_policy_delete(core_ctx.db, name);
    size_t k = 0;

    if (r < 0)
        return r;
    /* Forget its flags, so that a policy made again under the name starts afresh. */
    pthread_mutex_lock(&sched.lock);
    for (size_t i = 0; i < sched.n_entries; i++)
        if (strcmp(sched.entries[i].policy, name) != 0)
            sched.entries[k++] = sched.entries[i];
    sched.n_entries = k;
    entries_reindex();
    pthread_mutex_unlock(&sched.lock);
    kick();
    return 0;
}

void
core_policy_domains_free(struct core_policy_domain *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        conf_policy_member_clear(&list[i].m);
    free(list);
}

/* Copies the member's strings into out->m. */
static int
member_copy(const struct conf_policy_member *m, struct conf_policy_member *out)
{
    *out = *m;
    out->policy = out->domain = out->last_result = out->last_job = out->last_detail = NULL;
    out->copy_pending = out->copy_job = NULL;
    if (set_str(&out->policy, m->policy) < 0 || set_str(&out->domain, m->domain) < 0 ||
        set_str(&out->last_result, m->last_result) < 0 ||
        set_str(&out->last_job, m->last_job) < 0 ||
        set_str(&out->last_detail, m->last_detail) < 0 ||
        set_str(&out->copy_pending, m->copy_pending) < 0 ||
        set_str(&out->copy_job, m->copy_job) < 0)
        return -ENOMEM;
    return 0;
}

int
core_policy_domains(const struct conf_policy *p, struct core_policy_domain **ret, size_t *ret_n)
{
    struct conf_policy **pols = NULL;
    struct conf_policy_member *mem = NULL;
    struct conf_domain *doms = NULL;
    struct core_policy_domain *out = NULL;
    size_t n_pols = 0, n_mem = 0, n_doms = 0, n = 0;
    int64_t now = text_now_ms();
    int r;

    r = db_policy_list(core_ctx.db, &pols, &n_pols);
    if (r >= 0)
        r = db_policy_member_list(core_ctx.db, p->name, &mem, &n_mem);
    if (r >= 0)
        members_sort(mem, n_mem);
    if (r >= 0 && core_domain_list_brief(&doms, &n_doms) < 0) {
        err_clear(); /* libvirt away: the domains as last recorded */
        doms = NULL;
        n_doms = 0;
    }
    if (r >= 0)
        out = calloc(n_doms + n_mem + 1, sizeof(*out));
    if (r >= 0 && !out)
        r = -ENOMEM;
    for (size_t i = 0; r >= 0 && i < n_doms; i++) {
        const struct conf_policy *owner = owner_of(pols, n_pols, doms[i].name);
        struct conf_policy_member *m;
        struct conf_policy_member fresh = {0};
        struct core_policy_domain *o;
        bool force = false;
        int64_t retry_at = 0;

        if (!owner || strcmp(owner->name, p->name) != 0)
            continue;
        m = member_find(mem, n_mem, p->name, doms[i].uuid);
        if (!m) {
            fresh.policy = (char *)p->name;
            fresh.domain = doms[i].name;
            memcpy(fresh.domain_uuid, doms[i].uuid, sizeof(fresh.domain_uuid));
            fresh.since_ms = now;
            m = &fresh;
        }
        o = &out[n++];
        r = member_copy(m, &o->m);
        if (r < 0)
            break;
        if (m != &fresh && strcmp(m->domain, doms[i].name) != 0)
            r = set_str(&o->m.domain, doms[i].name);
        pthread_mutex_lock(&sched.lock);
        for (size_t h = entry_hash(p->name, doms[i].uuid); entry_slot[h];
             h = (h + 1) % ENTRY_SLOTS) {
            const struct entry *e = &sched.entries[entry_slot[h] - 1];
            if (strcmp(e->uuid, doms[i].uuid) == 0 && strcmp(e->policy, p->name) == 0) {
                force = e->force;
                retry_at = e->retry_at_ms;
                break;
            }
        }
        pthread_mutex_unlock(&sched.lock);
        if (p->enabled) {
            int64_t due = force ? now : due_of(p, m);
            if (due >= 0 && due < retry_at)
                due = retry_at;
            o->next_run_ms = due < 0 ? 0 : due < now ? now : due;
        }
        o->overdue = overdue_of(p, m, now, &o->protected_until_ms);
    }
    conf_policy_list_free(pols, n_pols);
    conf_policy_member_list_free(mem, n_mem);
    conf_domain_list_free(doms, n_doms);
    if (r < 0) {
        core_policy_domains_free(out, n);
        return r;
    }
    *ret = out;
    *ret_n = n;
    return 0;
}

int
core_policy_run(const char *name, size_t *ret_n)
{
    _cleanup_(conf_policy_freep) struct conf_policy *p = NULL;
    struct core_policy_domain *doms = NULL;
    size_t n = 0;
    int r;

    r = db_policy_get(core_ctx.db, name, &p);
    if (r < 0)
        return r;
    if (!p->enabled)
        return err_set(-EBADFD, "policy '%s' is disabled; enable it to run it", name);
    r = core_policy_domains(p, &doms, &n);
    if (r < 0)
        return r;
    pthread_mutex_lock(&sched.lock);
    for (size_t i = 0; i < n; i++) {
        struct entry *e = entry_get(p->name, doms[i].m.domain_uuid);
        if (e) {
            e->force = true;
            e->retry_at_ms = 0;
        }
    }
    sched.kick = true;
    pthread_cond_signal(&sched.wake);
    pthread_mutex_unlock(&sched.lock);
    core_policy_domains_free(doms, n);
    *ret_n = n;
    return 0;
}

int
core_policy_runs(struct core_policy_runs **ret, size_t *ret_n)
{
    struct core_policy_runs *out;
    size_t n;

    pthread_mutex_lock(&sched.lock);
    n = sched.n_runs;
    out = calloc(n ? n : 1, sizeof(*out));
    if (out && n)
        memcpy(out, sched.runs, n * sizeof(*out));
    pthread_mutex_unlock(&sched.lock);
    if (!out)
        return -ENOMEM;
    *ret = out;
    *ret_n = n;
    return 0;
}

int
core_policy_vault_bytes(char ***ret_names, uint64_t **ret_bytes, size_t *ret_n)
{
    return db_vault_bytes(core_ctx.db, ret_names, ret_bytes, ret_n);
}
