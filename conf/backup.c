/* The backup record (see backup.h). */
#include <stdlib.h>

#include "backup.h"

CONF_ENUM_IMPL(conf_backup_mode, enum conf_backup_mode, CONF_BACKUP_MODE_LAST, "push", "pull");
CONF_ENUM_IMPL(conf_backup_type, enum conf_backup_type, CONF_BACKUP_TYPE_LAST, "full",
               "incremental", "differential", "auto");
CONF_ENUM_IMPL(conf_image_format, enum conf_image_format, CONF_IMAGE_FORMAT_LAST, "qcow2", "raw");
CONF_ENUM_IMPL(conf_backup_state, enum conf_backup_state, CONF_BACKUP_STATE_LAST, "running",
               "ready", "completed", "failed", "cancelled");

static void
disk_clear(struct conf_backup_disk *d)
{
    free(d->target);
    free(d->file);
    free(d->backing);
    free(d->sha256);
    free(d->checksum_algorithm);
    free(d->pieces);
}

void
conf_backup_free(struct conf_backup *b)
{
    if (!b)
        return;
    free(b->id);
    free(b->domain_uuid);
    free(b->domain_name);
    free(b->job_id);
    free(b->chain_id);
    free(b->parent_id);
    free(b->base_checkpoint);
    free(b->checkpoint);
    free(b->domain_xml);
    free(b->error_detail);
    free(b->verify_detail);
    free(b->location);
    for (size_t i = 0; i < b->n_disks; i++)
        disk_clear(&b->disks[i]);
    free(b->disks);
    free(b);
}

void
conf_backup_list_free(struct conf_backup **list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        conf_backup_free(list[i]);
    free(list);
}
