/*
 * The timer thread of timer.h: a list of entries ordered by time, one
 * mutex, one condition on the monotonic clock that the thread sleeps on
 * until the first entry is due or the list changes at its head.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include "text.h"
#include "timer.h"

struct timers {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct timer_entry *head, *tail; /* earliest first */
    unsigned n;
    bool stopping;
    pthread_t thread;
};

static void
unlink_locked(struct timers *t, struct timer_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        t->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        t->tail = e->prev;
    e->prev = e->next = NULL;
    e->armed = false;
    t->n--;
}

static void *
timers_main(void *arg)
{
    struct timers *t = arg;

    pthread_mutex_lock(&t->lock);
    while (!t->stopping) {
        uint64_t now = text_mono_ns();

        while (t->head && t->head->due_ns <= now) {
            struct timer_entry *e = t->head;
            unlink_locked(t, e);
            e->fire(e);
        }
        if (!t->head) {
            pthread_cond_wait(&t->wake, &t->lock);
            continue;
        }
        struct timespec until = {
            .tv_sec = (time_t)(t->head->due_ns / 1000000000u),
            .tv_nsec = (long)(t->head->due_ns % 1000000000u),
        };
        pthread_cond_timedwait(&t->wake, &t->lock, &until);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

int
timers_new(struct timers **ret)
{
    struct timers *t = calloc(1, sizeof(*t));
    pthread_condattr_t attr;
    sigset_t all, old;
    int r;

    if (!t)
        return -ENOMEM;
    pthread_mutex_init(&t->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* as text_mono_ns() */
    pthread_cond_init(&t->wake, &attr);
    pthread_condattr_destroy(&attr);
    /* The thread never takes the process's signals: main waits for them with sigwait. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    r = -pthread_create(&t->thread, NULL, timers_main, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r < 0) {
        pthread_cond_destroy(&t->wake);
        pthread_mutex_destroy(&t->lock);
        free(t);
        return r;
    }
    *ret = t;
    return 0;
}

void
timers_free(struct timers *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    t->stopping = true;
    pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->lock);
    pthread_join(t->thread, NULL);
    while (t->head)
        unlink_locked(t, t->head);
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

void
timers_arm(struct timers *t, struct timer_entry *e, uint64_t after_ms)
{
    struct timer_entry *at;

    e->due_ns = text_mono_ns() + after_ms * 1000000u;
    pthread_mutex_lock(&t->lock);
    /* From the tail: most entries come with the latest time. */
    for (at = t->tail; at && at->due_ns > e->due_ns; at = at->prev)
        ;
    e->prev = at;
    e->next = at ? at->next : t->head;
    if (e->next)
        e->next->prev = e;
    else
        t->tail = e;
    if (at)
        at->next = e;
    else
        t->head = e;
    e->armed = true;
    t->n++;
    if (t->head == e)
        pthread_cond_signal(&t->wake); /* earlier than what the thread sleeps for */
    pthread_mutex_unlock(&t->lock);
}

void
timers_disarm(struct timers *t, struct timer_entry *e)
{
    pthread_mutex_lock(&t->lock);
    if (e->armed)
        unlink_locked(t, e);
    pthread_mutex_unlock(&t->lock);
}

unsigned
timers_count(struct timers *t)
{
    unsigned n;

    pthread_mutex_lock(&t->lock);
    n = t->n;
    pthread_mutex_unlock(&t->lock);
    return n;
}
