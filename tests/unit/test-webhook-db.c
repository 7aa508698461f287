/* Unit tests: the webhooks and webhook_deliveries tables (records, secrets, due order, cascade). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "db/webhook.h"
#include "tap.h"

#define T0 1700000000000LL

static struct conf_webhook
hook(const char *id, const char *url, uint32_t events, const char *secret)
{
    struct conf_webhook w = {.url = (char *)url, .events = events, .secret = (char *)secret};

    snprintf(w.id, sizeof(w.id), "%s", id);
    w.created_ms = w.updated_ms = T0;
    return w;
}

static struct conf_webhook_delivery
delivery(const char *id, const char *webhook_id, int64_t due)
{
    struct conf_webhook_delivery d = {.event = CONF_WEBHOOK_BACKUP_COMPLETED,
                                      .payload = (char *)"{\"event\":\"backup.completed\"}",
                                      .state = CONF_DELIVERY_PENDING,
                                      .next_attempt_ms = due,
                                      .created_ms = T0,
                                      .updated_ms = T0};

    snprintf(d.id, sizeof(d.id), "%s", id);
    snprintf(d.webhook_id, sizeof(d.webhook_id), "%s", webhook_id);
    return d;
}

int
main(void)
{
    char dir[] = "/tmp/vv-webhook-test-XXXXXX";
    char path[256], cmd[300];
    struct db *db = NULL;
    struct conf_webhook w, *list = NULL;
    struct conf_webhook_delivery d, *dl = NULL;
    size_t n = 0;
    int64_t next = -1, deleted = -1;
    const uint32_t job_failed = UINT32_C(1) << CONF_WEBHOOK_JOB_FAILED;

    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof(path), "%s/t.db", dir);
    ok(db_open(path, &db) == 0, "open");

    w = hook("a1", "https://a.example/h", job_failed, "sa");
    ok(db_webhook_put(db, &w) == 0, "store a webhook");
    w = hook("b2", "http://b.example/h", CONF_WEBHOOK_ALL_EVENTS, "sb");
    ok(db_webhook_put(db, &w) == 0, "store another");
    ok(db_webhook_put(db, &w) < 0, "an id is stored once");

    ok(db_webhook_get(db, "a1", false, &w) == 0 && !w.secret && w.events == job_failed &&
           strcmp(w.url, "https://a.example/h") == 0,
       "read back without its secret");
    conf_webhook_clear(&w);
    ok(db_webhook_get(db, "a1", true, &w) == 0 && w.secret && strcmp(w.secret, "sa") == 0,
       "and with it, for a delivery");
    conf_webhook_clear(&w);
    ok(db_webhook_get(db, "zz", false, &w) == -ENOENT, "no such webhook: -ENOENT");

    ok(db_webhook_list(db, 0, 1, &list, &n, &next) == 0 && n == 1 &&
           strcmp(list[0].id, "b2") == 0 && next > 0 && !list[0].secret,
       "a page of one, newest first, without secrets");
    conf_webhook_list_free(list, n);
    ok(db_webhook_list(db, next, 1, &list, &n, &next) == 0 && n == 1 &&
           strcmp(list[0].id, "a1") == 0 && next == 0,
       "the last page");
    conf_webhook_list_free(list, n);

    ok(db_webhook_list_for(db, CONF_WEBHOOK_JOB_FAILED, &list, &n) == 0 && n == 2,
       "both want job.failed");
    conf_webhook_list_free(list, n);
    ok(db_webhook_list_for(db, CONF_WEBHOOK_CHECKPOINT_BROKEN, &list, &n) == 0 && n == 1 &&
           strcmp(list[0].id, "b2") == 0 && list[0].secret && strcmp(list[0].secret, "sb") == 0,
       "only \"*\" wants checkpoint.broken, with its secret");
    conf_webhook_list_free(list, n);

    w = hook("a1", "https://a2.example/h", CONF_WEBHOOK_ALL_EVENTS, NULL);
    w.updated_ms = T0 + 5;
    ok(db_webhook_update(db, &w) == 0, "change without a secret");
    ok(db_webhook_get(db, "a1", true, &w) == 0 && strcmp(w.secret, "sa") == 0 &&
           strcmp(w.url, "https://a2.example/h") == 0 && w.updated_ms == T0 + 5,
       "the secret is kept, the rest changed");
    conf_webhook_clear(&w);
    w = hook("zz", "https://x/", 0, NULL);
    ok(db_webhook_update(db, &w) == -ENOENT, "changing no such webhook: -ENOENT");

    ok(db_delivery_next(db, &d) == -ENOENT, "nothing pending");
    d = delivery("d1", "a1", T0 + 300);
    ok(db_delivery_put(db, &d) == 0, "a delivery");
    d = delivery("d2", "b2", T0 + 100);
    ok(db_delivery_put(db, &d) == 0, "another, due earlier");
    d = delivery("d3", "nope", T0);
    ok(db_delivery_put(db, &d) < 0, "no delivery for no webhook");
    ok(db_delivery_next(db, &d) == 0 && strcmp(d.id, "d2") == 0 && d.attempts == 0 &&
           d.event == CONF_WEBHOOK_BACKUP_COMPLETED,
       "the one due first comes first");

    d.attempts = 1;
    d.last_status = 500;
    d.last_error = strdup("the receiver answered HTTP 500");
    d.next_attempt_ms = T0 + 1000;
    d.updated_ms = T0 + 100;
    ok(db_delivery_update(db, &d) == 0, "record a failed attempt");
    conf_webhook_delivery_clear(&d);
    ok(db_delivery_next(db, &d) == 0 && strcmp(d.id, "d1") == 0, "now the other is due first");
    d.state = CONF_DELIVERY_DELIVERED;
    d.attempts = 1;
    d.last_status = 204;
    d.updated_ms = T0 + 300;
    ok(db_delivery_update(db, &d) == 0, "record a delivery");
    conf_webhook_delivery_clear(&d);
    ok(db_delivery_next(db, &d) == 0 && strcmp(d.id, "d2") == 0 && d.last_status == 500 &&
           d.attempts == 1 && strstr(d.last_error, "500"),
       "the pending one is read back as recorded");
    conf_webhook_delivery_clear(&d);

    ok(db_delivery_list(db, "a1", 0, 0, &dl, &n, &next) == 0 && n == 1 &&
           dl[0].state == CONF_DELIVERY_DELIVERED && dl[0].last_status == 204 && next == 0,
       "a webhook's deliveries");
    conf_webhook_delivery_list_free(dl, n);

    ok(db_delivery_prune(db, T0 + 200, &deleted) == 0 && deleted == 0,
       "nothing ended before the cut");
    ok(db_delivery_prune(db, T0 + 400, &deleted) == 0 && deleted == 1,
       "the delivered one is pruned; the pending one is not");

    ok(db_webhook_delete(db, "b2") == 0, "delete a webhook");
    ok(db_delivery_next(db, &d) == -ENOENT, "its deliveries went with it");
    ok(db_webhook_delete(db, "b2") == -ENOENT, "deleting it again: -ENOENT");

    db_close(db);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return tap_done();
}
