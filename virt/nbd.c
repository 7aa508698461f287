#include <errno.h>
#include <stdio.h>
#include <libnbd.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "err.h"
#include "nbd.h"

struct slot {
    uint64_t off;
    size_t len;
    char *buf;      /* NULL for a slot that reads as zeros */
    int64_t cookie; /* 0 when idle */
};

/* What the readers asked of NBD servers, and what they answered as zeros without asking. */
static _Atomic uint64_t read_bytes, zero_bytes;

/* A zero extent of the announced range, long enough to be worth not reading. */
#define ZERO_MIN (256u << 10)

struct virt_nbd {
    struct nbd_handle *h;
    uint64_t size;
    /* Read-ahead window: slots[head..] hold consecutive chunks from win_start. */
    struct slot slots[VIRT_NBD_DEPTH];
    size_t head, count;
    uint64_t issue_at; /* next offset to request */
    uint64_t limit;    /* end of the announced range */
    /* The allocation of the announced range: what reads as zeros is not requested. */
    struct conf_extent *alloc;
    size_t n_alloc, at_alloc;
    uint64_t alloc_end; /* what alloc describes ends here; the next probe starts here */
    bool probing;       /* block status is asked (and answers) for this window */
};

static int
nbd_fail(const char *what)
{
    int e = nbd_get_errno();
    const char *msg = nbd_get_error();

    return err_set(e > 0 ? -e : -EIO, "%s: %s", what, msg ? msg : "NBD error");
}

/* Connects with uri, or with argv (a server started by socket activation) when uri is NULL. */
static int
nbd_open(const char *uri, char **argv, const char *meta_context, struct virt_nbd **ret)
{
    _cleanup_free_ struct virt_nbd *n = calloc(1, sizeof(*n));
    int64_t size;

    if (!n)
        return -ENOMEM;
    n->h = nbd_create();
    if (!n->h)
        return nbd_fail("create an NBD handle");
    /*
     * A read fills its whole buffer or fails (QEMU's servers cover every
     * byte, and libnbd checks it): zeroing each buffer first is a pass
     * over every byte for nothing.
     */
    (void)nbd_set_pread_initialize(n->h, false);
    if (nbd_add_meta_context(n->h, VIRT_NBD_CONTEXT_ALLOCATION) < 0 ||
        (meta_context && nbd_add_meta_context(n->h, meta_context) < 0) ||
        (uri ? nbd_connect_uri(n->h, uri) : nbd_connect_systemd_socket_activation(n->h, argv)) <
            0) {
        int r = nbd_fail(uri ? "connect to the NBD export" : "serve the image with qemu-nbd");
        nbd_close(n->h);
        return r;
    }
    size = nbd_get_size(n->h);
    if (size < 0) {
        int r = nbd_fail("read the export size");
        nbd_close(n->h);
        return r;
    }
    n->size = (uint64_t)size;
    *ret = TAKE_PTR(n);
    return 0;
}

int
virt_nbd_open(const char *uri, const char *meta_context, struct virt_nbd **ret)
{
    return nbd_open(uri, NULL, meta_context, ret);
}

int
virt_nbd_open_image(const char *path, const char *bitmap, bool writable, struct virt_nbd **ret)
{
    _cleanup_free_ char *context = NULL;
    char *argv[10];
    size_t a = 0;

    argv[a++] = (char *)"qemu-nbd";
    argv[a++] = (char *)"--format=qcow2";
    /*
     * A writable image is a vault's .part, which the seal syncs to disk: its
     * flush need not sync too (qcow2's own metadata is still written out).
     */
    argv[a++] = writable ? (char *)"--cache=unsafe" : (char *)"--cache=writeback";
    if (!writable)
        argv[a++] = (char *)"--read-only";
    if (bitmap) {
        argv[a++] = (char *)"--bitmap";
        argv[a++] = (char *)bitmap;
        if (asprintf(&context, "qemu:dirty-bitmap:%s", bitmap) < 0)
            return -ENOMEM;
    }
    argv[a++] = (char *)"--";
    argv[a++] = (char *)path;
    argv[a] = NULL;
    return nbd_open(NULL, argv, context, ret);
}

/* Waits until the command of slot s completed; returns 0 or a negative errno. */
static int
wait_slot(struct virt_nbd *n, struct slot *s)
{
    for (;;) {
        int done = nbd_aio_command_completed(n->h, (uint64_t)s->cookie);
        if (done == 1) {
            s->cookie = 0;
            return 0;
        }
        if (done < 0) {
            s->cookie = 0;
            return nbd_fail("read from the NBD export");
        }
        if (nbd_poll(n->h, -1) < 0)
            return nbd_fail("wait for the NBD export");
    }
}

static void
drop_window(struct virt_nbd *n)
{
    while (n->count > 0) {
        struct slot *s = &n->slots[n->head];
        if (s->cookie)
            (void)wait_slot(n, s);
        free(s->buf);
        s->buf = NULL;
        n->head = (n->head + 1) % VIRT_NBD_DEPTH;
        n->count--;
    }
    n->head = 0;
}

void
virt_nbd_close(struct virt_nbd *n)
{
    if (!n)
        return;
    drop_window(n);
    free(n->alloc);
    nbd_close(n->h);
    free(n);
}

void
virt_nbd_counters(uint64_t *ret_read, uint64_t *ret_zero)
{
    *ret_read = atomic_load_explicit(&read_bytes, memory_order_relaxed);
    *ret_zero = atomic_load_explicit(&zero_bytes, memory_order_relaxed);
}

uint64_t
virt_nbd_size(const struct virt_nbd *n)
{
    return n->size;
}

/*
 * Asks block status what reads as zeros from at on: at most VIRT_NBD_PROBE_MAX
 * extents (and VIRT_NBD_PROBE_SPAN bytes) at a time, so a read of a huge
 * range of tiny extents holds a bounded list; the next probe comes when the
 * reads pass alloc_end. Without block status every byte is read: slower,
 * not wrong.
 */
static void
probe(struct virt_nbd *n, uint64_t at)
{
    uint64_t next = n->limit;

    free(n->alloc);
    n->alloc = NULL;
    n->n_alloc = n->at_alloc = 0;
    if (virt_nbd_extents(n, VIRT_NBD_CONTEXT_ALLOCATION, at, n->limit - at, VIRT_NBD_PROBE_MAX,
                         &n->alloc, &n->n_alloc, &next) < 0) {
        n->alloc = NULL;
        n->n_alloc = 0;
        n->probing = false;
        next = n->limit;
        err_clear();
    }
    n->alloc_end = next;
}

static bool
is_zero(const struct conf_extent *e)
{
    return (e->flags & 2) && e->length >= ZERO_MIN;
}

/*
 * The length of the next slot at n->issue_at (at most left bytes) and
 * whether it reads as zeros: a long zero extent is one slot, and a data
 * chunk stops where one begins.
 */
static size_t
next_slot(struct virt_nbd *n, uint64_t left, bool *ret_zero)
{
    uint64_t at = n->issue_at, len = left < VIRT_NBD_CHUNK ? left : VIRT_NBD_CHUNK;

    *ret_zero = false;
    if (n->probing && at >= n->alloc_end && at < n->limit)
        probe(n, at);
    /* A slot does not cross the end of what the last probe described. */
    if (n->probing && at < n->alloc_end && at + len > n->alloc_end)
        len = n->alloc_end - at;
    while (n->at_alloc < n->n_alloc &&
           n->alloc[n->at_alloc].start + n->alloc[n->at_alloc].length <= at)
        n->at_alloc++;
    for (size_t i = n->at_alloc; i < n->n_alloc && n->alloc[i].start < at + len; i++) {
        const struct conf_extent *e = &n->alloc[i];
        if (!is_zero(e))
            continue;
        if (e->start <= at) {
            uint64_t end = e->start + e->length;
            *ret_zero = true;
            /* No memory is held for zeros: one slot covers the extent (bounded by size_t). */
            return (size_t)(end - at < left ? end - at : left);
        }
        return (size_t)(e->start - at);
    }
    return (size_t)len;
}

/* Fills the window with requests up to its depth, within the announced range. */
static int
fill_window(struct virt_nbd *n)
{
    while (n->count < VIRT_NBD_DEPTH && n->issue_at < n->limit) {
        struct slot *s = &n->slots[(n->head + n->count) % VIRT_NBD_DEPTH];
        bool zero;

        s->off = n->issue_at;
        s->len = next_slot(n, n->limit - n->issue_at, &zero);
        s->cookie = 0;
        if (zero) {
            s->buf = NULL;
            n->issue_at += s->len;
            n->count++;
            atomic_fetch_add_explicit(&zero_bytes, s->len, memory_order_relaxed);
            continue;
        }
        s->buf = malloc(s->len);
        if (!s->buf)
            return -ENOMEM;
        s->cookie = nbd_aio_pread(n->h, s->buf, s->len, s->off, NBD_NULL_COMPLETION, 0);
        if (s->cookie < 0) {
            free(s->buf);
            s->buf = NULL;
            s->cookie = 0;
            return nbd_fail("request a read from the NBD export");
        }
        atomic_fetch_add_explicit(&read_bytes, s->len, memory_order_relaxed);
        n->issue_at += s->len;
        n->count++;
    }
    return 0;
}

/* Starts a new window at pos; with probing, asks block status what not to read. */
static void
window_start(struct virt_nbd *n, uint64_t pos, uint64_t len, bool probing)
{
    drop_window(n);
    n->issue_at = pos;
    n->limit = pos + len > n->size ? n->size : pos + len;
    free(n->alloc);
    n->alloc = NULL;
    n->n_alloc = n->at_alloc = 0;
    n->probing = probing;
    n->alloc_end = probing ? pos : n->limit;
}

void
virt_nbd_prepare(struct virt_nbd *n, uint64_t pos, uint64_t len)
{
    window_start(n, pos, len, true);
}

/* Makes the slot that holds pos the window's head, its read complete; 0 or a negative errno. */
static int
head_at(struct virt_nbd *n, uint64_t pos, struct slot **ret)
{
    struct slot *s;
    int r;

    if (pos >= n->size)
        return err_set(-EINVAL, "read beyond the end of the export");
    /* Not where the window is: start a new one here (to the end of the export). */
    if (n->count == 0 || pos < n->slots[n->head].off ||
        pos >= n->slots[n->head].off + n->slots[n->head].len) {
        if (n->count == 0 && n->issue_at == pos && n->limit > pos) {
            /* The announced range starts here. */
        } else {
            virt_nbd_prepare(n, pos, n->size - pos);
        }
    }
    r = fill_window(n);
    if (r < 0)
        return r;
    s = &n->slots[n->head];
    if (s->cookie) {
        r = wait_slot(n, s);
        if (r < 0)
            return r;
    }
    *ret = s;
    return 0;
}

/* The reader took take bytes at pos of the head slot s: retires s once it is all taken. */
static int
head_taken(struct virt_nbd *n, struct slot *s, uint64_t pos, size_t take)
{
    if (pos + take < s->off + s->len)
        return 0;
    free(s->buf);
    s->buf = NULL;
    n->head = (n->head + 1) % VIRT_NBD_DEPTH;
    n->count--;
    return fill_window(n);
}

ssize_t
virt_nbd_read(struct virt_nbd *n, uint64_t pos, void *buf, size_t max)
{
    struct slot *s;
    size_t take;
    int r;

    r = head_at(n, pos, &s);
    if (r < 0)
        return r;
    take = s->off + s->len - pos;
    if (take > max)
        take = max;
    if (s->buf)
        memcpy(buf, s->buf + (pos - s->off), take);
    else
        memset(buf, 0, take);
    r = head_taken(n, s, pos, take);
    return r < 0 ? r : (ssize_t)take;
}

ssize_t
virt_nbd_read_zeros(struct virt_nbd *n, uint64_t pos, size_t max)
{
    struct slot *s;
    size_t take;
    int r;

    r = head_at(n, pos, &s);
    if (r < 0)
        return r;
    if (s->buf)
        return 0;
    take = s->off + s->len - pos;
    if (take > max)
        take = max;
    r = head_taken(n, s, pos, take);
    return r < 0 ? r : (ssize_t)take;
}

struct extent_acc {
    const char *context;
    struct conf_extent *items;
    size_t n, cap, max;
    uint64_t end;
    bool seen;
    bool full; /* max extents held and the next one is a new one */
};

/* Adds [at, at+len) with flags to a, merged with the last extent when they match. */
static int
acc_add(struct extent_acc *a, uint64_t at, uint64_t len, uint32_t flags)
{
    if (a->n > 0 && a->items[a->n - 1].flags == flags &&
        a->items[a->n - 1].start + a->items[a->n - 1].length == at) {
        a->items[a->n - 1].length += len;
        return 0;
    }
    if (a->n == a->max) {
        a->full = true;
        return 0;
    }
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        struct conf_extent *p;

        if (cap > a->max)
            cap = a->max;
        p = realloc(a->items, cap * sizeof(*p));
        if (!p)
            return -1;
        a->items = p;
        a->cap = cap;
    }
    a->items[a->n++] = (struct conf_extent){at, len, flags};
    return 0;
}

static int
on_extents(void *opaque, const char *metacontext, uint64_t offset, uint32_t *entries,
           size_t nr_entries, int *error)
{
    struct extent_acc *a = opaque;
    uint64_t at = offset;
    (void)error;

    if (strcmp(metacontext, a->context) != 0)
        return 0;
    a->seen = true;
    for (size_t i = 0; i + 1 < nr_entries && !a->full; i += 2) {
        uint64_t len = entries[i];

        if (at + len > a->end)
            len = a->end - at;
        if (len == 0)
            break;
        if (acc_add(a, at, len, entries[i + 1]) < 0)
            return -1;
        at += len;
    }
    return 0;
}

/*
 * Block status requests kept in flight at once: a huge sparse disk is walked
 * in a few round trips rather than one per VIRT_NBD_PROBE_SPAN bytes.
 */
#define PROBE_DEPTH 16

/* One block status request in flight: its window and the extents it answered. */
struct probe {
    struct extent_acc acc;
    uint64_t off;
    int64_t cookie;
};

/* Waits for probe p to end; 0, or a negative errno with a detail. */
static int
probe_wait(struct virt_nbd *n, struct probe *p)
{
    int done;

    while ((done = nbd_aio_command_completed(n->h, (uint64_t)p->cookie)) == 0)
        if (nbd_poll(n->h, -1) < 0)
            return nbd_fail("query block status");
    return done < 0 ? nbd_fail("query block status") : 0;
}

int
virt_nbd_extents(struct virt_nbd *n, const char *context, uint64_t offset, uint64_t length,
                 size_t max, struct conf_extent **ret, size_t *ret_n, uint64_t *ret_next)
{
    struct extent_acc a = {.context = context, .max = max};
    struct probe probes[PROBE_DEPTH];
    size_t head = 0, flying = 0, depth = 1;
    uint64_t end = offset > n->size            ? n->size
                   : offset + length > n->size ? n->size
                                               : offset + length;
    uint64_t issue = offset;
    int r = 0;

    if (max == 0)
        return err_set(-EINVAL, "ask for at least one extent");
    if (nbd_can_meta_context(n->h, context) != 1)
        return err_set(-EOPNOTSUPP, "the export does not offer the context %s", context);
    a.end = end;
    /*
     * Each probe asks for at most VIRT_NBD_PROBE_SPAN bytes, in order, with up to
     * depth of them in flight: depth grows while probes answer their whole window
     * with few extents (a sparse stretch), so a dense disk is not asked far ahead.
     * It stops once max extents are held.
     */
    while (r >= 0 && offset < end && !a.full) {
        struct probe *p;
        uint64_t reached, p_end;

        while (flying < depth && issue < end) {
            uint64_t count = end - issue > VIRT_NBD_PROBE_SPAN ? VIRT_NBD_PROBE_SPAN : end - issue;

            p = &probes[(head + flying) % PROBE_DEPTH];
            *p = (struct probe){.acc = {.context = context, .max = max, .end = issue + count},
                                .off = issue};
            p->cookie = nbd_aio_block_status(
                n->h, count, issue,
                (nbd_extent_callback){.callback = on_extents, .user_data = &p->acc},
                NBD_NULL_COMPLETION, 0);
            if (p->cookie < 0) {
                r = nbd_fail("query block status");
                break;
            }
            issue += count;
            flying++;
        }
        if (r < 0 || flying == 0)
            break;
        p = &probes[head];
        r = probe_wait(n, p);
        head = (head + 1) % PROBE_DEPTH;
        flying--;
        if (r >= 0 && (!p->acc.seen || p->acc.n == 0 || p->acc.items[0].start != offset))
            r = err_set(-EIO, "the NBD server answered no extents for %s", context);
        for (size_t i = 0; r >= 0 && i < p->acc.n && !a.full; i++)
            if (acc_add(&a, p->acc.items[i].start, p->acc.items[i].length, p->acc.items[i].flags) <
                0)
                r = -ENOMEM;
        p_end = p->acc.n ? p->acc.items[p->acc.n - 1].start + p->acc.items[p->acc.n - 1].length : 0;
        free(p->acc.items);
        if (r < 0)
            break;
        reached = a.items[a.n - 1].start + a.items[a.n - 1].length;
        if (reached <= offset && !a.full) {
            r = err_set(-EIO, "the NBD server answered no extents for %s", context);
            break;
        }
        offset = reached;
        if (p_end < p->acc.end) {
            /* A short answer: the probes after it start past a gap; ask again from here. */
            while (flying > 0 && r >= 0) {
                p = &probes[head];
                r = probe_wait(n, p);
                free(p->acc.items);
                head = (head + 1) % PROBE_DEPTH;
                flying--;
            }
            issue = offset;
            depth = 1;
        } else if (p->acc.n <= max / 4 && depth < PROBE_DEPTH) {
            depth *= 2;
        }
    }
    /* What is still in flight writes into probes[]: it must end before they go. */
    for (; flying > 0; flying--, head = (head + 1) % PROBE_DEPTH) {
        if (nbd_aio_is_dead(n->h) != 1)
            (void)probe_wait(n, &probes[head]);
        free(probes[head].acc.items);
    }
    if (r < 0) {
        free(a.items);
        return r;
    }
    *ret = a.items;
    *ret_n = a.n;
    if (ret_next)
        *ret_next = offset;
    return 0;
}

/* The state of one copy: requests in flight and reads whose data awaits its write. */
struct copy_state {
    int error; /* the first error of a request, as a positive errno */
    struct copy_req *ready;
    unsigned reads, writes;
    uint64_t written;
};

/* One chunk: read from the source into buf, then written from buf (no copy in between). */
struct copy_req {
    struct copy_state *cs;
    struct copy_req *next;
    char *buf;
    uint64_t off;
    size_t len;
};

static void
copy_req_free(void *user_data)
{
    struct copy_req *q = user_data;

    free(q->buf);
    free(q);
}

static int
read_done(void *user_data, int *error)
{
    struct copy_req *q = user_data;
    struct copy_state *cs = q->cs;

    cs->reads--;
    if (*error) {
        if (!cs->error)
            cs->error = *error;
        copy_req_free(q);
    } else {
        q->next = cs->ready;
        cs->ready = q;
    }
    return 1; /* retire the command */
}

static int
write_done(void *user_data, int *error)
{
    struct copy_req *q = user_data;
    struct copy_state *cs = q->cs;

    cs->writes--;
    if (*error && !cs->error)
        cs->error = *error;
    if (!*error)
        cs->written += q->len;
    return 1; /* retire the command; libnbd frees q through copy_req_free */
}

/* Events to wait for on h, as poll() wants them. */
static short
poll_events(struct nbd_handle *h)
{
    unsigned dir = nbd_aio_get_direction(h);

    return (short)(((dir & LIBNBD_AIO_DIRECTION_READ) ? POLLIN : 0) |
                   ((dir & LIBNBD_AIO_DIRECTION_WRITE) ? POLLOUT : 0));
}

/* Waits until src or dst can make progress and lets it; 0 or a negative errno. */
static int
poll_both(struct nbd_handle *src, struct nbd_handle *dst)
{
    struct nbd_handle *h[2] = {src, dst};
    struct pollfd fds[2];

    for (size_t i = 0; i < 2; i++) {
        fds[i].fd = nbd_aio_get_fd(h[i]);
        if (fds[i].fd < 0)
            return nbd_fail("wait for the NBD exports");
        fds[i].events = poll_events(h[i]);
        fds[i].revents = 0;
    }
    if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR)
            return 0;
        return err_set(-errno, "wait for the NBD exports: %s", strerror(errno));
    }
    for (size_t i = 0; i < 2; i++) {
        int r = 0;

        if (fds[i].revents & (POLLIN | POLLHUP | POLLERR))
            r = nbd_aio_notify_read(h[i]);
        else if (fds[i].revents & POLLOUT)
            r = nbd_aio_notify_write(h[i]);
        if (r < 0)
            return nbd_fail("talk to the NBD export");
    }
    return 0;
}

/* Hands every read that completed to its write; 0 or a negative errno. */
static int
write_ready(struct virt_nbd *dst, struct copy_state *cs)
{
    while (cs->ready) {
        struct copy_req *q = cs->ready;

        cs->ready = q->next;
        /* From here on libnbd owns q: on failure it calls copy_req_free itself. */
        if (nbd_aio_pwrite(dst->h, q->buf, q->len, q->off,
                           (nbd_completion_callback){
                               .callback = write_done, .user_data = q, .free = copy_req_free},
                           0) < 0)
            return nbd_fail("write to the NBD export");
        cs->writes++;
    }
    return 0;
}

/* Drops the reads that completed but were not written (after a failure). */
static void
drop_ready(struct copy_state *cs)
{
    while (cs->ready) {
        struct copy_req *q = cs->ready;
        cs->ready = q->next;
        copy_req_free(q);
    }
}

/* Issues the read of [pos, pos+len) from src; 0 or a negative errno. */
static int
read_issue(struct virt_nbd *src, struct copy_state *cs, uint64_t pos, size_t len)
{
    struct copy_req *q = calloc(1, sizeof(*q));

    if (!q || !(q->buf = malloc(len))) {
        free(q);
        return -ENOMEM;
    }
    *q = (struct copy_req){.cs = cs, .buf = q->buf, .off = pos, .len = len};
    /* No free callback: read_done keeps q for its write, or frees it. */
    if (nbd_aio_pread(src->h, q->buf, len, pos,
                      (nbd_completion_callback){.callback = read_done, .user_data = q}, 0) < 0) {
        copy_req_free(q);
        return nbd_fail("read from the NBD export");
    }
    cs->reads++;
    return 0;
}

int
virt_nbd_copy(struct virt_nbd *src, struct virt_nbd *dst, const struct conf_extent *ext, size_t n,
              virt_nbd_progress_fn progress, void *opaque)
{
    struct copy_state cs = {0};
    uint64_t reported = 0;
    int r = 0;

    drop_window(src); /* no read of the data plane may be in flight on src */
    for (size_t i = 0; r >= 0 && i < n; i++)
        if (ext[i].start + ext[i].length > src->size || ext[i].start + ext[i].length > dst->size)
            r = err_set(-EINVAL, "extent beyond the end of the export");
    for (size_t i = 0; r >= 0 && i < n; i++) {
        uint64_t pos = ext[i].start, end = ext[i].start + ext[i].length;

        while (r >= 0) {
            /* Reads in flight ahead, writes behind them, each bounded by the depth. */
            while (r >= 0 && pos < end && cs.reads < VIRT_NBD_DEPTH &&
                   cs.reads + cs.writes < 2 * VIRT_NBD_DEPTH) {
                size_t len = end - pos < VIRT_NBD_CHUNK ? (size_t)(end - pos) : VIRT_NBD_CHUNK;
                r = read_issue(src, &cs, pos, len);
                pos += len;
            }
            if (r < 0)
                break;
            if (pos >= end && cs.reads == 0 && !cs.ready)
                break; /* the next extent's reads go out while these writes finish */
            r = poll_both(src->h, dst->h);
            if (r >= 0)
                r = write_ready(dst, &cs);
            if (r >= 0 && cs.error)
                r = err_set(-cs.error, "copy between NBD exports: %s", strerror(cs.error));
            if (r >= 0 && progress && cs.written != reported) {
                reported = cs.written;
                r = progress(opaque, reported);
            }
        }
    }
    /* Whatever happened, no request may still point into memory that goes away. */
    while (cs.reads > 0 || cs.writes > 0) {
        if (poll_both(src->h, dst->h) < 0) {
            if (r >= 0)
                r = -EIO;
            break;
        }
        if (r >= 0)
            r = write_ready(dst, &cs);
    }
    drop_ready(&cs);
    if (r >= 0 && cs.error)
        r = err_set(-cs.error, "copy between NBD exports: %s", strerror(cs.error));
    if (r >= 0 && progress && cs.written != reported)
        r = progress(opaque, cs.written);
    if (r >= 0 && nbd_flush(dst->h, 0) < 0)
        r = nbd_fail("flush the NBD export");
    return r;
}
