/*
 * conf/files.h - what a filesystem inside a disk image holds, as the layers
 * pass it: the filesystems found on a disk, and the entries of one of its
 * folders. Every string is owned by its record; the free functions accept
 * NULL.
 */
#ifndef VV_CONF_FILES_H
#define VV_CONF_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "enum.h"

enum conf_file_type {
    CONF_FILE_FILE,
    CONF_FILE_DIRECTORY,
    CONF_FILE_SYMLINK,
    CONF_FILE_CHAR,
    CONF_FILE_BLOCK,
    CONF_FILE_FIFO,
    CONF_FILE_SOCKET,
    CONF_FILE_UNKNOWN,
    CONF_FILE_TYPE_LAST,
};
CONF_ENUM_DECL(conf_file_type, enum conf_file_type);

/* A filesystem of a disk: a partition, a logical volume or the whole device. */
struct conf_filesystem {
    char *device; /* as the appliance names it: "/dev/sda1", "/dev/vg0/root" */
    char *type;   /* "ext4", "xfs", ...: what libguestfs detected */
    char *label;  /* "" when it has none */
    char *uuid;   /* "" when it has none */
    int64_t size; /* bytes of the device, -1 when unknown */
    int drive;    /* the image it lies on, as the images were given (0...); -1: unknown */
};

void conf_filesystems_free(struct conf_filesystem *v, size_t n);

/* One entry of a folder. */
struct conf_file {
    char *name;
    enum conf_file_type type;
    int64_t size;
    unsigned mode;   /* the permission bits (07777) */
    int64_t mtime_s; /* seconds since the epoch */
    char *target;    /* a symlink's target as stored, else NULL */
};

void conf_files_free(struct conf_file *v, size_t n);

#endif
