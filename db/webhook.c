/* The webhooks and webhook_deliveries tables (see webhook.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "db_priv.h"
#include "err.h"
#include "webhook.h"

#define LIST_DEFAULT 100

#define WEBHOOK_COLUMNS "seq, id, url, events, created_ms, updated_ms, secret"
#define DELIVERY_COLUMNS                                                                           \
    "seq, id, webhook_id, event, payload, state, attempts, next_attempt_ms, last_status,"          \
    " last_error, created_ms, updated_ms"

/* Copies column i, text of at most CONF_WEBHOOK_ID_LEN bytes, into id. */
static void
column_id(sqlite3_stmt *st, int i, char id[CONF_WEBHOOK_ID_LEN + 1])
{
    const unsigned char *s = sqlite3_column_text(st, i);

    snprintf(id, CONF_WEBHOOK_ID_LEN + 1, "%s", s ? (const char *)s : "");
}

/* Fills *w from the current row (WEBHOOK_COLUMNS order); the secret only when with_secret. */
static int
read_webhook(sqlite3_stmt *st, bool with_secret, struct conf_webhook *w)
{
    bool oom = false;

    memset(w, 0, sizeof(*w));
    w->seq = sqlite3_column_int64(st, 0);
    column_id(st, 1, w->id);
    w->url = db_column_dup(st, 2, &oom);
    w->events = conf_webhook_events_parse((const char *)sqlite3_column_text(st, 3));
    w->created_ms = sqlite3_column_int64(st, 4);
    w->updated_ms = sqlite3_column_int64(st, 5);
    if (with_secret)
        w->secret = db_column_dup(st, 6, &oom);
    if (oom) {
        conf_webhook_clear(w);
        return -ENOMEM;
    }
    return 0;
}

int
db_webhook_put(struct db *db, const struct conf_webhook *w)
{
    static const char sql[] = "INSERT INTO webhooks (id, url, events, secret, created_ms,"
                              "  updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    char events[CONF_WEBHOOK_EVENTS_MAX];
    int r, rc;

    conf_webhook_events_format(w->events, events, sizeof(events));
    DB_LOCK_SCOPE(db);
    r = db_prepare(db, sql, &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, w->id);
    db_bind_text(st, 2, w->url);
    db_bind_text(st, 3, events);
    db_bind_text(st, 4, w->secret ? w->secret : "");
    sqlite3_bind_int64(st, 5, w->created_ms);
    sqlite3_bind_int64(st, 6, w->updated_ms);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "store webhook");
    return 0;
}

int
db_webhook_update(struct db *db, const struct conf_webhook *w)
{
    static const char sql[] = "UPDATE webhooks SET url = ?2, events = ?3,"
                              "  secret = coalesce(?4, secret), updated_ms = ?5 WHERE id = ?1";
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    char events[CONF_WEBHOOK_EVENTS_MAX];
    int r, rc;

    conf_webhook_events_format(w->events, events, sizeof(events));
    DB_LOCK_SCOPE(db);
    r = db_prepare(db, sql, &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, w->id);
    db_bind_text(st, 2, w->url);
    db_bind_text(st, 3, events);
    db_bind_text(st, 4, w->secret);
    sqlite3_bind_int64(st, 5, w->updated_ms);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "update webhook");
    if (sqlite3_changes(db->h) == 0)
        return err_set(-ENOENT, "no webhook '%s'", w->id);
    return 0;
}

int
db_webhook_get(struct db *db, const char *id, bool with_secret, struct conf_webhook *ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, "SELECT " WEBHOOK_COLUMNS " FROM webhooks WHERE id = ?1", &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return err_set(-ENOENT, "no webhook '%s'", id);
    if (rc != SQLITE_ROW)
        return db_error(db, rc, "read webhook");
    return read_webhook(st, with_secret, ret);
}

/* Reads every row of st into a new array (read_webhook). */
static int
read_webhooks(struct db *db, sqlite3_stmt *st, unsigned limit, bool with_secret,
              struct conf_webhook **ret, size_t *ret_n, bool *ret_more)
{
    struct conf_webhook *list = NULL;
    size_t n = 0, cap = 0;
    int r, rc;

    *ret_more = false;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (limit && n == limit) {
            *ret_more = true;
            break;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct conf_webhook *nl = realloc(list, ncap * sizeof(*nl));
            if (!nl) {
                conf_webhook_list_free(list, n);
                return -ENOMEM;
            }
            list = nl;
            cap = ncap;
        }
        r = read_webhook(st, with_secret, &list[n]);
        if (r < 0) {
            conf_webhook_list_free(list, n);
            return r;
        }
        n++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        conf_webhook_list_free(list, n);
        return db_error(db, rc, "list webhooks");
    }
    *ret = list;
    *ret_n = n;
    return 0;
}

int
db_webhook_list(struct db *db, int64_t before_seq, unsigned limit, struct conf_webhook **ret,
                size_t *ret_n, int64_t *ret_next)
{
    static const char sql[] = "SELECT " WEBHOOK_COLUMNS " FROM webhooks"
                              " WHERE (?1 IS NULL OR seq < ?1) ORDER BY seq DESC LIMIT ?2";
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    bool more = false;
    int r;

    if (!limit)
        limit = LIST_DEFAULT;
    DB_LOCK_SCOPE(db);
    r = db_prepare(db, sql, &st);
    if (r < 0)
        return r;
    db_bind_opt_int(st, 1, before_seq);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)limit + 1);
    r = read_webhooks(db, st, limit, false, ret, ret_n, &more);
    if (r < 0)
        return r;
    *ret_next = more && *ret_n ? (*ret)[*ret_n - 1].seq : 0;
    return 0;
}

int
db_webhook_list_for(struct db *db, enum conf_webhook_event ev, struct conf_webhook **ret,
                    size_t *ret_n)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    struct conf_webhook *all = NULL;
    size_t n = 0, kept = 0;
    bool more;
    int r;

    {
        DB_LOCK_SCOPE(db);
        r = db_prepare(db, "SELECT " WEBHOOK_COLUMNS " FROM webhooks ORDER BY seq", &st);
        if (r < 0)
            return r;
        r = read_webhooks(db, st, 0, true, &all, &n, &more);
        if (r < 0)
            return r;
    }
    for (size_t i = 0; i < n; i++) {
        if (conf_webhook_wants(all[i].events, ev))
            all[kept++] = all[i];
        else
            conf_webhook_clear(&all[i]);
    }
    *ret = all;
    *ret_n = kept;
    return 0;
}

int
db_webhook_delete(struct db *db, const char *id)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, "DELETE FROM webhooks WHERE id = ?1", &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, id);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "delete webhook");
    if (sqlite3_changes(db->h) == 0)
        return err_set(-ENOENT, "no webhook '%s'", id);
    return 0;
}

int
db_delivery_put(struct db *db, const struct conf_webhook_delivery *d)
{
    static const char sql[] =
        "INSERT INTO webhook_deliveries (id, webhook_id, event, payload, state, attempts,"
        "  next_attempt_ms, last_status, last_error, created_ms, updated_ms)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, sql, &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, d->id);
    db_bind_text(st, 2, d->webhook_id);
    db_bind_text(st, 3, conf_webhook_event_to_string(d->event));
    db_bind_text(st, 4, d->payload);
    db_bind_text(st, 5, conf_delivery_state_to_string(d->state));
    sqlite3_bind_int64(st, 6, d->attempts);
    sqlite3_bind_int64(st, 7, d->next_attempt_ms);
    db_bind_opt_int(st, 8, d->last_status);
    db_bind_text(st, 9, d->last_error);
    sqlite3_bind_int64(st, 10, d->created_ms);
    sqlite3_bind_int64(st, 11, d->updated_ms);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "store webhook delivery");
    return 0;
}

/* Fills *d from the current row (DELIVERY_COLUMNS order). */
static int
read_delivery(sqlite3_stmt *st, struct conf_webhook_delivery *d)
{
    bool oom = false;

    memset(d, 0, sizeof(*d));
    d->seq = sqlite3_column_int64(st, 0);
    column_id(st, 1, d->id);
    column_id(st, 2, d->webhook_id);
    if (conf_webhook_event_from_string((const char *)sqlite3_column_text(st, 3), &d->event) < 0)
        d->event = CONF_WEBHOOK_EVENT_LAST;
    d->payload = db_column_dup(st, 4, &oom);
    if (conf_delivery_state_from_string((const char *)sqlite3_column_text(st, 5), &d->state) < 0)
        d->state = CONF_DELIVERY_FAILED;
    d->attempts = (unsigned)sqlite3_column_int64(st, 6);
    d->next_attempt_ms = sqlite3_column_int64(st, 7);
    d->last_status = sqlite3_column_int(st, 8);
    d->last_error = db_column_dup(st, 9, &oom);
    d->created_ms = sqlite3_column_int64(st, 10);
    d->updated_ms = sqlite3_column_int64(st, 11);
    if (oom || !d->payload) {
        conf_webhook_delivery_clear(d);
        return -ENOMEM;
    }
    return 0;
}

int
db_delivery_next(struct db *db, struct conf_webhook_delivery *ret)
{
    static const char sql[] = "SELECT " DELIVERY_COLUMNS " FROM webhook_deliveries"
                              " WHERE state = 'pending' ORDER BY next_attempt_ms, seq LIMIT 1";
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, sql, &st);
    if (r < 0)
        return r;
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return -ENOENT;
    if (rc != SQLITE_ROW)
        return db_error(db, rc, "read the next webhook delivery");
    return read_delivery(st, ret);
}

int
db_delivery_update(struct db *db, const struct conf_webhook_delivery *d)
{
    static const char sql[] = "UPDATE webhook_deliveries SET state = ?2, attempts = ?3,"
                              "  next_attempt_ms = ?4, last_status = ?5, last_error = ?6,"
                              "  updated_ms = ?7 WHERE id = ?1";
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, sql, &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, d->id);
    db_bind_text(st, 2, conf_delivery_state_to_string(d->state));
    sqlite3_bind_int64(st, 3, d->attempts);
    sqlite3_bind_int64(st, 4, d->next_attempt_ms);
    db_bind_opt_int(st, 5, d->last_status);
    db_bind_text(st, 6, d->last_error);
    sqlite3_bind_int64(st, 7, d->updated_ms);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "update webhook delivery");
    return 0;
}

int
db_delivery_list(struct db *db, const char *webhook_id, int64_t before_seq, unsigned limit,
                 struct conf_webhook_delivery **ret, size_t *ret_n, int64_t *ret_next)
{
    static const char sql[] = "SELECT " DELIVERY_COLUMNS " FROM webhook_deliveries"
                              " WHERE webhook_id = ?1 AND (?2 IS NULL OR seq < ?2)"
                              " ORDER BY seq DESC LIMIT ?3";
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    struct conf_webhook_delivery *list = NULL;
    size_t n = 0, cap = 0;
    bool more = false;
    int r, rc;

    if (!limit)
        limit = LIST_DEFAULT;
    DB_LOCK_SCOPE(db);
    r = db_prepare(db, sql, &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, webhook_id);
    db_bind_opt_int(st, 2, before_seq);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)limit + 1);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == limit) {
            more = true;
            break;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct conf_webhook_delivery *nl = realloc(list, ncap * sizeof(*nl));
            if (!nl) {
                conf_webhook_delivery_list_free(list, n);
                return -ENOMEM;
            }
            list = nl;
            cap = ncap;
        }
        r = read_delivery(st, &list[n]);
        if (r < 0) {
            conf_webhook_delivery_list_free(list, n);
            return r;
        }
        n++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        conf_webhook_delivery_list_free(list, n);
        return db_error(db, rc, "list webhook deliveries");
    }
    *ret = list;
    *ret_n = n;
    *ret_next = more && n ? list[n - 1].seq : 0;
    return 0;
}

int
db_delivery_prune(struct db *db, int64_t before_ms, int64_t *ret_deleted)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db,
                   "DELETE FROM webhook_deliveries WHERE state IN ('delivered', 'failed')"
                   " AND updated_ms < ?1",
                   &st);
    if (r < 0)
        return r;
    sqlite3_bind_int64(st, 1, before_ms);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "prune webhook deliveries");
    if (ret_deleted)
        *ret_deleted = sqlite3_changes(db->h);
    return 0;
}
