#ifndef VV_DB_MIGRATIONS_H
#define VV_DB_MIGRATIONS_H

extern const char *const db_migrations[];
extern const int db_migrations_count;

#endif
