/*
 * virt_clone.h - the steps that make a restored domain's XML a safe clone
 * (clone.c). Only virt/ includes this; virt.h has the public side.
 */
#ifndef VV_VIRT_CLONE_H
#define VV_VIRT_CLONE_H

#include <libxml/xpath.h>

#include "virt.h"

/* Appends one change ("what", printf-style detail); -E2BIG past a hard maximum. */
int virt_clone_change_add(struct virt_clone_changes *c, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Graphics bound to 127.0.0.1 with no password and no fixed port; unless
 * keep says otherwise, <filesystem>, <hostdev> (and hostdev interfaces) are
 * dropped and character devices lose their log files and output files.
 * Each change is appended to changes. 0 or a negative errno.
 */
int virt_clone_sanitize(xmlXPathContextPtr ctx, unsigned keep, struct virt_clone_changes *changes);

/*
 * Gives the clone a variable store of its own: the original's NVRAM file is
 * copied to "<name>_VARS.fd" under where->dirfd (O_EXCL) and <nvram> points
 * at it (when the original's file is missing, <nvram> points at the new
 * path and libvirt makes it from the template). *ret_created is the file
 * name created under dirfd (for the caller to remove on a later failure),
 * or NULL.
 */
int virt_clone_nvram(xmlXPathContextPtr ctx, const struct virt_clone_target *where,
                     const char *name, struct virt_clone_changes *changes, char **ret_created);

/*
 * Empties the value of every graphics password in ctx's document (a
 * domain's XML read with the secure flag) and writes the document out as a
 * new *ret. 0 or a negative errno.
 */
int virt_clone_redact(xmlXPathContextPtr ctx, char **ret);

#endif
