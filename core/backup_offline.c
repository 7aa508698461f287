/* Backups of stopped domains: images read with qemu-nbd (see backup_priv.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup_priv.h"
#include "vault/vault.h"
#include "checkpoint.h"
#include "cleanup.h"
#include "err.h"
#include "log.h"
#include "virt/nbd.h"
#include "virt/virt.h"

/*
 * A backup of a shut-off domain: its images are read with qemu-nbd (only
 * the dirty extents of the base checkpoint's bitmap for an incremental),
 * then the new checkpoint's bitmap is added to each image and the
 * checkpoint redefined, as libvirt cannot create one for an inactive
 * domain.
 */
int
backup_offline_run(struct job *job, struct backup_job *br)
{
    struct conf_backup *b = br->b;
    _cleanup_free_ struct virt_nbd **srcs = calloc(b->n_disks, sizeof(*srcs));
    _cleanup_free_ char **contexts = calloc(b->n_disks, sizeof(*contexts));
    _cleanup_free_ const char **targets = calloc(b->n_disks, sizeof(*targets));
    _cleanup_free_ char *parent = NULL;
    _cleanup_free_ char *cpxml = NULL;
    size_t added = 0;
    int r = 0;

    if (!srcs || !contexts || !targets)
        return -ENOMEM;
    for (size_t i = 0; i < b->n_disks; i++) {
        r = vault_image_create(backup_ctx.vault, b->disks[i].file, b->disks[i].size,
                               b->disks[i].backing);
        if (r < 0)
            return r;
    }
    for (size_t i = 0; r >= 0 && i < b->n_disks; i++) {
        if (b->base_checkpoint &&
            asprintf(&contexts[i], "qemu:dirty-bitmap:%s", b->base_checkpoint) < 0) {
            r = -ENOMEM;
            break;
        }
        r = virt_nbd_open_image(br->sources[i], b->base_checkpoint, false, &srcs[i]);
    }
    if (r >= 0)
        r = backup_copy_into_vault(job, br, srcs, contexts);
    for (size_t i = 0; i < b->n_disks; i++) {
        virt_nbd_close(srcs[i]);
        free(contexts[i]);
    }
    if (r < 0)
        return r;
    if (job_cancelled(job))
        return err_set(-ECANCELED, "the backup was cancelled");

    /* The next checkpoint: a bitmap in each image, then libvirt's metadata. */
    r = core_checkpoint_newest_healthy(b->domain_uuid, &parent);
    if (r == -ENOENT) {
        err_clear();
        r = 0;
    }
    for (size_t i = 0; r >= 0 && i < b->n_disks; i++) {
        r = virt_image_bitmap_set(br->sources[i], b->checkpoint, true);
        if (r >= 0)
            added++;
        targets[i] = b->disks[i].target;
    }
    if (r >= 0)
        r = virt_checkpoint_define_offline(b->domain_uuid, b->checkpoint, parent, targets,
                                           b->n_disks, (const char *const *)br->skip, br->n_skip,
                                           &cpxml);
    if (r >= 0) {
        br->offline_defined = true;
        r = core_checkpoint_store_created(b->domain_uuid, cpxml);
    }
    if (r < 0) {
        char keep[1024];
        snprintf(keep, sizeof(keep), "%s", err_detail() ? err_detail() : strerror(-r));
        for (size_t i = 0; i < added; i++)
            if (virt_image_bitmap_set(br->sources[i], b->checkpoint, false) < 0)
                log_warn("backup %s: cannot remove bitmap %s from %s: %s", b->id, b->checkpoint,
                         br->sources[i], err_detail());
        return err_set(r, "%s", keep);
    }
    log_info("backup %s of stopped domain %s: checkpoint %s added%s%s", b->id, b->domain_name,
             b->checkpoint, parent ? " after " : "", parent ? parent : "");
    return 0;
}

/*
 * The image of each disk of b on the stopped domain d, checked for what an
 * offline backup needs: a qcow2 file and, for an incremental, the base
 * checkpoint's bitmap, present and sound. *ret is a new NULL-terminated
 * array in b's disk order.
 */
int
backup_offline_sources(const struct conf_domain *d, const struct conf_backup *b, char ***ret)
{
    char **v = calloc(b->n_disks + 1, sizeof(*v));

    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < b->n_disks; i++) {
        const struct conf_disk *k = NULL;
        struct virt_image_bitmap *bm = NULL;
        size_t n_bm = 0;
        int found = 0, r;

        for (size_t j = 0; j < d->n_disks; j++)
            if (strcmp(d->disks[j].target, b->disks[i].target) == 0)
                k = &d->disks[j];
        if (!k || !conf_disk_is_file(k)) {
            backup_strv_free(v);
            return err_set(-EOPNOTSUPP,
                           "disk '%s' of the stopped domain is not a file: only qcow2 files "
                           "can be read while the domain is shut off",
                           b->disks[i].target);
        }
        if (!(v[i] = strdup(k->source))) {
            backup_strv_free(v);
            return -ENOMEM;
        }
        if (!b->base_checkpoint)
            continue;
        r = virt_image_bitmaps(k->source, &bm, &n_bm);
        if (r < 0) {
            backup_strv_free(v);
            return r;
        }
        for (size_t j = 0; j < n_bm; j++)
            if (strcmp(bm[j].name, b->base_checkpoint) == 0)
                found = bm[j].in_use ? -1 : 1;
        virt_image_bitmaps_free(bm, n_bm);
        if (found <= 0) {
            backup_strv_free(v);
            return err_set(-EBADFD,
                           "the image of disk '%s' %s bitmap '%s' of the base checkpoint, so "
                           "the changes since it cannot be told: take a full backup (or use "
                           "type auto after deleting the chain)",
                           b->disks[i].target, found < 0 ? "holds an unsound (in-use)" : "lacks",
                           b->base_checkpoint);
        }
    }
    *ret = v;
    return 0;
}
