/*
 * The schema, as forward-only migrations. Migration N takes a database at
 * user_version N-1 to N; each runs in one transaction with the version bump.
 * Never edit a migration that has shipped: add the next one.
 */
#include "db_priv.h"
#include "migrations.h"

const char *const db_migrations[] = {
    /* 1: the service's own facts. */
    "CREATE TABLE service ("
    "  key TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL"
    ") STRICT;",
    /* checkpoints: the next migration goes here */
    /* jobs: the migration after that goes here */
};

const int db_migrations_count = (int)(sizeof(db_migrations) / sizeof(db_migrations[0]));
