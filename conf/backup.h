/*
 * conf/backup.h - the record of a backup and of each disk it stored, as the
 * catalog keeps it (db/backup.h), core plans and runs it (core/backup.h) and
 * the API renders it.
 *
 * Times are milliseconds since the epoch, 0 when unset. Strings are owned
 * by the struct and freed by conf_backup_free(); NULL when unset. Mode, type
 * and state are enums: their names (the tables below) exist only where they
 * are stored, read or shown.
 */
#ifndef VV_CONF_BACKUP_H
#define VV_CONF_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cleanup.h"
#include "conf/enum.h"

/* "push": the hypervisor writes the images; "pull": the backup's disks are served as exports. */
enum conf_backup_mode {
    CONF_BACKUP_MODE_PUSH,
    CONF_BACKUP_MODE_PULL,
    CONF_BACKUP_MODE_LAST,
};
CONF_ENUM_DECL(conf_backup_mode, enum conf_backup_mode);

/* What a backup holds; "auto" is a request only (the planner picks one of the others). */
enum conf_backup_type {
    CONF_BACKUP_TYPE_FULL,
    CONF_BACKUP_TYPE_INCREMENTAL,
    CONF_BACKUP_TYPE_DIFFERENTIAL,
    CONF_BACKUP_TYPE_AUTO,
    CONF_BACKUP_TYPE_LAST,
};
CONF_ENUM_DECL(conf_backup_type, enum conf_backup_type);

/* running -> (ready ->) completed | failed | cancelled; "ready": a pull backup served. */
enum conf_backup_state {
    CONF_BACKUP_STATE_RUNNING,
    CONF_BACKUP_STATE_READY,
    CONF_BACKUP_STATE_COMPLETED,
    CONF_BACKUP_STATE_FAILED,
    CONF_BACKUP_STATE_CANCELLED,
    CONF_BACKUP_STATE_LAST,
};
CONF_ENUM_DECL(conf_backup_state, enum conf_backup_state);

/* The format of a restored image. */
enum conf_image_format {
    CONF_IMAGE_FORMAT_QCOW2,
    CONF_IMAGE_FORMAT_RAW,
    CONF_IMAGE_FORMAT_LAST,
};
CONF_ENUM_DECL(conf_image_format, enum conf_image_format);

struct conf_backup_disk {
    char *target;  /* "vda" */
    char *file;    /* relative to the vault: "<uuid>/<chain>/<id>.vda.qcow2" */
    char *backing; /* the backing file's name, relative to file's folder; NULL for a full */
    uint64_t size; /* the disk's virtual size */
    uint64_t stored_bytes;
    char *sha256; /* hex checksum, NULL until the job completed */
    /*
     * How sha256 was computed (util/hash.h): "sha256" (the whole file; the
     * default of older rows) or "sha256-pieces-8MiB". NULL reads as "sha256".
     */
    char *checksum_algorithm;
    /* The piece digests (32 bytes each) of "sha256-pieces-8MiB"; only where loaded. */
    uint8_t *pieces;
    size_t n_pieces;
};

struct conf_backup {
    char *id;
    char *domain_uuid;
    char *domain_name;
    enum conf_backup_mode mode;
    enum conf_backup_type type; /* never CONF_BACKUP_TYPE_AUTO */
    enum conf_backup_state state;
    char *job_id;
    char *chain_id;
    char *parent_id;       /* the backup whose images back this one's; NULL for a full */
    char *base_checkpoint; /* what the changes are counted from; NULL for a full */
    char *checkpoint;      /* the checkpoint created with the backup */
    char *domain_xml;
    uint64_t stored_bytes;
    int64_t started_at;
    int64_t finished_at;
    int error_errno; /* the negative errno it failed with, 0 when none */
    char *error_detail;
    int64_t verified_at;
    int verify_ok; /* -1 never verified, 0 failed, 1 passed */
    char *verify_detail;
    bool is_protected; /* never pruned nor deleted while set */
    /*
     * NULL: its images are in this host's vault. Else the remote whose bucket
     * alone holds them ("offsite only": a chain adopted from a bucket,
     * core/offsite_adopt.c): nothing local reads, verifies or prunes them.
     */
    char *location;
    size_t n_disks;
    struct conf_backup_disk *disks;
};

/* Frees b and everything it owns. Accepts NULL. */
void conf_backup_free(struct conf_backup *b);
void conf_backup_list_free(struct conf_backup **list, size_t n);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct conf_backup *, conf_backup_free);
#define _cleanup_backup_ _cleanup_(conf_backup_freep)

/*
 * One extent of a disk as an NBD export reports it: for base:allocation,
 * flags has bit 0 hole and bit 1 zero; for a dirty bitmap, bit 0 dirty.
 */
struct conf_extent {
    uint64_t start;
    uint64_t length;
    uint32_t flags;
};

#endif
