/*
 * core/offsite_prune.c - a remote prune: a retention applied to the
 * backups of one domain in a remote's bucket (job kind offsite_prune).
 *
 * The plan is conf_remote_prune_plan() over the bucket's manifests: a
 * backup still under object lock is held (kept, the rule's walk passes
 * over it), so that no delete is tried before it is due; a backup that a
 * kept backup's chain stands on stays. The backups removed go newest
 * first, each by core_offsite_delete(): its manifest, then its objects, so
 * that a crash leaves at worst objects no manifest refers to. Those are
 * swept at the end of every pass (objects under "PREFIX/UUID/" that no
 * manifest names), unless a copy to the remote ran meanwhile: its images
 * are in the bucket before its manifest.
 *
 * Owns: nothing beyond one job's run record.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "conf/remote_prune.h"
#include "core.h"
#include "db/remote.h"
#include "err.h"
#include "log.h"
#include "net/s3.h"
#include "offsite_priv.h"
#include "text.h"

/* The run record of a prune job: "REMOTE UUID K0 K1 K2 K3 K4 K5" in its params. */
struct prune_run {
    char remote[NAME_MAX_LEN + 1];
    char uuid[37];
    struct conf_retention r;
};

/* The manifests of one domain in a bucket with the plan over them. */
struct plan {
    struct conf_manifest **m;
    struct conf_remote_prune_item *it;
    size_t n;
};

static void
plan_clear(struct plan *p)
{
    for (size_t i = 0; i < p->n; i++)
        conf_manifest_free(p->m[i]);
    free(p->m);
    free(p->it);
    *p = (struct plan){0};
}

/* Lists domain's backups in remote and plans r over them at now_ms. -ENOENT: none there. */
static int
plan_make(const char *remote, const char *domain, const struct conf_retention *r, int64_t now_ms,
          struct plan *ret)
{
    struct plan p = {0};
    int rc;

    rc = core_offsite_list(remote, domain, NULL, &p.m, &p.n);
    if (rc < 0)
        return rc;
    if (p.n == 0) {
        free(p.m);
        return err_set_pointer(-ENOENT, "/domain", "remote '%s' holds no backup of domain '%.64s'",
                               remote, domain);
    }
    p.it = calloc(p.n, sizeof(*p.it));
    if (!p.it) {
        plan_clear(&p);
        return -ENOMEM;
    }
    for (size_t i = 0; i < p.n; i++) {
        const struct conf_backup *b = p.m[i]->b;
        p.it[i] = (struct conf_remote_prune_item){
            .id = b->id,
            .parent_id = b->parent_id,
            .started_s = b->started_at / 1000,
            .retain_until_ms = p.m[i]->retain_until_ms,
            .is_protected = b->is_protected,
        };
    }
    rc = conf_remote_prune_plan(r, now_ms, p.it, p.n);
    if (rc < 0) {
        plan_clear(&p);
        return err_set(rc, "the backups of remote '%s' cannot be planned", remote);
    }
    *ret = p;
    return 0;
}

/* Writes the plan's JSON members ("keep", "remove", "held", "needed") to f. */
static void
plan_write(const struct plan *p, FILE *f)
{
    static const char *const lists[] = {"keep", "remove", "needed"};

    for (size_t l = 0; l < ARRAY_SIZE(lists); l++) {
        bool first = true;
        fprintf(f, "%s\"%s\": [", l ? ", " : "", lists[l]);
        for (size_t i = 0; i < p->n; i++) {
            bool in = l == 0 ? p->it[i].keep : l == 1 ? !p->it[i].keep : p->it[i].needed;
            if (!in)
                continue;
            fprintf(f, "%s\"%s\"", first ? "" : ", ", p->it[i].id);
            first = false;
        }
        fputc(']', f);
    }
    fputs(", \"held\": [", f);
    for (size_t i = 0, k = 0; i < p->n; i++) {
        char due[40];
        if (!p->it[i].locked)
            continue;
        text_time_rfc3339(due, sizeof(due), (time_t)(p->it[i].retain_until_ms / 1000));
        fprintf(f, "%s{\"id\": \"%s\", \"retain_until\": \"%s\"}", k++ ? ", " : "", p->it[i].id,
                due);
    }
    fputc(']', f);
}

/* Whether object key is named by one of the n manifests (or is one of them). */
static bool
referenced(struct conf_manifest *const *m, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        for (size_t d = 0; d < m[i]->b->n_disks; d++)
            if (strcmp(m[i]->objects[d], key) == 0)
                return true;
    return false;
}

/*
 * Deletes the objects under remote's "PREFIX/UUID/" that no manifest of
 * that domain names and no unfinished upload of this host owns. Skipped
 * (0, *ret_swept 0) while a copy to remote runs before or after the
 * listing. f gets the keys deleted as a JSON array's items.
 */
static int
sweep(const char *remote, const char *uuid, FILE *f, unsigned *ret_swept)
{
    struct offsite_remote o;
    struct conf_manifest **m = NULL;
    char **keys = NULL;
    size_t n_keys = 0, n_m = 0;
    char rel[64], prefix[S3_KEY_MAX];
    _cleanup_free_ char *token = NULL;
    bool listed = false;
    int r;

    *ret_swept = 0;
    if (offsite_copy_running(remote))
        return 0;
    r = offsite_remote_open(remote, &o);
    if (r < 0)
        return r;
    snprintf(rel, sizeof(rel), "%s/", uuid);
    r = offsite_key(&o, rel, prefix, sizeof(prefix));
    do {
        struct s3_list page = {0};
        struct s3_result res;

        if (r < 0)
            break;
        r = s3_list_objects(o.t, prefix, token, &page, &res);
        if (r < 0) {
            r = offsite_fail(&o, r, "listing the bucket", &res);
            break;
        }
        free(token);
        token = TAKE_PTR(page.next);
        for (size_t i = 0; r >= 0 && i < page.n; i++) {
            char **nk;
            size_t len = strlen(page.keys[i]);
            if (len >= 14 && strcmp(page.keys[i] + len - 14, "/manifest.json") == 0)
                continue;
            nk = realloc(keys, (n_keys + 1) * sizeof(*keys));
            if (!nk) {
                r = -ENOMEM;
                break;
            }
            keys = nk;
            keys[n_keys] = TAKE_PTR(page.keys[i]);
            n_keys++;
        }
        s3_list_clear(&page);
    } while (r >= 0 && token);
    /* A copy that started since has its images listed before its manifest: leave all. */
    if (r >= 0 && !offsite_copy_running(remote)) {
        r = core_offsite_list(remote, uuid, NULL, &m, &n_m);
        listed = r >= 0;
    }
    for (size_t i = 0; r >= 0 && listed && i < n_keys; i++) {
        _cleanup_free_ char *upload = NULL;
        struct s3_result res;
        if (referenced(m, n_m, keys[i]) || db_upload_get(core_db(), remote, keys[i], &upload) == 0)
            continue;
        err_clear();
        r = s3_delete(o.t, keys[i], &res);
        if (r < 0) {
            r = offsite_fail(&o, r, "deleting an object no manifest names", &res);
            break;
        }
        fprintf(f, "%s\"%s\"", *ret_swept ? ", " : "", keys[i]);
        ++*ret_swept;
        log_info("remote %s: object %s swept (no manifest names it)", remote, keys[i]);
    }
    for (size_t i = 0; i < n_keys; i++)
        free(keys[i]);
    free(keys);
    for (size_t i = 0; i < n_m; i++)
        conf_manifest_free(m[i]);
    free(m);
    offsite_remote_close(&o);
    return r;
}

/* Orders item indexes newest first: children go before the backups they stand on. */
static int
newest_first(const void *a, const void *b, void *opaque)
{
    const struct conf_remote_prune_item *it = opaque;
    int64_t x = it[*(const size_t *)a].started_s, y = it[*(const size_t *)b].started_s;

    return x < y ? 1 : x > y ? -1 : 0;
}

static int
prune_job_run(struct job *job, void *data)
{
    struct prune_run *pr = data;
    struct plan p = {0};
    _cleanup_free_ size_t *order = NULL;
    _cleanup_free_ char *out = NULL;
    size_t out_len = 0, n_order = 0;
    unsigned removed = 0, swept = 0;
    FILE *f;
    int r;

    r = plan_make(pr->remote, pr->uuid, &pr->r, text_now_ms(), &p);
    if (r == -ENOENT) {
        err_clear();
        r = 0; /* nothing there (any more): only the sweep */
    }
    if (r < 0)
        return r;
    f = open_memstream(&out, &out_len);
    order = calloc(p.n ? p.n : 1, sizeof(*order));
    if (!f || !order) {
        if (f)
            fclose(f);
        plan_clear(&p);
        return -ENOMEM;
    }
    fprintf(f, "{\"remote\": \"%s\", \"domain_uuid\": \"%s\", \"dry_run\": false, ", pr->remote,
            pr->uuid);
    plan_write(&p, f);
    for (size_t i = 0; i < p.n; i++)
        if (!p.it[i].keep)
            order[n_order++] = i;
    qsort_r(order, n_order, sizeof(*order), newest_first, p.it);
    job_progress(job, 0, n_order + 1);
    for (size_t k = 0; r >= 0 && k < n_order; k++) {
        const char *id = p.it[order[k]].id;
        if (job_cancelled(job)) {
            r = err_set(-ECANCELED, "the prune was cancelled");
            break;
        }
        r = core_offsite_delete(pr->remote, id);
        if (r == -ENOENT) {
            err_clear(); /* gone meanwhile */
            r = 0;
        } else if (r >= 0) {
            removed++;
        }
        job_progress(job, k + 1, n_order + 1);
    }
    fputs(", \"swept\": [", f);
    if (r >= 0)
        r = sweep(pr->remote, pr->uuid, f, &swept);
    fprintf(f, "], \"removed\": %u}", removed);
    if (fclose(f) != 0 && r >= 0)
        r = -ENOMEM;
    if (r >= 0) {
        log_info("remote %s: domain %s pruned: %u backups removed, %u objects swept", pr->remote,
                 pr->uuid, removed, swept);
        job_progress(job, n_order + 1, n_order + 1);
        r = job_set_result(job, out);
    }
    plan_clear(&p);
    return r;
}

const struct job_kind offsite_prune_kind = {
    .kind = CONF_JOB_KIND_OFFSITE_PRUNE,
    .run = prune_job_run,
    .free_data = free,
};

int
core_offsite_prune(const char *remote, const char *domain, const struct conf_retention *r,
                   bool dry_run, const char *policy, char **ret_plan, struct conf_job **ret_job)
{
    struct job_spec spec = {.kind = &offsite_prune_kind, .policy = policy};
    char params[NAME_MAX_LEN + 160];
    struct plan p = {0};
    struct prune_run *pr;
    int rc;

    rc = plan_make(remote, domain, r, text_now_ms(), &p);
    if (rc < 0)
        return rc;
    if (dry_run) {
        _cleanup_free_ char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        if (!f) {
            plan_clear(&p);
            return -ENOMEM;
        }
        fprintf(f, "{\"remote\": \"%s\", \"domain_uuid\": \"%s\", \"dry_run\": true, ", remote,
                p.m[0]->b->domain_uuid);
        plan_write(&p, f);
        fputs(", \"swept\": [], \"removed\": 0}", f);
        plan_clear(&p);
        if (fclose(f) != 0)
            return -ENOMEM;
        *ret_plan = TAKE_PTR(out);
        return 0;
    }
    pr = calloc(1, sizeof(*pr));
    if (!pr) {
        plan_clear(&p);
        return -ENOMEM;
    }
    snprintf(pr->remote, sizeof(pr->remote), "%s", remote);
    snprintf(pr->uuid, sizeof(pr->uuid), "%s", p.m[0]->b->domain_uuid);
    pr->r = *r;
    plan_clear(&p);
    snprintf(params, sizeof(params),
             "%s %s %" PRIu32 " %" PRIu32 " %" PRIu32 " %" PRIu32 " %" PRIu32 " %" PRIu32,
             pr->remote, pr->uuid, r->keep[0], r->keep[1], r->keep[2], r->keep[3], r->keep[4],
             r->keep[5]);
    spec.params = params;
    spec.data = pr;
    return core_job_submit(&spec, ret_job);
}
