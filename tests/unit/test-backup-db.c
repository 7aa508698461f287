/* Unit tests: the backup catalog in SQLite (db/backup.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/backup.h"
#include "db/db.h"
#include "err.h"
#include "tap.h"

#define UUID "6f1c7e2a-0b5d-4c1e-9a43-1d2e3f405162"

static struct conf_backup_disk disk_vda = {
    .target = (char *)"vda",
    .file = (char *)UUID "/c1/b1.vda.qcow2",
    .size = 1 << 20,
};

/* A row as the planner writes it: running, one disk. */
static struct conf_backup
row(const char *id, enum conf_backup_type type, const char *parent, int64_t started)
{
    struct conf_backup b = {
        .id = (char *)id,
        .domain_uuid = (char *)UUID,
        .domain_name = (char *)"web1",
        .mode = CONF_BACKUP_MODE_PUSH,
        .type = type,
        .state = CONF_BACKUP_STATE_RUNNING,
        .chain_id = (char *)"c1",
        .parent_id = (char *)parent,
        .checkpoint = (char *)id,
        .domain_xml = (char *)"<domain/>",
        .started_at = started,
        .verify_ok = -1,
        .n_disks = 1,
        .disks = &disk_vda,
    };
    return b;
}

int
main(void)
{
    char dir[] = "/tmp/vv-backup-db-XXXXXX";
    char path[256], uuid[37];
    struct db *db = NULL;
    struct conf_backup *got = NULL, **list = NULL;
    size_t n = 0, total = 0;
    char **deps = NULL, *name = NULL;

    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof(path), "%s/t.db", dir);
    if (db_open(path, &db) < 0)
        return 1;

    struct conf_backup full = row("b1", CONF_BACKUP_TYPE_FULL, NULL, 1000);
    struct conf_backup inc = row("b2", CONF_BACKUP_TYPE_INCREMENTAL, "b1", 2000);
    struct conf_backup inc2 = row("b3", CONF_BACKUP_TYPE_INCREMENTAL, "b1", 3000);
    ok(db_backup_insert(db, &full) == 0, "insert a full backup");
    ok(db_backup_insert(db, &inc) == 0 && db_backup_insert(db, &inc2) == 0,
       "insert two that depend on it");
    ok(db_backup_insert(db, &full) == -EEXIST, "an id is taken once");

    ok(db_backup_get(db, "b2", &got) == 0 && strcmp(got->parent_id, "b1") == 0 &&
           got->n_disks == 1 && strcmp(got->disks[0].target, "vda") == 0 &&
           got->disks[0].sha256 == NULL && got->verify_ok == -1,
       "read back with its disk");
    conf_backup_free(got);
    got = NULL;
    ok(db_backup_get(db, "nope", &got) == -ENOENT && got == NULL, "a missing id is ENOENT");
    ok(db_backup_get(db, "b1", &got) == 0 && got->location == NULL, "a backup is local by default");
    conf_backup_free(got);
    got = NULL;

    /* Offsite only: its remote and its disks' checksum algorithm come back as written. */
    struct conf_backup_disk adopted_vda = disk_vda;
    adopted_vda.sha256 = (char *)"ab";
    adopted_vda.checksum_algorithm = (char *)"sha256-pieces-8MiB";
    struct conf_backup adopted = row("a1", CONF_BACKUP_TYPE_FULL, NULL, 500);
    adopted.state = CONF_BACKUP_STATE_COMPLETED;
    adopted.location = (char *)"off";
    adopted.disks = &adopted_vda;
    ok(db_backup_insert(db, &adopted) == 0 && db_backup_get(db, "a1", &got) == 0 && got->location &&
           strcmp(got->location, "off") == 0 &&
           strcmp(got->disks[0].checksum_algorithm, "sha256-pieces-8MiB") == 0,
       "an offsite-only backup keeps its remote");
    conf_backup_free(got);
    got = NULL;
    ok(db_backup_delete(db, "a1") == 0, "and goes again");

    struct db_backup_filter all = {.domain_uuid = UUID};
    ok(db_backup_list(db, &all, &list, &n, &total) == 0 && n == 3 && total == 3 &&
           strcmp(list[0]->id, "b3") == 0 && strcmp(list[2]->id, "b1") == 0,
       "listed newest first");
    conf_backup_list_free(list, n);
    struct db_backup_filter page = {.domain_uuid = UUID,
                                    .type = &(enum conf_backup_type){CONF_BACKUP_TYPE_INCREMENTAL},
                                    .limit = 1,
                                    .offset = 1};
    ok(db_backup_list(db, &page, &list, &n, &total) == 0 && n == 1 && total == 2 &&
           strcmp(list[0]->id, "b2") == 0,
       "filtered and paged, with the total");
    conf_backup_list_free(list, n);

    /* Keyset pages: strictly after (started_at, id), newest first, whatever was added since. */
    struct conf_backup twin = row("b0", CONF_BACKUP_TYPE_INCREMENTAL, "b1", 2000);
    struct conf_backup newer = row("b9", CONF_BACKUP_TYPE_INCREMENTAL, "b1", 9000);
    struct db_backup_filter after = {.domain_uuid = UUID, .limit = 2};
    after.after_id = "b3";
    after.after_started = 3000;
    ok(db_backup_insert(db, &twin) == 0 && db_backup_insert(db, &newer) == 0,
       "insert one as old as b2 and one newer than all");
    ok(db_backup_list(db, &after, &list, &n, &total) == 0 && n == 2 &&
           strcmp(list[0]->id, "b2") == 0 && strcmp(list[1]->id, "b0") == 0,
       "after b3: b2, then b0 (same start, smaller id); the newer one is not on this page");
    conf_backup_list_free(list, n);
    after.after_id = "b0";
    after.after_started = 2000;
    ok(db_backup_list(db, &after, &list, &n, &total) == 0 && n == 1 &&
           strcmp(list[0]->id, "b1") == 0,
       "after b0: b1, the last");
    conf_backup_list_free(list, n);
    ok(db_backup_delete(db, "b0") == 0 && db_backup_delete(db, "b9") == 0, "remove them again");

    ok(db_backup_dependents(db, "b1", &deps, &n) == 0 && n == 2 && strcmp(deps[0], "b3") == 0 &&
           deps[2] == NULL,
       "dependents of the full backup");
    for (size_t i = 0; i < n; i++)
        free(deps[i]);
    free(deps);

    /* The end of a job: completed keeps disks with checksums; failed keeps none. */
    struct conf_backup_disk done_disk = disk_vda;
    done_disk.stored_bytes = 4096;
    done_disk.sha256 = (char *)"ab";
    struct conf_backup done = full;
    done.state = CONF_BACKUP_STATE_COMPLETED;
    done.finished_at = 1500;
    done.stored_bytes = 4096;
    done.disks = &done_disk;
    ok(db_backup_finish(db, &done) == 0, "finish as completed");
    ok(db_backup_get(db, "b1", &got) == 0 && got->state == CONF_BACKUP_STATE_COMPLETED &&
           got->disks[0].stored_bytes == 4096 && strcmp(got->disks[0].sha256, "ab") == 0,
       "its disk has its checksum");
    conf_backup_free(got);
    struct conf_backup failed = inc2;
    failed.state = CONF_BACKUP_STATE_FAILED;
    failed.error_errno = -EIO;
    failed.error_detail = (char *)"libvirt said no";
    failed.finished_at = 3500;
    ok(db_backup_finish(db, &failed) == 0, "finish as failed");
    ok(db_backup_get(db, "b3", &got) == 0 && got->n_disks == 0 && got->error_errno == -EIO &&
           strcmp(got->error_detail, "libvirt said no") == 0,
       "a failed backup claims no files and keeps its reason");
    conf_backup_free(got);

    ok(db_backup_set_verification(db, "b1", 9000, 0, "x: checksum mismatch") == 0 &&
           db_backup_get(db, "b1", &got) == 0 && got->verify_ok == 0 && got->verified_at == 9000,
       "a verification is recorded");
    conf_backup_free(got);
    ok(db_backup_set_job(db, "b2", "job1") == 0 && db_backup_set_job(db, "zz", "j") == -ENOENT,
       "the job of a backup");

    ok(db_backup_find_domain(db, "web1", uuid, &name) == 0 && strcmp(uuid, UUID) == 0 &&
           strcmp(name, "web1") == 0,
       "a domain found by name through its backups");
    free(name);
    ok(db_backup_find_domain(db, "other", uuid, &name) == -ENOENT, "an unknown domain");

    ok(db_backup_delete(db, "b3") == 0 && db_backup_delete(db, "b3") == -ENOENT, "delete, once");
    db_close(db);

    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return tap_done();
}
