#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busy.h"
#include "err.h"

struct claim {
    char uuid[37];
    char holder[96];
    struct claim *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct claim *claims;

static struct claim *
find(const char *uuid)
{
    for (struct claim *c = claims; c; c = c->next)
        if (strcmp(c->uuid, uuid) == 0)
            return c;
    return NULL;
}

int
core_busy_claim(const char *uuid, const char *holder)
{
    struct claim *c;
    int r = 0;

    pthread_mutex_lock(&lock);
    c = find(uuid);
    if (c) {
        r = err_set(-EBUSY, "the domain is busy with %s", c->holder);
    } else if (!(c = calloc(1, sizeof(*c)))) {
        r = -ENOMEM;
    } else {
        snprintf(c->uuid, sizeof(c->uuid), "%s", uuid);
        snprintf(c->holder, sizeof(c->holder), "%s", holder);
        c->next = claims;
        claims = c;
    }
    pthread_mutex_unlock(&lock);
    return r;
}

void
core_busy_release(const char *uuid)
{
    pthread_mutex_lock(&lock);
    for (struct claim **p = &claims; *p; p = &(*p)->next) {
        if (strcmp((*p)->uuid, uuid) == 0) {
            struct claim *dead = *p;
            *p = dead->next;
            free(dead);
            break;
        }
    }
    pthread_mutex_unlock(&lock);
}

int
core_busy_holder(const char *uuid, char *buf, size_t size)
{
    struct claim *c;
    int found;

    pthread_mutex_lock(&lock);
    c = find(uuid);
    found = c != NULL;
    if (c)
        snprintf(buf, size, "%s", c->holder);
    pthread_mutex_unlock(&lock);
    return found;
}
