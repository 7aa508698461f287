/* The policies and policy_members tables (see policy.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "db_priv.h"
#include "err.h"
#include "policy.h"

#define POLICY_COLUMNS                                                                             \
    "name, domains, schedule, interval_s, backup_type, backup_mode, backup_to_vault,"              \
    " backup_bandwidth, backup_disks, retention, verify_after_s, enabled, created_ms, updated_ms," \
    " copy_to, remote_retention"

/* v[0..n) joined with newlines into a new string; NULL for n == 0 or no memory (*oom). */
static char *
join_lines(char *const *v, size_t n, bool *oom)
{
    size_t len = 0;
    char *s, *p;

    if (n == 0)
        return NULL;
    for (size_t i = 0; i < n; i++)
        len += strlen(v[i]) + 1;
    s = p = malloc(len);
    if (!s) {
        *oom = true;
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s%s", i ? "\n" : "", v[i]);
    return s;
}

/* Splits text at newlines into a new array of new strings. */
static int
split_lines(const char *text, char ***ret, size_t *ret_n)
{
    char **v = NULL;
    size_t n = 0;

    *ret = NULL;
    *ret_n = 0;
    if (!text || !*text)
        return 0;
    for (const char *p = text;;) {
        size_t len = strcspn(p, "\n");
        char **grown = realloc(v, (n + 1) * sizeof(*v));
        if (!grown) {
            for (size_t i = 0; i < n; i++)
                free(v[i]);
            free(v);
            return -ENOMEM;
        }
        v = grown;
        v[n] = strndup(p, len);
        if (!v[n]) {
            for (size_t i = 0; i < n; i++)
                free(v[i]);
            free(v);
            return -ENOMEM;
        }
        n++;
        if (!p[len])
            break;
        p += len + 1;
    }
    *ret = v;
    *ret_n = n;
    return 0;
}

/* Reads retention text "N N N N N N" (keep_last ... keep_yearly); NULL keeps all. */
static int
retention_parse(const char *text, struct conf_retention *r)
{
    if (!text)
        return 0;
    return sscanf(text, "%" SCNu32 " %" SCNu32 " %" SCNu32 " %" SCNu32 " %" SCNu32 " %" SCNu32,
                  &r->keep[0], &r->keep[1], &r->keep[2], &r->keep[3], &r->keep[4],
                  &r->keep[5]) == CONF_RETENTION_OPTION_LAST
               ? 0
               : -EINVAL;
}

/* The text form of r into buf. */
static void
retention_format(const struct conf_retention *r, char *buf, size_t size)
{
    snprintf(buf, size, "%" PRIu32 " %" PRIu32 " %" PRIu32 " %" PRIu32 " %" PRIu32 " %" PRIu32,
             r->keep[0], r->keep[1], r->keep[2], r->keep[3], r->keep[4], r->keep[5]);
}

static int
read_policy(sqlite3_stmt *st, struct conf_policy **ret)
{
    _cleanup_(conf_policy_freep) struct conf_policy *p = calloc(1, sizeof(*p));
    const char *schedule, *type, *mode, *retention;
    bool oom = false;
    int r;

    if (!p)
        return -ENOMEM;
    p->name = db_column_dup(st, 0, &oom);
    if (oom)
        return -ENOMEM;
    r = split_lines((const char *)sqlite3_column_text(st, 1), &p->domains, &p->n_domains);
    if (r < 0)
        return r;
    schedule = (const char *)sqlite3_column_text(st, 2);
    if (schedule) {
        p->schedule.kind = CONF_SCHEDULE_CRON;
        snprintf(p->schedule.text, sizeof(p->schedule.text), "%s", schedule);
        r = conf_cron_parse(schedule, &p->schedule.cron);
        if (r < 0)
            return err_set(-EIO, "database: policy %s has a bad schedule '%s'", p->name, schedule);
    } else {
        p->schedule.kind = CONF_SCHEDULE_INTERVAL;
        p->schedule.interval_s = sqlite3_column_int64(st, 3);
    }
    type = (const char *)sqlite3_column_text(st, 4);
    mode = (const char *)sqlite3_column_text(st, 5);
    if (conf_backup_type_from_string(type, &p->backup.type) < 0 ||
        conf_backup_mode_from_string(mode, &p->backup.mode) < 0)
        return err_set(-EIO, "database: policy %s has a bad backup type or mode", p->name);
    p->backup.to_vault = sqlite3_column_int(st, 6) != 0;
    p->backup.bandwidth = (uint64_t)sqlite3_column_int64(st, 7);
    r = split_lines((const char *)sqlite3_column_text(st, 8), &p->backup.disks, &p->backup.n_disks);
    if (r < 0)
        return r;
    retention = (const char *)sqlite3_column_text(st, 9);
    if (retention_parse(retention, &p->retention) < 0 ||
        retention_parse((const char *)sqlite3_column_text(st, 15), &p->remote_retention) < 0)
        return err_set(-EIO, "database: policy %s has a bad retention", p->name);
    p->verify_after_s =
        sqlite3_column_type(st, 10) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 10);
    p->enabled = sqlite3_column_int(st, 11) != 0;
    p->created_ms = sqlite3_column_int64(st, 12);
    p->updated_ms = sqlite3_column_int64(st, 13);
    p->copy_to = db_column_dup(st, 14, &oom);
    if (oom)
        return -ENOMEM;
    *ret = TAKE_PTR(p);
    return 0;
}

int
db_policy_put(struct db *db, const struct conf_policy *p, bool create)
{
    static const char insert[] = "INSERT INTO policies (" POLICY_COLUMNS ")"
                                 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,"
                                 " ?14, ?15, ?16)";
    static const char update[] =
        "UPDATE policies SET domains = ?2, schedule = ?3, interval_s = ?4, backup_type = ?5,"
        " backup_mode = ?6, backup_to_vault = ?7, backup_bandwidth = ?8, backup_disks = ?9,"
        " retention = ?10, verify_after_s = ?11, enabled = ?12, updated_ms = ?14, copy_to = ?15,"
        " remote_retention = ?16"
        " WHERE name = ?1";
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    _cleanup_free_ char *domains = NULL;
    _cleanup_free_ char *disks = NULL;
    char retention[128], remote_retention[128];
    bool oom = false;
    int r, rc;

    domains = join_lines(p->domains, p->n_domains, &oom);
    disks = join_lines(p->backup.disks, p->backup.n_disks, &oom);
    if (oom)
        return -ENOMEM;
    retention_format(&p->retention, retention, sizeof(retention));
    retention_format(&p->remote_retention, remote_retention, sizeof(remote_retention));

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, create ? insert : update, &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, p->name);
    db_bind_text(st, 2, domains ? domains : "");
    if (p->schedule.kind == CONF_SCHEDULE_CRON) {
        db_bind_text(st, 3, p->schedule.text);
        sqlite3_bind_null(st, 4);
    } else {
        sqlite3_bind_null(st, 3);
        sqlite3_bind_int64(st, 4, p->schedule.interval_s);
    }
    db_bind_text(st, 5, conf_backup_type_to_string(p->backup.type));
    db_bind_text(st, 6, conf_backup_mode_to_string(p->backup.mode));
    sqlite3_bind_int(st, 7, p->backup.to_vault);
    sqlite3_bind_int64(st, 8, (int64_t)p->backup.bandwidth);
    db_bind_text(st, 9, disks);
    db_bind_text(st, 10, retention);
    if (p->verify_after_s >= 0)
        sqlite3_bind_int64(st, 11, p->verify_after_s);
    else
        sqlite3_bind_null(st, 11);
    sqlite3_bind_int(st, 12, p->enabled);
    sqlite3_bind_int64(st, 13, p->created_ms);
    sqlite3_bind_int64(st, 14, p->updated_ms);
    db_bind_text(st, 15, p->copy_to);
    db_bind_text(st, 16, remote_retention);
    rc = sqlite3_step(st);
    if (create && (rc & 0xff) == SQLITE_CONSTRAINT)
        return err_set(-EEXIST, "a policy named '%s' exists already", p->name);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "store a policy");
    if (!create && sqlite3_changes(db->h) == 0)
        return err_set(-ENOENT, "policy '%s' not found", p->name);
    return 0;
}

int
db_policy_get(struct db *db, const char *name, struct conf_policy **ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, "SELECT " POLICY_COLUMNS " FROM policies WHERE name = ?1", &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, name);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return err_set(-ENOENT, "policy '%s' not found", name);
    if (rc != SQLITE_ROW)
        return db_error(db, rc, "read a policy");
    return read_policy(st, ret);
}

int
db_policy_list(struct db *db, struct conf_policy ***ret, size_t *ret_n)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    struct conf_policy **list = NULL;
    size_t n = 0;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, "SELECT " POLICY_COLUMNS " FROM policies ORDER BY name", &st);
    if (r < 0)
        return r;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct conf_policy **grown = realloc(list, (n + 1) * sizeof(*list));
        if (!grown) {
            conf_policy_list_free(list, n);
            return -ENOMEM;
        }
        list = grown;
        r = read_policy(st, &list[n]);
        if (r < 0) {
            conf_policy_list_free(list, n);
            return r;
        }
        n++;
    }
    if (rc != SQLITE_DONE) {
        conf_policy_list_free(list, n);
        return db_error(db, rc, "list policies");
    }
    *ret = list;
    *ret_n = n;
    return 0;
}

int
db_policy_delete(struct db *db, const char *name)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, "DELETE FROM policies WHERE name = ?1", &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, name);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "delete a policy");
    if (sqlite3_changes(db->h) == 0)
        return err_set(-ENOENT, "policy '%s' not found", name);
    return 0;
}

int
db_policy_member_put(struct db *db, const struct conf_policy_member *m)
{
    static const char sql[] =
        "INSERT OR REPLACE INTO policy_members (policy, domain_uuid, domain, since_ms,"
        " last_run_ms, last_result, last_job, last_detail, last_catch_up, last_success_ms,"
        " copy_pending, copy_job) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, sql, &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, m->policy);
    db_bind_text(st, 2, m->domain_uuid);
    db_bind_text(st, 3, m->domain);
    sqlite3_bind_int64(st, 4, m->since_ms);
    db_bind_opt_int(st, 5, m->last_run_ms);
    db_bind_text(st, 6, m->last_result);
    db_bind_text(st, 7, m->last_job);
    db_bind_text(st, 8, m->last_detail);
    sqlite3_bind_int(st, 9, m->last_catch_up);
    db_bind_opt_int(st, 10, m->last_success_ms);
    db_bind_text(st, 11, m->copy_pending);
    db_bind_text(st, 12, m->copy_job);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "store a policy's run");
    return 0;
}

int
db_policy_member_list(struct db *db, const char *policy, struct conf_policy_member **ret,
                      size_t *ret_n)
{
    static const char sql[] =
        "SELECT policy, domain_uuid, domain, since_ms, last_run_ms, last_result, last_job,"
        " last_detail, last_catch_up, last_success_ms, copy_pending, copy_job"
        " FROM policy_members"
        " WHERE ?1 IS NULL OR policy = ?1 ORDER BY policy, domain";
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    struct conf_policy_member *list = NULL;
    size_t n = 0;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, sql, &st);
    if (r < 0)
        return r;
    db_bind_text(st, 1, policy);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct conf_policy_member *grown = realloc(list, (n + 1) * sizeof(*list));
        struct conf_policy_member *m;
        const char *uuid;
        bool oom = false;

        if (!grown) {
            conf_policy_member_list_free(list, n);
            return -ENOMEM;
        }
        list = grown;
        m = &list[n++];
        memset(m, 0, sizeof(*m));
        m->policy = db_column_dup(st, 0, &oom);
        uuid = (const char *)sqlite3_column_text(st, 1);
        snprintf(m->domain_uuid, sizeof(m->domain_uuid), "%s", uuid ? uuid : "");
        m->domain = db_column_dup(st, 2, &oom);
        m->since_ms = sqlite3_column_int64(st, 3);
        m->last_run_ms = sqlite3_column_int64(st, 4);
        m->last_result = db_column_dup(st, 5, &oom);
        m->last_job = db_column_dup(st, 6, &oom);
        m->last_detail = db_column_dup(st, 7, &oom);
        m->last_catch_up = sqlite3_column_int(st, 8) != 0;
        m->last_success_ms = sqlite3_column_int64(st, 9);
        m->copy_pending = db_column_dup(st, 10, &oom);
        m->copy_job = db_column_dup(st, 11, &oom);
        if (oom) {
            conf_policy_member_list_free(list, n);
            return -ENOMEM;
        }
    }
    if (rc != SQLITE_DONE) {
        conf_policy_member_list_free(list, n);
        return db_error(db, rc, "list policy runs");
    }
    *ret = list;
    *ret_n = n;
    return 0;
}

int
db_vault_bytes(struct db *db, char ***ret_names, uint64_t **ret_bytes, size_t *ret_n)
{
    static const char sql[] = "SELECT MAX(domain_name), SUM(stored_bytes) FROM backups"
                              " WHERE state = 'completed' GROUP BY domain_uuid ORDER BY 1";
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    char **names = NULL;
    uint64_t *bytes = NULL;
    size_t n = 0;
    int r, rc;

    DB_LOCK_SCOPE(db);
    r = db_prepare(db, sql, &st);
    if (r < 0)
        return r;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        char **gn = realloc(names, (n + 1) * sizeof(*names));
        uint64_t *gb;
        bool oom = false;

        if (gn)
            names = gn;
        gb = gn ? realloc(bytes, (n + 1) * sizeof(*bytes)) : NULL;
        if (gb)
            bytes = gb;
        if (!gn || !gb || !(names[n] = db_column_dup(st, 0, &oom))) {
            for (size_t i = 0; i < n; i++)
                free(names[i]);
            free(names);
            free(bytes);
            return -ENOMEM;
        }
        bytes[n++] = (uint64_t)sqlite3_column_int64(st, 1);
    }
    if (rc != SQLITE_DONE) {
        for (size_t i = 0; i < n; i++)
            free(names[i]);
        free(names);
        free(bytes);
        return db_error(db, rc, "sum the vault's bytes");
    }
    *ret_names = names;
    *ret_bytes = bytes;
    *ret_n = n;
    return 0;
}
