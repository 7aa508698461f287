/* Unit tests: the database opens, migrates, survives reopening, refuses corruption. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/db.h"
#include "db/migrations.h"
#include "err.h"
#include "tap.h"

int
main(void)
{
    char dir[] = "/tmp/vv-db-test-XXXXXX";
    char path[256];
    struct db *db = NULL;

    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof(path), "%s/t.db", dir);

    ok(db_open(path, &db) == 0, "a new database opens");
    ok(db_schema_version(db) == db_migrations_count, "it is at the newest schema (%d)",
       db_schema_version(db));
    ok(db_ping(db) == 0, "ping");
    ok(db_integrity_check(db) == 0, "integrity_check");
    db_close(db);
    db = NULL;

    ok(db_open(path, &db) == 0 && db_schema_version(db) == db_migrations_count,
       "reopening keeps the version");
    db_close(db);
    db = NULL;

    /* Overwrite the middle of the file with garbage: the open must refuse it. */
    int fd = open(path, O_WRONLY);
    char junk[4096];
    memset(junk, 0xa5, sizeof(junk));
    ok(fd >= 0 && pwrite(fd, junk, sizeof(junk), 4096) == (ssize_t)sizeof(junk) &&
           pwrite(fd, junk, 100, 0) == 100,
       "corrupt the file");
    close(fd);
    int r = db_open(path, &db);
    ok(r < 0 && err_detail() && strstr(err_detail(), path), "a corrupt database is refused: %s",
       err_detail() ? err_detail() : "");
    if (r == 0)
        db_close(db);

    snprintf(path, sizeof(path), "%s/missing/dir/t.db", dir);
    ok(db_open(path, &db) < 0, "an unreachable path is refused");

    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return tap_done();
}
