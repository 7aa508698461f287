/*
 * db/policy.h - the policies table (one row per protection policy, see
 * conf/policy.h) and policy_members (one row per policy and domain: how the
 * policy's runs went for it), so that a restart knows what was missed.
 * Deleting a policy deletes its members.
 */
#ifndef VV_DB_POLICY_H
#define VV_DB_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/policy.h"

struct db;

/*
 * Stores p (borrowed): with create a new row (-EEXIST with a detail when the
 * name is taken), else the row of that name replaced, keeping its
 * created_ms (-ENOENT when there is none). 0, or a negative errno with a
 * detail.
 */
int db_policy_put(struct db *db, const struct conf_policy *p, bool create);

/* Reads the policy name into a new record. -ENOENT with a detail when there is none. */
int db_policy_get(struct db *db, const char *name, struct conf_policy **ret);

/* Every policy, by name: a new array of new records (conf_policy_list_free). */
int db_policy_list(struct db *db, struct conf_policy ***ret, size_t *ret_n);

/* Deletes the policy name and its members. -ENOENT with a detail when there is none. */
int db_policy_delete(struct db *db, const char *name);

/* Inserts or replaces the member row of (m->policy, m->domain_uuid) (borrowed). */
int db_policy_member_put(struct db *db, const struct conf_policy_member *m);

/*
 * The members of policy (every policy's when NULL), by policy and domain
 * name: a new array (conf_policy_member_list_free).
 */
int db_policy_member_list(struct db *db, const char *policy, struct conf_policy_member **ret,
                          size_t *ret_n);

/*
 * The bytes the vault holds per domain (completed backups' stored_bytes):
 * *ret_names a new array of new domain names, *ret_bytes a new array, both
 * of *ret_n entries, by name.
 */
int db_vault_bytes(struct db *db, char ***ret_names, uint64_t **ret_bytes, size_t *ret_n);

#endif
