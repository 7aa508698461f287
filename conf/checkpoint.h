/*
 * conf/checkpoint.h - the record of a checkpoint as libvirt describes it
 * (read by virt/, stored by db/, kept by core/checkpoint.h), and the states
 * the service gives a stored checkpoint (see core/checkpoint.h).
 */
#ifndef VV_CONF_CHECKPOINT_H
#define VV_CONF_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cleanup.h"
#include "conf/enum.h"

/* What the service holds of a stored checkpoint (core/checkpoint.h says what each means). */
enum conf_checkpoint_state {
    CONF_CHECKPOINT_OK,
    CONF_CHECKPOINT_REDEFINED,
    CONF_CHECKPOINT_BROKEN,
    CONF_CHECKPOINT_ORPHANED,
    CONF_CHECKPOINT_STATE_LAST,
};
CONF_ENUM_DECL(conf_checkpoint_state, enum conf_checkpoint_state);

/* True for ok and redefined: a checkpoint an incremental backup may count from. */
bool conf_checkpoint_state_healthy(enum conf_checkpoint_state s);

/* One disk of a checkpoint. */
struct conf_checkpoint_disk {
    char *target;       /* "vda" */
    bool bitmap;        /* true: tracked by a dirty bitmap; false: checkpoint='no' */
    char *bitmap_name;  /* the bitmap's name in the image, or NULL */
    int64_t size_bytes; /* bytes changed since the checkpoint, -1 when not known */
};

/* A checkpoint, as libvirt describes it in its XML. */
struct conf_checkpoint_def {
    char *name;
    char *parent;      /* NULL for a root */
    char *description; /* NULL when none */
    int64_t created;   /* creationTime, seconds since the epoch */
    size_t n_disks;
    struct conf_checkpoint_disk *disks;
    char *xml; /* the full XML (with <domain>), as redefining needs it */
};

/* Frees the members of disk d (not d itself). */
void conf_checkpoint_disk_clear(struct conf_checkpoint_disk *d);

/* Frees c and everything it owns. Accepts NULL. */
void conf_checkpoint_def_free(struct conf_checkpoint_def *c);

/* Frees the members of c (not c itself). */
void conf_checkpoint_def_clear(struct conf_checkpoint_def *c);

/* Frees an array of n checkpoints (as listings return them). */
void conf_checkpoint_def_list_free(struct conf_checkpoint_def *list, size_t n);

DEFINE_TRIVIAL_CLEANUP_FUNC(struct conf_checkpoint_def *, conf_checkpoint_def_free);

#endif
