/*
 * Prune (see backup.h): the plan a retention makes of a domain's backups,
 * the job that carries it out merging what kept backups need, and the
 * start-up finish of an intent a killed prune left. Owns the prune_intents
 * of the catalog (db/prune.h) and the .part files of merged images.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup_priv.h"
#include "vault/vault.h"
#include "busy.h"
#include "cleanup.h"
#include "db/backup.h"
#include "db/prune.h"
#include "err.h"
#include "hash.h"
#include "log.h"
#include "text.h"

/* The run of one prune job. */
struct prune_job {
    struct conf_cancel cancel; /* stops the qemu-img in flight */
    char uuid[37];
    struct conf_retention retention;
};

/* One kept backup rewritten: into, standing on onto (an index, or -1 for none). */
struct merge_step {
    size_t into;
    ssize_t onto;
    size_t *from; /* indices, oldest first */
    size_t n_from;
};

/* What a retention makes of the candidates list[0..n) (newest first). */
struct plan {
    struct conf_backup **list;
    size_t n;
    bool *keep;
    struct merge_step *steps;
    size_t n_steps;
};

static void
plan_clear(struct plan *p)
{
    conf_backup_list_free(p->list, p->n);
    free(p->keep);
    for (size_t i = 0; i < p->n_steps; i++)
        free(p->steps[i].from);
    free(p->steps);
    memset(p, 0, sizeof(*p));
}

/* The index of backup id among the candidates, or -1. */
static ssize_t
index_of(const struct plan *p, const char *id)
{
    for (size_t i = 0; id && i < p->n; i++)
        if (strcmp(p->list[i]->id, id) == 0)
            return (ssize_t)i;
    return -1;
}

/*
 * Reads the candidates of domain uuid (completed, images in the vault),
 * applies the retention (the pinned ids, NULL-terminated or NULL, and their
 * ancestors kept as protected ones are) and finds, for every kept backup whose parent
 * goes, the removed ancestors it takes in and the kept one it stands on.
 */
static int
plan_make(const char *uuid, const struct conf_retention *retention, char *const *pinned,
          struct plan *ret)
{
    static const enum conf_backup_state completed = CONF_BACKUP_STATE_COMPLETED;
    struct db_backup_filter f = {.domain_uuid = uuid, .state = &completed};
    _cleanup_(plan_clear) struct plan p = {0};
    _cleanup_free_ int64_t *times = NULL;
    _cleanup_free_ bool *prot = NULL, *offsite = NULL;
    struct conf_backup **all = NULL;
    size_t n_all = 0;
    int r;

    r = db_backup_list(backup_ctx.db, &f, &all, &n_all, NULL);
    if (r < 0)
        return r;
    p.list = calloc(n_all + 1, sizeof(*p.list));
    if (!p.list) {
        conf_backup_list_free(all, n_all);
        return -ENOMEM;
    }
    /*
     * A backup a client read stored nothing here: it is no part of a chain of
     * images. An offsite-only one's images are a remote's, pruned there.
     */
    for (size_t i = 0; i < n_all; i++) {
        if (core_backup_is_client_pull(all[i]) || all[i]->location)
            conf_backup_free(all[i]);
        else
            p.list[p.n++] = all[i];
    }
    free(all);

    times = calloc(p.n + 1, sizeof(*times));
    prot = calloc(p.n + 1, sizeof(*prot));
    offsite = calloc(p.n + 1, sizeof(*offsite));
    p.keep = calloc(p.n + 1, sizeof(*p.keep));
    if (!times || !prot || !offsite || !p.keep)
        return -ENOMEM;
    for (size_t i = 0; i < p.n; i++) {
        times[i] = p.list[i]->started_at / 1000;
        prot[i] = p.list[i]->is_protected;
    }
    /*
     * A chain that stands on offsite-only backups (adopted from a remote) is
     * kept whole: a merge reads through to its base, whose images are not here.
     */
    for (size_t k = p.n; k-- > 0;) {
        ssize_t a = index_of(&p, p.list[k]->parent_id);

        /* Oldest first (parents are older): a parent here has been settled. */
        if (a >= 0 ? offsite[a] : p.list[k]->parent_id != NULL)
            offsite[k] = prot[k] = true;
    }
    /* What a copy reads stays as it is: the pinned backups and their ancestors. */
    for (size_t k = 0; pinned && pinned[k]; k++)
        for (ssize_t a = index_of(&p, pinned[k]); a >= 0 && !prot[a];
             a = index_of(&p, p.list[a]->parent_id))
            prot[a] = true;
    r = conf_retention_prune(retention, times, prot, p.n, p.keep);
    if (r < 0)
        return err_set(r, "the backups' times cannot be bucketed");

    p.steps = calloc(p.n + 1, sizeof(*p.steps));
    if (!p.steps)
        return -ENOMEM;
    /* Oldest first: a merge's sources are read before any of them is touched anyway. */
    for (size_t k = p.n; k-- > 0;) {
        ssize_t a = index_of(&p, p.list[k]->parent_id);
        struct merge_step *s;

        if (!p.keep[k] || a < 0 || p.keep[a])
            continue;
        s = &p.steps[p.n_steps++];
        s->into = k;
        s->from = calloc(p.n, sizeof(*s->from));
        if (!s->from)
            return -ENOMEM;
        while (a >= 0 && !p.keep[a]) {
            s->from[s->n_from++] = (size_t)a;
            a = index_of(&p, p.list[a]->parent_id);
        }
        s->onto = a;
        /* Collected newest first; told oldest first. */
        for (size_t i = 0; i < s->n_from / 2; i++) {
            size_t t = s->from[i];
            s->from[i] = s->from[s->n_from - 1 - i];
            s->from[s->n_from - 1 - i] = t;
        }
    }
    /*
     * A domain recovered from one of these backups runs on its files until
     * its disks have left the vault: none of them may go or be rewritten.
     */
    for (size_t i = 0; i < p.n; i++) {
        _cleanup_free_ char *holder = NULL;
        bool touched = !p.keep[i];

        for (size_t k = 0; !touched && k < p.n_steps; k++)
            touched = p.steps[k].into == i;
        if (!touched)
            continue;
        r = core_backup_locked_by(p.list[i]->id, &holder);
        if (r < 0)
            return r;
        if (r > 0)
            return err_set(-EBUSY,
                           "backup %s cannot be pruned: domain %s runs from it (an instant "
                           "recovery that has not moved its disks off the vault)",
                           p.list[i]->id, holder);
    }
    *ret = p;
    memset(&p, 0, sizeof(p));
    return 0;
}

static uint64_t
stored_of(const struct conf_backup *b)
{
    uint64_t s = 0;

    for (size_t i = 0; i < b->n_disks; i++)
        s += b->disks[i].stored_bytes;
    return s;
}

/* A NULL-terminated copy of the ids of list[idx[i]], i < n. */
static char **
ids_of(const struct plan *p, const size_t *idx, size_t n)
{
    char **v = calloc(n + 1, sizeof(*v));

    for (size_t i = 0; v && i < n; i++)
        if (!(v[i] = strdup(p->list[idx[i]]->id))) {
            backup_strv_free(v);
            return NULL;
        }
    return v;
}

/* What bytes pruning by p frees, as far as the catalog and qemu-img measure tell. */
static uint64_t
plan_estimate(const struct plan *p)
{
    uint64_t gone = 0, grown = 0;

    for (size_t i = 0; i < p->n; i++)
        if (!p->keep[i])
            gone += stored_of(p->list[i]);
    for (size_t s = 0; s < p->n_steps; s++) {
        const struct merge_step *m = &p->steps[s];
        const struct conf_backup *k = p->list[m->into];

        for (size_t i = 0; i < k->n_disks; i++) {
            uint64_t whole = 0;

            if (m->onto < 0 &&
                vault_image_measure(backup_ctx.vault, k->disks[i].file, &whole) == 0) {
                grown += whole > k->disks[i].stored_bytes ? whole - k->disks[i].stored_bytes : 0;
                continue;
            }
            err_clear();
            /* At worst it takes in everything the removed images held. */
            for (size_t f = 0; f < m->n_from; f++) {
                const struct conf_backup_disk *d =
                    backup_disk_of(p->list[m->from[f]], k->disks[i].target);
                grown += d ? d->stored_bytes : 0;
            }
        }
    }
    return gone > grown ? gone - grown : 0;
}

/* The public form of a plan, into a new *ret. */
static int
plan_public(const struct plan *p, struct core_prune_plan **ret)
{
    struct core_prune_plan *out = calloc(1, sizeof(*out));
    _cleanup_free_ size_t *kept = calloc(p->n + 1, sizeof(*kept));
    _cleanup_free_ size_t *gone = calloc(p->n + 1, sizeof(*gone));

    if (!out || !kept || !gone) {
        free(out);
        return -ENOMEM;
    }
    for (size_t i = 0; i < p->n; i++) {
        if (p->keep[i])
            kept[out->n_keep++] = i;
        else
            gone[out->n_remove++] = i;
    }
    out->keep = ids_of(p, kept, out->n_keep);
    out->remove = ids_of(p, gone, out->n_remove);
    out->merges = calloc(p->n_steps + 1, sizeof(*out->merges));
    if (!out->keep || !out->remove || !out->merges) {
        core_prune_plan_free(out);
        return -ENOMEM;
    }
    for (size_t s = 0; s < p->n_steps; s++) {
        struct core_prune_merge *m = &out->merges[out->n_merges++];

        m->into = strdup(p->list[p->steps[s].into]->id);
        m->from = ids_of(p, p->steps[s].from, p->steps[s].n_from);
        m->n_from = p->steps[s].n_from;
        if (!m->into || !m->from) {
            core_prune_plan_free(out);
            return -ENOMEM;
        }
    }
    out->bytes_freed_estimate = plan_estimate(p);
    *ret = out;
    return 0;
}

void
core_prune_plan_free(struct core_prune_plan *p)
{
    if (!p)
        return;
    backup_strv_free(p->keep);
    backup_strv_free(p->remove);
    for (size_t i = 0; i < p->n_merges; i++) {
        free(p->merges[i].into);
        backup_strv_free(p->merges[i].from);
    }
    free(p->merges);
    free(p);
}

/* Appends one op to the intent. */
static int
intent_add(struct db_prune_intent *it, enum db_prune_op_kind kind, const char *rel, bool part)
{
    struct db_prune_op *n = realloc(it->ops, (it->n_ops + 1) * sizeof(*n));

    if (!n)
        return -ENOMEM;
    it->ops = n;
    n = &it->ops[it->n_ops];
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    if (part) {
        if (asprintf(&n->path, "%s%s", rel, VAULT_PART_SUFFIX) < 0)
            return -ENOMEM;
        if (!(n->target = strdup(rel))) {
            free(n->path);
            return -ENOMEM;
        }
    } else if (!(n->path = strdup(rel))) {
        return -ENOMEM;
    }
    it->n_ops++;
    return 0;
}

/* Removes the .part files of the write ops of it (a prune that did not commit). */
static void
intent_undo_files(const struct db_prune_intent *it)
{
    for (size_t i = 0; i < it->n_ops; i++) {
        char path[PATH_MAX];

        if (it->ops[i].kind != DB_PRUNE_WRITE ||
            backup_abs_path(it->ops[i].path, path, sizeof(path)) < 0)
            continue;
        if (unlink(path) < 0 && errno != ENOENT)
            log_warn("prune %s: cannot remove %s: %s", it->id, path, strerror(errno));
    }
    err_clear();
}

/*
 * Carries out the file ops of a committed intent: each merged image takes
 * its name (a missing .part was installed already), each removed image
 * goes. Returns 0 or the first error (the rest is still tried).
 */
static int
intent_finish_files(const struct db_prune_intent *it)
{
    int first = 0;

    for (size_t i = 0; i < it->n_ops; i++) {
        const struct db_prune_op *op = &it->ops[i];
        const char *base = strrchr(op->kind == DB_PRUNE_WRITE ? op->target : op->path, '/');
        char id[17];
        int r;

        /* "<uuid>/<chain>/<id>.<disk>.qcow2": that backup's file handles go first. */
        if (base && sscanf(base + 1, "%16[0-9a-f]", id) == 1)
            backup_files_forget(id);
        if (op->kind == DB_PRUNE_WRITE) {
            r = vault_image_install(backup_ctx.vault, op->target);
            if (r == -ENOENT)
                r = 0;
        } else {
            r = vault_image_remove(backup_ctx.vault, op->path);
            vault_prune_dirs(backup_ctx.vault, op->path);
        }
        if (r < 0 && first == 0)
            first = r;
    }
    return first;
}

void
backup_prune_recover(void)
{
    struct db_prune_intent *list = NULL;
    size_t n = 0;

    if (db_prune_intent_list(backup_ctx.db, &list, &n) < 0) {
        log_warn("cannot read the prune intents: %s", err_detail());
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct db_prune_intent *it = &list[i];

        if (it->committed) {
            if (intent_finish_files(it) < 0) {
                log_warn("prune %s: cannot finish it: %s (tried again at the next start)", it->id,
                         err_detail() ? err_detail() : "");
                db_prune_intent_clear(it);
                continue;
            }
            log_info("prune %s of %s: finished after a restart", it->id, it->domain_uuid);
        } else {
            intent_undo_files(it);
            log_info("prune %s of %s: undone after a restart (it had not switched the catalog)",
                     it->id, it->domain_uuid);
        }
        if (db_prune_intent_delete(backup_ctx.db, it->id) < 0)
            log_warn("prune %s: cannot forget it: %s", it->id, err_detail());
        db_prune_intent_clear(it);
    }
    free(list);
    err_clear();
}

/* Appends ids as a JSON array of strings to f. */
static void
json_ids(FILE *f, char *const *ids)
{
    fputc('[', f);
    for (size_t i = 0; ids && ids[i]; i++)
        fprintf(f, "%s\"%s\"", i ? ", " : "", ids[i]);
    fputc(']', f);
}

/* The job's result: {"keep", "remove", "merge", "bytes_freed"}, into a new *ret. */
static int
prune_result(const struct plan *p, uint64_t freed, char **ret)
{
    _cleanup_(core_prune_plan_freep) struct core_prune_plan *pub = NULL;
    char *out = NULL;
    size_t len = 0;
    FILE *f;
    int r;

    /* The kept and removed ids; the merges are p's own (no estimate wanted: no steps). */
    struct plan q = *p;
    q.n_steps = 0;
    r = plan_public(&q, &pub);
    if (r < 0)
        return r;
    f = open_memstream(&out, &len);
    if (!f)
        return -ENOMEM;
    fputs("{\"keep\": ", f);
    json_ids(f, pub->keep);
    fputs(", \"remove\": ", f);
    json_ids(f, pub->remove);
    fputs(", \"merge\": [", f);
    for (size_t s = 0; s < p->n_steps; s++) {
        fprintf(f, "%s{\"into\": \"%s\", \"from\": [", s ? ", " : "",
                p->list[p->steps[s].into]->id);
        for (size_t i = 0; i < p->steps[s].n_from; i++)
            fprintf(f, "%s\"%s\"", i ? ", " : "", p->list[p->steps[s].from[i]]->id);
        fputs("]}", f);
    }
    fprintf(f, "], \"bytes_freed\": %" PRIu64 "}", freed);
    if (fclose(f) != 0) {
        free(out);
        return -ENOMEM;
    }
    *ret = out;
    return 0;
}

/*
 * Writes the merged images of every step (the .part files of the intent),
 * and updates the steps' backups in p to what the catalog records once
 * they are installed.
 */
static int
prune_write(struct job *job, struct prune_job *pj, struct plan *p)
{
    uint64_t total = 0, done = 0;

    for (size_t s = 0; s < p->n_steps; s++)
        for (size_t i = 0; i < p->list[p->steps[s].into]->n_disks; i++)
            total += p->list[p->steps[s].into]->disks[i].size;
    job_progress(job, 0, total);
    for (size_t s = 0; s < p->n_steps; s++) {
        struct merge_step *m = &p->steps[s];
        struct conf_backup *k = p->list[m->into];
        const struct conf_backup *onto = m->onto >= 0 ? p->list[m->onto] : NULL;

        for (size_t i = 0; i < k->n_disks; i++) {
            struct conf_backup_disk *d = &k->disks[i];
            const struct conf_backup_disk *od = onto ? backup_disk_of(onto, d->target) : NULL;
            struct vault_checksum sum = {0};
            int r;

            if (onto && !od)
                return err_set(-EBADFD, "backup %s has no disk %s for backup %s to stand on",
                               onto->id, d->target, k->id);
            if (job_cancelled(job))
                return err_set(-ECANCELED, "the prune was cancelled");
            r = vault_image_merge(backup_ctx.vault, d->file, od ? backup_base_name(od->file) : NULL,
                                  &pj->cancel, &d->stored_bytes, &sum);
            if (r < 0)
                return job_cancelled(job) ? err_set(-ECANCELED, "the prune was cancelled") : r;
            free(d->sha256);
            free(d->backing);
            free(d->checksum_algorithm);
            free(d->pieces);
            d->backing = NULL;
            d->pieces = TAKE_PTR(sum.pieces);
            d->n_pieces = sum.n_pieces;
            if (!(d->sha256 = strdup(sum.digest)) ||
                !(d->checksum_algorithm = strdup(HASH_ALG_PIECES)) ||
                (od && !(d->backing = strdup(backup_base_name(od->file)))))
                return -ENOMEM;
            done += d->size;
            job_progress(job, done, total);
        }
        k->stored_bytes = stored_of(k);
        free(k->parent_id);
        free(k->base_checkpoint);
        k->parent_id = k->base_checkpoint = NULL;
        if (onto) {
            if (!(k->parent_id = strdup(onto->id)) ||
                (onto->checkpoint && !(k->base_checkpoint = strdup(onto->checkpoint))))
                return -ENOMEM;
        } else {
            /* Nothing left below it: it holds the whole disk, as the full of its chain. */
            k->type = CONF_BACKUP_TYPE_FULL;
        }
    }
    return 0;
}

int
backup_prune_run(struct job *job, void *data)
{
    struct prune_job *pj = data;
    _cleanup_(plan_clear) struct plan p = {0};
    _cleanup_(db_prune_intent_clear) struct db_prune_intent it = {0};
    _cleanup_free_ char **removed = NULL;
    _cleanup_free_ struct conf_backup **changed = NULL;
    _cleanup_free_ char *result = NULL;
    _cleanup_(backup_strv_freep) char **pinned = NULL;
    _cleanup_(backup_rewrite_endp) const char *rewriting = NULL;
    size_t n_removed = 0;
    uint64_t before = 0, after = 0;
    char id[17];
    int r;

    r = backup_rewrite_begin(pj->uuid, &pinned);
    if (r < 0)
        return r;
    rewriting = pj->uuid;
    r = plan_make(pj->uuid, &pj->retention, pinned, &p);
    if (r < 0)
        return r;
    removed = calloc(p.n + 1, sizeof(*removed));
    changed = calloc(p.n_steps + 1, sizeof(*changed));
    if (!removed || !changed)
        return -ENOMEM;
    for (size_t i = 0; i < p.n; i++) {
        if (p.keep[i])
            continue;
        removed[n_removed++] = p.list[i]->id;
        before += stored_of(p.list[i]);
    }
    if (n_removed == 0) {
        r = prune_result(&p, 0, &result);
        return r < 0 ? r : job_set_result(job, result);
    }

    /* The intent first: nothing is touched that a restart could not finish or undo. */
    r = text_random_hex(id, sizeof(id), 8);
    if (r < 0)
        return r;
    if (!(it.id = strdup(id)) || !(it.domain_uuid = strdup(pj->uuid)))
        return -ENOMEM;
    for (size_t s = 0; s < p.n_steps; s++) {
        const struct conf_backup *k = p.list[p.steps[s].into];
        before += stored_of(k);
        for (size_t i = 0; i < k->n_disks; i++) {
            r = intent_add(&it, DB_PRUNE_WRITE, k->disks[i].file, true);
            if (r < 0)
                return r;
        }
    }
    for (size_t i = 0; i < p.n; i++)
        for (size_t d = 0; !p.keep[i] && d < p.list[i]->n_disks; d++) {
            r = intent_add(&it, DB_PRUNE_REMOVE, p.list[i]->disks[d].file, false);
            if (r < 0)
                return r;
        }
    r = db_prune_intent_put(backup_ctx.db, &it);
    if (r < 0)
        return r;

    r = prune_write(job, pj, &p);
    if (r >= 0 && job_cancelled(job))
        r = err_set(-ECANCELED, "the prune was cancelled");
    if (r >= 0) {
        for (size_t s = 0; s < p.n_steps; s++) {
            changed[s] = p.list[p.steps[s].into];
            after += changed[s]->stored_bytes;
        }
        r = db_prune_commit(backup_ctx.db, it.id, changed, p.n_steps, removed, n_removed);
    }
    if (r < 0) {
        char keep[1024];

        snprintf(keep, sizeof(keep), "%s", err_detail() ? err_detail() : strerror(-r));
        intent_undo_files(&it);
        if (db_prune_intent_delete(backup_ctx.db, it.id) < 0)
            log_warn("prune %s: cannot forget it: %s", it.id, err_detail());
        return err_set(r, "%s", keep);
    }

    /* Committed: from here on the prune only goes forward. */
    r = intent_finish_files(&it);
    if (r < 0)
        return err_set(r,
                       "the catalog was pruned, but its files could not all be switched (%s); "
                       "virtvaultd finishes that at its next start",
                       err_detail() ? err_detail() : strerror(-r));
    if (db_prune_intent_delete(backup_ctx.db, it.id) < 0)
        log_warn("prune %s: cannot forget it: %s", it.id, err_detail());
    r = prune_result(&p, before > after ? before - after : 0, &result);
    if (r < 0)
        return r;
    log_info("prune of %s: %zu backups removed, %zu merged, %" PRIu64 " bytes freed", pj->uuid,
             n_removed, p.n_steps, before > after ? before - after : 0);
    return job_set_result(job, result);
}

int
backup_prune_cancel(struct job *job, void *data)
{
    struct prune_job *pj = data;

    atomic_store(&pj->cancel.cancelled, true);
    return 0;
}

void
backup_prune_free(void *data)
{
    free(data);
}

int
core_backup_prune(const char *domain, const struct conf_retention *retention, bool dry_run,
                  struct core_prune_plan **ret_plan, struct conf_job **ret_job)
{
    _cleanup_free_ char *name = NULL;
    struct prune_job *pj;
    char uuid[37];
    int r;

    r = backup_domain_resolve(domain, uuid, &name);
    if (r < 0)
        return r;
    if (conf_retention_keeps_all(retention))
        return err_set_pointer(-EINVAL, "/retention",
                               "keeps every backup: give at least one count above 0");
    if (dry_run) {
        _cleanup_(plan_clear) struct plan p = {0};

        r = plan_make(uuid, retention, NULL, &p);
        if (r < 0)
            return r;
        return plan_public(&p, ret_plan);
    } else {
        /* Refused now what the job would refuse when it plans (a locked backup). */
        _cleanup_(plan_clear) struct plan p = {0};

        r = plan_make(uuid, retention, NULL, &p);
        if (r < 0)
            return r;
    }
    pj = calloc(1, sizeof(*pj));
    if (!pj)
        return -ENOMEM;
    memcpy(pj->uuid, uuid, sizeof(pj->uuid));
    pj->retention = *retention;
    struct job_spec spec = {
        .kind = &backup_kinds[BACKUP_JOB_PRUNE],
        .domain = name,
        .domain_uuid = uuid,
        .data = pj,
    };
    return core_job_submit(&spec, ret_job);
}

int
core_backup_set_protected(const char *domain, const char *id, bool on, struct conf_backup **ret)
{
    _cleanup_(conf_backup_freep) struct conf_backup *b = NULL;
    _cleanup_claim_ const char *claimed = NULL;
    int r;

    r = backup_find(domain, id, NULL, &b);
    if (r < 0)
        return r;
    /* A prune decides by the flags it read: none may change under it. */
    r = core_busy_claim_scoped(b->domain_uuid, on ? "backup protect" : "backup unprotect",
                               &claimed);
    if (r < 0)
        return r;
    r = db_backup_set_protected(backup_ctx.db, b->id, on);
    if (r < 0)
        return r;
    b->is_protected = on;
    log_info("backup %s of %s %s", b->id, b->domain_name, on ? "protected" : "unprotected");
    if (ret)
        *ret = TAKE_PTR(b);
    return 0;
}
