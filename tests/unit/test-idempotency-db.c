/* Unit tests: the idempotency table (claims, kept answers, scopes, expiry, restarts). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "db/idempotency.h"
#include "tap.h"

#define DAY   (24 * 3600 * 1000LL)
#define T0    1700000000000LL
#define FP_A  "aaaa"
#define FP_B  "bbbb"
#define SCOPE "token:0123"

/* Claims key at now: the claim, or -1 on error; *a gets a kept answer (the caller clears it). */
static int
claim(struct db *db, const char *scope, const char *key, const char *fp, long long now,
      struct conf_idem_answer *a)
{
    enum conf_idem_claim c;

    memset(a, 0, sizeof(*a));
    if (db_idem_claim(db, scope, key, fp, now, now + DAY, &c, a) < 0)
        return -1;
    return (int)c;
}

int
main(void)
{
    char dir[] = "/tmp/vv-idem-test-XXXXXX";
    char path[256], cmd[300];
    struct db *db = NULL;
    struct conf_idem_answer a = {0};
    static const char body[] = "{\"id\":\"b1\"}\0tail"; /* an answer's bytes are kept as they are */
    const struct conf_idem_answer answer = {
        .status = 202,
        .content_type = (char *)"application/json",
        .location = (char *)"/v1/jobs/j1",
        .body = (char *)body,
        .body_len = sizeof(body) - 1,
    };
    int64_t deleted = -1;

    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof(path), "%s/t.db", dir);
    ok(db_open(path, &db) == 0, "open");

    ok(claim(db, SCOPE, "k1", FP_A, T0, &a) == CONF_IDEM_NEW, "a new key is claimed");
    ok(claim(db, SCOPE, "k1", FP_A, T0 + 1, &a) == CONF_IDEM_IN_USE,
       "the same request again while the first is answered: in use");
    ok(claim(db, SCOPE, "k1", FP_B, T0 + 1, &a) == CONF_IDEM_REUSED,
       "another request with the key while the first is answered: reused");
    ok(claim(db, "uid:1000", "k1", FP_B, T0 + 1, &a) == CONF_IDEM_NEW,
       "the same key in another scope is another key");
    ok(claim(db, "", "k1", FP_B, T0 + 1, &a) == CONF_IDEM_NEW, "the shared scope is a scope too");

    ok(db_idem_store(db, SCOPE, "k1", &answer, T0 + 10 + DAY) == 0, "the answer is stored");
    ok(db_idem_store(db, SCOPE, "k1", &answer, T0 + 10 + DAY) == -ENOENT,
       "a second store finds no claim");
    ok(db_idem_store(db, SCOPE, "nokey", &answer, T0 + DAY) == -ENOENT,
       "a store without a claim is refused");

    ok(claim(db, SCOPE, "k1", FP_A, T0 + 20, &a) == CONF_IDEM_DONE, "a retry finds the answer");
    ok(a.status == 202 && a.content_type && strcmp(a.content_type, "application/json") == 0 &&
           a.location && strcmp(a.location, "/v1/jobs/j1") == 0 && a.body_len == sizeof(body) - 1 &&
           memcmp(a.body, body, a.body_len) == 0 && a.body[a.body_len] == '\0',
       "status, headers and body come back byte for byte");
    conf_idem_answer_clear(&a);
    ok(claim(db, SCOPE, "k1", FP_B, T0 + 20, &a) == CONF_IDEM_REUSED,
       "another request with an answered key: reused");

    ok(db_idem_release(db, SCOPE, "k1") == 0 &&
           claim(db, SCOPE, "k1", FP_A, T0 + 30, &a) == CONF_IDEM_DONE,
       "a release leaves a kept answer alone");
    conf_idem_answer_clear(&a);

    ok(db_idem_release(db, "uid:1000", "k1") == 0 &&
           claim(db, "uid:1000", "k1", FP_A, T0 + 30, &a) == CONF_IDEM_NEW,
       "a released claim frees the key, for another request too");

    struct conf_idem_answer empty = {.status = 400};
    ok(db_idem_store(db, "uid:1000", "k1", &empty, T0 + 40 + DAY) == 0 &&
           claim(db, "uid:1000", "k1", FP_A, T0 + 50, &a) == CONF_IDEM_DONE && a.status == 400 &&
           !a.body && a.body_len == 0 && !a.location && !a.content_type,
       "an answer without body or headers is kept as such");
    conf_idem_answer_clear(&a);

    ok(claim(db, SCOPE, "k1", FP_A, T0 + 10 + DAY, &a) == CONF_IDEM_NEW,
       "once expired, the key is claimed again, even before a prune");
    ok(db_idem_prune(db, T0 + 10 + DAY, false, &deleted) == 0 && deleted == 1,
       "a prune deletes the expired rows only (%lld)", (long long)deleted);
    ok(claim(db, SCOPE, "k1", FP_A, T0 + 11 + DAY, &a) == CONF_IDEM_IN_USE,
       "a prune keeps the live claims");

    db_close(db);
    db = NULL;
    ok(db_open(path, &db) == 0, "reopen, as a restart does");
    ok(claim(db, SCOPE, "k1", FP_A, T0 + 12 + DAY, &a) == CONF_IDEM_IN_USE,
       "a claim outlives the handle until the start drops it");
    ok(db_idem_prune(db, T0 + 12 + DAY, true, &deleted) == 0 && deleted == 1,
       "the start's prune drops the unsettled claim (%lld)", (long long)deleted);
    ok(claim(db, SCOPE, "k1", FP_B, T0 + 13 + DAY, &a) == CONF_IDEM_NEW,
       "the dropped claim's key is free");
    ok(claim(db, "uid:1000", "k1", FP_A, T0 + 13 + DAY, &a) == CONF_IDEM_DONE && a.status == 400,
       "a kept answer outlives the restart");
    conf_idem_answer_clear(&a);
    ok(claim(db, "uid:1000", "k1", FP_A, T0 + 40 + DAY, &a) == CONF_IDEM_NEW,
       "and ends 24 hours after it was stored");

    db_close(db);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return tap_done();
}
