/*
 * conf/policy.h - protection policies: which domains are backed up, when,
 * how, how long backups are kept and how often they are verified again; the
 * schedule engine (5-field cron as Kubernetes CronJob reads it, its @macros,
 * fixed intervals); and the per-domain record of how a policy's runs went.
 *
 * Cron: "minute hour day-of-month month day-of-week", in UTC. Each field is
 * a comma list of items; an item is `*` (or `?`), a value, or a range a-b,
 * each optionally followed by /step (a/step alone runs from a to the end of
 * the field). Months may be named JAN-DEC and weekdays SUN-SAT (any case);
 * weekday 7 is Sunday as 0 is. When both day fields are restricted (neither
 * starts with `*` or `?`) a day matches when either matches, else when both
 * do (Vixie cron's rule, which Kubernetes keeps). @hourly, @daily
 * (@midnight), @weekly, @monthly and @yearly (@annually) stand for their
 * usual expressions. An expression that can never fire (30 February) is
 * refused at parse.
 *
 * Everything here is pure: no clock is read, nothing is stored.
 */
#ifndef VV_CONF_POLICY_H
#define VV_CONF_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/backup.h"
#include "conf/retention.h"

#define CONF_CRON_TEXT_MAX 128

struct conf_cron {
    uint64_t minutes; /* bit m: minute m (0-59) */
    uint32_t hours;   /* bit h (0-23) */
    uint32_t doms;    /* bit d (1-31) */
    uint16_t months;  /* bit m (1-12) */
    uint8_t dows;     /* bit d (0-6, 0 Sunday) */
    bool dom_star;    /* the day-of-month field starts with * or ? */
    bool dow_star;
};

/*
 * Parses a cron expression or @macro into *ret. Returns 0, or -EINVAL with
 * a detail (err.h) saying which field is wrong and why, or that the
 * expression never fires; *ret is untouched on failure.
 */
int conf_cron_parse(const char *text, struct conf_cron *ret);

/*
 * The first time the expression fires strictly after after_s (seconds since
 * the epoch, UTC; whole minutes), searched over the next nine years (a 29
 * February comes back within eight); -1 when there is none.
 */
int64_t conf_cron_next(const struct conf_cron *c, int64_t after_s);

enum conf_schedule_kind {
    CONF_SCHEDULE_CRON,
    CONF_SCHEDULE_INTERVAL,
};

#define CONF_INTERVAL_MAX (366LL * 24 * 3600)

/* A policy's schedule: a cron expression (text kept as given) or every interval_s seconds. */
struct conf_schedule {
    enum conf_schedule_kind kind;
    char text[CONF_CRON_TEXT_MAX]; /* cron: the expression; interval: "" */
    struct conf_cron cron;
    int64_t interval_s; /* interval: 1 to CONF_INTERVAL_MAX */
};

/*
 * The period of the schedule around now (seconds): the interval, or for
 * cron the gap between its next two fires after now (a day for "0 0 * * *").
 * 0 when the expression does not fire twice within the search.
 */
int64_t conf_schedule_period(const struct conf_schedule *s, int64_t now_s);

/*
 * The small deterministic delay (seconds) by which runs of policy for the
 * domain of this UUID are moved after their slot, so that many domains on
 * one schedule do not start in the same second: a hash of both (FNV-1a of
 * "policy/uuid"), modulo min(period / 10, 300), where the period is the
 * schedule's at the epoch (fixed, so that the offset never changes under a
 * domain). 0 for periods under a minute.
 */
int64_t conf_schedule_offset(const struct conf_schedule *s, const char *policy,
                             const char *domain_uuid);

/*
 * When a run is due (milliseconds since the epoch), given the start of the
 * last run, or, when there was none, the time the domain joined the policy
 * (anchor_ms), and the offset above (seconds): interval: the anchor plus
 * the interval, where a domain that never ran runs at once (plus the
 * offset); cron: the first slot after the anchor's own slot, plus the
 * offset. A due time in the past means one run now, whatever the number of
 * slots missed (systemd's Persistent=). -1 when none.
 */
int64_t conf_schedule_due(const struct conf_schedule *s, int64_t anchor_ms, bool ran_before,
                          int64_t offset_s);

#define CONF_POLICY_DOMAINS_MAX 256
#define CONF_POLICY_DISKS_MAX   64

/* The backup a policy takes: the body of POST .../backups, as core reads it. */
struct conf_policy_backup {
    enum conf_backup_type type;
    enum conf_backup_mode mode;
    bool to_vault; /* pull: the service reads the exports into the vault itself */
    uint64_t bandwidth;
    char **disks; /* NULL for all */
    size_t n_disks;
};

/*
 * A policy. Strings owned, freed by conf_policy_free(). verify_after_s < 0:
 * no verification; 0: verify each backup once, after it was taken; > 0:
 * verify each kept backup again once its last verification (or, never
 * verified, its end) is older than that.
 */
struct conf_policy {
    char *name;
    char **domains; /* names and fnmatch(3) patterns */
    size_t n_domains;
    struct conf_schedule schedule;
    struct conf_policy_backup backup;
    struct conf_retention retention;
    int64_t verify_after_s;
    bool enabled;
    char *copy_to; /* the remote each successful backup is copied to, or NULL */
    struct conf_retention remote_retention; /* what copy_to keeps of a domain; all 0: all */
    int64_t created_ms, updated_ms;
};

void conf_policy_free(struct conf_policy *p);
void conf_policy_list_free(struct conf_policy **list, size_t n);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct conf_policy *, conf_policy_free);

/* True when domain name matches one of p's names or patterns. */
bool conf_policy_matches(const struct conf_policy *p, const char *name);

/* True when s holds a glob character (* ? [). */
bool conf_policy_is_pattern(const char *s);

/*
 * How a policy's runs went for one domain, as stored (db/policy.h).
 * last_result: "running", "succeeded", "failed", "cancelled", "busy" (the
 * domain ran another job; retried), "unavailable" (libvirt was away;
 * retried), "error" (the run could not start; the next slot runs again).
 */
struct conf_policy_member {
    char *policy;
    char domain_uuid[37];
    char *domain;
    int64_t since_ms;    /* when the domain joined the policy */
    int64_t last_run_ms; /* the start of the last run, 0 for none */
    char *last_result;
    char *last_job;
    char *last_detail; /* why it failed, or NULL */
    bool last_catch_up;
    int64_t last_success_ms;
    /* copy_to: the backup of a successful run whose copy has not ended yet, or NULL */
    char *copy_pending;
    char *copy_job; /* the copy job, then its remote retention's, until each has ended */
};

void conf_policy_member_clear(struct conf_policy_member *m);
void conf_policy_member_list_free(struct conf_policy_member *list, size_t n);

#endif
