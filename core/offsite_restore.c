/*
 * The restore job of offsite copies (see offsite.h): the chain's images
 * come down from the bucket into a folder of their own inside the target
 * (opened, decompressed, checked against the manifests' SHA-256 and
 * backing names), the point is flattened into the target like a local
 * restore (qcow2 or raw, optionally defined as a new domain), and the
 * downloaded chain is removed. Nothing of the local catalog is read.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup_priv.h"
#include "cleanup.h"
#include "core.h"
#include "err.h"
#include "hash.h"
#include "log.h"
#include "net/frame.h"
#include "net/s3.h"
#include "offsite_priv.h"
#include "text.h"
#include "vault/vault.h"
#include "virt/virt.h"

struct restore_run {
    struct conf_cancel cancel;
    char *remote;
    char *key; /* the manifest's object key */
    char *target_dir;
    enum conf_image_format format;
    char *define_name;
    unsigned keep;
    uint64_t bandwidth;
};

static void
restore_run_free(void *data)
{
    struct restore_run *rr = data;

    if (!rr)
        return;
    free(rr->remote);
    free(rr->key);
    free(rr->target_dir);
    free(rr->define_name);
    free(rr);
}

static int
restore_cancel(struct job *job, void *data)
{
    struct restore_run *rr = data;

    atomic_store(&rr->cancel.cancelled, true);
    return 0;
}

/* Where a download goes: a file, and the job for progress and cancel. */
struct download {
    int fd;
    struct job *job;
    uint64_t *done, total;
    struct frame_dec *dec;
    int error;
};

static int
download_write(void *opaque, uint64_t raw_off, const void *data, size_t len)
{
    struct download *d = opaque;
    const char *p = data;

    while (len > 0) {
        ssize_t n = pwrite(d->fd, p, len, (off_t)raw_off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return err_set(-errno, "cannot write a downloaded image: %s", strerror(errno));
        }
        p += n;
        len -= (size_t)n;
        raw_off += (uint64_t)n;
    }
    return 0;
}

static int
download_sink(void *opaque, const void *data, size_t len)
{
    struct download *d = opaque;
    int r;

    if (job_cancelled(d->job))
        return d->error = -ECANCELED;
    r = frame_dec_feed(d->dec, data, len);
    if (r < 0)
        return d->error = r;
    *d->done += len;
    job_progress(d->job, *d->done, d->total);
    return 0;
}

/* The checksum of the downloaded image at path under alg (util/hash.h) into hex. */
static int
downloaded_checksum(const char *path, const char *alg, char hex[HASH_SHA256_HEX_LEN + 1])
{
    _cleanup_(vault_checksum_clear) struct vault_checksum sum = {0};
    int r;

    if (strcmp(alg, HASH_ALG_FILE) == 0)
        return hash_sha256_file(path, hex);
    r = vault_file_checksum(path, NULL, false, NULL, NULL, &sum);
    if (r < 0)
        return r;
    memcpy(hex, sum.digest, sizeof(sum.digest));
    return 0;
}

/* Downloads disk i of m into staging (a folder's descriptor) and checks it. */
static int
fetch_disk(struct job *job, struct offsite_remote *o, const struct conf_manifest *m, size_t i,
           int staging, const char *staging_path, uint64_t *done, uint64_t total)
{
    const struct conf_backup_disk *disk = &m->b->disks[i];
    const char *name = backup_base_name(disk->file);
    char path[PATH_MAX], hex[HASH_SHA256_HEX_LEN + 1];
    _cleanup_free_ char *backing = NULL;
    struct download d = {.job = job, .done = done, .total = total};
    struct s3_result res;
    uint64_t raw = 0;
    int r;

    if (disk->backing && strchr(disk->backing, '/'))
        return err_set(-EOPNOTSUPP, "backup %s: a backing file outside its folder (%s)", m->b->id,
                       disk->backing);
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", staging_path, name) >= sizeof(path))
        return err_set(-ENAMETOOLONG, "restore path too long");
    d.fd = openat(staging, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (d.fd < 0)
        return err_set(-errno, "cannot make %s: %s", path, strerror(errno));
    d.dec = frame_dec_new(o->key, download_write, &d);
    if (!d.dec) {
        close(d.fd);
        return -ENOMEM;
    }
    r = s3_get_stream(o->t, m->objects[i], NULL, download_sink, &d, &res);
    if (r < 0 && d.error) {
        r = d.error;
        if (r == -EBADMSG)
            r = err_set(-EBADMSG, "remote '%s': %s: %s", o->r.name, m->objects[i],
                        frame_dec_error(d.dec));
    } else if (r < 0) {
        r = offsite_fail(o, r, "downloading an image", &res);
    }
    if (r >= 0 && frame_dec_finish(d.dec, &raw) < 0)
        r = err_set(-EBADMSG, "remote '%s': %s: %s", o->r.name, m->objects[i],
                    frame_dec_error(d.dec));
    frame_dec_free(d.dec);
    if (close(d.fd) < 0 && r >= 0)
        r = err_set(-EIO, "cannot write %s", path);
    if (r < 0)
        return r;
    if (disk->sha256) {
        const char *alg = disk->checksum_algorithm ? disk->checksum_algorithm : HASH_ALG_FILE;

        r = downloaded_checksum(path, alg, hex);
        if (r < 0)
            return r;
        if (strcmp(hex, disk->sha256) != 0)
            return err_set(-EBADMSG,
                           "backup %s disk %s: the checksum (%s) of the downloaded image "
                           "is %s, the manifest says %s",
                           m->b->id, disk->target, alg, hex, disk->sha256);
    }
    r = vault_qcow2_backing(path, &backing);
    if (r < 0)
        return err_set(-EBADMSG, "backup %s disk %s: the downloaded image is not qcow2", m->b->id,
                       disk->target);
    if ((backing == NULL) != (disk->backing == NULL) ||
        (backing && strcmp(backing, disk->backing) != 0))
        return err_set(-EBADMSG,
                       "backup %s disk %s: the image's backing file is not the one "
                       "the manifest names",
                       m->b->id, disk->target);
    return 0;
}

/* Reads the chain of the manifest at key, oldest first, into a new array. */
static int
read_chain(struct offsite_remote *o, const char *key, struct conf_manifest ***ret, size_t *ret_n)
{
    struct conf_manifest **chain = NULL, *m = NULL;
    size_t n = 0;
    int r = offsite_manifest_get(o, key, &m);

    while (r >= 0) {
        struct conf_manifest **nl = realloc(chain, (n + 1) * sizeof(*nl));
        char rel[256], pkey[S3_KEY_MAX];
        if (!nl) {
            conf_manifest_free(m);
            r = -ENOMEM;
            break;
        }
        chain = nl;
        chain[n++] = m;
        if (m->encryption && strcmp(m->encryption, "none") != 0 &&
            (!o->key || strcmp(m->key_id, o->key->id) != 0)) {
            r = err_set(-EINVAL, "backup %s was copied encrypted with key %s; remote '%s' %s",
                        m->b->id, m->key_id, o->r.name,
                        o->key ? "has another key" : "has no key_file");
            break;
        }
        if (!m->b->parent_id)
            break;
        if (n >= MAX_CHAIN) {
            r = err_set(-ELOOP, "a chain longer than %d in the bucket", MAX_CHAIN);
            break;
        }
        snprintf(rel, sizeof(rel), "%s/%s/manifest.json", m->b->domain_uuid, m->b->parent_id);
        r = offsite_key(o, rel, pkey, sizeof(pkey));
        m = NULL;
        if (r >= 0)
            r = offsite_manifest_get(o, pkey, &m);
        if (r == -ENOENT)
            r = err_set(-EBADMSG, "remote '%s' lacks the parent %s of backup %s", o->r.name,
                        chain[n - 1]->b->parent_id, chain[n - 1]->b->id);
    }
    if (r < 0) {
        conf_manifest_list_free(chain, n);
        return r;
    }
    for (size_t i = 0; i < n / 2; i++) {
        struct conf_manifest *t = chain[i];
        chain[i] = chain[n - 1 - i];
        chain[n - 1 - i] = t;
    }
    *ret = chain;
    *ret_n = n;
    return 0;
}

/* Removes the staging folder and what is in it. */
static void
staging_remove(int dirfd, const char *name, int staging)
{
    if (staging >= 0) {
        int fd = dup(staging);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        struct dirent *e;
        if (!d && fd >= 0)
            close(fd);
        while (d && (e = readdir(d)))
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                (void)unlinkat(staging, e->d_name, 0);
        if (d)
            closedir(d);
    }
    (void)unlinkat(dirfd, name, AT_REMOVEDIR);
}

static int
restore_job_run(struct job *job, void *data)
{
    struct restore_run *rr = data;
    struct offsite_remote o;
    struct conf_manifest **chain = NULL, *m = NULL;
    size_t n = 0, made = 0;
    _cleanup_close_ int dirfd = -1;
    int staging = -1, r;
    char sname[64], spath[PATH_MAX], uuid[37] = "";
    _cleanup_free_ char(*dest)[PATH_MAX] = NULL;
    _cleanup_free_ struct virt_restored_disk *rd = NULL;
    __attribute__((cleanup(virt_clone_changes_clear))) struct virt_clone_changes changes = {0};
    _cleanup_free_ char *out = NULL;

    r = offsite_remote_open(rr->remote, &o);
    if (r < 0)
        return r;
    r = vault_dir_open(rr->target_dir, backup_ctx.roots, backup_ctx.n_roots, &dirfd);
    snprintf(sname, sizeof(sname), ".offsite-%s", job_id(job));
    snprintf(spath, sizeof(spath), "%s/%s", rr->target_dir, sname);
    if (r >= 0 && mkdirat(dirfd, sname, 0700) < 0)
        r = err_set(-errno, "cannot make %s: %s", spath, strerror(errno));
    if (r >= 0) {
        staging = openat(dirfd, sname, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (staging < 0)
            r = err_set(-errno, "cannot open %s: %s", spath, strerror(errno));
    }
    if (r >= 0)
        r = offsite_chain_fetch(job, &o, rr->key, staging, spath, &chain, &n);
    if (r >= 0) {
        m = chain[n - 1];
        dest = calloc(m->b->n_disks + 1, PATH_MAX);
        rd = calloc(m->b->n_disks + 1, sizeof(*rd));
        if (!dest || !rd)
            r = -ENOMEM;
    }
    for (size_t i = 0; r >= 0 && i < m->b->n_disks; i++) {
        char src[PATH_MAX];
        const struct conf_backup_disk *disk = &m->b->disks[i];
        const char *dname = m->b->domain_name ? m->b->domain_name : m->b->domain_uuid;
        if ((size_t)snprintf(dest[i], PATH_MAX, "%s/%s%s%s-%s.%s", rr->target_dir,
                             rr->define_name ? rr->define_name : dname, rr->define_name ? "" : "-",
                             rr->define_name ? "" : m->b->id, disk->target,
                             rr->format == CONF_IMAGE_FORMAT_RAW ? "img" : "qcow2") >= PATH_MAX) {
            r = err_set(-ENAMETOOLONG, "restore path too long");
            break;
        }
        if ((size_t)snprintf(src, sizeof(src), "%s/%s", spath, backup_base_name(disk->file)) >=
            sizeof(src)) {
            r = err_set(-ENAMETOOLONG, "restore path too long");
            break;
        }
        r = vault_image_flatten_at(dirfd, dest[i] + strlen(rr->target_dir) + 1, src,
                                   conf_image_format_to_string(rr->format), rr->bandwidth,
                                   &rr->cancel);
        if (r < 0)
            break;
        made++;
        rd[i] = (struct virt_restored_disk){disk->target, dest[i],
                                            conf_image_format_to_string(rr->format)};
    }
    if (r >= 0 && job_cancelled(job))
        r = -ECANCELED;
    if (r >= 0 && rr->define_name) {
        struct virt_clone_target where = {dirfd, rr->target_dir,
                                          backup_restore_keep_flags(rr->keep)};
        r = virt_domain_define_restored(m->b->domain_xml, rr->define_name, rd, m->b->n_disks,
                                        &where, uuid, &changes);
    }
    if (r >= 0)
        r = backup_restore_result(m->b, rr->remote, rr->format, rr->define_name, dest, uuid,
                                  &changes, &out);
    if (r >= 0)
        r = job_set_result(job, out);
    if (r >= 0)
        log_info("backup %s restored from remote %s into %s", m->b->id, rr->remote, rr->target_dir);
    if (dirfd >= 0) {
        struct err_state saved;
        err_save(&saved);
        staging_remove(dirfd, sname, staging);
        for (size_t i = 0; r < 0 && i < made; i++)
            (void)unlinkat(dirfd, dest[i] + strlen(rr->target_dir) + 1, 0);
        err_restore(&saved);
    }
    if (staging >= 0)
        close(staging);
    conf_manifest_list_free(chain, n);
    offsite_remote_close(&o);
    if (r == -ECANCELED || (r < 0 && job_cancelled(job)))
        return err_set(-ECANCELED, "the restore was cancelled");
    return r;
}

const struct job_kind offsite_restore_kind = {
    .kind = CONF_JOB_KIND_OFFSITE_RESTORE,
    .run = restore_job_run,
    .cancel = restore_cancel,
    .free_data = restore_run_free,
};

int
core_offsite_restore(const char *remote, const char *id, const struct core_restore_request *req,
                     struct conf_job **ret_job)
{
    struct offsite_remote o;
    struct restore_run *rr;
    enum conf_image_format format;
    _cleanup_free_ char *key = NULL;
    struct job_spec spec = {.kind = &offsite_restore_kind};
    int r;

    if (conf_image_format_from_string(req->format, &format) < 0)
        return err_set_pointer(-EINVAL, "/format", "must be qcow2 or raw");
    if (req->define_name && !text_name_valid(req->define_name))
        return err_set_pointer(-EINVAL, "/define/name",
                               "must be a domain name (1 to %d of A-Z a-z 0-9 . _ -)",
                               NAME_MAX_LEN);
    if (req->define_name) {
        _cleanup_(conf_domain_freep) struct conf_domain *other = NULL;
        r = virt_domain_get(req->define_name, &other);
        if (r == 0)
            return err_set(-EEXIST, "a domain named '%s' exists already", req->define_name);
        if (r != -ENOENT)
            return r;
        err_clear();
    }
    /* The request's own faults first; the folder is made only once the rest holds. */
    r = vault_dir_valid(req->target_dir, backup_ctx.roots, backup_ctx.n_roots);
    if (r < 0)
        return r;
    r = offsite_remote_open(remote, &o);
    if (r < 0)
        return r;
    r = offsite_manifest_find(&o, id, &key);
    offsite_remote_close(&o);
    if (r < 0)
        return r;
    /* Last: it makes the folder, and a refused restore leaves nothing behind. */
    r = vault_dir_inside(req->target_dir, backup_ctx.roots, backup_ctx.n_roots);
    if (r < 0)
        return r;
    rr = calloc(1, sizeof(*rr));
    if (!rr)
        return -ENOMEM;
    rr->remote = strdup(remote);
    rr->key = TAKE_PTR(key);
    rr->target_dir = strdup(req->target_dir);
    rr->format = format;
    rr->define_name = req->define_name ? strdup(req->define_name) : NULL;
    rr->keep = req->keep;
    rr->bandwidth = req->bandwidth;
    if (!rr->remote || !rr->target_dir || (req->define_name && !rr->define_name)) {
        restore_run_free(rr);
        return -ENOMEM;
    }
    spec.params = rr->key;
    spec.data = rr;
    return core_job_submit(&spec, ret_job);
}

int
offsite_chain_fetch(struct job *job, struct offsite_remote *o, const char *key, int staging,
                    const char *staging_path, struct conf_manifest ***ret, size_t *ret_n)
{
    struct conf_manifest **chain = NULL;
    uint64_t total = 0, done = 0;
    size_t n = 0;
    int r;

    r = read_chain(o, key, &chain, &n);
    if (r < 0)
        return r;
    for (size_t c = 0; c < n; c++)
        for (size_t i = 0; i < chain[c]->b->n_disks; i++)
            total += chain[c]->object_bytes[i];
    job_progress(job, 0, total);
    for (size_t c = 0; r >= 0 && c < n; c++)
        for (size_t i = 0; r >= 0 && i < chain[c]->b->n_disks; i++)
            r = fetch_disk(job, o, chain[c], i, staging, staging_path, &done, total);
    if (r < 0) {
        conf_manifest_list_free(chain, n);
        return r;
    }
    *ret = chain;
    *ret_n = n;
    return 0;
}

/* Downloads for a local restore whose chain stands on offsite-only backups. */
int
offsite_download_chain(struct job *job, const char *remote, const char *id, int staging,
                       const char *staging_path)
{
    struct offsite_remote o;
    struct conf_manifest **chain = NULL;
    _cleanup_free_ char *key = NULL;
    size_t n = 0;
    int r;

    r = offsite_remote_open(remote, &o);
    if (r < 0)
        return r;
    r = offsite_manifest_find(&o, id, &key);
    if (r >= 0)
        r = offsite_chain_fetch(job, &o, key, staging, staging_path, &chain, &n);
    conf_manifest_list_free(chain, n);
    offsite_remote_close(&o);
    return r;
}

void
offsite_staging_remove(int dirfd, const char *name, int staging)
{
    staging_remove(dirfd, name, staging);
}
