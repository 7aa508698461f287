/* The event hub and its Server-Sent Events streams (see events.h). */
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/feed.h"
#include "cleanup.h"
#include "events.h"
#include "log.h"

#define STREAM_BLOCK 4096
#define MAX_WAKE     64

static const char keepalive_line[] = ": keepalive\n\n";
static const char missed_line[] = ": some events were dropped: the stream fell behind\n\n";

struct event {
    uint64_t seq;
    char *text; /* "id: ..\nevent: ..\ndata: ..\n\n" */
    size_t len;
};

struct stream {
    struct MHD_Connection *conn;
    uint64_t next; /* seq of the next event to send */
    size_t off;    /* bytes of that event already sent */
    bool suspended;
    bool keepalive;  /* a keepalive comment is due */
    bool missed;     /* the stream fell behind the ring */
    size_t note_off; /* bytes of the pending comment already sent */
    char who[65];    /* who opened it, for EVENTS_MAX_PER_WHO */
    struct stream *link;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct event ring[EVENTS_RING];
    uint64_t head; /* seq the next event gets; events head-EVENTS_RING..head-1 are kept */
    struct stream *streams;
    bool closing;
    bool stopping;
    bool started;
    bool feeding; /* api_feed_start() succeeded */
    pthread_t keepalive_thread;
} hub = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .head = 1,
};

/*
 * Takes the suspended streams off suspension (the lock held) and returns
 * their connections for the caller to resume once the lock is released: a
 * connection marked unsuspended here stays suspended inside libmicrohttpd
 * until then, so it cannot be closed and freed in between.
 */
static size_t
collect_suspended(struct MHD_Connection **conns, size_t max)
{
    size_t n = 0;

    for (struct stream *s = hub.streams; s && n < max; s = s->link) {
        if (s->suspended) {
            s->suspended = false;
            conns[n++] = s->conn;
        }
    }
    return n;
}

static void
resume_all(struct MHD_Connection **conns, size_t n)
{
    for (size_t i = 0; i < n; i++)
        MHD_resume_connection(conns[i]);
}

/* Wakes every suspended stream; loops because one batch holds at most MAX_WAKE. */
static void
wake_streams(void)
{
    struct MHD_Connection *conns[MAX_WAKE];
    size_t n;

    do {
        pthread_mutex_lock(&hub.lock);
        n = collect_suspended(conns, MAX_WAKE);
        pthread_mutex_unlock(&hub.lock);
        resume_all(conns, n);
    } while (n == MAX_WAKE);
}

void
events_publish(const char *name, const char *json)
{
    char *text = NULL;
    int len;

    pthread_mutex_lock(&hub.lock);
    if (hub.closing) {
        pthread_mutex_unlock(&hub.lock);
        return;
    }
    len = asprintf(&text, "id: %llu\nevent: %s\ndata: %s\n\n", (unsigned long long)hub.head, name,
                   json);
    if (len < 0) {
        pthread_mutex_unlock(&hub.lock);
        return;
    }
    struct event *slot = &hub.ring[hub.head % EVENTS_RING];
    free(slot->text);
    slot->seq = hub.head++;
    slot->text = text;
    slot->len = (size_t)len;
    pthread_mutex_unlock(&hub.lock);
    wake_streams();
}

/* Copies the rest of a comment line into buf; true when it was sent completely. */
static size_t
put_note(struct stream *s, const char *note, size_t note_len, char *buf, size_t max, bool *done)
{
    size_t n = note_len - s->note_off;

    if (n > max)
        n = max;
    memcpy(buf, note + s->note_off, n);
    s->note_off += n;
    *done = s->note_off == note_len;
    if (*done)
        s->note_off = 0;
    return n;
}

static ssize_t
stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *s = cls;
    uint64_t oldest;
    ssize_t n = 0;
    bool done;
    (void)pos;

    pthread_mutex_lock(&hub.lock);
    if (hub.closing) {
        pthread_mutex_unlock(&hub.lock);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    oldest = hub.head > EVENTS_RING ? hub.head - EVENTS_RING : 1;
    if (s->off == 0 && s->next < oldest) {
        s->next = oldest;
        s->missed = true;
    }
    if (s->off == 0 && s->missed) {
        n = (ssize_t)put_note(s, missed_line, sizeof(missed_line) - 1, buf, max, &done);
        if (done)
            s->missed = false;
    } else if (s->off == 0 && s->keepalive && s->next == hub.head) {
        n = (ssize_t)put_note(s, keepalive_line, sizeof(keepalive_line) - 1, buf, max, &done);
        if (done)
            s->keepalive = false;
    } else if (s->next < hub.head) {
        const struct event *ev = &hub.ring[s->next % EVENTS_RING];
        size_t take = ev->len - s->off;

        if (take > max)
            take = max;
        memcpy(buf, ev->text + s->off, take);
        s->off += take;
        if (s->off == ev->len) {
            s->off = 0;
            s->next++;
        }
        s->keepalive = false;
        n = (ssize_t)take;
    } else {
        /* Nothing to send: park the connection until the next publish or keepalive. */
        s->suspended = true;
        MHD_suspend_connection(s->conn);
    }
    pthread_mutex_unlock(&hub.lock);
    return n;
}

static void
stream_free(void *cls)
{
    struct stream *s = cls;

    pthread_mutex_lock(&hub.lock);
    for (struct stream **p = &hub.streams; *p; p = &(*p)->link) {
        if (*p == s) {
            *p = s->link;
            break;
        }
    }
    pthread_mutex_unlock(&hub.lock);
    free(s);
}

int
events_stream_new(struct MHD_Connection *conn, const char *who, struct MHD_Response **ret)
{
    struct MHD_Response *resp;
    struct stream *s = calloc(1, sizeof(*s));
    size_t all = 0, mine = 0;

    if (!s)
        return -ENOMEM;
    s->conn = conn;
    snprintf(s->who, sizeof(s->who), "%s", who);
    pthread_mutex_lock(&hub.lock);
    if (hub.closing) {
        pthread_mutex_unlock(&hub.lock);
        free(s);
        return -ESHUTDOWN;
    }
    for (const struct stream *o = hub.streams; o; o = o->link) {
        all++;
        mine += strcmp(o->who, s->who) == 0;
    }
    if (all >= EVENTS_MAX_STREAMS || (s->who[0] && mine >= EVENTS_MAX_PER_WHO)) {
        pthread_mutex_unlock(&hub.lock);
        free(s);
        return all >= EVENTS_MAX_STREAMS ? -EUSERS : -EMFILE;
    }
    s->next = hub.head;
    s->keepalive = true; /* a first line at once, so that clients see the stream is open */
    /* Counted from now on, so that two opening at once cannot both pass the caps. */
    s->link = hub.streams;
    hub.streams = s;
    pthread_mutex_unlock(&hub.lock);

    resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK, stream_read, s,
                                             stream_free);
    if (!resp) {
        stream_free(s);
        return -ENOMEM;
    }
    *ret = resp;
    return 0;
}

/* The API's feed: each change as JSON text. */
static void
on_change(const char *event, const char *json, void *opaque)
{
    (void)opaque;
    events_publish(event, json);
}

static void *
keepalive_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&hub.lock);
    while (!hub.stopping) {
        struct timespec until;

        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += EVENTS_KEEPALIVE_S;
        pthread_cond_timedwait(&hub.wake, &hub.lock, &until);
        if (hub.stopping)
            break;
        for (struct stream *s = hub.streams; s; s = s->link)
            s->keepalive = true;
        pthread_mutex_unlock(&hub.lock);
        wake_streams();
        pthread_mutex_lock(&hub.lock);
    }
    pthread_mutex_unlock(&hub.lock);
    return NULL;
}

int
events_start(void)
{
    int r;

    if (pthread_create(&hub.keepalive_thread, NULL, keepalive_main, NULL) != 0)
        return -EAGAIN;
    hub.started = true;
    r = api_feed_start(on_change, NULL);
    if (r < 0)
        return r;
    hub.feeding = true;
    return 0;
}

void
events_shutdown(void)
{
    pthread_mutex_lock(&hub.lock);
    hub.closing = true;
    pthread_mutex_unlock(&hub.lock);
    wake_streams();
}

void
events_stop(void)
{
    if (hub.feeding)
        api_feed_stop();
    hub.feeding = false;
    events_shutdown();
    if (hub.started) {
        pthread_mutex_lock(&hub.lock);
        hub.stopping = true;
        pthread_cond_broadcast(&hub.wake);
        pthread_mutex_unlock(&hub.lock);
        pthread_join(hub.keepalive_thread, NULL);
        hub.started = false;
    }
    for (size_t i = 0; i < EVENTS_RING; i++) {
        free(hub.ring[i].text);
        hub.ring[i].text = NULL;
    }
}
