/* Unit tests: the checkpoints table. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/checkpoint.h"
#include "db/db.h"
#include "tap.h"

#define DOM   "6695eb01-f6a4-8304-79aa-97f2502e193f"
#define OTHER "00000000-0000-0000-0000-000000000001"

static struct db_checkpoint
row(const char *uuid, const char *name, const char *parent, long long created, const char *state)
{
    struct db_checkpoint c = {
        .name = (char *)name,
        .parent = (char *)parent,
        .xml = (char *)"<domaincheckpoint/>",
        .created = created,
    };
    snprintf(c.domain_uuid, sizeof(c.domain_uuid), "%s", uuid);
    if (conf_checkpoint_state_from_string(state, &c.state) < 0)
        c.state = CONF_CHECKPOINT_STATE_LAST; /* a state the table does not know */
    return c;
}

int
main(void)
{
    char dir[] = "/tmp/vv-cpdb-test-XXXXXX";
    char path[256], cmd[300];
    struct db *db = NULL;
    struct db_checkpoint *list = NULL, *one = NULL;
    size_t n = 0;

    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof(path), "%s/t.db", dir);
    if (db_open(path, &db) < 0)
        return 1;

    /* Stored out of creation order: the list comes back ordered by creation time. */
    struct db_checkpoint rows[] = {
        row(DOM, "b", "a", 20, "ok"),
        row(DOM, "a", NULL, 10, "ok"),
        row(DOM, "c", "b", 20, "orphaned"),
        row(OTHER, "a", NULL, 1, "ok"),
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        ok(db_checkpoint_put(db, &rows[i]) == 0, "put %s/%s", rows[i].domain_uuid, rows[i].name);

    ok(db_checkpoint_list(db, DOM, &list, &n) == 0 && n == 3 && strcmp(list[0].name, "a") == 0 &&
           strcmp(list[1].name, "b") == 0 && strcmp(list[2].name, "c") == 0 && !list[0].parent &&
           strcmp(list[1].parent, "a") == 0,
       "listed per domain, by creation time then order of storing");
    db_checkpoint_list_free(list, n);

    struct db_checkpoint bad = row(DOM, "x", NULL, 1, "fine");
    ok(db_checkpoint_put(db, &bad) < 0, "an unknown state is refused");

    ok(db_checkpoint_set_state(db, DOM, "b", CONF_CHECKPOINT_BROKEN, "bitmap gone") == 0 &&
           db_checkpoint_get(db, DOM, "b", &one) == 0 && one->state == CONF_CHECKPOINT_BROKEN &&
           strcmp(one->reason, "bitmap gone") == 0,
       "state and reason are set");
    db_checkpoint_free(one);
    one = NULL;

    struct db_checkpoint again = row(DOM, "b", NULL, 20, "redefined");
    again.xml = (char *)"<domaincheckpoint><name>b</name></domaincheckpoint>";
    ok(db_checkpoint_put(db, &again) == 0 && db_checkpoint_get(db, DOM, "b", &one) == 0 &&
           one->state == CONF_CHECKPOINT_REDEFINED && !one->parent && !one->reason &&
           strstr(one->xml, "<name>b</name>"),
       "put replaces the row of the same name");
    db_checkpoint_free(one);
    one = NULL;

    ok(db_checkpoint_list(db, DOM, &list, &n) == 0 && n == 3 && strcmp(list[1].name, "b") == 0,
       "a replaced row keeps its place");
    db_checkpoint_list_free(list, n);

    ok(db_checkpoint_get(db, DOM, "zz", &one) == -ENOENT && !one, "get of an unknown name");
    ok(db_checkpoint_set_state(db, DOM, "zz", CONF_CHECKPOINT_OK, NULL) == -ENOENT,
       "set_state of an unknown name");
    ok(db_checkpoint_delete(db, DOM, "a") == 0, "delete");
    ok(db_checkpoint_delete(db, DOM, "a") == -ENOENT, "delete again");
    ok(db_checkpoint_get(db, OTHER, "a", &one) == 0, "the other domain's row of that name stays");
    db_checkpoint_free(one);

    struct db_checkpoint evil = row(DOM, "x'); DROP TABLE checkpoints; --", NULL, 1, "ok");
    ok(db_checkpoint_put(db, &evil) == 0 && db_checkpoint_list(db, DOM, &list, &n) == 0 && n == 3,
       "values are bound, never formatted into SQL");
    db_checkpoint_list_free(list, n);

    /*
     * A chain stored in one go (parents first, all created in one second, as
     * an adoption or a reconcile stores them) keeps that order in `stored`,
     * however fast the puts: the list's key (created, stored, name) puts
     * parents first even when the names sort the other way.
     */
    enum { CHAIN = 40 };
    char names[CHAIN][8];
    for (int i = 0; i < CHAIN; i++) {
        struct db_checkpoint c = row(OTHER, names[i], i ? names[i - 1] : NULL, 30, "ok");

        snprintf(names[i], sizeof(names[i]), "n%02d", CHAIN - i);
        c.name = names[i];
        ok(db_checkpoint_put(db, &c) == 0, "put %s after its parent", names[i]);
    }
    ok(db_checkpoint_list(db, OTHER, &list, &n) == 0 && n == CHAIN + 1, "the chain is listed");
    int64_t last = 0;
    bool rising = true;
    for (int i = 0; i < CHAIN; i++) {
        for (size_t k = 0; k < n; k++) {
            if (strcmp(list[k].name, names[i]) != 0)
                continue;
            rising = rising && list[k].stored > last;
            last = list[k].stored;
        }
    }
    ok(rising, "each checkpoint's stored time is later than its parent's");
    db_checkpoint_list_free(list, n);

    db_close(db);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return tap_done();
}
