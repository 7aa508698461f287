/*
 * core/policy.h - protection policies and the scheduler that runs them.
 *
 * A policy (conf/policy.h) names domains by name or glob pattern; the
 * patterns are matched again on every pass of the scheduler against the
 * domains libvirt knows, so a new domain is picked up. A domain is in at
 * most one policy: create and update refuse (-EEXIST, 409) a policy that
 * would take a domain another policy has, naming it (checked against both
 * policies' literal names and every current domain; should two patterns
 * still meet on a domain defined later, the policy first by name has it).
 *
 * The scheduler is one thread. For each policy and domain it keeps a
 * member row (db/policy.h): when the domain joined, when the last run
 * started, how it ended, the last success. A run is due at
 * conf_schedule_due() of the last run (or of the joining); a due time in
 * the past runs once, however many slots were missed (as systemd's
 * Persistent=): that is how runs missed while the service was down are
 * caught up at start. Runs are backups through core_backup_create(), at
 * most max_jobs policy jobs at once on the host (verifications included);
 * a domain busy with another job is tried again after a short delay (its
 * result reads "busy" meanwhile; "unavailable" while libvirt is away). After each successful backup
 * the policy's retention is applied by prune (see the call site marked "retention" in policy.c);
 * verify_after_s starts verify jobs on the kept backups by itself.
 *
 * Functions return 0 or a negative errno with a detail (err.h); outputs
 * are filled on success only and owned by the caller.
 */
#ifndef VV_CORE_POLICY_H
#define VV_CORE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/domain.h"
#include "conf/policy.h"

/* How a policy stands for one domain it names, now. */
struct core_policy_domain {
    struct conf_policy_member m; /* last_run_ms 0: never ran */
    int64_t next_run_ms;         /* 0: none (policy disabled, or the schedule never fires) */
    int64_t protected_until_ms;  /* last success + twice the period; 0 without a success */
    bool overdue;                /* no successful backup within twice the schedule's period */
};

void core_policy_domains_free(struct core_policy_domain *list, size_t n);

/* One counter of policy runs by result, for the metrics. */
struct core_policy_runs {
    char policy[72];
    char result[16];
    uint64_t count;
};

/*
 * Starts the scheduler thread; max_jobs (>= 1) policy jobs run at once.
 * Call after the job runner started. Returns 0 or a negative errno.
 */
int core_policy_start(unsigned max_jobs);

/*
 * For the libvirt event handler: a domain defined or undefined (or libvirt
 * back) has the scheduler read the domains again now, so that a new domain
 * a pattern names joins at once. Quick; any thread.
 */
void core_policy_on_event(const struct conf_event *ev);

/* Stops the scheduler thread (jobs it started go on). Safe without a start. */
void core_policy_stop(void);

/*
 * Creates p (its name, definition and enabled; times are set here). -EEXIST
 * naming the policy when the name is taken or a domain is in another
 * policy already. p stays the caller's.
 */
int core_policy_create(struct conf_policy *p);

/* Replaces the definition of p->name (created_ms kept). -ENOENT, -EEXIST as above. */
int core_policy_update(struct conf_policy *p);

int core_policy_get(const char *name, struct conf_policy **ret);
int core_policy_list(struct conf_policy ***ret, size_t *ret_n);

/* Deletes a policy and its run records (jobs it started go on). */
int core_policy_delete(const char *name);

/*
 * How p stands for each domain it names now (those libvirt knows that
 * match, by name): a new array of *ret_n entries.
 */
int core_policy_domains(const struct conf_policy *p, struct core_policy_domain **ret,
                        size_t *ret_n);

/*
 * Runs policy name now for each domain it names (the scheduler starts the
 * runs within a moment; busy domains are retried). -ENOENT for no such
 * policy, -EBADFD when it is disabled. *ret_n: how many domains.
 */
int core_policy_run(const char *name, size_t *ret_n);

/* The counters of policy runs since start: a new array of *ret_n entries. */
int core_policy_runs(struct core_policy_runs **ret, size_t *ret_n);

/*
 * The scheduler's passes since start, as a histogram of their durations:
 * count[i] passes took at most core_policy_tick_bounds[i] seconds and more
 * than the bound before it; count[CORE_POLICY_TICK_BUCKETS] took longer
 * than every bound. Not cumulative.
 */
#define CORE_POLICY_TICK_BUCKETS 12
struct core_policy_ticks {
    uint64_t count[CORE_POLICY_TICK_BUCKETS + 1];
    uint64_t total;
    double sum_s;
    double max_s; /* the longest pass */
};
extern const double core_policy_tick_bounds[CORE_POLICY_TICK_BUCKETS];

/* Copies the pass histogram into *ret. Never fails. */
void core_policy_ticks_get(struct core_policy_ticks *ret);

/*
 * The bytes the vault holds per domain: new arrays of *ret_n entries (free
 * each name, then both arrays).
 */
int core_policy_vault_bytes(char ***ret_names, uint64_t **ret_bytes, size_t *ret_n);

#endif
