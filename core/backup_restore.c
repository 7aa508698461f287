/* The restore job (see backup.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup_priv.h"
#include "vault/vault.h"
#include "cleanup.h"
#include "db/backup.h"
#include "err.h"
#include "log.h"
#include "offsite_priv.h"
#include "text.h"
#include "virt/virt.h"

unsigned
backup_restore_keep_flags(unsigned keep)
{
    return (keep & CORE_RESTORE_KEEP_LUN ? VIRT_CLONE_KEEP_LUN : 0) |
           (keep & CORE_RESTORE_KEEP_FILESYSTEM ? VIRT_CLONE_KEEP_FILESYSTEM : 0) |
           (keep & CORE_RESTORE_KEEP_HOSTDEV ? VIRT_CLONE_KEEP_HOSTDEV : 0) |
           (keep & CORE_RESTORE_KEEP_LOGS ? VIRT_CLONE_KEEP_LOGS : 0);
}

/* The restore job's result as JSON, into a new *ret. */
int
backup_restore_result(const struct conf_backup *b, const char *remote,
                      enum conf_image_format format, const char *define_name,
                      char (*dest)[PATH_MAX], const char *uuid,
                      const struct virt_clone_changes *changes, char **ret)
{
    char *out = NULL;
    size_t out_len = 0;
    FILE *f = open_memstream(&out, &out_len);

    if (!f)
        return -ENOMEM;
    fprintf(f, "{\"backup_id\": \"%s\", ", b->id);
    if (remote)
        fprintf(f, "\"remote\": \"%s\", ", remote);
    fprintf(f, "\"format\": \"%s\", \"disks\": [", conf_image_format_to_string(format));
    for (size_t i = 0; i < b->n_disks; i++) {
        _cleanup_free_ char *q = text_json_quote(dest[i]);
        fprintf(f, "%s{\"target\": \"%s\", \"path\": %s}", i ? ", " : "", b->disks[i].target,
                q ? q : "null");
    }
    fputs("], \"domain\": ", f);
    if (define_name) {
        fprintf(f, "{\"name\": \"%s\", \"uuid\": \"%s\", \"changes\": [", define_name, uuid);
        for (size_t i = 0; i < changes->n; i++) {
            _cleanup_free_ char *q = text_json_quote(changes->items[i].detail);
            fprintf(f, "%s{\"what\": \"%s\", \"detail\": %s}", i ? ", " : "",
                    changes->items[i].what, q ? q : "null");
        }
        fputs("]}", f);
    } else {
        fputs("null", f);
    }
    fputs("}", f);
    if (fclose(f) != 0) {
        free(out);
        return -ENOMEM;
    }
    *ret = out;
    return 0;
}

/* --- a chain that stands on offsite-only backups: restored through a staging folder --- */

/* The staging folder of a restore: its name in the target, its path and descriptor (-1: none). */
struct stage {
    char name[64];
    char path[PATH_MAX];
    int fd;
};

/*
 * Makes rr's staging folder in the target (dirfd): the offsite-only backups
 * the chain stands on, downloaded from their remote (offsite_download_chain),
 * beside a link to each image of the chain in the vault, so that the
 * images' backing names find each other there.
 */
static int
stage_offsite(struct job *job, struct backup_job *rr, int dirfd, struct stage *st)
{
    _cleanup_(conf_backup_freep) struct conf_backup *at = NULL;
    const struct conf_backup *b = rr->b;
    size_t n = 0;
    int r;

    snprintf(st->name, sizeof(st->name), ".offsite-%s", job_id(job));
    snprintf(st->path, sizeof(st->path), "%s/%s", rr->target_dir, st->name);
    if (mkdirat(dirfd, st->name, 0700) < 0)
        return err_set(-errno, "cannot make %s: %s", st->path, strerror(errno));
    st->fd = openat(dirfd, st->name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (st->fd < 0)
        return err_set(-errno, "cannot open %s: %s", st->path, strerror(errno));
    /* The local part of the chain: b down to the offsite-only parent, linked. */
    while (b && !b->location && n++ < MAX_CHAIN) {
        for (size_t i = 0; i < b->n_disks; i++) {
            char src[PATH_MAX];
            r = backup_abs_path(b->disks[i].file, src, sizeof(src));
            if (r < 0)
                return r;
            if (symlinkat(src, st->fd, backup_base_name(b->disks[i].file)) < 0)
                return err_set(-errno, "cannot link %s: %s", src, strerror(errno));
        }
        if (!b->parent_id || strcmp(b->parent_id, rr->offsite_parent) == 0)
            break;
        struct conf_backup *next = NULL;
        r = db_backup_get(backup_ctx.db, b->parent_id, &next);
        if (r < 0)
            return r;
        conf_backup_free(at);
        b = at = next;
    }
    log_info("restore of backup %s: downloading backup %s and what it stands on from remote %s",
             rr->b->id, rr->offsite_parent, rr->offsite_remote);
    return offsite_download_chain(job, rr->offsite_remote, rr->offsite_parent, st->fd, st->path);
}

/* Removes the staging folder, if one was made (keeps the error state). */
static void
stage_clear(int dirfd, struct stage *st)
{
    if (st->fd < 0 && !st->name[0])
        return;
    struct err_state saved;
    err_save(&saved);
    offsite_staging_remove(dirfd, st->name, st->fd);
    err_restore(&saved);
    if (st->fd >= 0)
        close(st->fd);
    *st = (struct stage){.fd = -1};
}

int
backup_restore_run(struct job *job, void *data)
{
    struct backup_job *rr = data;
    struct conf_backup *b = rr->b;
    _cleanup_free_ struct virt_restored_disk *rd = calloc(b->n_disks + 1, sizeof(*rd));
    _cleanup_free_ char(*dest)[PATH_MAX] = calloc(b->n_disks + 1, PATH_MAX);
    __attribute__((cleanup(virt_clone_changes_clear))) struct virt_clone_changes changes = {0};
    _cleanup_close_ int dirfd = -1;
    _cleanup_free_ char *out = NULL;
    size_t done_disks = 0;
    uint64_t total = 0, done = 0;
    char uuid[37] = "";
    struct stage st = {.fd = -1};
    int r = 0;

    if (!rd || !dest)
        return -ENOMEM;
    /* Checked again and opened once: every file below is made under this descriptor. */
    r = vault_dir_open(rr->target_dir, backup_ctx.roots, backup_ctx.n_roots, &dirfd);
    if (r < 0)
        return r;
    if (rr->offsite_remote) {
        r = stage_offsite(job, rr, dirfd, &st);
        if (r < 0) {
            stage_clear(dirfd, &st);
            return r;
        }
    }
    for (size_t i = 0; i < b->n_disks; i++)
        total += b->disks[i].size;
    job_progress(job, 0, total);
    for (size_t i = 0; r >= 0 && i < b->n_disks; i++) {
        char src[PATH_MAX];
        const char *name;

        if (st.fd >= 0 && (size_t)snprintf(src, sizeof(src), "%s/%s", st.path,
                                           backup_base_name(b->disks[i].file)) >= sizeof(src))
            r = err_set(-ENAMETOOLONG, "restore path too long");
        else if (st.fd < 0)
            r = backup_abs_path(b->disks[i].file, src, sizeof(src));
        if (r < 0)
            break;
        /* "<new name>-vda.qcow2" for a define, else "<domain>-<backup>-vda.img". */
        if ((size_t)snprintf(dest[i], PATH_MAX, "%s/%s%s%s-%s.%s", rr->target_dir,
                             rr->define_name ? rr->define_name : b->domain_name,
                             rr->define_name ? "" : "-", rr->define_name ? "" : b->id,
                             b->disks[i].target,
                             rr->format == CONF_IMAGE_FORMAT_RAW ? "img" : "qcow2") >= PATH_MAX) {
            r = err_set(-ENAMETOOLONG, "restore path too long");
            break;
        }
        name = dest[i] + strlen(rr->target_dir) + 1;
        r = vault_image_flatten_at(dirfd, name, src, conf_image_format_to_string(rr->format),
                                   rr->restore_bandwidth, &rr->cancel);
        if (r < 0)
            break;
        done_disks++;
        done += b->disks[i].size;
        job_progress(job, done, total);
        rd[i] = (struct virt_restored_disk){b->disks[i].target, dest[i],
                                            conf_image_format_to_string(rr->format)};
    }
    if (r >= 0 && job_cancelled(job))
        r = err_set(-ECANCELED, "the restore was cancelled");
    if (r >= 0 && rr->define_name) {
        struct virt_clone_target where = {dirfd, rr->target_dir,
                                          backup_restore_keep_flags(rr->keep)};
        r = virt_domain_define_restored(b->domain_xml, rr->define_name, rd, b->n_disks, &where,
                                        uuid, &changes);
    }
    stage_clear(dirfd, &st);
    if (r < 0) {
        int e = r;
        char keep[1024];
        snprintf(keep, sizeof(keep), "%s", err_detail() ? err_detail() : strerror(-r));
        for (size_t i = 0; i < done_disks; i++)
            (void)unlinkat(dirfd, dest[i] + strlen(rr->target_dir) + 1, 0);
        return err_set(e == -ECANCELED || job_cancelled(job) ? -ECANCELED : e, "%s", keep);
    }
    r = backup_restore_result(b, NULL, rr->format, rr->define_name, dest, uuid, &changes, &out);
    if (r < 0)
        return r;
    r = job_set_result(job, out);
    log_info("backup %s restored into %s%s%s", b->id, rr->target_dir,
             rr->define_name ? " as domain " : "", rr->define_name ? rr->define_name : "");
    return r;
}

int
core_backup_restore(const char *domain, const char *id, const struct core_restore_request *req,
                    struct conf_job **ret_job)
{
    _cleanup_free_ char *name = NULL;
    _cleanup_free_ char *offsite_remote = NULL, *offsite_parent = NULL;
    struct conf_backup *b = NULL;
    struct backup_job *rr;
    enum conf_image_format format;
    int r;

    if (conf_image_format_from_string(req->format, &format) < 0)
        return err_set_pointer(-EINVAL, "/format", "must be qcow2 or raw");
    if (req->define_name && !text_name_valid(req->define_name))
        return err_set_pointer(-EINVAL, "/define/name",
                               "must be a domain name (1 to %d of A-Z a-z 0-9 . _ -)",
                               NAME_MAX_LEN);
    r = backup_completed(domain, id, &name, &b);
    if (r < 0)
        return r;
    r = backup_chain_offsite(b, &offsite_remote, &offsite_parent);
    if (r < 0) {
        conf_backup_free(b);
        return r;
    }
    if (req->define_name) {
        _cleanup_(conf_domain_freep) struct conf_domain *other = NULL;
        r = virt_domain_get(req->define_name, &other);
        if (r == 0) {
            conf_backup_free(b);
            return err_set(-EEXIST, "a domain named '%s' exists already", req->define_name);
        }
        if (r != -ENOENT) {
            conf_backup_free(b);
            return r;
        }
        err_clear();
    }
    r = vault_dir_inside(req->target_dir, backup_ctx.roots, backup_ctx.n_roots);
    if (r < 0) {
        conf_backup_free(b);
        return r;
    }
    rr = calloc(1, sizeof(*rr));
    if (!rr) {
        conf_backup_free(b);
        return -ENOMEM;
    }
    rr->b = b;
    rr->target_dir = strdup(req->target_dir);
    rr->format = format;
    rr->define_name = req->define_name ? strdup(req->define_name) : NULL;
    rr->keep = req->keep;
    rr->restore_bandwidth = req->bandwidth;
    rr->offsite_remote = TAKE_PTR(offsite_remote);
    rr->offsite_parent = TAKE_PTR(offsite_parent);
    if (!rr->target_dir || (req->define_name && !rr->define_name)) {
        backup_job_free(rr);
        return -ENOMEM;
    }
    return backup_job_submit(BACKUP_JOB_RESTORE, name, rr, ret_job);
}
