/*
 * Pins (see backup_priv.h): the backups an offsite copy reads, which no
 * prune may rewrite or remove and no delete may remove while it reads
 * them. A copy does not claim its domain (backups of it go on during a
 * long upload), so the two meet here instead, under one mutex:
 *
 *   a copy pins the newest backup of the chain it copies, then reads the
 *   chain from the catalog; a pin waits while the domain's images are being
 *   rewritten (a prune or a delete of the domain runs);
 *
 *   a prune or a delete marks the domain as being rewritten, then reads the
 *   pins: every pinned backup and its ancestors are kept as they are.
 *
 * Whichever comes first, the other sees a consistent catalog: a copy never
 * reads an image a prune rewrites, and a prune never waits for a copy.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "backup_priv.h"
#include "cond.h"
#include "err.h"

#define PINS_MAX 64

static struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    struct {
        char uuid[37];
        char id[64];
        unsigned refs;
    } pin[PINS_MAX];
    struct {
        char uuid[37];
        unsigned refs;
    } rewrite[PINS_MAX];
} pins = {.lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER};

/* The rewrite slot of uuid, or -1; with the lock held. */
static int
rewrite_slot(const char *uuid)
{
    for (int i = 0; i < PINS_MAX; i++)
        if (pins.rewrite[i].refs && strcmp(pins.rewrite[i].uuid, uuid) == 0)
            return i;
    return -1;
}

int
backup_pin(const char *uuid, const char *id, struct job *job)
{
    pthread_mutex_lock(&pins.lock);
    for (;;) {
        int free_slot = -1;

        for (int i = 0; i < PINS_MAX && free_slot < 0; i++)
            if (!pins.pin[i].refs)
                free_slot = i;
        if (rewrite_slot(uuid) < 0 && free_slot >= 0) {
            snprintf(pins.pin[free_slot].uuid, sizeof(pins.pin[free_slot].uuid), "%s", uuid);
            snprintf(pins.pin[free_slot].id, sizeof(pins.pin[free_slot].id), "%s", id);
            pins.pin[free_slot].refs = 1;
            pthread_mutex_unlock(&pins.lock);
            return free_slot;
        }
        if (job && (job_cancelled(job) || job_stopping(job))) {
            pthread_mutex_unlock(&pins.lock);
            return job_cancelled(job) ? -ECANCELED : -ESHUTDOWN;
        }
        cond_wait_ms(&pins.changed, &pins.lock, 250);
    }
}

void
backup_unpin(int slot)
{
    if (slot < 0 || slot >= PINS_MAX)
        return;
    pthread_mutex_lock(&pins.lock);
    pins.pin[slot].refs = 0;
    pthread_cond_broadcast(&pins.changed);
    pthread_mutex_unlock(&pins.lock);
}

int
backup_rewrite_begin(const char *uuid, char ***ret_pinned)
{
    char **ids = calloc(PINS_MAX + 1, sizeof(*ids));
    size_t n = 0;
    int r = 0, s;

    if (!ids)
        return -ENOMEM;
    pthread_mutex_lock(&pins.lock);
    s = rewrite_slot(uuid);
    for (int i = 0; s < 0 && i < PINS_MAX; i++)
        if (!pins.rewrite[i].refs) {
            snprintf(pins.rewrite[i].uuid, sizeof(pins.rewrite[i].uuid), "%s", uuid);
            s = i;
        }
    if (s < 0)
        r = err_set(-EBUSY, "too many prunes and deletes run at once; try again");
    else
        pins.rewrite[s].refs++;
    for (int i = 0; r >= 0 && i < PINS_MAX; i++)
        if (pins.pin[i].refs && strcmp(pins.pin[i].uuid, uuid) == 0 &&
            !(ids[n++] = strdup(pins.pin[i].id)))
            r = -ENOMEM;
    if (r == -ENOMEM)
        pins.rewrite[s].refs--;
    pthread_mutex_unlock(&pins.lock);
    if (r < 0) {
        backup_strv_free(ids);
        return r;
    }
    *ret_pinned = ids;
    return 0;
}

void
backup_rewrite_end(const char *uuid)
{
    int s;

    pthread_mutex_lock(&pins.lock);
    s = rewrite_slot(uuid);
    if (s >= 0)
        pins.rewrite[s].refs--;
    pthread_cond_broadcast(&pins.changed);
    pthread_mutex_unlock(&pins.lock);
}
