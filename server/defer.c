/*
 * The worker pool of defer.h: one mutex, one FIFO of waiting tasks, one
 * condition the workers sleep on.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>

#include "defer.h"

struct defer_pool {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct defer_task *head, *tail;
    unsigned queued, running, max_queued;
    bool stopping;
    pthread_t *threads;
    unsigned n_threads;
};

static void *
worker(void *arg)
{
    struct defer_pool *p = arg;

    pthread_mutex_lock(&p->lock);
    for (;;) {
        struct defer_task *t;

        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->wake, &p->lock);
        t = p->head;
        if (!t)
            break; /* stopping, and nothing waits */
        p->head = t->next;
        if (!p->head)
            p->tail = NULL;
        p->queued--;
        p->running++;
        pthread_mutex_unlock(&p->lock);
        t->next = NULL;
        t->run(t);
        pthread_mutex_lock(&p->lock);
        p->running--;
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int
defer_pool_new(unsigned workers, unsigned max_queued, struct defer_pool **ret)
{
    struct defer_pool *p;
    sigset_t all, old;
    int r = 0;

    if (workers == 0)
        return -EINVAL;
    p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->threads = calloc(workers, sizeof(*p->threads));
    if (!p->threads) {
        free(p);
        return -ENOMEM;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->max_queued = max_queued;
    /* Workers never take the process's signals: main waits for them with sigwait. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (; p->n_threads < workers; p->n_threads++) {
        r = -pthread_create(&p->threads[p->n_threads], NULL, worker, p);
        if (r < 0)
            break;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r < 0) {
        defer_pool_free(p);
        return r;
    }
    *ret = p;
    return 0;
}

int
defer_pool_submit(struct defer_pool *p, struct defer_task *t)
{
    int r = 0;

    pthread_mutex_lock(&p->lock);
    if (p->stopping)
        r = -ESHUTDOWN;
    else if (p->queued + p->running >= p->n_threads + p->max_queued)
        r = -EAGAIN; /* every worker busy or spoken for, and max_queued wait besides */
    if (r == 0) {
        t->next = NULL;
        if (p->tail)
            p->tail->next = t;
        else
            p->head = t;
        p->tail = t;
        p->queued++;
        pthread_cond_signal(&p->wake);
    }
    pthread_mutex_unlock(&p->lock);
    return r;
}

void
defer_pool_counts(struct defer_pool *p, unsigned *ret_running, unsigned *ret_queued)
{
    pthread_mutex_lock(&p->lock);
    *ret_running = p->running;
    *ret_queued = p->queued;
    pthread_mutex_unlock(&p->lock);
}

void
defer_pool_stop(struct defer_pool *p)
{
    struct defer_task *t;

    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    t = p->head;
    p->head = p->tail = NULL;
    p->queued = 0;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    while (t) {
        struct defer_task *next = t->next;
        t->next = NULL;
        t->cancel(t);
        t = next;
    }
}

void
defer_pool_free(struct defer_pool *p)
{
    if (!p)
        return;
    defer_pool_stop(p);
    for (unsigned i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p->threads);
    free(p);
}
