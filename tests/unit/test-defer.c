/*
 * The worker pool of server/defer.h: tasks run off the caller's thread,
 * at most `workers` at once, the queue is bounded, and a stop cancels what
 * waits while what runs finishes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <unistd.h>

#include "server/defer.h"
#include "tap.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static bool release;

struct task {
    struct defer_task t;
    pthread_t ran_on;
    bool ran, cancelled;
};

static void
run_blocking(struct defer_task *t)
{
    struct task *k = (struct task *)t;

    pthread_mutex_lock(&lock);
    k->ran_on = pthread_self();
    while (!release)
        pthread_cond_wait(&changed, &lock);
    k->ran = true;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

static void
cancel(struct defer_task *t)
{
    struct task *k = (struct task *)t;

    pthread_mutex_lock(&lock);
    k->cancelled = true;
    pthread_mutex_unlock(&lock);
}

static void
wait_counts(struct defer_pool *p, unsigned running, unsigned queued)
{
    for (int i = 0; i < 5000; i++) {
        unsigned r, q;
        defer_pool_counts(p, &r, &q);
        if (r == running && q == queued)
            return;
        usleep(1000);
    }
}

int
main(void)
{
    struct defer_pool *p = NULL;
    struct task tasks[5] = {0};
    unsigned running, queued;

    for (size_t i = 0; i < 5; i++)
        tasks[i].t = (struct defer_task){.run = run_blocking, .cancel = cancel};
    ok(defer_pool_new(0, 1, &p) == -EINVAL, "a pool needs a worker");
    ok(defer_pool_new(2, 2, &p) == 0, "a pool of 2 workers, 2 waiting places");
    for (size_t i = 0; i < 4; i++)
        ok(defer_pool_submit(p, &tasks[i].t) == 0, "task %zu taken", i);
    wait_counts(p, 2, 2);
    defer_pool_counts(p, &running, &queued);
    ok(running == 2 && queued == 2, "2 run, 2 wait (%u, %u)", running, queued);
    ok(defer_pool_submit(p, &tasks[4].t) == -EAGAIN, "a fifth is refused: the queue is full");
    pthread_mutex_lock(&lock);
    ok(!pthread_equal(tasks[0].ran_on, pthread_self()), "tasks run off the caller's thread");
    pthread_mutex_unlock(&lock);

    defer_pool_stop(p);
    ok(defer_pool_submit(p, &tasks[4].t) == -ESHUTDOWN, "no task is taken after the stop");
    pthread_mutex_lock(&lock);
    ok(tasks[2].cancelled && tasks[3].cancelled, "the stop cancels the waiting tasks");
    ok(!tasks[0].ran && !tasks[1].ran, "the running ones go on");
    release = true;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
    defer_pool_free(p);
    ok(tasks[0].ran && tasks[1].ran && !tasks[0].cancelled,
       "freeing waits until the running tasks end");
    ok(!tasks[2].ran && !tasks[3].ran, "cancelled tasks never run");
    return tap_done();
}
