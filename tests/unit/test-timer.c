/*
 * The timers of server/timer.h: entries fire in order of their time, not of
 * their arming; a disarmed entry never fires; one armed earlier than what
 * the thread sleeps for wakes it; freeing drops what is still armed.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#include "server/timer.h"
#include "tap.h"
#include "text.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int order[8];
static size_t n_fired;

struct entry {
    struct timer_entry e; /* first */
    int id;
    uint64_t fired_ns;
};

static void
fire(struct timer_entry *e)
{
    struct entry *x = (struct entry *)e;

    pthread_mutex_lock(&lock);
    x->fired_ns = text_mono_ns();
    if (n_fired < 8)
        order[n_fired] = x->id;
    n_fired++;
    pthread_mutex_unlock(&lock);
}

static size_t
fired(void)
{
    size_t n;

    pthread_mutex_lock(&lock);
    n = n_fired;
    pthread_mutex_unlock(&lock);
    return n;
}

static void
wait_fired(size_t want)
{
    for (int i = 0; i < 5000 && fired() < want; i++)
        usleep(1000);
}

int
main(void)
{
    struct timers *t = NULL;
    struct entry e[5];
    uint64_t t0;

    for (int i = 0; i < 5; i++)
        e[i] = (struct entry){.e = {.fire = fire}, .id = i};
    ok(timers_new(&t) == 0, "timers start");

    t0 = text_mono_ns();
    timers_arm(t, &e[0].e, 300);
    timers_arm(t, &e[1].e, 100);
    timers_arm(t, &e[2].e, 200);
    timers_arm(t, &e[3].e, 150);
    ok(timers_count(t) == 4, "4 armed (%u)", timers_count(t));
    timers_disarm(t, &e[3].e);
    ok(timers_count(t) == 3 && !e[3].e.armed, "a disarmed entry is off the list");
    wait_fired(3);
    pthread_mutex_lock(&lock);
    ok(n_fired == 3, "3 fired (%zu)", n_fired);
    ok(order[0] == 1 && order[1] == 2 && order[2] == 0, "in order of time: %d %d %d", order[0],
       order[1], order[2]);
    ok(e[1].fired_ns - t0 >= 100000000u && e[1].fired_ns - t0 < 190000000u,
       "the first fired after 100 ms (%.1f ms)", (double)(e[1].fired_ns - t0) / 1e6);
    ok(e[0].fired_ns - t0 >= 300000000u, "the last fired after 300 ms");
    pthread_mutex_unlock(&lock);
    ok(timers_count(t) == 0, "nothing armed once all fired");
    timers_disarm(t, &e[0].e); /* fired already: nothing to do */
    ok(fired() == 3, "the disarmed one never fired");

    /* The thread sleeps for a far entry: a nearer one wakes it. */
    timers_arm(t, &e[0].e, 60000);
    usleep(20000);
    t0 = text_mono_ns();
    timers_arm(t, &e[4].e, 50);
    wait_fired(4);
    pthread_mutex_lock(&lock);
    ok(n_fired == 4 && order[3] == 4, "a nearer entry fires first");
    ok(e[4].fired_ns - t0 < 150000000u, "and on time (%.1f ms)",
       (double)(e[4].fired_ns - t0) / 1e6);
    pthread_mutex_unlock(&lock);
    ok(timers_count(t) == 1, "the far one stays armed");
    timers_free(t); /* with the far one armed: it never fires */
    ok(fired() == 4, "freeing drops the armed entries unfired");
    return tap_done();
}
