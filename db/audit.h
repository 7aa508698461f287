/*
 * db/audit.h - the audit table: one row per state-changing request (see
 * conf/audit.h for the record, core/audit.h for its use).
 */
#ifndef VV_DB_AUDIT_H
#define VV_DB_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "conf/audit.h"

struct db;

/* Appends the record (its seq is ignored). 0, or a negative errno with a detail. */
int db_audit_put(struct db *db, const struct conf_audit *r);

/*
 * Lists records, newest first, that pass filter f. *ret is a new array of
 * *ret_n records (conf_audit_list_free). *ret_next is the cursor (a
 * before_seq) for the next page, or 0 when this page is the last.
 */
int db_audit_list(struct db *db, const struct conf_audit_filter *f, struct conf_audit **ret,
                  size_t *ret_n, int64_t *ret_next);

/* Deletes the records older than before_ms; *ret_deleted (may be NULL) says how many. */
int db_audit_prune(struct db *db, int64_t before_ms, int64_t *ret_deleted);

#endif
