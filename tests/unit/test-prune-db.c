/* Unit tests: prune intents and the catalog switch of a prune (db/prune.h), protection. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/backup.h"
#include "db/db.h"
#include "db/prune.h"
#include "tap.h"

#define UUID "6f1c7e2a-0b5d-4c1e-9a43-1d2e3f405162"

/* One row of a chain F <- I1 <- I2, completed, one disk each. */
static int
put(struct db *db, const char *id, const char *parent, int64_t started)
{
    char file[128], backing[64];
    struct conf_backup_disk d = {.target = (char *)"vda", .file = file, .size = 1 << 20};
    struct conf_backup b = {
        .id = (char *)id,
        .domain_uuid = (char *)UUID,
        .domain_name = (char *)"web1",
        .mode = CONF_BACKUP_MODE_PUSH,
        .type = parent ? CONF_BACKUP_TYPE_INCREMENTAL : CONF_BACKUP_TYPE_FULL,
        .state = CONF_BACKUP_STATE_COMPLETED,
        .chain_id = (char *)"F",
        .parent_id = (char *)parent,
        .base_checkpoint = (char *)parent,
        .checkpoint = (char *)id,
        .domain_xml = (char *)"<domain/>",
        .started_at = started,
        .verify_ok = -1,
        .n_disks = 1,
        .disks = &d,
    };
    snprintf(file, sizeof(file), UUID "/F/%s.vda.qcow2", id);
    if (parent) {
        snprintf(backing, sizeof(backing), "%s.vda.qcow2", parent);
        d.backing = backing;
    }
    d.sha256 = (char *)"old";
    return db_backup_insert(db, &b);
}

int
main(void)
{
    char dir[] = "/tmp/vv-prune-db-XXXXXX";
    char path[256];
    struct db *db = NULL;
    struct conf_backup *got = NULL;
    struct db_prune_intent *list = NULL;
    size_t n = 0;

    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof(path), "%s/t.db", dir);
    if (db_open(path, &db) < 0)
        return 1;
    ok(put(db, "F", NULL, 1000) == 0 && put(db, "I1", "F", 2000) == 0 &&
           put(db, "I2", "I1", 3000) == 0,
       "a chain of three");

    ok(db_backup_get(db, "F", &got) == 0 && !got->is_protected, "a backup is not protected");
    conf_backup_free(got);
    ok(db_backup_set_protected(db, "F", true) == 0 && db_backup_get(db, "F", &got) == 0 &&
           got->is_protected,
       "protected");
    conf_backup_free(got);
    ok(db_backup_set_protected(db, "F", false) == 0 && db_backup_get(db, "F", &got) == 0 &&
           !got->is_protected,
       "and no longer");
    conf_backup_free(got);
    ok(db_backup_set_protected(db, "nope", true) == -ENOENT, "protecting a missing one: ENOENT");

    struct db_prune_op ops[] = {
        {DB_PRUNE_WRITE, (char *)UUID "/F/I2.vda.qcow2.part", (char *)UUID "/F/I2.vda.qcow2"},
        {DB_PRUNE_REMOVE, (char *)UUID "/F/F.vda.qcow2", NULL},
        {DB_PRUNE_REMOVE, (char *)UUID "/F/I1.vda.qcow2", NULL},
    };
    struct db_prune_intent it = {
        .id = (char *)"p1", .domain_uuid = (char *)UUID, .ops = ops, .n_ops = 3};
    ok(db_prune_intent_put(db, &it) == 0, "an intent is recorded");
    ok(db_prune_intent_put(db, &it) == -EEXIST, "once");
    ok(db_prune_intent_list(db, &list, &n) == 0 && n == 1 && !list[0].committed &&
           list[0].n_ops == 3 && list[0].ops[0].kind == DB_PRUNE_WRITE &&
           strcmp(list[0].ops[0].target, UUID "/F/I2.vda.qcow2") == 0 &&
           list[0].ops[2].kind == DB_PRUNE_REMOVE && list[0].ops[2].target == NULL,
       "read back prepared, its ops in order");
    for (size_t i = 0; i < n; i++)
        db_prune_intent_clear(&list[i]);
    free(list);

    /* I2 made self-contained; F and I1 go. */
    struct conf_backup_disk nd = {.target = (char *)"vda",
                                  .file = (char *)UUID "/F/I2.vda.qcow2",
                                  .stored_bytes = 4096,
                                  .sha256 = (char *)"new"};
    struct conf_backup i2 = {.id = (char *)"I2",
                             .type = CONF_BACKUP_TYPE_FULL,
                             .stored_bytes = 4096,
                             .n_disks = 1,
                             .disks = &nd};
    struct conf_backup *changed[] = {&i2};
    char *removed[] = {(char *)"I1", (char *)"F"};
    struct conf_backup ghost = {.id = (char *)"ghost", .type = CONF_BACKUP_TYPE_FULL};
    struct conf_backup *bad[] = {&ghost};

    ok(db_prune_commit(db, "p1", bad, 1, removed, 2) == -ENOENT &&
           db_backup_get(db, "F", &got) == 0,
       "a commit naming a missing backup changes nothing");
    conf_backup_free(got);
    ok(db_prune_commit(db, "nope", changed, 1, removed, 2) == -ENOENT &&
           db_backup_get(db, "I1", &got) == 0,
       "a commit of no prepared intent changes nothing");
    conf_backup_free(got);
    got = NULL;
    ok(db_prune_commit(db, "p1", changed, 1, removed, 2) == 0, "the commit");
    ok(db_backup_get(db, "I2", &got) == 0 && got->type == CONF_BACKUP_TYPE_FULL &&
           !got->parent_id && !got->base_checkpoint && got->stored_bytes == 4096 &&
           !got->disks[0].backing && strcmp(got->disks[0].sha256, "new") == 0 &&
           strcmp(got->checkpoint, "I2") == 0 && strcmp(got->chain_id, "F") == 0,
       "the kept one switched: no parent, new checksum, its checkpoint and chain kept");
    conf_backup_free(got);
    got = NULL;
    ok(db_backup_get(db, "F", &got) == -ENOENT && db_backup_get(db, "I1", &got) == -ENOENT,
       "the removed ones are gone");
    ok(db_prune_intent_list(db, &list, &n) == 0 && n == 1 && list[0].committed,
       "the intent is committed");
    for (size_t i = 0; i < n; i++)
        db_prune_intent_clear(&list[i]);
    free(list);
    ok(db_prune_commit(db, "p1", changed, 1, NULL, 0) == -ENOENT, "a commit happens once");
    ok(db_prune_intent_delete(db, "p1") == 0 && db_prune_intent_list(db, &list, &n) == 0 && n == 0,
       "and is forgotten");
    free(list);
    ok(db_prune_intent_delete(db, "p1") == 0, "forgetting twice is no error");
    db_close(db);

    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return tap_done();
}
