/*
 * The copy job (see offsite.h): a backup and the ancestors its chain needs,
 * oldest first, each as its images (one multipart upload each, parts in
 * flight on a few threads, every confirmed part recorded) then its
 * manifest. A copy that stopped (crash, stop, network) resumes from the
 * recorded parts; what the bucket holds already is not uploaded again.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup_priv.h"
#include "cleanup.h"
#include "cond.h"
#include "core.h"
#include "db/backup.h"
#include "db/checkpoint.h"
#include "db/remote.h"
#include "err.h"
#include "log.h"
#include "net/frame.h"
#include "net/s3.h"
#include "offsite_priv.h"
#include "text.h"

#define PART_TARGET_MIN                                                                            \
    (8u * 1024 * 1024)     /* compressed bytes a part aims at (S3's least: 5 MiB)                  \
                            */
#define PARTS_MAX     9000 /* S3 allows 10000 */
#define READ_CHUNK    (1024 * 1024)
#define IN_FLIGHT     3 /* parts uploaded at once */
#define PART_ATTEMPTS 3
#define ZSTD_LEVEL    3
#define ACTIVE_MAX    64

/* The run record of a copy job. */
struct copy_run {
    char *backup_id;
    char *remote;
    uint64_t bandwidth;
    int64_t lock_s; /* a policy's lock span (seconds); 0: the remote's lock_days */
};

static void
copy_run_free(void *data)
{
    struct copy_run *c = data;

    if (!c)
        return;
    free(c->backup_id);
    free(c->remote);
    free(c);
}

/* The copies being made: one (remote, backup) at a time; and the remotes jobs use. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    struct {
        char remote[NAME_MAX_LEN + 1];
        char backup[64];
        bool used;
    } busy[ACTIVE_MAX];
    struct {
        char remote[NAME_MAX_LEN + 1];
        bool used;
    } jobs[ACTIVE_MAX];
} active = {.lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER};

bool
offsite_copy_running(const char *remote)
{
    bool found = false;

    pthread_mutex_lock(&active.lock);
    for (size_t i = 0; i < ACTIVE_MAX; i++)
        if (active.jobs[i].used && strcmp(active.jobs[i].remote, remote) == 0)
            found = true;
    pthread_mutex_unlock(&active.lock);
    return found;
}

/* Marks a job on remote as running (slot into *ret) or not (slot >= 0). */
static void
job_mark(const char *remote, int *slot)
{
    pthread_mutex_lock(&active.lock);
    if (*slot >= 0) {
        active.jobs[*slot].used = false;
        *slot = -1;
    } else {
        for (int i = 0; i < ACTIVE_MAX; i++)
            if (!active.jobs[i].used) {
                active.jobs[i].used = true;
                snprintf(active.jobs[i].remote, sizeof(active.jobs[i].remote), "%s", remote);
                *slot = i;
                break;
            }
    }
    pthread_mutex_unlock(&active.lock);
}

/* Takes (remote, backup) for this thread, waiting while another job copies it. */
static int
busy_take(struct job *job, const char *remote, const char *backup, int *ret_slot)
{
    pthread_mutex_lock(&active.lock);
    for (;;) {
        bool taken = false;
        int free_slot = -1;
        for (int i = 0; i < ACTIVE_MAX; i++) {
            if (active.busy[i].used && strcmp(active.busy[i].remote, remote) == 0 &&
                strcmp(active.busy[i].backup, backup) == 0)
                taken = true;
            if (!active.busy[i].used && free_slot < 0)
                free_slot = i;
        }
        if (!taken && free_slot >= 0) {
            active.busy[free_slot].used = true;
            snprintf(active.busy[free_slot].remote, sizeof(active.busy[free_slot].remote), "%s",
                     remote);
            snprintf(active.busy[free_slot].backup, sizeof(active.busy[free_slot].backup), "%s",
                     backup);
            *ret_slot = free_slot;
            pthread_mutex_unlock(&active.lock);
            return 0;
        }
        if (job_cancelled(job) || job_stopping(job)) {
            pthread_mutex_unlock(&active.lock);
            return job_cancelled(job) ? -ECANCELED : -ESHUTDOWN;
        }
        cond_wait_ms(&active.changed, &active.lock, 250);
    }
}

static void
busy_drop(int slot)
{
    pthread_mutex_lock(&active.lock);
    active.busy[slot].used = false;
    pthread_cond_broadcast(&active.changed);
    pthread_mutex_unlock(&active.lock);
}

static void
sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* What the copy of one job shares between its thread and its uploaders. */
struct copy_ctx {
    struct job *job;
    struct offsite_remote *o;
    uint64_t bandwidth;
    int64_t lock_s;        /* how long new copies are locked when the remote locks; 0: lock_days */
    uint64_t total;        /* image bytes of the whole job */
    _Atomic uint64_t done; /* image bytes confirmed (or found done) */
    _Atomic uint64_t sent; /* bytes sent to the bucket, for the bandwidth */
    uint64_t uploaded;     /* bytes of parts uploaded by this run */
    int64_t t0_ms;
    /* Object lock: the headers of each new object, while a backup with a due date is copied. */
    char lock_lines[2][96];
    char lock_until[40]; /* RFC 3339 */
    const char *lock[2];
    size_t n_lock;
};

/* One encoded part waiting for an uploader. */
struct part_item {
    unsigned number;
    uint64_t raw_off, raw_end;
    unsigned char *data;
    size_t len;
};

/* The uploaders of one object. */
struct uploader {
    struct copy_ctx *cc;
    const char *key, *upload_id;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct part_item queue[IN_FLIGHT];
    size_t qn;
    unsigned busy;
    bool closing;
    int error;
    char detail[600];
    pthread_t threads[IN_FLIGHT];
    unsigned n_threads;
};

static void *
uploader_main(void *arg)
{
    struct uploader *u = arg;

    for (;;) {
        struct part_item p;
        struct s3_result res = {0};
        bool skip;
        int r = 0;

        pthread_mutex_lock(&u->lock);
        while (u->qn == 0 && !u->closing)
            pthread_cond_wait(&u->cond, &u->lock);
        if (u->qn == 0) {
            pthread_mutex_unlock(&u->lock);
            return NULL;
        }
        p = u->queue[0];
        memmove(u->queue, u->queue + 1, (u->qn - 1) * sizeof(u->queue[0]));
        u->qn--;
        u->busy++;
        skip = u->error != 0;
        pthread_mutex_unlock(&u->lock);
        for (int attempt = 0; !skip; attempt++) {
            r = s3_mpu_part(u->cc->o->t, u->key, u->upload_id, p.number, p.data, p.len, &res);
            if (r == 0 || attempt + 1 >= PART_ATTEMPTS || (r != -EIO && r != -ETIMEDOUT))
                break;
            sleep_ms(500u << attempt);
        }
        if (!skip && r == 0) {
            struct conf_copy_part rec = {p.number, p.raw_off, p.raw_end, p.len, res.etag};
            r = db_part_put(core_db(), u->upload_id, &rec);
        }
        free(p.data);
        pthread_mutex_lock(&u->lock);
        u->busy--;
        if (!skip && r < 0 && !u->error) {
            char why[400];
            u->error = r;
            if (res.status || res.error[0])
                s3_result_describe(&res, why, sizeof(why));
            else
                snprintf(why, sizeof(why), "%s", err_detail() ? err_detail() : strerror(-r));
            snprintf(u->detail, sizeof(u->detail), "uploading part %u of %s: %s", p.number, u->key,
                     why);
        } else if (!skip && r == 0) {
            atomic_fetch_add(&u->cc->done, p.raw_end - p.raw_off);
            u->cc->uploaded += p.len;
        }
        pthread_cond_broadcast(&u->cond);
        pthread_mutex_unlock(&u->lock);
    }
}

/* Queues a part (taken), waiting while IN_FLIGHT parts are queued or in flight. */
static int
uploader_push(struct uploader *u, struct part_item *p)
{
    int r;

    pthread_mutex_lock(&u->lock);
    while (u->qn + u->busy >= IN_FLIGHT && !u->error)
        pthread_cond_wait(&u->cond, &u->lock);
    r = u->error;
    if (!r) {
        u->queue[u->qn++] = *p;
        p->data = NULL;
        pthread_cond_broadcast(&u->cond);
    }
    pthread_mutex_unlock(&u->lock);
    free(p->data);
    p->data = NULL;
    return r;
}

/* Waits for every part in flight and stops the threads; returns the first error. */
static int
uploader_finish(struct uploader *u)
{
    pthread_mutex_lock(&u->lock);
    u->closing = true;
    pthread_cond_broadcast(&u->cond);
    pthread_mutex_unlock(&u->lock);
    for (unsigned i = 0; i < u->n_threads; i++)
        pthread_join(u->threads[i], NULL);
    u->n_threads = 0;
    return u->error;
}

/* Keeps the job's rate under its bandwidth, and says whether to stop. */
static int
pace(struct copy_ctx *cc)
{
    if (cc->bandwidth) {
        for (;;) {
            int64_t want = (int64_t)(atomic_load(&cc->sent) * 1000 / cc->bandwidth);
            int64_t elapsed = text_now_ms() - cc->t0_ms;
            if (want <= elapsed || job_cancelled(cc->job) || job_stopping(cc->job))
                break;
            sleep_ms((unsigned)(want - elapsed > 100 ? 100 : want - elapsed));
        }
    }
    job_progress(cc->job, atomic_load(&cc->done), cc->total);
    if (job_cancelled(cc->job))
        return err_set(-ECANCELED, "the copy was cancelled");
    if (job_stopping(cc->job))
        return -ESHUTDOWN;
    return 0;
}

/* Aborts every unfinished multipart upload of key but keep (NULL: all). */
static int
abort_strays(struct copy_ctx *cc, const char *key, const char *keep)
{
    struct s3_list l = {0};
    struct s3_result res;
    int r = s3_list_uploads(cc->o->t, key, NULL, &l, &res);

    if (r < 0)
        return offsite_fail(cc->o, r, "listing unfinished uploads", &res);
    for (size_t i = 0; i < l.n; i++) {
        if (strcmp(l.keys[i], key) != 0 || (keep && strcmp(l.upload_ids[i], keep) == 0))
            continue;
        r = s3_mpu_abort(cc->o->t, key, l.upload_ids[i], &res);
        if (r < 0 && r != -ENOENT)
            log_warn("remote %s: cannot abort an unfinished upload of %s", cc->o->r.name, key);
        else
            log_info("remote %s: aborted an unfinished upload of %s", cc->o->r.name, key);
    }
    s3_list_clear(&l);
    return 0;
}

/* The recorded part numbered n in done[0..n_done), or NULL. */
static const struct conf_copy_part *
done_part(const struct conf_copy_part *done, size_t n_done, unsigned n)
{
    for (size_t i = 0; i < n_done; i++)
        if (done[i].number == n)
            return &done[i];
    return NULL;
}

/*
 * Streams the image at path (size bytes) into the multipart upload
 * upload_id of key, resuming from its recorded parts, and completes it.
 * *ret_bytes: the object's size.
 */
static int
upload_parts(struct copy_ctx *cc, int fd, uint64_t size, const char *key, const char *upload_id,
             uint64_t *ret_bytes)
{
    struct conf_copy_part *done = NULL;
    size_t n_done = 0;
    struct uploader u = {.cc = cc, .key = key, .upload_id = upload_id};
    struct frame_enc *enc = frame_enc_new(ZSTD_LEVEL);
    _cleanup_free_ unsigned char *buf = malloc(READ_CHUNK);
    uint64_t target =
        size / PARTS_MAX + 1 > PART_TARGET_MIN ? size / PARTS_MAX + 1 : PART_TARGET_MIN;
    uint64_t off = 0, bytes = 0;
    unsigned number = 0;
    int r, r2;

    if (!enc || !buf) {
        frame_enc_free(enc);
        return -ENOMEM;
    }
    r = db_part_list(core_db(), upload_id, &done, &n_done);
    if (r < 0) {
        frame_enc_free(enc);
        return r;
    }
    pthread_mutex_init(&u.lock, NULL);
    pthread_cond_init(&u.cond, NULL);
    for (unsigned i = 0; i < IN_FLIGHT; i++)
        if (pthread_create(&u.threads[i], NULL, uploader_main, &u) == 0)
            u.n_threads++;
    if (u.n_threads == 0)
        r = err_set(-EAGAIN, "cannot start an uploader thread");
    while (r >= 0 && (number == 0 || off < size)) {
        const struct conf_copy_part *d;
        struct part_item p = {0};
        const unsigned char *frame;
        size_t frame_len;

        number++;
        if (number > 10000) {
            r = err_set(-EFBIG, "%s needs more than 10000 parts", key);
            break;
        }
        d = done_part(done, n_done, number);
        if (d && d->raw_off == off && d->raw_end > off) {
            /* Confirmed by the bucket in an earlier run: skip its bytes. */
            atomic_fetch_add(&cc->done, d->raw_end - off);
            off = d->raw_end;
            continue;
        }
        r = frame_enc_begin(enc, number, off);
        while (r >= 0 && off < size && frame_enc_size(enc) < target &&
               frame_enc_raw(enc) + READ_CHUNK <= FRAME_RAW_MAX) {
            size_t want = size - off < READ_CHUNK ? (size_t)(size - off) : READ_CHUNK;
            ssize_t n = pread(fd, buf, want, (off_t)off);
            if (n <= 0) {
                r = err_set(n < 0 ? -errno : -EIO, "cannot read the image for %s: %s", key,
                            n < 0 ? strerror(errno) : "it is shorter than it was");
                break;
            }
            r = frame_enc_feed(enc, buf, (size_t)n);
            off += (uint64_t)n;
        }
        if (r >= 0)
            r = frame_enc_end(enc, cc->o->key, &frame, &frame_len);
        if (r < 0)
            break;
        p = (struct part_item){number, off - frame_enc_raw(enc), off, malloc(frame_len), frame_len};
        if (!p.data) {
            r = -ENOMEM;
            break;
        }
        memcpy(p.data, frame, frame_len);
        atomic_fetch_add(&cc->sent, frame_len);
        r = uploader_push(&u, &p);
        if (r < 0)
            break;
        r = pace(cc);
    }
    r2 = uploader_finish(&u);
    if (r >= 0 && r2 < 0)
        r = r2;
    if (u.error && (r == u.error || r2 < 0))
        r = err_set(u.error == -ENOENT ? -ENOENT : -EREMOTEIO, "remote '%s': %s", cc->o->r.name,
                    u.detail);
    pthread_mutex_destroy(&u.lock);
    pthread_cond_destroy(&u.cond);
    frame_enc_free(enc);
    conf_copy_part_list_free(done, n_done);
    if (r < 0)
        return r;
    /* Every part 1..number, as the bucket confirmed them. */
    r = db_part_list(core_db(), upload_id, &done, &n_done);
    if (r < 0)
        return r;
    if (n_done != number) {
        conf_copy_part_list_free(done, n_done);
        return err_set(-EIO, "%s: %zu parts recorded where %u were made", key, n_done, number);
    }
    {
        _cleanup_free_ char **etags = calloc(n_done + 1, sizeof(*etags));
        struct s3_result res;
        if (!etags) {
            conf_copy_part_list_free(done, n_done);
            return -ENOMEM;
        }
        for (size_t i = 0; i < n_done; i++) {
            etags[i] = done[i].etag;
            bytes += done[i].bytes;
        }
        r = s3_mpu_complete(cc->o->t, key, upload_id, etags, n_done, &res);
        conf_copy_part_list_free(done, n_done);
        if (r < 0)
            return offsite_fail(cc->o, r, "completing an upload", &res);
    }
    *ret_bytes = bytes;
    return 0;
}

/* Uploads the image at path as object key, resuming a recorded upload. *ret_bytes: its size. */
static int
upload_image(struct copy_ctx *cc, const char *path, const char *key, uint64_t *ret_bytes)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    _cleanup_free_ char *upload_id = NULL;
    struct s3_result res;
    struct stat st;
    int r;

    if (fd < 0 || fstat(fd, &st) < 0)
        return err_set(-errno, "cannot read the image %s: %s", path, strerror(errno));
    for (int attempt = 0;; attempt++) {
        r = db_upload_get(core_db(), cc->o->r.name, key, &upload_id);
        if (r == -ENOENT) {
            char id[S3_UPLOAD_ID_MAX];
            /* Done in an earlier run (its manifest not yet written)? */
            r = s3_head(cc->o->t, key, &res);
            if (r == 0) {
                atomic_fetch_add(&cc->done, (uint64_t)st.st_size);
                *ret_bytes = res.length;
                return 0;
            }
            if (r != -ENOENT)
                return offsite_fail(cc->o, r, "looking for an object", &res);
            /* An upload begun by a run that stopped before it recorded the id. */
            r = abort_strays(cc, key, NULL);
            if (r < 0)
                return r;
            r = s3_mpu_create(cc->o->t, key, cc->lock, cc->n_lock, id, &res);
            if (r < 0)
                return offsite_fail(cc->o, r, "starting an upload", &res);
            r = db_upload_set(core_db(), cc->o->r.name, key, id);
            if (r < 0)
                return r;
            upload_id = strdup(id);
            if (!upload_id)
                return -ENOMEM;
        } else if (r < 0) {
            return r;
        } else {
            log_info("remote %s: resuming the upload of %s", cc->o->r.name, key);
        }
        r = upload_parts(cc, fd, (uint64_t)st.st_size, key, upload_id, ret_bytes);
        if (r == -ENOENT && attempt == 0) {
            /* The bucket forgot the upload (aborted, expired): once more from the start. */
            log_warn("remote %s: the upload of %s is gone; starting it again", cc->o->r.name, key);
            err_clear();
            (void)db_upload_delete(core_db(), cc->o->r.name, key);
            free(upload_id);
            upload_id = NULL;
            continue;
        }
        if (r == -ECANCELED) {
            (void)s3_mpu_abort(cc->o->t, key, upload_id, &res);
            (void)db_upload_delete(core_db(), cc->o->r.name, key);
        }
        if (r < 0)
            return r;
        (void)db_upload_delete(core_db(), cc->o->r.name, key);
        if (cc->n_lock) {
            r = s3_object_retention(cc->o->t, key, cc->lock_until, &res);
            if (r < 0)
                return offsite_fail(cc->o, r, "locking an image", &res);
        }
        return abort_strays(cc, key, NULL);
    }
}

/* The object key of backup b's rel ("manifest.json", "vda.qcow2.zst.enc") into buf. */
static int
backup_key(struct copy_ctx *cc, const struct conf_backup *b, const char *rel, char *buf,
           size_t size)
{
    char tmp[S3_KEY_MAX];

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s/%s/%s", b->domain_uuid, b->id, rel) >= sizeof(tmp))
        return err_set(-ENAMETOOLONG, "an object key too long");
    return offsite_key(cc->o, tmp, buf, size);
}

/* The bytes of b's images in the vault. */
static uint64_t
image_bytes(const struct conf_backup *b)
{
    uint64_t total = 0;

    for (size_t d = 0; d < b->n_disks; d++) {
        char path[PATH_MAX];
        struct stat st;
        if (backup_abs_path(b->disks[d].file, path, sizeof(path)) == 0 && stat(path, &st) == 0)
            total += (uint64_t)st.st_size;
    }
    return total;
}

/* Copies backup b (its images, then its manifest) unless the bucket holds it. */
static int
copy_backup(struct copy_ctx *cc, const struct conf_backup *b, bool *ret_uploaded,
            uint64_t *ret_bytes)
{
    const char *suffix = cc->o->key ? ".qcow2.zst.enc" : ".qcow2.zst";
    struct conf_manifest m = {0};
    struct conf_copy row = {0};
    char mkey[S3_KEY_MAX];
    struct s3_result res;
    _cleanup_free_ char *text = NULL;
    struct db_checkpoint *cp = NULL;
    uint64_t total = 0;
    int r;

    *ret_uploaded = false;
    r = backup_key(cc, b, "manifest.json", mkey, sizeof(mkey));
    if (r < 0)
        return r;
    r = s3_head(cc->o->t, mkey, &res);
    if (r == 0) {
        struct conf_manifest *have = NULL;
        atomic_fetch_add(&cc->done, image_bytes(b));
        if (offsite_manifest_get(cc->o, mkey, &have) == 0) {
            for (size_t i = 0; i < have->b->n_disks; i++)
                total += have->object_bytes[i];
            conf_manifest_free(have);
        }
        err_clear();
        *ret_bytes = total;
        row = (struct conf_copy){(char *)b->id,           cc->o->r.name, CONF_COPY_COMPLETED,
                                 (char *)job_id(cc->job), total,         NULL,
                                 text_now_ms(),           text_now_ms()};
        return db_copy_put(core_db(), &row);
    }
    if (r != -ENOENT)
        return offsite_fail(cc->o, r, "looking for a manifest", &res);
    /* --- offsite only: its images are in another bucket, never read here --- */
    if (b->location)
        return err_set(-EBADFD,
                       "backup %s is offsite only (in the bucket of remote '%s'), which "
                       "remote '%s' lacks: its chain can be copied to remote '%s' only",
                       b->id, b->location, cc->o->r.name, b->location);
    row = (struct conf_copy){(char *)b->id,
                             cc->o->r.name,
                             CONF_COPY_UPLOADING,
                             (char *)job_id(cc->job),
                             0,
                             NULL,
                             text_now_ms(),
                             0};
    r = db_copy_put(core_db(), &row);
    if (r < 0)
        return r;
    m.b = (struct conf_backup *)b;
    if (cc->o->r.lock_days) {
        /* Locked (COMPLIANCE) until due: no one can delete its versions before, we neither. */
        char date[40];
        int64_t span_s = cc->lock_s > 0 ? cc->lock_s : (int64_t)cc->o->r.lock_days * 86400;
        m.retain_until_ms = text_now_ms() + span_s * 1000;
        text_time_rfc3339(date, sizeof(date), (time_t)(m.retain_until_ms / 1000));
        snprintf(cc->lock_until, sizeof(cc->lock_until), "%s", date);
        snprintf(cc->lock_lines[0], sizeof(cc->lock_lines[0]),
                 "x-amz-object-lock-mode: COMPLIANCE");
        snprintf(cc->lock_lines[1], sizeof(cc->lock_lines[1]),
                 "x-amz-object-lock-retain-until-date: %s", date);
        cc->lock[0] = cc->lock_lines[0];
        cc->lock[1] = cc->lock_lines[1];
        cc->n_lock = 2;
    }
    m.objects = calloc(b->n_disks + 1, sizeof(*m.objects));
    m.object_bytes = calloc(b->n_disks + 1, sizeof(*m.object_bytes));
    if (!m.objects || !m.object_bytes) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; r >= 0 && i < b->n_disks; i++) {
        char path[PATH_MAX], rel[128], key[S3_KEY_MAX];
        snprintf(rel, sizeof(rel), "%s%s", b->disks[i].target, suffix);
        r = backup_key(cc, b, rel, key, sizeof(key));
        if (r >= 0)
            r = backup_abs_path(b->disks[i].file, path, sizeof(path));
        if (r >= 0)
            r = upload_image(cc, path, key, &m.object_bytes[i]);
        if (r >= 0 && !(m.objects[i] = strdup(key)))
            r = -ENOMEM;
        total += m.object_bytes[i];
    }
    if (r < 0)
        goto out;
    if (b->checkpoint && db_checkpoint_get(core_db(), b->domain_uuid, b->checkpoint, &cp) == 0)
        m.checkpoint_xml = cp->xml;
    err_clear();
    m.host = (char *)offsite_host();
    m.compression = (char *)"zstd";
    m.encryption = (char *)(cc->o->key ? "aes-256-gcm" : "none");
    m.key_id = cc->o->key ? cc->o->key->id : NULL;
    m.copied_ms = text_now_ms();
    r = conf_manifest_format(&m, &text);
    if (r >= 0) {
        r = s3_put(cc->o->t, mkey, text, strlen(text), cc->lock, cc->n_lock, &res);
        if (r < 0)
            r = offsite_fail(cc->o, r, "writing the manifest", &res);
    }
    if (r >= 0) {
        *ret_uploaded = true;
        *ret_bytes = total;
        log_info("backup %s copied to remote %s (%" PRIu64 " bytes in the bucket)", b->id,
                 cc->o->r.name, total);
    }
out:
    if (cp)
        db_checkpoint_free(cp);
    for (size_t i = 0; m.objects && i < b->n_disks; i++)
        free(m.objects[i]);
    free(m.objects);
    free(m.object_bytes);
    if (r != -ESHUTDOWN) {
        char why[600] = "";
        if (r < 0)
            snprintf(why, sizeof(why), "%s", err_detail() ? err_detail() : strerror(-r));
        row.state = r < 0 ? CONF_COPY_FAILED : CONF_COPY_COMPLETED;
        row.error = r < 0 ? why : NULL;
        row.object_bytes = r < 0 ? 0 : total;
        row.finished_ms = text_now_ms();
        {
            struct err_state saved;
            err_save(&saved);
            (void)db_copy_put(core_db(), &row);
            err_restore(&saved);
        }
    }
    return r;
}

/* Reads b's chain, oldest first, into a new array (b itself last). */
static int
read_chain(const char *id, struct conf_backup ***ret, size_t *ret_n)
{
    struct conf_backup **chain = NULL;
    size_t n = 0;
    _cleanup_free_ char *next = strdup(id);
    int r = next ? 0 : -ENOMEM;

    while (r >= 0 && next) {
        struct conf_backup *b = NULL, **nl;
        if (n >= MAX_CHAIN) {
            r = err_set(-ELOOP, "the chain of backup %s is longer than %d", id, MAX_CHAIN);
            break;
        }
        r = db_backup_get(core_db(), next, &b);
        if (r < 0)
            break;
        if (b->state != CONF_BACKUP_STATE_COMPLETED) {
            r = err_set(-EBADFD, "backup %s is %s, not completed", b->id,
                        conf_backup_state_to_string(b->state));
            conf_backup_free(b);
            break;
        }
        nl = realloc(chain, (n + 1) * sizeof(*nl));
        if (!nl) {
            conf_backup_free(b);
            r = -ENOMEM;
            break;
        }
        chain = nl;
        chain[n++] = b;
        free(next);
        next = b->parent_id ? strdup(b->parent_id) : NULL;
        if (b->parent_id && !next)
            r = -ENOMEM;
    }
    if (r < 0) {
        conf_backup_list_free(chain, n);
        return r;
    }
    for (size_t i = 0; i < n / 2; i++) {
        struct conf_backup *t = chain[i];
        chain[i] = chain[n - 1 - i];
        chain[n - 1 - i] = t;
    }
    *ret = chain;
    *ret_n = n;
    return 0;
}

static int
copy_job_run(struct job *job, void *data)
{
    struct copy_run *c = data;
    struct offsite_remote o;
    struct conf_backup **chain = NULL;
    size_t n = 0, first = 0;
    struct copy_ctx cc = {.job = job, .o = &o, .bandwidth = c->bandwidth, .lock_s = c->lock_s};
    _cleanup_free_ char *out = NULL;
    size_t out_len = 0;
    FILE *f = NULL;
    int slot = -1, pin = -1, r;

    r = offsite_remote_open(c->remote, &o);
    if (r < 0)
        return r;
    job_mark(c->remote, &slot);
    /* Marked first, then waits: a prune that started before sees the mark and yields. */
    while (r >= 0 && offsite_prune_running(c->remote)) {
        if (job_cancelled(job))
            r = -ECANCELED;
        else if (job_stopping(job))
            r = -ESHUTDOWN; /* taken over by the next start */
        else
            sleep_ms(200);
    }
    if (r >= 0 && o.r.lock_days) {
        bool locked = false;
        struct s3_result res;
        r = s3_bucket_object_lock(o.t, &locked, &res);
        if (r < 0)
            r = offsite_fail(&o, r, "reading the bucket's object lock", &res);
        else if (!locked)
            r = err_set(-EBADFD,
                        "remote '%s' asks for locked copies (lock_days %u) but its bucket has "
                        "no object lock",
                        o.r.name, o.r.lock_days);
    }
    /* What the copy reads is kept from prunes and deletes until it ends. */
    if (r >= 0) {
        struct conf_backup *top = NULL;

        r = db_backup_get(core_db(), c->backup_id, &top);
        if (r >= 0) {
            pin = backup_pin(top->domain_uuid, top->id, job);
            r = pin < 0 ? pin : 0;
        }
        conf_backup_free(top);
    }
    if (r >= 0)
        r = read_chain(c->backup_id, &chain, &n);
    f = r >= 0 ? open_memstream(&out, &out_len) : NULL;
    if (r >= 0 && !f)
        r = -ENOMEM;
    /*
     * A manifest in the bucket stands on a whole chain there (which a remote prune may
     * have merged): the copy starts at the newest ancestor the bucket holds.
     */
    for (size_t j = n; r >= 0 && j-- > 1;) {
        char mkey[S3_KEY_MAX];
        struct s3_result res;
        if (backup_key(&cc, chain[j - 1], "manifest.json", mkey, sizeof(mkey)) >= 0 &&
            s3_head(o.t, mkey, &res) == 0) {
            first = j - 1;
            break;
        }
        err_clear();
    }
    for (size_t i = first; r >= 0 && i < n; i++)
        cc.total += image_bytes(chain[i]);
    cc.t0_ms = text_now_ms();
    if (r >= 0) {
        job_progress(job, 0, cc.total);
        fprintf(f, "{\"remote\": \"%s\", \"backups\": [", c->remote);
    }
    for (size_t i = first; r >= 0 && i < n; i++) {
        bool uploaded = false;
        uint64_t bytes = 0;
        int busy = -1;
        r = busy_take(job, c->remote, chain[i]->id, &busy);
        if (r < 0)
            break;
        r = copy_backup(&cc, chain[i], &uploaded, &bytes);
        busy_drop(busy);
        if (r >= 0)
            fprintf(f, "%s{\"id\": \"%s\", \"uploaded\": %s, \"object_bytes\": %" PRIu64 "}",
                    i > first ? ", " : "", chain[i]->id, uploaded ? "true" : "false", bytes);
    }
    if (f) {
        fprintf(f, "], \"bytes_uploaded\": %" PRIu64 "}", cc.uploaded);
        if (fclose(f) != 0 && r >= 0)
            r = -ENOMEM;
    }
    if (r >= 0) {
        job_progress(job, cc.total, cc.total);
        r = job_set_result(job, out);
    }
    conf_backup_list_free(chain, n);
    backup_unpin(pin);
    job_mark(c->remote, &slot);
    offsite_remote_close(&o);
    if (r == -ECANCELED)
        return err_set(-ECANCELED, "the copy was cancelled");
    return r;
}

/* Reads a copy job's params, "BACKUP_ID REMOTE BANDWIDTH [LOCK_S]", into a new run record. */
static int
copy_run_parse(const char *params, struct copy_run **ret)
{
    struct copy_run *c = calloc(1, sizeof(*c));
    char id[128], remote[NAME_MAX_LEN + 1];
    unsigned long long bw = 0;
    long long lock_s = 0;

    if (!c)
        return -ENOMEM;
    if (!params || sscanf(params, "%127s %64s %llu %lld", id, remote, &bw, &lock_s) < 3) {
        free(c);
        return -EINVAL;
    }
    c->backup_id = strdup(id);
    c->remote = strdup(remote);
    c->bandwidth = bw;
    c->lock_s = lock_s > 0 ? lock_s : 0;
    if (!c->backup_id || !c->remote) {
        copy_run_free(c);
        return -ENOMEM;
    }
    *ret = c;
    return 0;
}

/* A copy job the last process left running goes on from its recorded parts. */
static int
copy_job_recover(const struct conf_job *rec, void **ret_data)
{
    struct copy_run *c = NULL;

    if (copy_run_parse(rec->params, &c) < 0)
        return 0;
    log_info("job %s: the copy of backup %s to remote %s goes on", rec->id, c->backup_id,
             c->remote);
    *ret_data = c;
    return 1;
}

const struct job_kind offsite_copy_kind = {
    .kind = CONF_JOB_KIND_BACKUP_COPY,
    .run = copy_job_run,
    .recover = copy_job_recover,
    .free_data = copy_run_free,
};

int
core_backup_copy(const char *domain, const char *id, const char *remote, uint64_t bandwidth,
                 struct conf_job **ret_job)
{
    return core_backup_copy_policy(domain, id, remote, bandwidth, NULL, 0, ret_job);
}

int
core_backup_copy_policy(const char *domain, const char *id, const char *remote, uint64_t bandwidth,
                        const char *policy, int64_t lock_s, struct conf_job **ret_job)
{
    _cleanup_free_ char *name = NULL, *params = NULL;
    struct conf_backup *b = NULL;
    struct conf_remote rem = {0};
    struct conf_copy row = {0};
    struct copy_run *c;
    struct job_spec spec = {.kind = &offsite_copy_kind};
    int r;

    r = backup_completed(domain, id, &name, &b);
    if (r < 0)
        return r;
    r = db_remote_get(core_db(), remote, &rem);
    if (r == -ENOENT) {
        conf_backup_free(b);
        return err_set_pointer(-ENOENT, "/remote", "no remote '%.64s'", remote);
    }
    conf_remote_clear(&rem);
    if (r < 0) {
        conf_backup_free(b);
        return r;
    }
    if (db_copy_get(core_db(), b->id, remote, &row) == 0) {
        struct conf_job *j = NULL;
        bool running = row.state == CONF_COPY_UPLOADING && row.job_id &&
                       core_job_get(row.job_id, &j) == 0 &&
                       (j->state == CONF_JOB_QUEUED || j->state == CONF_JOB_RUNNING);
        conf_job_free(j);
        if (running) {
            r = err_set(-EBUSY, "backup %s is being copied to remote '%s' (job %s)", b->id, remote,
                        row.job_id);
            conf_copy_clear(&row);
            conf_backup_free(b);
            return r;
        }
        conf_copy_clear(&row);
    }
    err_clear();
    c = calloc(1, sizeof(*c));
    if (!c || asprintf(&params, "%s %s %" PRIu64 " %" PRId64, b->id, remote, bandwidth,
                       lock_s > 0 ? lock_s : 0) < 0) {
        free(c);
        params = NULL;
        conf_backup_free(b);
        return -ENOMEM;
    }
    c->backup_id = strdup(b->id);
    c->remote = strdup(remote);
    c->bandwidth = bandwidth;
    c->lock_s = lock_s > 0 ? lock_s : 0;
    conf_backup_free(b);
    if (!c->backup_id || !c->remote) {
        copy_run_free(c);
        return -ENOMEM;
    }
    spec.params = params;
    spec.policy = policy;
    spec.data = c;
    return core_job_submit(&spec, ret_job);
}

int
core_backup_copies(const char *domain, const char *id, struct conf_copy **ret, size_t *ret_n)
{
    struct conf_backup *b = NULL;
    int r = backup_find(domain, id, NULL, &b);

    if (r < 0)
        return r;
    r = db_copy_list(core_db(), b->id, ret, ret_n);
    conf_backup_free(b);
    return r;
}

int
offsite_upload_file(struct job *job, struct offsite_remote *o, const char *path, const char *key,
                    int64_t lock_until_ms, uint64_t *ret_bytes)
{
    struct copy_ctx cc = {.job = job, .o = o, .t0_ms = text_now_ms()};
    struct stat st;

    if (stat(path, &st) < 0)
        return err_set(-errno, "cannot read the image %s: %s", path, strerror(errno));
    cc.total = (uint64_t)st.st_size;
    if (lock_until_ms > text_now_ms()) {
        text_time_rfc3339(cc.lock_until, sizeof(cc.lock_until), (time_t)(lock_until_ms / 1000));
        snprintf(cc.lock_lines[0], sizeof(cc.lock_lines[0]), "x-amz-object-lock-mode: COMPLIANCE");
        snprintf(cc.lock_lines[1], sizeof(cc.lock_lines[1]),
                 "x-amz-object-lock-retain-until-date: %s", cc.lock_until);
        cc.lock[0] = cc.lock_lines[0];
        cc.lock[1] = cc.lock_lines[1];
        cc.n_lock = 2;
    }
    return upload_image(&cc, path, key, ret_bytes);
}
