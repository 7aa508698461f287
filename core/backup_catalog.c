/* The catalog of backups: list, get, delete (see backup.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup_priv.h"
#include "busy.h"
#include "cleanup.h"
#include "db/backup.h"
#include "err.h"
#include "log.h"

uint64_t
core_backup_catalog_version(void)
{
    return db_backup_version();
}

int
core_backup_domain_uuid(const char *domain, char ret_uuid[37])
{
    _cleanup_free_ char *name = NULL;

    return backup_domain_resolve(domain, ret_uuid, &name);
}

int
core_backup_list(const char *domain, const struct core_backup_query *q, struct conf_backup ***ret,
                 size_t *ret_n, size_t *ret_total)
{
    _cleanup_free_ char *name = NULL;
    char uuid[37];
    int r;

    r = backup_domain_resolve(domain, uuid, &name);
    if (r < 0)
        return r;
    struct db_backup_filter f = {
        .domain_uuid = uuid,
        .type = q->type,
        .state = q->state,
        .limit = q->limit,
        .offset = q->offset,
        .after_id = q->after_id,
        .after_started = q->after_started,
    };
    return db_backup_list(backup_ctx.db, &f, ret, ret_n, ret_total);
}

int
core_backup_get(const char *domain, const char *id, struct conf_backup **ret)
{
    return backup_find(domain, id, NULL, ret);
}

/* Deletes one backup's files and row (it has no dependents left). */
static int
delete_one(const struct conf_backup *b)
{
    int r;

    r = db_backup_delete(backup_ctx.db, b->id);
    if (r < 0)
        return r;
    backup_remove_images(b);
    log_info("backup %s of %s deleted", b->id, b->domain_name);
    return 0;
}

/* Appends a copy of s to the NULL-terminated *v of *n strings. */
static int
strv_push(char ***v, size_t *n, const char *s)
{
    char **nv = realloc(*v, (*n + 2) * sizeof(*nv));

    if (!nv)
        return -ENOMEM;
    *v = nv;
    if (!(nv[*n] = strdup(s)))
        return -ENOMEM;
    nv[++*n] = NULL;
    return 0;
}

/* -EBUSY naming the domain when an instant recovery runs from backup id. */
static int
refuse_locked(const char *id)
{
    _cleanup_free_ char *holder = NULL;
    int r = core_backup_locked_by(id, &holder);

    if (r <= 0)
        return r;
    return err_set(-EBUSY,
                   "backup %s cannot be deleted: domain %s runs from it (an instant recovery "
                   "that has not moved its disks off the vault)",
                   id, holder);
}

/* -EBUSY when a copy to a remote reads backup id (one of the pinned ids, NULL-terminated). */
static int
refuse_pinned(const char *id, char *const *pinned)
{
    for (size_t i = 0; pinned && pinned[i]; i++)
        if (strcmp(pinned[i], id) == 0)
            return err_set(-EBUSY,
                           "backup %s cannot be deleted now: it is being copied to a remote (its "
                           "copy job ends first; cancel it to delete now)",
                           id);
    return 0;
}

int
core_backup_delete(const char *domain, const char *id, bool chain, char ***ret_ids)
{
    _cleanup_(conf_backup_freep) struct conf_backup *b = NULL;
    struct conf_backup **list = NULL;
    _cleanup_(backup_strv_freep) char **pinned = NULL;
    _cleanup_(backup_rewrite_endp) const char *rewriting = NULL;
    char **deleted = NULL;
    size_t n = 0, nd = 0;
    int r;

    r = backup_find(domain, id, NULL, &b);
    if (r < 0)
        return r;
    /* Deleting while a job of the domain runs could pull an image from under it. */
    char holder[128];
    if (core_busy_holder(b->domain_uuid, holder, sizeof(holder)))
        return err_set(-EBUSY, "the domain is busy with %s", holder);

    if (b->is_protected)
        return err_set(-EBADFD, "backup %s is protected: unprotect it first", b->id);
    r = backup_rewrite_begin(b->domain_uuid, &pinned);
    if (r < 0)
        return r;
    rewriting = b->domain_uuid;
    if (!chain) {
        char **deps = NULL;
        size_t nd_ = 0;

        r = refuse_locked(b->id);
        if (r < 0)
            return r;
        /* Without dependents, only the newest backup a copy reads can be pinned. */
        r = refuse_pinned(b->id, pinned);
        if (r < 0)
            return r;
        r = db_backup_dependents(backup_ctx.db, b->id, &deps, &nd_);
        if (r < 0)
            return r;
        if (nd_ > 0) {
            char names[768] = "";
            for (size_t i = 0; i < nd_; i++)
                snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
                         i ? ", " : "", deps[i]);
            backup_strv_free(deps);
            return err_set(-ENOTEMPTY,
                           "backup %s cannot be deleted: backups %s depend on it (delete them "
                           "first, or the whole chain with ?chain=true)",
                           b->id, names);
        }
        backup_strv_free(deps);
        r = delete_one(b);
        if (r >= 0)
            r = strv_push(&deleted, &nd, b->id);
    } else {
        struct db_backup_filter f = {.domain_uuid = b->domain_uuid, .chain_id = b->chain_id};
        r = db_backup_list(backup_ctx.db, &f, &list, &n, NULL);
        for (size_t i = 0; r >= 0 && i < n; i++)
            if (list[i]->is_protected)
                r = err_set(-EBADFD,
                            "backup %s of the chain is protected: unprotect it first, or "
                            "delete the others one by one",
                            list[i]->id);
            else if ((r = refuse_locked(list[i]->id)) >= 0)
                r = refuse_pinned(list[i]->id, pinned);
        /* Newest first: every backup goes before the one it stands on. */
        for (size_t i = 0; r >= 0 && i < n; i++) {
            r = delete_one(list[i]);
            if (r >= 0)
                r = strv_push(&deleted, &nd, list[i]->id);
        }
        backup_listp(&list, n);
    }
    if (r < 0) {
        backup_strv_free(deleted);
        return r;
    }
    if (ret_ids)
        *ret_ids = deleted;
    else
        backup_strv_free(deleted);
    return 0;
}
