/*
 * core/audit.h - the audit log: every state-changing request, kept in the
 * database for a configurable number of days.
 *
 * Recording never fails its caller's work: a record that cannot be stored
 * is logged as a warning and dropped. Records older than the retention are
 * deleted by core_audit_start() and, after that, at most once an hour by
 * the recording itself.
 */
#ifndef VV_CORE_AUDIT_H
#define VV_CORE_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "conf/audit.h"

/*
 * Sets the retention (days; 0 keeps records forever) and deletes the
 * records older than it. Call after core_start(). Returns 0 or a negative
 * errno with a detail (the service may still run: recording goes on).
 */
int core_audit_start(unsigned retention_days);

/* Stores r (its seq is ignored); failures are logged, never returned. */
void core_audit_record(const struct conf_audit *r);

/* Lists records newest first (see db_audit_list for the filter, paging and ownership). */
int core_audit_list(const struct conf_audit_filter *f, struct conf_audit **ret, size_t *ret_n,
                    int64_t *ret_next);

#endif
