/*
 * Read-only mounts of backup points (see backup.h): each disk of a
 * completed backup is served as it was at that point (the whole chain,
 * read-only) over NBD on a unix socket in <vault>/mounts by a qemu-nbd of
 * the service's own, until it is unmounted or nobody read it for the idle
 * timeout (a client connected over NBD counts as reading). The data plane's readers
 * (core_pull_reader_*) read mounts too. Mounts need neither libvirt nor a job; each is a row in the
 * database so that a later process stops what an earlier one left.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backup_priv.h"
#include "vault/vault.h"
#include "cleanup.h"
#include "db/recovery.h"
#include "err.h"
#include "log.h"
#include "text.h"
#include "virt/nbd.h"

#define MAX_MOUNTS       32
#define MOUNT_IDLE_DEF   600
#define MOUNT_READY_MS   10000
#define MOUNT_SOCKET_DIR "mounts"

struct mount_session {
    bool used;
    char id[17];
    char backup_id[17];
    char domain_uuid[37];
    char *domain_name;
    int64_t created_ms, last_ms;
    size_t n;
    pid_t *pids;
    char **targets;
    char **sockets;
    uint64_t *sizes;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t reaper;
    bool running, stopping;
    unsigned idle_s;
    struct mount_session m[MAX_MOUNTS];
} mounts = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

/* Stops the processes of s, removes its sockets and row, and frees what it holds. */
static void
session_end(struct mount_session *s)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->pids && s->pids[i] > 0)
            vault_export_stop(s->pids[i], s->sockets ? s->sockets[i] : NULL);
        if (s->targets)
            free(s->targets[i]);
        if (s->sockets)
            free(s->sockets[i]);
    }
    if (s->id[0] && backup_ctx.db)
        (void)db_mount_delete(backup_ctx.db, s->id);
    free(s->pids);
    free(s->targets);
    free(s->sockets);
    free(s->sizes);
    free(s->domain_name);
    memset(s, 0, sizeof(*s));
}

static void *
reaper(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mounts.lock);
    while (!mounts.stopping) {
        struct timespec until;
        int64_t now = text_now_ms();

        for (size_t i = 0; i < MAX_MOUNTS; i++) {
            struct mount_session s;
            if (!mounts.m[i].used || now - mounts.m[i].last_ms <= (int64_t)mounts.idle_s * 1000)
                continue;
            /* A client connected over NBD is reading, as far as anyone can tell. */
            bool busy = false;
            for (size_t k = 0; k < mounts.m[i].n && !busy; k++)
                busy = vault_export_clients(mounts.m[i].sockets[k]) > 0;
            if (busy) {
                mounts.m[i].last_ms = now;
                continue;
            }
            s = mounts.m[i];
            memset(&mounts.m[i], 0, sizeof(mounts.m[i]));
            pthread_mutex_unlock(&mounts.lock);
            log_info("mount %s of backup %s: nobody read it for %u s; unmounted", s.id, s.backup_id,
                     mounts.idle_s);
            session_end(&s);
            pthread_mutex_lock(&mounts.lock);
        }
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&mounts.wake, &mounts.lock, &until);
    }
    pthread_mutex_unlock(&mounts.lock);
    return NULL;
}

/* Whether /proc says pid is a qemu-nbd serving socket (a pid can be reused after a restart). */
static bool
is_our_export(pid_t pid, const char *socket)
{
    char path[64], buf[4096];
    FILE *f;
    size_t n;
    bool nbd = false, ours = false;

    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    f = fopen(path, "re");
    if (!f)
        return false;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    for (size_t at = 0; at < n; at += strlen(buf + at) + 1) {
        const char *arg = buf + at;
        if (strstr(arg, "qemu-nbd"))
            nbd = true;
        if (strncmp(arg, "--socket=", 9) == 0 && strcmp(arg + 9, socket) == 0)
            ours = true;
    }
    return nbd && ours;
}

/* Ends the exports an earlier process left (its rows). */
static void
mount_sweep(void)
{
    char **ids = NULL, **exports = NULL;
    size_t n = 0;

    if (db_mount_list(backup_ctx.db, &ids, &exports, &n) < 0) {
        log_warn("cannot read the mounts an earlier process left: %s", err_detail());
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char *save = NULL;
        for (char *line = strtok_r(exports[i], "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
            char *sp = strchr(line, ' ');
            long pid;
            if (!sp)
                continue;
            *sp = '\0';
            pid = strtol(line, NULL, 10);
            if (pid > 0 && is_our_export((pid_t)pid, sp + 1))
                (void)kill((pid_t)pid, SIGTERM);
            (void)unlink(sp + 1);
        }
        log_info("mount %s: ended (left by an earlier process)", ids[i]);
        (void)db_mount_delete(backup_ctx.db, ids[i]);
        free(ids[i]);
        free(exports[i]);
    }
    free(ids);
    free(exports);
}

int
core_backup_mount_init(unsigned idle_s)
{
    mounts.idle_s = idle_s ? idle_s : MOUNT_IDLE_DEF;
    mount_sweep();
    mounts.stopping = false;
    if (pthread_create(&mounts.reaper, NULL, reaper, NULL) != 0)
        return err_set(-EAGAIN, "cannot start the mount reaper");
    mounts.running = true;
    return 0;
}

void
core_backup_mount_fini(void)
{
    if (!mounts.running)
        return;
    pthread_mutex_lock(&mounts.lock);
    mounts.stopping = true;
    pthread_cond_broadcast(&mounts.wake);
    pthread_mutex_unlock(&mounts.lock);
    pthread_join(mounts.reaper, NULL);
    mounts.running = false;
    for (size_t i = 0; i < MAX_MOUNTS; i++)
        if (mounts.m[i].used)
            session_end(&mounts.m[i]);
}

/* A copy of s for a caller; NULL when out of memory. Call with mounts.lock held. */
static struct core_mount *
session_copy(const struct mount_session *s)
{
    struct core_mount *m = calloc(1, sizeof(*m));

    if (!m)
        return NULL;
    m->disks = calloc(s->n ? s->n : 1, sizeof(*m->disks));
    m->domain = strdup(s->domain_name ? s->domain_name : "");
    if (!m->disks || !m->domain) {
        core_mount_free(m);
        return NULL;
    }
    snprintf(m->id, sizeof(m->id), "%s", s->id);
    snprintf(m->backup_id, sizeof(m->backup_id), "%s", s->backup_id);
    snprintf(m->domain_uuid, sizeof(m->domain_uuid), "%s", s->domain_uuid);
    m->created_ms = s->created_ms;
    m->last_ms = s->last_ms;
    m->idle_timeout_s = mounts.idle_s;
    m->n_disks = s->n;
    for (size_t i = 0; i < s->n; i++) {
        struct core_mount_disk *d = &m->disks[i];
        snprintf(d->target, sizeof(d->target), "%s", s->targets[i]);
        snprintf(d->socket, sizeof(d->socket), "%s", s->sockets[i]);
        snprintf(d->uri, sizeof(d->uri), "nbd+unix:///%s?socket=%s", s->targets[i], s->sockets[i]);
        d->size = s->sizes[i];
    }
    return m;
}

void
core_mount_free(struct core_mount *m)
{
    if (!m)
        return;
    free(m->disks);
    free(m->domain);
    free(m);
}

void
core_mount_list_free(struct core_mount **list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        core_mount_free(list[i]);
    free(list);
}

/* Waits until every export of s answers. */
static int
wait_ready(const struct mount_session *s)
{
    int64_t until = text_now_ms() + MOUNT_READY_MS;

    for (size_t i = 0; i < s->n; i++) {
        char uri[PATH_MAX + 128];
        snprintf(uri, sizeof(uri), "nbd+unix:///%s?socket=%s", s->targets[i], s->sockets[i]);
        for (;;) {
            struct virt_nbd *n = NULL;
            if (access(s->sockets[i], F_OK) == 0 && virt_nbd_open(uri, NULL, &n) == 0) {
                virt_nbd_close(n);
                break;
            }
            err_clear();
            if (text_now_ms() > until)
                return err_set(-ETIMEDOUT, "qemu-nbd did not serve %s within %d s", s->targets[i],
                               MOUNT_READY_MS / 1000);
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    return 0;
}

int
core_backup_mount(const char *domain, const char *id, struct core_mount **ret)
{
    _cleanup_free_ char *name = NULL;
    _cleanup_(conf_backup_freep) struct conf_backup *b = NULL;
    _cleanup_free_ char *dir = NULL;
    _cleanup_free_ char *exports = NULL;
    size_t exports_len = 0;
    struct mount_session s = {0};
    struct mount_session *slot = NULL;
    struct core_mount *out;
    FILE *f;
    int r;

    r = backup_completed_local(domain, id, &name, &b);
    if (r < 0)
        return r;
    if (asprintf(&dir, "%s/%s", backup_ctx.vault, MOUNT_SOCKET_DIR) < 0)
        return -ENOMEM;
    r = vault_prepare(dir);
    if (r < 0)
        return r;
    r = text_random_hex(s.id, sizeof(s.id), 8);
    if (r < 0)
        return r;
    snprintf(s.backup_id, sizeof(s.backup_id), "%s", b->id);
    snprintf(s.domain_uuid, sizeof(s.domain_uuid), "%s", b->domain_uuid);
    s.domain_name = TAKE_PTR(name);
    s.created_ms = s.last_ms = text_now_ms();
    s.pids = calloc(b->n_disks + 1, sizeof(*s.pids));
    s.targets = calloc(b->n_disks + 1, sizeof(*s.targets));
    s.sockets = calloc(b->n_disks + 1, sizeof(*s.sockets));
    s.sizes = calloc(b->n_disks + 1, sizeof(*s.sizes));
    f = open_memstream(&exports, &exports_len);
    if (!s.pids || !s.targets || !s.sockets || !s.sizes || !f) {
        if (f)
            fclose(f);
        s.id[0] = '\0';
        session_end(&s);
        return -ENOMEM;
    }
    for (size_t i = 0; r >= 0 && i < b->n_disks; i++) {
        char image[PATH_MAX];

        s.targets[i] = strdup(b->disks[i].target);
        if (asprintf(&s.sockets[i], "%s/%s-%s.sock", dir, s.id, b->disks[i].target) < 0)
            s.sockets[i] = NULL;
        s.sizes[i] = b->disks[i].size;
        s.n = i + 1;
        if (!s.targets[i] || !s.sockets[i]) {
            r = -ENOMEM;
            break;
        }
        if (strlen(s.sockets[i]) > SOCKET_PATH_MAX) {
            r = err_set(-ENAMETOOLONG, "the mount's socket path is too long: %s", s.sockets[i]);
            break;
        }
        r = backup_abs_path(b->disks[i].file, image, sizeof(image));
        if (r >= 0)
            r = vault_export_start(image, s.sockets[i], s.targets[i], &s.pids[i]);
        if (r >= 0)
            fprintf(f, "%d %s\n", (int)s.pids[i], s.sockets[i]);
    }
    if (fclose(f) != 0 && r >= 0)
        r = -ENOMEM;
    if (r >= 0)
        r = wait_ready(&s);
    if (r >= 0)
        r = db_mount_insert(backup_ctx.db, s.id, s.backup_id, exports, s.created_ms);
    if (r < 0) {
        char keep[512];
        snprintf(keep, sizeof(keep), "%s", err_detail() ? err_detail() : strerror(-r));
        s.id[0] = '\0'; /* no row to delete */
        session_end(&s);
        return err_set(r, "%s", keep);
    }
    pthread_mutex_lock(&mounts.lock);
    for (size_t i = 0; i < MAX_MOUNTS && !slot; i++)
        if (!mounts.m[i].used)
            slot = &mounts.m[i];
    if (slot) {
        s.used = true;
        *slot = s;
        out = session_copy(slot);
    }
    pthread_mutex_unlock(&mounts.lock);
    if (!slot) {
        session_end(&s);
        return err_set(-EAGAIN, "too many mounts at once (at most %d)", MAX_MOUNTS);
    }
    if (!out)
        return -ENOMEM;
    log_info("mount %s: backup %s of %s served read-only in %s", out->id, out->backup_id,
             out->domain, dir);
    *ret = out;
    return 0;
}

int
core_mount_list(struct core_mount ***ret, size_t *ret_n)
{
    struct core_mount **list = calloc(MAX_MOUNTS + 1, sizeof(*list));
    size_t n = 0;
    int r = 0;

    if (!list)
        return -ENOMEM;
    pthread_mutex_lock(&mounts.lock);
    for (size_t i = 0; i < MAX_MOUNTS && r >= 0; i++)
        if (mounts.m[i].used) {
            list[n] = session_copy(&mounts.m[i]);
            if (!list[n])
                r = -ENOMEM;
            else
                n++;
        }
    pthread_mutex_unlock(&mounts.lock);
    if (r < 0) {
        core_mount_list_free(list, n);
        return r;
    }
    *ret = list;
    *ret_n = n;
    return 0;
}

int
core_mount_get(const char *mid, struct core_mount **ret)
{
    struct core_mount *m = NULL;
    bool found = false;

    pthread_mutex_lock(&mounts.lock);
    for (size_t i = 0; i < MAX_MOUNTS && !found; i++)
        if (mounts.m[i].used && strcmp(mounts.m[i].id, mid) == 0) {
            found = true;
            m = session_copy(&mounts.m[i]);
        }
    pthread_mutex_unlock(&mounts.lock);
    if (!found)
        return err_set(-ENOENT, "no mount '%s'", mid);
    if (!m)
        return -ENOMEM;
    *ret = m;
    return 0;
}

int
core_mount_delete(const char *mid)
{
    struct mount_session s = {0};
    bool found = false;

    pthread_mutex_lock(&mounts.lock);
    for (size_t i = 0; i < MAX_MOUNTS && !found; i++)
        if (mounts.m[i].used && strcmp(mounts.m[i].id, mid) == 0) {
            found = true;
            s = mounts.m[i];
            memset(&mounts.m[i], 0, sizeof(mounts.m[i]));
        }
    pthread_mutex_unlock(&mounts.lock);
    if (!found)
        return err_set(-ENOENT, "no mount '%s'", mid);
    log_info("mount %s of backup %s: unmounted", s.id, s.backup_id);
    session_end(&s);
    return 0;
}

int
backup_mount_uri(const char *backup_id, const char *disk, char *uri, size_t size,
                 uint64_t *ret_size)
{
    int r = -ENOENT;

    pthread_mutex_lock(&mounts.lock);
    for (size_t i = 0; i < MAX_MOUNTS && r < 0; i++) {
        struct mount_session *s = &mounts.m[i];
        if (!s->used || strcmp(s->backup_id, backup_id) != 0)
            continue;
        for (size_t k = 0; k < s->n; k++)
            if (strcmp(s->targets[k], disk) == 0) {
                snprintf(uri, size, "nbd+unix:///%s?socket=%s", disk, s->sockets[k]);
                *ret_size = s->sizes[k];
                s->last_ms = text_now_ms();
                r = 0;
                break;
            }
    }
    pthread_mutex_unlock(&mounts.lock);
    return r;
}

void
backup_mount_touch(const char *backup_id)
{
    int64_t now = text_now_ms();

    pthread_mutex_lock(&mounts.lock);
    for (size_t i = 0; i < MAX_MOUNTS; i++)
        if (mounts.m[i].used && strcmp(mounts.m[i].backup_id, backup_id) == 0)
            mounts.m[i].last_ms = now;
    pthread_mutex_unlock(&mounts.lock);
}
