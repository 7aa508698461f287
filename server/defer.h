/*
 * defer.h - a bounded pool of worker threads for work that must not hold an
 * HTTP thread: a request whose handler would block for seconds (waiting for
 * a backup to finish, a full reconcile, a revert) is suspended by the
 * transport, its work runs here, and the transport resumes it with the
 * answer.
 *
 * A task is owned by its submitter; the pool calls exactly one of run() (on
 * a worker) or cancel() (when the pool stops before the task started), and
 * never touches the task afterwards. Tasks run in the order submitted.
 */
#ifndef VV_DEFER_H
#define VV_DEFER_H

struct defer_task {
    void (*run)(struct defer_task *t);
    void (*cancel)(struct defer_task *t);
    struct defer_task *next; /* the pool's */
};

struct defer_pool;

/*
 * Starts `workers` threads; besides one task per worker, at most
 * `max_queued` tasks wait for one. Returns 0 and the pool in *ret, or a negative errno.
 */
int defer_pool_new(unsigned workers, unsigned max_queued, struct defer_pool **ret);

/*
 * Hands t to the pool. Returns 0, -EAGAIN when max_queued tasks already wait
 * (t is not taken), or -ESHUTDOWN once the pool stops.
 */
int defer_pool_submit(struct defer_pool *p, struct defer_task *t);

/* How many tasks run now and how many wait for a worker. */
void defer_pool_counts(struct defer_pool *p, unsigned *ret_running, unsigned *ret_queued);

/*
 * Stops taking tasks and calls cancel() on every task still waiting, on the
 * calling thread. Tasks that run go on. Idempotent.
 */
void defer_pool_stop(struct defer_pool *p);

/*
 * Stops the pool (as defer_pool_stop), waits until the running tasks end,
 * joins the workers and frees the pool. Accepts NULL.
 */
void defer_pool_free(struct defer_pool *p);

#endif
