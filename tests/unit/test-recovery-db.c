/* Unit tests: instant recoveries and the backups they lock; the mounts' rows. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "db/recovery.h"
#include "tap.h"

/* The recovery that locks backup id ("" when none; NULL on error), as a new string. */
static char *
locker(struct db *db, const char *id)
{
    char *rid = NULL, *name = NULL;
    int r = db_recovery_locked_by(db, id, &rid, &name);

    if (r < 0)
        return NULL;
    if (r == 0)
        return strdup("");
    free(rid);
    return name;
}

static int
locked_by(struct db *db, const char *id, const char *want)
{
    char *got = locker(db, id);
    int same = got && strcmp(got, want) == 0;

    if (!same)
        fprintf(stderr, "# backup %s: locked by '%s', not '%s'\n", id, got ? got : "(error)", want);
    free(got);
    return same;
}

int
main(void)
{
    char dir[] = "/tmp/vv-recovery-test-XXXXXX";
    char path[256], cmd[300];
    struct db *db = NULL;
    struct conf_recovery *got = NULL, **list = NULL;
    char *chain[] = {(char *)"inc1", (char *)"full"};
    char **ids = NULL, **exports = NULL;
    size_t n = 0;
    const struct conf_recovery a = {
        .id = (char *)"r1",
        .backup_id = (char *)"inc1",
        .name = (char *)"web-ir",
        .target_dir = (char *)"/restore/a",
        .state = CONF_RECOVERY_MOVING,
        .created_ms = 1000,
    };
    struct conf_recovery b = a;

    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof(path), "%s/t.db", dir);
    ok(db_open(path, &db) == 0, "open");

    ok(locked_by(db, "full", ""), "nothing is locked at first");
    ok(db_recovery_insert(db, &a, chain, 2) == 0, "a recovery with its chain");
    ok(locked_by(db, "inc1", "web-ir") && locked_by(db, "full", "web-ir"),
       "the point and the backup it stands on are locked, naming the domain");
    ok(locked_by(db, "other", ""), "other backups are not");
    ok(db_recovery_insert(db, &a, chain, 2) < 0, "an id is taken once");

    ok(db_recovery_get(db, "r1", &got) == 0 && got->state == CONF_RECOVERY_MOVING &&
           !got->domain_uuid && strcmp(got->target_dir, "/restore/a") == 0,
       "read back as written");
    conf_recovery_free(got);
    got = NULL;
    ok(db_recovery_get(db, "nope", &got) == -ENOENT, "an unknown recovery is -ENOENT");

    ok(db_recovery_set(db, "r1", CONF_RECOVERY_STOPPED, "u-1") == 0, "stopped, with its domain");
    ok(locked_by(db, "full", "web-ir"), "a stopped move still locks");
    ok(db_recovery_list_locking(db, &list, &n) == 0 && n == 1 &&
           strcmp(list[0]->domain_uuid, "u-1") == 0,
       "it is listed among those that lock");
    for (size_t i = 0; i < n; i++)
        conf_recovery_free(list[i]);
    free(list);

    b.id = (char *)"r2";
    b.name = (char *)"web-ir2";
    b.created_ms = 2000;
    ok(db_recovery_insert(db, &b, chain + 1, 1) == 0, "a second recovery of the full");
    ok(db_recovery_set(db, "r1", CONF_RECOVERY_DONE, NULL) == 0, "the first one is done");
    ok(locked_by(db, "inc1", "") && locked_by(db, "full", "web-ir2"),
       "its locks go, the second one's stay");
    ok(db_recovery_get(db, "r1", &got) == 0 && strcmp(got->domain_uuid, "u-1") == 0,
       "a state change without a UUID keeps the UUID");
    conf_recovery_free(got);
    ok(db_recovery_set(db, "r2", CONF_RECOVERY_FAILED, NULL) == 0 && locked_by(db, "full", ""),
       "a failed recovery locks nothing");

    ok(db_mount_insert(db, "m1", "full", "123 /v/mounts/m1-vda.sock\n", 5) == 0, "a mount");
    ok(db_mount_list(db, &ids, &exports, &n) == 0 && n == 1 && strcmp(ids[0], "m1") == 0 &&
           strcmp(exports[0], "123 /v/mounts/m1-vda.sock\n") == 0 && !ids[1],
       "listed with its exports");
    for (size_t i = 0; i < n; i++) {
        free(ids[i]);
        free(exports[i]);
    }
    free(ids);
    free(exports);
    ok(db_mount_delete(db, "m1") == 0 && db_mount_list(db, &ids, &exports, &n) == 0 && n == 0,
       "and gone once deleted");
    free(ids);
    free(exports);

    db_close(db);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return tap_done();
}
