/*
 * core/offsite_prune.c - a remote prune: a retention applied to the
 * backups of one domain in a remote's bucket (job kind offsite_prune).
 *
 * The plan is conf_remote_prune_plan() over the bucket's manifests: a
 * backup still under object lock is held (kept, the rule's walk passes
 * over it), so that no delete is tried before it is due. A kept backup
 * whose parent goes is merged by upload, oldest first: its chain comes
 * down into a staging folder under the state dir (offsite_chain_fetch(),
 * checked as a restore checks it), its images are flattened into fulls or
 * rebased onto the kept ancestor (vault_image_merge(), as a local prune
 * merges), uploaded under new object keys (offsite_upload_file()), and
 * only then its manifest is rewritten (type, parent, base, objects,
 * checksums). After every merge the backups removed go newest first, each
 * by core_offsite_delete() (its manifest, then its objects), then the
 * merged backups' old objects. A crash at any point leaves every manifest
 * naming objects that are there: at worst objects no manifest names, which
 * the sweep at the end of every pass removes (objects under "PREFIX/UUID/"
 * that no manifest names and no upload of this host owns), unless a copy
 * to the remote ran meanwhile: its images are in the bucket before its
 * manifest. One prune per remote at a time; prunes and copies of a remote
 * wait for each other (offsite_prune_running()).
 *
 * Owns: the staging root (state dir/offsite-prune) and the table of
 * remotes being pruned.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup_priv.h"
#include "cleanup.h"
#include "conf/remote_prune.h"
#include "core.h"
#include "db/remote.h"
#include "err.h"
#include "hash.h"
#include "log.h"
#include "net/frame.h"
#include "net/s3.h"
#include "offsite_priv.h"
#include "text.h"
#include "vault/vault.h"

#define STAGING_DIR "offsite-prune"
#define PRUNES_MAX  16

/* The run record of a prune job: "REMOTE UUID K0 K1 K2 K3 K4 K5" in its params. */
struct prune_run {
    struct conf_cancel cancel;
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
    conf_manifest_list_free(p->m, p->n);
    free(p->it);
    *p = (struct plan){0};
}

/* Newest first by start (milliseconds), then by id: the order the rule takes ties in. */
static int
newest_first(const void *a, const void *b)
{
    const struct conf_backup *x = (*(struct conf_manifest *const *)a)->b;
    const struct conf_backup *y = (*(struct conf_manifest *const *)b)->b;

    if (x->started_at != y->started_at)
        return x->started_at > y->started_at ? -1 : 1;
    return strcmp(y->id, x->id);
}

/*
 * Lists domain's backups in remote, newest first, and plans r over them at
 * now_ms. -ENOENT: none there.
 */
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
    for (size_t i = 1; i < p.n; i++)
        if (strcmp(p.m[i]->b->domain_uuid, p.m[0]->b->domain_uuid) != 0) {
            rc = err_set_pointer(-EINVAL, "/domain",
                                 "'%.64s' names more than one domain in remote '%s' (%s, %s); "
                                 "give the UUID",
                                 domain, remote, p.m[0]->b->domain_uuid, p.m[i]->b->domain_uuid);
            plan_clear(&p);
            return rc;
        }
    qsort(p.m, p.n, sizeof(*p.m), newest_first);
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

/* Writes the plan's JSON members ("keep", "remove", "merge", "held") to f. */
static void
plan_write(const struct plan *p, FILE *f)
{
    for (int l = 0; l < 2; l++) {
        bool first = true;
        fprintf(f, "%s\"%s\": [", l ? ", " : "", l ? "remove" : "keep");
        for (size_t i = 0; i < p->n; i++) {
            if (p->it[i].keep == (l == 1))
                continue;
            fprintf(f, "%s\"%s\"", first ? "" : ", ", p->it[i].id);
            first = false;
        }
        fputc(']', f);
    }
    fputs(", \"merge\": [", f);
    for (size_t i = 0, k = 0; i < p->n; i++) {
        const struct conf_remote_prune_item *it = &p->it[i];
        ptrdiff_t from[64];
        size_t n_from = 0;

        if (!it->merge)
            continue;
        /* The backups it takes in: from its parent down to onto, told oldest first. */
        for (ptrdiff_t a = conf_remote_prune_find(p->it, p->n, it->parent_id);
             a >= 0 && a != it->onto && n_from < ARRAY_SIZE(from);
             a = conf_remote_prune_find(p->it, p->n, p->it[a].parent_id))
            from[n_from++] = a;
        fprintf(f, "%s{\"into\": \"%s\", \"from\": [", k++ ? ", " : "", it->id);
        for (size_t j = n_from; j-- > 0;)
            fprintf(f, "\"%s\"%s", p->it[from[j]].id, j ? ", " : "");
        if (it->onto >= 0)
            fprintf(f, "], \"onto\": \"%s\"}", p->it[it->onto].id);
        else
            fputs("], \"onto\": null}", f);
    }
    fputs("], \"held\": [", f);
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

struct sweep_keys {
    char **keys;
    size_t n;
};

/* Keeps the image keys the listing gives (a manifest is never swept). */
static int
sweep_collect(char **key, void *data)
{
    struct sweep_keys *c = data;
    size_t len = strlen(*key);
    char **nk;

    if (len >= 14 && strcmp(*key + len - 14, "/manifest.json") == 0)
        return 0;
    nk = realloc(c->keys, (c->n + 1) * sizeof(*nk));
    if (!nk)
        return -ENOMEM;
    c->keys = nk;
    c->keys[c->n++] = TAKE_PTR(*key);
    return 0;
}

/*
 * Deletes the objects under remote's "PREFIX/UUID/" that no manifest of
 * that domain names and no unfinished upload of this host owns, then
 * aborts the unfinished uploads there. Skipped
 * (0, *ret_swept 0) while a copy to remote runs before or after the
 * listing. f gets the keys deleted as a JSON array's items.
 */
static int
sweep(const char *remote, const char *uuid, FILE *f, unsigned *ret_swept)
{
    struct offsite_remote o;
    struct conf_manifest **m = NULL;
    struct sweep_keys c = {0};
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
    if (r >= 0)
        r = offsite_list_keys(&o, prefix, sweep_collect, &c);
    keys = c.keys;
    n_keys = c.n;
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
    /*
     * Unfinished uploads under the folder are no one's: no copy runs, this prune uploads
     * nothing now, and an interrupted prune's upload is never resumed. (A copy that starts
     * meanwhile finds its upload gone and starts it again.)
     */
    do {
        struct s3_list page = {0};
        struct s3_result res;

        if (r < 0 || !listed)
            break;
        r = s3_list_uploads(o.t, prefix, token, &page, &res);
        if (r < 0) {
            r = offsite_fail(&o, r, "listing unfinished uploads", &res);
            break;
        }
        free(token);
        token = TAKE_PTR(page.next);
        for (size_t i = 0; r >= 0 && i < page.n; i++) {
            r = s3_mpu_abort(o.t, page.keys[i], page.upload_ids[i], &res);
            if (r == -ENOENT)
                r = 0;
            else if (r < 0)
                r = offsite_fail(&o, r, "aborting an unfinished upload", &res);
            if (r >= 0)
                r = db_upload_delete(core_db(), remote, page.keys[i]);
            if (r < 0)
                break;
            fprintf(f, "%s\"%s\"", *ret_swept ? ", " : "", page.keys[i]);
            ++*ret_swept;
            log_info("remote %s: unfinished upload of %s aborted (no one's)", remote, page.keys[i]);
        }
        s3_list_clear(&page);
    } while (r >= 0 && token);
    for (size_t i = 0; i < n_keys; i++)
        free(keys[i]);
    free(keys);
    conf_manifest_list_free(m, n_m);
    offsite_remote_close(&o);
    return r;
}

/* The remotes being pruned (one prune per remote at a time) and the staging root. */
static struct {
    pthread_mutex_t lock;
    char *staging;
    char busy[PRUNES_MAX][NAME_MAX_LEN + 1];
} prunes = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Takes remote's slot into *ret_slot; -EBUSY naming it while another prune of it runs. */
static int
remote_take(const char *remote, int *ret_slot)
{
    int free_slot = -1;

    pthread_mutex_lock(&prunes.lock);
    for (int i = 0; i < PRUNES_MAX; i++) {
        if (prunes.busy[i][0] && strcmp(prunes.busy[i], remote) == 0) {
            pthread_mutex_unlock(&prunes.lock);
            return err_set(-EBUSY, "remote '%s' is being pruned by another job", remote);
        }
        if (!prunes.busy[i][0] && free_slot < 0)
            free_slot = i;
    }
    if (free_slot >= 0)
        snprintf(prunes.busy[free_slot], sizeof(prunes.busy[free_slot]), "%s", remote);
    pthread_mutex_unlock(&prunes.lock);
    if (free_slot < 0)
        return err_set(-EBUSY, "%d remotes are being pruned; try again later", PRUNES_MAX);
    *ret_slot = free_slot;
    return 0;
}

static void
remote_drop(int slot)
{
    pthread_mutex_lock(&prunes.lock);
    prunes.busy[slot][0] = '\0';
    pthread_mutex_unlock(&prunes.lock);
}

bool
offsite_prune_running(const char *remote)
{
    bool found = false;

    pthread_mutex_lock(&prunes.lock);
    for (int i = 0; i < PRUNES_MAX; i++)
        if (prunes.busy[i][0] && strcmp(prunes.busy[i], remote) == 0)
            found = true;
    pthread_mutex_unlock(&prunes.lock);
    return found;
}

/*
 * Takes remote's slot once no other prune of it and no copy to it runs
 * (taken first, then checked, as a copy marks itself first and then
 * checks: one of them always sees the other). -ECANCELED, or -EINTR when
 * the service stops meanwhile.
 */
static int
remote_take_alone(struct job *job, const char *remote, int *ret_slot)
{
    for (;;) {
        struct timespec ts = {0, 200 * 1000000L};
        int r = remote_take(remote, ret_slot);

        if (r >= 0 && !offsite_copy_running(remote))
            return 0;
        if (r >= 0)
            remote_drop(*ret_slot);
        else if (r != -EBUSY)
            return r;
        err_clear();
        if (job_cancelled(job))
            return err_set(-ECANCELED, "the prune was cancelled");
        if (job_stopping(job))
            return err_set(-EINTR, "the service stopped before the prune could start");
        nanosleep(&ts, NULL);
    }
}

/* Removes the files in the folder name under dirfd, then the folder. */
static void
folder_remove(int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *e;

    if (!d && fd >= 0)
        close(fd);
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            (void)unlinkat(fd, e->d_name, 0);
    if (d)
        closedir(d);
    (void)unlinkat(dirfd, name, AT_REMOVEDIR);
}

int
offsite_prune_init(const char *state_dir)
{
    _cleanup_close_ int fd = -1;
    DIR *d;
    struct dirent *e;

    if (asprintf(&prunes.staging, "%s/%s", state_dir, STAGING_DIR) < 0) {
        prunes.staging = NULL;
        return -ENOMEM;
    }
    if (mkdir(prunes.staging, 0700) < 0 && errno != EEXIST)
        return err_set(-errno, "cannot make %s: %s", prunes.staging, strerror(errno));
    /* What a prune that stopped midway downloaded is of no use any more. */
    fd = open(prunes.staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    d = fd >= 0 ? fdopendir(dup(fd)) : NULL;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.')
            folder_remove(fd, e->d_name);
    if (d)
        closedir(d);
    return core_jobs_register(&offsite_prune_kind);
}

void
offsite_prune_fini(void)
{
    free(prunes.staging);
    prunes.staging = NULL;
}

/* The lock headers of an object locked until until_ms (none when that has passed). */
struct lock_headers {
    char lines[2][96];
    const char *h[2];
    size_t n;
};

static void
lock_headers_make(int64_t until_ms, struct lock_headers *ret)
{
    char date[40];

    ret->n = 0;
    if (until_ms <= text_now_ms())
        return;
    text_time_rfc3339(date, sizeof(date), (time_t)(until_ms / 1000));
    snprintf(ret->lines[0], sizeof(ret->lines[0]), "x-amz-object-lock-mode: COMPLIANCE");
    snprintf(ret->lines[1], sizeof(ret->lines[1]), "x-amz-object-lock-retain-until-date: %s", date);
    ret->h[0] = ret->lines[0];
    ret->h[1] = ret->lines[1];
    ret->n = 2;
}

/* Appends a copy of key to *keys (of *n). */
static int
keys_add(char ***keys, size_t *n, const char *key)
{
    char **nk = realloc(*keys, (*n + 1) * sizeof(**keys));

    if (!nk)
        return -ENOMEM;
    *keys = nk;
    if (!(nk[*n] = strdup(key)))
        return -ENOMEM;
    ++*n;
    return 0;
}

/*
 * Merges kept backup it (of plan p) by upload: its chain down into a
 * staging folder, each image flattened (onto none) or rebased onto the
 * kept ancestor's, uploaded under a new key, then its manifest rewritten.
 * The keys of the objects it no longer names are added to *old.
 */
static int
merge_one(struct job *job, struct prune_run *pr, struct offsite_remote *o, const struct plan *p,
          size_t it, char ***old, size_t *n_old)
{
    const char *onto_id = p->it[it].onto >= 0 ? p->it[p->it[it].onto].id : NULL;
    const char *suffix = o->key ? ".qcow2.zst.enc" : ".qcow2.zst";
    struct conf_manifest **chain = NULL, *m, *onto = NULL;
    char sname[96], spath[PATH_MAX], rel[256], mkey[S3_KEY_MAX];
    _cleanup_close_ int root = -1;
    _cleanup_free_ char *text = NULL;
    struct lock_headers lock;
    struct s3_result res;
    size_t n = 0;
    int staging = -1, r;

    snprintf(sname, sizeof(sname), "%s-%zu", job_id(job), it);
    if ((size_t)snprintf(spath, sizeof(spath), "%s/%s", prunes.staging, sname) >= sizeof(spath))
        return err_set(-ENAMETOOLONG, "the staging path is too long");
    snprintf(rel, sizeof(rel), "%s/%s/manifest.json", pr->uuid, p->it[it].id);
    r = offsite_key(o, rel, mkey, sizeof(mkey));
    if (r < 0)
        return r;
    root = open(prunes.staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (root < 0)
        return err_set(-errno, "cannot open %s: %s", prunes.staging, strerror(errno));
    folder_remove(root, sname);
    if (mkdirat(root, sname, 0700) < 0)
        return err_set(-errno, "cannot make %s: %s", spath, strerror(errno));
    staging = openat(root, sname, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (staging < 0)
        r = err_set(-errno, "cannot open %s: %s", spath, strerror(errno));
    if (r >= 0)
        r = offsite_chain_fetch(job, o, mkey, staging, spath, &chain, &n);
    m = r >= 0 ? chain[n - 1] : NULL;
    for (size_t c = 0; r >= 0 && onto_id && c < n; c++)
        if (strcmp(chain[c]->b->id, onto_id) == 0)
            onto = chain[c];
    if (r >= 0 && onto_id && !onto)
        r = err_set(-EBADMSG, "backup %s in remote '%s' does not stand on %s", m->b->id, pr->remote,
                    onto_id);
    for (size_t i = 0; r >= 0 && i < m->b->n_disks; i++) {
        struct conf_backup_disk *d = &m->b->disks[i];
        const struct conf_backup_disk *od = onto ? backup_disk_of(onto->b, d->target) : NULL;
        _cleanup_(vault_checksum_clear) struct vault_checksum sum = {0};
        char path[PATH_MAX], okey[S3_KEY_MAX];
        uint64_t bytes = 0;

        if (onto && !od) {
            r = err_set(-EBADFD, "backup %s has no disk %s for backup %s to stand on", onto_id,
                        d->target, m->b->id);
            break;
        }
        if (job_cancelled(job)) {
            r = err_set(-ECANCELED, "the prune was cancelled");
            break;
        }
        r = vault_image_merge(spath, backup_base_name(d->file),
                              od ? backup_base_name(od->file) : NULL, &pr->cancel, &d->stored_bytes,
                              &sum);
        if (r >= 0)
            r = vault_image_install(spath, backup_base_name(d->file));
        if (r >= 0 && (size_t)snprintf(path, sizeof(path), "%s/%s", spath,
                                       backup_base_name(d->file)) >= sizeof(path))
            r = err_set(-ENAMETOOLONG, "the staging path is too long");
        /* A new key: the manifest in the bucket names the old object until it is rewritten. */
        snprintf(rel, sizeof(rel), "%s/%s/%s-%s%s", pr->uuid, m->b->id, d->target, job_id(job),
                 suffix);
        if (r >= 0)
            r = offsite_key(o, rel, okey, sizeof(okey));
        if (r >= 0)
            r = offsite_upload_file(job, o, path, okey, m->retain_until_ms, &bytes);
        if (r >= 0)
            r = keys_add(old, n_old, m->objects[i]);
        if (r < 0)
            break;
        free(m->objects[i]);
        m->objects[i] = strdup(okey);
        m->object_bytes[i] = bytes;
        free(d->sha256);
        free(d->backing);
        free(d->checksum_algorithm);
        free(d->pieces);
        d->pieces = NULL;
        d->n_pieces = 0;
        d->backing = od ? strdup(backup_base_name(od->file)) : NULL;
        d->sha256 = strdup(sum.digest);
        d->checksum_algorithm = strdup(HASH_ALG_PIECES);
        if (!m->objects[i] || !d->sha256 || !d->checksum_algorithm || (od && !d->backing))
            r = -ENOMEM;
    }
    if (r >= 0) {
        /* The new objects are sealed as this remote seals copies now. */
        free(m->encryption);
        free(m->key_id);
        m->encryption = strdup(o->key ? "aes-256-gcm" : "none");
        m->key_id = o->key ? strdup(o->key->id) : NULL;
        if (!m->encryption || (o->key && !m->key_id))
            r = -ENOMEM;
        m->b->stored_bytes = 0;
        for (size_t i = 0; i < m->b->n_disks; i++)
            m->b->stored_bytes += m->b->disks[i].stored_bytes;
        free(m->b->parent_id);
        free(m->b->base_checkpoint);
        m->b->parent_id = m->b->base_checkpoint = NULL;
        if (onto) {
            if (!(m->b->parent_id = strdup(onto->b->id)) ||
                (onto->b->checkpoint && !(m->b->base_checkpoint = strdup(onto->b->checkpoint))))
                r = -ENOMEM;
        } else {
            m->b->type = CONF_BACKUP_TYPE_FULL; /* nothing below it: it holds the whole disk */
        }
    }
    /* The new objects are in the bucket: from now on the manifest names them. */
    if (r >= 0)
        r = conf_manifest_format(m, &text);
    if (r >= 0) {
        lock_headers_make(m->retain_until_ms, &lock);
        r = s3_put(o->t, mkey, text, strlen(text), lock.h, lock.n, &res);
        if (r < 0)
            r = offsite_fail(o, r, "rewriting a merged backup's manifest", &res);
    }
    if (r >= 0)
        log_info("remote %s: backup %s merged %s%s", pr->remote, m->b->id,
                 onto ? "onto " : "into a full", onto ? onto_id : "");
    {
        struct err_state saved;
        err_save(&saved);
        if (staging >= 0)
            close(staging);
        folder_remove(root, sname);
        err_restore(&saved);
    }
    conf_manifest_list_free(chain, n);
    return r;
}

static int
prune_cancel(struct job *job, void *data)
{
    struct prune_run *pr = data;

    (void)job;
    atomic_store(&pr->cancel.cancelled, true);
    return 0;
}

static int
prune_job_run(struct job *job, void *data)
{
    struct prune_run *pr = data;
    struct plan p = {0};
    struct offsite_remote o = {0};
    _cleanup_free_ size_t *order = NULL;
    _cleanup_free_ char *out = NULL;
    char **old = NULL;
    size_t out_len = 0, n_old = 0;
    unsigned removed = 0, swept = 0, merged = 0;
    bool opened = false;
    FILE *f = NULL;
    int slot = -1, r;

    r = remote_take_alone(job, pr->remote, &slot);
    if (r < 0)
        return r;
    r = plan_make(pr->remote, pr->uuid, &pr->r, text_now_ms(), &p);
    if (r == -ENOENT) {
        err_clear();
        r = 0; /* nothing there (any more): only the sweep */
    }
    if (r >= 0) {
        f = open_memstream(&out, &out_len);
        order = calloc(p.n ? p.n : 1, sizeof(*order));
        if (!f || !order)
            r = -ENOMEM;
    }
    if (r >= 0 && (r = offsite_remote_open(pr->remote, &o)) >= 0)
        opened = true;
    if (r >= 0) {
        fprintf(f, "{\"remote\": \"%s\", \"domain_uuid\": \"%s\", \"dry_run\": false, ", pr->remote,
                pr->uuid);
        plan_write(&p, f);
        for (size_t i = 0; i < p.n; i++)
            order[i] = p.n - 1 - i; /* the plan is newest first: oldest first */
        job_progress(job, 0, p.n + 1);
    }
    /* Merges oldest first: a later one may stand on an earlier one. */
    for (size_t k = 0; r >= 0 && k < p.n; k++) {
        if (!p.it[order[k]].merge)
            continue;
        r = merge_one(job, pr, &o, &p, order[k], &old, &n_old);
        if (r >= 0)
            merged++;
    }
    /* Then what goes, newest first: no manifest in the bucket stands on it any more. */
    for (size_t k = p.n; r >= 0 && k-- > 0;) {
        const char *id = p.it[order[k]].id;
        if (p.it[order[k]].keep)
            continue;
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
        job_progress(job, p.n - k, p.n + 1);
    }
    /* And the merged backups' old objects. */
    for (size_t i = 0; r >= 0 && i < n_old; i++) {
        struct s3_result res;
        if ((r = s3_delete(o.t, old[i], &res)) < 0)
            r = offsite_fail(&o, r, "deleting a merged backup's old object", &res);
    }
    if (r >= 0) {
        fputs(", \"swept\": [", f);
        r = sweep(pr->remote, pr->uuid, f, &swept);
        fprintf(f, "], \"removed\": %u, \"merged\": %u}", removed, merged);
    }
    if (f && fclose(f) != 0 && r >= 0)
        r = -ENOMEM;
    if (r >= 0) {
        log_info("remote %s: domain %s pruned: %u backups merged, %u removed, %u objects swept",
                 pr->remote, pr->uuid, merged, removed, swept);
        job_progress(job, p.n + 1, p.n + 1);
        r = job_set_result(job, out);
    }
    for (size_t i = 0; i < n_old; i++)
        free(old[i]);
    free(old);
    if (opened)
        offsite_remote_close(&o);
    plan_clear(&p);
    remote_drop(slot);
    if (r < 0 && job_cancelled(job))
        return err_set(-ECANCELED, "the prune was cancelled");
    return r;
}

const struct job_kind offsite_prune_kind = {
    .kind = CONF_JOB_KIND_OFFSITE_PRUNE,
    .run = prune_job_run,
    .cancel = prune_cancel,
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
        fputs(", \"swept\": [], \"removed\": 0, \"merged\": 0}", f);
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
