/*
 * Remotes: their records (db/remote.h), their secrets (0600 files), the
 * check of a remote, and the listing of what a bucket holds (see offsite.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "core.h"
#include "db/remote.h"
#include "err.h"
#include "log.h"
#include "net/frame.h"
#include "net/s3.h"
#include "offsite_priv.h"
#include "text.h"

#define SECRETS_DIR        "remote-secrets"
#define LIST_MANIFESTS_MAX 10000

static struct {
    char *secrets; /* the folder of secrets */
    char host[256];
} offsite;

const char *
offsite_host(void)
{
    return offsite.host;
}

int
core_offsite_init(const char *state_dir)
{
    int r;

    if (gethostname(offsite.host, sizeof(offsite.host) - 1) < 0)
        snprintf(offsite.host, sizeof(offsite.host), "localhost");
    if (asprintf(&offsite.secrets, "%s/%s", state_dir, SECRETS_DIR) < 0) {
        offsite.secrets = NULL;
        return -ENOMEM;
    }
    r = core_jobs_register(&offsite_copy_kind);
    if (r >= 0)
        r = core_jobs_register(&offsite_restore_kind);
    if (r >= 0)
        r = offsite_prune_init(state_dir);
    return r;
}

void
core_offsite_fini(void)
{
    free(offsite.secrets);
    offsite.secrets = NULL;
    offsite_prune_fini();
}

/* The path of remote name's secret file into buf. */
static int
secret_path(const char *name, char *buf, size_t size)
{
    if ((size_t)snprintf(buf, size, "%s/%s", offsite.secrets, name) >= size)
        return err_set(-ENAMETOOLONG, "the secrets folder's path is too long");
    return 0;
}

/* Writes remote name's secret into its file: 0600, in a 0700 folder, replaced atomically. */
static int
secret_write(const char *name, const char *secret)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    size_t len = strlen(secret);
    _cleanup_close_ int fd = -1;
    int r;

    if (mkdir(offsite.secrets, 0700) < 0 && errno != EEXIST)
        return err_set(-errno, "cannot make %s: %s", offsite.secrets, strerror(errno));
    if (chmod(offsite.secrets, 0700) < 0)
        return err_set(-errno, "cannot restrict %s: %s", offsite.secrets, strerror(errno));
    r = secret_path(name, path, sizeof(path));
    if (r < 0)
        return r;
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    (void)unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return err_set(-errno, "cannot write a secret into %s: %s", offsite.secrets,
                       strerror(errno));
    if (write(fd, secret, len) != (ssize_t)len || fsync(fd) < 0) {
        r = -errno ? -errno : -EIO;
        (void)unlink(tmp);
        return err_set(r, "cannot write a secret into %s", offsite.secrets);
    }
    if (rename(tmp, path) < 0) {
        r = -errno;
        (void)unlink(tmp);
        return err_set(r, "cannot write a secret into %s: %s", offsite.secrets, strerror(-r));
    }
    return 0;
}

/* Reads remote name's secret into a new *ret. */
static int
secret_read(const char *name, char **ret)
{
    char path[PATH_MAX], buf[CONF_REMOTE_KEY_MAX + 1];
    _cleanup_close_ int fd = -1;
    ssize_t n;
    int r;

    r = secret_path(name, path, sizeof(path));
    if (r < 0)
        return r;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return err_set(-errno == -ENOENT ? -EIO : -errno,
                       "the secret of remote '%s' cannot be read: %s", name, strerror(errno));
    n = read(fd, buf, sizeof(buf) - 1);
    if (n < 0)
        return err_set(-EIO, "the secret of remote '%s' cannot be read", name);
    buf[n] = '\0';
    *ret = strdup(buf);
    explicit_bzero(buf, sizeof(buf));
    return *ret ? 0 : -ENOMEM;
}

/* Checks the files a remote names: the CA file readable, the key file a key. */
static int
check_files(const struct conf_remote *in)
{
    if (in->ca_file && access(in->ca_file, R_OK) < 0)
        return err_set_pointer(-EINVAL, "/ca_file", "cannot be read by the service: %s",
                               strerror(errno));
    if (in->key_file) {
        struct frame_key key;
        int r = frame_key_load(in->key_file, &key);
        explicit_bzero(&key, sizeof(key));
        if (r < 0) {
            char keep[512];
            snprintf(keep, sizeof(keep), "%s", err_detail() ? err_detail() : strerror(-r));
            return err_set_pointer(-EINVAL, "/key_file", "%s", keep);
        }
    }
    return 0;
}

/* Stores in (create or change) and answers the stored record without its secret. */
static int
remote_put(const struct conf_remote *in, bool create, struct conf_remote *ret)
{
    struct conf_remote rec = *in, old = {0};
    int r;

    r = check_files(in);
    if (r < 0)
        return r;
    rec.updated_ms = text_now_ms();
    if (create) {
        rec.created_ms = rec.updated_ms;
    } else {
        r = db_remote_get(core_db(), in->name, &old);
        if (r < 0)
            return r;
        rec.created_ms = old.created_ms;
        conf_remote_clear(&old);
    }
    /* The secret first: a remote is never stored without one. */
    if (in->secret) {
        r = secret_write(in->name, in->secret);
        if (r < 0)
            return r;
    }
    r = db_remote_put(core_db(), &rec, create);
    if (r < 0)
        return r;
    log_info("remote %s %s (%s, bucket %s)", in->name, create ? "created" : "changed", in->endpoint,
             in->bucket);
    return db_remote_get(core_db(), in->name, ret);
}

int
core_remote_create(const struct conf_remote *in, struct conf_remote *ret)
{
    struct conf_remote old = {0};
    int r = db_remote_get(core_db(), in->name, &old);

    if (r == 0) {
        conf_remote_clear(&old);
        return err_set(-EEXIST, "a remote named '%s' exists already", in->name);
    }
    err_clear();
    return remote_put(in, true, ret);
}

int
core_remote_update(const struct conf_remote *in, struct conf_remote *ret)
{
    return remote_put(in, false, ret);
}

int
core_remote_get(const char *name, struct conf_remote *ret)
{
    return db_remote_get(core_db(), name, ret);
}

int
core_remote_list(struct conf_remote **ret, size_t *ret_n)
{
    return db_remote_list(core_db(), ret, ret_n);
}

int
core_remote_delete(const char *name)
{
    char path[PATH_MAX];
    int r;

    if (offsite_copy_running(name))
        return err_set(-EBUSY, "a copy to remote '%s' is running; cancel it first", name);
    r = db_remote_delete(core_db(), name);
    if (r < 0)
        return r;
    if (secret_path(name, path, sizeof(path)) == 0)
        (void)unlink(path);
    log_info("remote %s deleted", name);
    return 0;
}

int
offsite_remote_open(const char *name, struct offsite_remote *ret)
{
    struct offsite_remote o = {0};
    int r;

    r = db_remote_get(core_db(), name, &o.r);
    if (r < 0)
        return r;
    r = secret_read(name, &o.r.secret);
    if (r >= 0 && o.r.key_file) {
        o.key = calloc(1, sizeof(*o.key));
        r = o.key ? frame_key_load(o.r.key_file, o.key) : -ENOMEM;
    }
    if (r >= 0) {
        o.t = calloc(1, sizeof(*o.t));
        if (!o.t)
            r = -ENOMEM;
    }
    if (r < 0) {
        offsite_remote_close(&o);
        return r;
    }
    *o.t = (struct s3_target){
        .endpoint = o.r.endpoint,
        .region = o.r.region,
        .bucket = o.r.bucket,
        .path_style = o.r.path_style,
        .access_key = o.r.access_key,
        .secret_key = o.r.secret,
        .ca_file = o.r.ca_file,
    };
    *ret = o;
    return 0;
}

void
offsite_remote_close(struct offsite_remote *o)
{
    if (o->key)
        explicit_bzero(o->key, sizeof(*o->key));
    free(o->key);
    free(o->t);
    conf_remote_clear(&o->r);
    memset(o, 0, sizeof(*o));
}

int
offsite_key(const struct offsite_remote *o, const char *rel, char *buf, size_t size)
{
    int n = o->r.prefix && o->r.prefix[0] ? snprintf(buf, size, "%s/%s", o->r.prefix, rel)
                                          : snprintf(buf, size, "%s", rel);

    if (n < 0 || (size_t)n >= size)
        return err_set(-ENAMETOOLONG, "an object key longer than %zu bytes", size - 1);
    return 0;
}

int
offsite_fail(const struct offsite_remote *o, int r, const char *what, const struct s3_result *res)
{
    char why[600];

    s3_result_describe(res, why, sizeof(why));
    /* A refusal of the bucket is no fault of the request: it is the remote's (502). */
    return err_set(r == -ENOENT || r == -ECANCELED || r == -EBADMSG ? r : -EREMOTEIO,
                   "remote '%s': %s: %s", o->r.name, what, why);
}

int
offsite_manifest_get(const struct offsite_remote *o, const char *key, struct conf_manifest **ret)
{
    _cleanup_free_ char *data = NULL;
    struct s3_result res;
    size_t len = 0;
    int r;

    r = s3_get(o->t, key, CONF_MANIFEST_MAX, &data, &len, &res);
    if (r == -ENOENT)
        return err_set(-ENOENT, "remote '%s' has no manifest %s", o->r.name, key);
    if (r < 0)
        return offsite_fail(o, r, "reading a manifest", &res);
    r = conf_manifest_parse(data, len, ret);
    if (r == -EBADMSG) {
        char keep[512];
        snprintf(keep, sizeof(keep), "%s", err_detail() ? err_detail() : "");
        return err_set(-EBADMSG, "remote '%s': %s: %s", o->r.name, key, keep);
    }
    return r;
}

int
core_remote_check(const char *name, struct core_remote_check *ret)
{
    struct offsite_remote o;
    struct s3_result res;
    char key[S3_KEY_MAX], rel[64], hex[33], body[64];
    _cleanup_free_ char *back = NULL;
    size_t back_len = 0;
    int64_t t0 = text_now_ms();
    int r;

    memset(ret, 0, sizeof(*ret));
    r = offsite_remote_open(name, &o);
    if (r < 0)
        return r;
    ret->encrypted = o.key != NULL;
    if (o.key)
        snprintf(ret->key_id, sizeof(ret->key_id), "%s", o.key->id);
    if (text_random_hex(hex, sizeof(hex), 16) < 0)
        snprintf(hex, sizeof(hex), "%lld", (long long)t0);
    snprintf(rel, sizeof(rel), ".virtvault-probe-%s", hex);
    snprintf(body, sizeof(body), "virtvault probe %s", hex);
    r = offsite_key(&o, rel, key, sizeof(key));
    if (r < 0)
        goto out;
    snprintf(ret->step, sizeof(ret->step), "bucket");
    r = s3_bucket_versioning(o.t, &ret->versioning, &res);
    if (r >= 0)
        r = s3_bucket_object_lock(o.t, &ret->object_lock, &res);
    if (r >= 0) {
        snprintf(ret->step, sizeof(ret->step), "put");
        r = s3_put(o.t, key, body, strlen(body), NULL, 0, &res);
    }
    if (r >= 0) {
        snprintf(ret->step, sizeof(ret->step), "get");
        r = s3_get(o.t, key, 4096, &back, &back_len, &res);
    }
    if (r >= 0 && (back_len != strlen(body) || memcmp(back, body, back_len) != 0)) {
        snprintf(ret->step, sizeof(ret->step), "compare");
        snprintf(ret->detail, sizeof(ret->detail), "the probe object read back differs");
        r = -EIO;
        (void)s3_delete(o.t, key, &res);
        goto out;
    }
    if (r >= 0) {
        snprintf(ret->step, sizeof(ret->step), "delete");
        r = s3_delete(o.t, key, &res);
    }
    if (r < 0)
        s3_result_describe(&res, ret->detail, sizeof(ret->detail));
out:
    ret->ok = r >= 0;
    if (ret->ok)
        ret->step[0] = '\0';
    ret->elapsed_ms = text_now_ms() - t0;
    log_info("remote %s checked: %s%s%s", name, ret->ok ? "ok" : "failed at ", ret->step,
             ret->ok ? "" : "");
    offsite_remote_close(&o);
    err_clear();
    return 0;
}

/* True when key (after the prefix) reads "UUID/ID/manifest.json". */
static bool
manifest_key(const char *rel)
{
    const char *a = strchr(rel, '/'), *b;

    if (!a || a - rel != 36)
        return false;
    b = strchr(a + 1, '/');
    return b && b > a + 1 && strcmp(b + 1, "manifest.json") == 0;
}

int
offsite_list_keys(const struct offsite_remote *o, const char *prefix,
                  int (*fn)(char **key, void *data), void *data)
{
    _cleanup_free_ char *token = NULL;
    int r = 0;

    do {
        struct s3_list page = {0};
        struct s3_result res;

        r = s3_list_objects(o->t, prefix, token, &page, &res);
        if (r < 0)
            return offsite_fail(o, r, "listing the bucket", &res);
        free(token);
        token = TAKE_PTR(page.next);
        for (size_t i = 0; r == 0 && i < page.n; i++)
            r = fn(&page.keys[i], data);
        s3_list_clear(&page);
    } while (r == 0 && token);
    return r < 0 ? r : 0;
}

struct find_ctx {
    const char *prefix, *id;
    size_t plen, idlen;
    char *found;
};

static int
find_one(char **key, void *data)
{
    struct find_ctx *c = data;
    const char *rel = *key + c->plen;

    if (!text_startswith(*key, c->prefix) || !manifest_key(rel) ||
        strncmp(rel + 37, c->id, c->idlen) != 0 || rel[37 + c->idlen] != '/')
        return 0;
    c->found = TAKE_PTR(*key);
    return 1;
}

int
offsite_manifest_find(const struct offsite_remote *o, const char *id, char **ret)
{
    char prefix[S3_KEY_MAX];
    struct find_ctx c = {.prefix = prefix, .id = id, .idlen = strlen(id)};
    int r;

    snprintf(prefix, sizeof(prefix), "%s%s", o->r.prefix ? o->r.prefix : "",
             o->r.prefix && o->r.prefix[0] ? "/" : "");
    c.plen = strlen(prefix);
    r = offsite_list_keys(o, prefix, find_one, &c);
    if (r < 0)
        return r;
    if (!c.found)
        return err_set(-ENOENT, "remote '%s' holds no backup '%.64s'", o->r.name, id);
    *ret = c.found;
    return 0;
}

/* By backup id: the order pages follow. */
static int
manifest_order(const void *a, const void *b)
{
    const struct conf_manifest *x = *(const struct conf_manifest *const *)a;
    const struct conf_manifest *y = *(const struct conf_manifest *const *)b;

    return strcmp(x->b->id, y->b->id);
}

struct list_ctx {
    const struct offsite_remote *o;
    const char *prefix, *domain, *host;
    size_t plen;
    struct conf_manifest **list;
    size_t n;
};

static int
list_one(char **key, void *data)
{
    struct list_ctx *c = data;
    struct conf_manifest *m = NULL, **nl;
    int r;

    if (!text_startswith(*key, c->prefix) || !manifest_key(*key + c->plen))
        return 0;
    if (c->n >= LIST_MANIFESTS_MAX)
        return err_set(-EREMOTEIO, "remote '%s' holds more than %d manifests", c->o->r.name,
                       LIST_MANIFESTS_MAX);
    r = offsite_manifest_get(c->o, *key, &m);
    if (r == -EBADMSG) {
        log_warn("%s", err_detail());
        err_clear();
        return 0;
    }
    if (r < 0)
        return r;
    if ((c->domain && strcmp(m->b->domain_uuid, c->domain) != 0 &&
         (!m->b->domain_name || strcmp(m->b->domain_name, c->domain) != 0)) ||
        (c->host && strcmp(m->host, c->host) != 0)) {
        conf_manifest_free(m);
        return 0;
    }
    nl = realloc(c->list, (c->n + 1) * sizeof(*nl));
    if (!nl) {
        conf_manifest_free(m);
        return -ENOMEM;
    }
    c->list = nl;
    c->list[c->n++] = m;
    return 0;
}

int
core_offsite_list(const char *remote, const char *domain, const char *host,
                  struct conf_manifest ***ret, size_t *ret_n)
{
    struct offsite_remote o;
    char prefix[S3_KEY_MAX], under[S3_KEY_MAX + 40];
    struct list_ctx c = {.o = &o, .prefix = prefix, .domain = domain, .host = host};
    struct conf_manifest **list;
    size_t n;
    int r;

    r = offsite_remote_open(remote, &o);
    if (r < 0)
        return r;
    snprintf(prefix, sizeof(prefix), "%s%s", o.r.prefix ? o.r.prefix : "",
             o.r.prefix && o.r.prefix[0] ? "/" : "");
    c.plen = strlen(prefix);
    /* A domain's objects are under its UUID: by UUID, only that folder is listed. */
    snprintf(under, sizeof(under), "%s%s%s", prefix, domain && text_is_uuid(domain) ? domain : "",
             domain && text_is_uuid(domain) ? "/" : "");
    r = offsite_list_keys(&o, under, list_one, &c);
    list = c.list;
    n = c.n;
    offsite_remote_close(&o);
    if (r < 0) {
        conf_manifest_list_free(list, n);
        return r;
    }
    if (n > 1)
        qsort(list, n, sizeof(*list), manifest_order);
    *ret = list;
    *ret_n = n;
    return 0;
}

int
core_offsite_delete(const char *remote, const char *id)
{
    struct offsite_remote o;
    struct conf_manifest *m = NULL, **all = NULL;
    _cleanup_free_ char *key = NULL;
    struct s3_result res;
    size_t n = 0;
    int r;

    r = offsite_remote_open(remote, &o);
    if (r < 0)
        return r;
    r = offsite_manifest_find(&o, id, &key);
    if (r >= 0)
        r = offsite_manifest_get(&o, key, &m);
    if (r >= 0 && m->retain_until_ms > text_now_ms()) {
        char due[40];
        text_time_rfc3339(due, sizeof(due), (time_t)(m->retain_until_ms / 1000));
        r = err_set(-EBADFD,
                    "backup %s in remote '%s' is locked (object lock) until %s; it cannot be "
                    "deleted before",
                    id, remote, due);
    }
    if (r >= 0)
        r = core_offsite_list(remote, m->b->domain_uuid, NULL, &all, &n);
    for (size_t i = 0; r >= 0 && i < n; i++)
        if (all[i]->b->parent_id && strcmp(all[i]->b->parent_id, id) == 0)
            r = err_set(-ENOTEMPTY, "backup %s in remote '%s' stands on it; delete it first",
                        all[i]->b->id, remote);
    conf_manifest_list_free(all, n);
    /* The manifest first: from then on the bucket does not list a copy that is going. */
    if (r >= 0 && (r = s3_delete(o.t, key, &res)) < 0)
        r = offsite_fail(&o, r, "deleting a manifest", &res);
    for (size_t i = 0; r >= 0 && i < m->b->n_disks; i++)
        if ((r = s3_delete(o.t, m->objects[i], &res)) < 0)
            r = offsite_fail(&o, r, "deleting an image", &res);
    if (r >= 0) {
        (void)db_copy_delete(core_db(), id, remote);
        log_info("backup %s deleted from remote %s", id, remote);
    }
    conf_manifest_free(m);
    offsite_remote_close(&o);
    return r;
}
