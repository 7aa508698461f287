#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "deadline.h"
#include "log.h"
#include "text.h"

#define TICK_MS 200

struct deadline_watch {
    struct deadline_watcher *owner;
    int fd;
    atomic_uint_fast64_t deadline_ns; /* 0: disarmed */
    bool fired;
    struct deadline_watch *prev, *next;
};

struct deadline_watcher {
    uint64_t limit_ns;
    pthread_t thread;
    pthread_mutex_t lock; /* guards the list and stop */
    pthread_cond_t wake;
    bool stop;
    struct deadline_watch *head;
};

static void *
watch_loop(void *arg)
{
    struct deadline_watcher *w = arg;

    pthread_mutex_lock(&w->lock);
    while (!w->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&w->wake, &w->lock, &ts);
        uint64_t now = text_mono_ns();
        for (struct deadline_watch *x = w->head; x; x = x->next) {
            uint64_t d = atomic_load_explicit(&x->deadline_ns, memory_order_relaxed);
            if (d == 0 || d > now || x->fired)
                continue;
            /* The transport sees end-of-stream and closes the connection itself. */
            shutdown(x->fd, SHUT_RDWR);
            x->fired = true;
            log_debug("http: closed a connection that did not send its request in time");
        }
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int
deadline_watcher_new(unsigned seconds, struct deadline_watcher **ret)
{
    struct deadline_watcher *w = calloc(1, sizeof(*w));
    pthread_condattr_t ca;
    int r;

    if (!w)
        return -ENOMEM;
    w->limit_ns = (uint64_t)seconds * 1000000000ull;
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->wake, &ca);
    pthread_condattr_destroy(&ca);
    r = pthread_create(&w->thread, NULL, watch_loop, w);
    if (r != 0) {
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return -r;
    }
    *ret = w;
    return 0;
}

void
deadline_watcher_free(struct deadline_watcher *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

struct deadline_watch *
deadline_watch_new(struct deadline_watcher *w, int fd)
{
    struct deadline_watch *x = calloc(1, sizeof(*x));

    if (!x)
        return NULL;
    x->owner = w;
    x->fd = fd;
    atomic_init(&x->deadline_ns, text_mono_ns() + w->limit_ns);
    pthread_mutex_lock(&w->lock);
    x->next = w->head;
    if (w->head)
        w->head->prev = x;
    w->head = x;
    pthread_mutex_unlock(&w->lock);
    return x;
}

void
deadline_watch_arm(struct deadline_watch *x)
{
    if (x)
        atomic_store_explicit(&x->deadline_ns, text_mono_ns() + x->owner->limit_ns,
                              memory_order_relaxed);
}

void
deadline_watch_disarm(struct deadline_watch *x)
{
    if (x)
        atomic_store_explicit(&x->deadline_ns, 0, memory_order_relaxed);
}

void
deadline_watch_free(struct deadline_watch *x)
{
    struct deadline_watcher *w;

    if (!x)
        return;
    w = x->owner;
    pthread_mutex_lock(&w->lock);
    if (x->prev)
        x->prev->next = x->next;
    else
        w->head = x->next;
    if (x->next)
        x->next->prev = x->prev;
    pthread_mutex_unlock(&w->lock);
    free(x);
}
