/* Records of filesystems inside disk images (files.h). */
#include <stdlib.h>

#include "files.h"

CONF_ENUM_IMPL(conf_file_type, enum conf_file_type, CONF_FILE_TYPE_LAST, "file", "directory",
               "symlink", "char", "block", "fifo", "socket", "unknown");

void
conf_filesystems_free(struct conf_filesystem *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].device);
        free(v[i].type);
        free(v[i].label);
        free(v[i].uuid);
    }
    free(v);
}

void
conf_files_free(struct conf_file *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].name);
        free(v[i].target);
    }
    free(v);
}
