/*
 * timer.h - one thread that fires timers: each armed entry's fire() is
 * called once its time has come, unless it is disarmed first. Entries are
 * kept in order of their time, so the thread sleeps until the first one.
 *
 * An entry is owned by its caller and borrowed by the timers while armed.
 * fire() runs on the timer thread with the timers' lock held: it must be
 * quick and must not call back into this module. Because of that lock,
 * once timers_disarm() returns the entry's fire() neither runs nor will
 * run, and the caller may free the entry.
 */
#ifndef VV_TIMER_H
#define VV_TIMER_H

#include <stdbool.h>
#include <stdint.h>

struct timer_entry {
    void (*fire)(struct timer_entry *e); /* set by the caller */
    /* the timers': */
    uint64_t due_ns; /* on the monotonic clock */
    bool armed;
    struct timer_entry *prev, *next;
};

struct timers;

/* Starts the thread. Returns 0 and new timers in *ret, or a negative errno. */
int timers_new(struct timers **ret);

/* Stops the thread and frees t; entries still armed never fire. Accepts NULL. */
void timers_free(struct timers *t);

/* Arms e (not armed yet) to fire after_ms milliseconds from now. */
void timers_arm(struct timers *t, struct timer_entry *e, uint64_t after_ms);

/* Disarms e, if armed (see above). Safe on an entry that fired or was never armed. */
void timers_disarm(struct timers *t, struct timer_entry *e);

/* How many entries are armed. */
unsigned timers_count(struct timers *t);

#endif
