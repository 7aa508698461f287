/*
 * conf/enum.h - one table between an enum and its strings, in the manner of
 * libvirt's VIR_ENUM_IMPL.
 *
 *     in the header:  CONF_ENUM_DECL(conf_backup_state, enum conf_backup_state);
 *     in the .c file: CONF_ENUM_IMPL(conf_backup_state, enum conf_backup_state,
 *                                    CONF_BACKUP_STATE_LAST, "running", "ready", ...);
 *
 * gives
 *     const char *conf_backup_state_to_string(enum conf_backup_state v);
 *         the string of v (static), or NULL for a value outside the table;
 *     int conf_backup_state_from_string(const char *s, enum conf_backup_state *ret);
 *         0 and *ret set, or -EINVAL for NULL or a string not in the table.
 *
 * The strings are given in the order of the enum's values, which start at 0;
 * a table whose length differs from the enum's _LAST fails to compile.
 */
#ifndef VV_CONF_ENUM_H
#define VV_CONF_ENUM_H

#include <errno.h>
#include <stddef.h>
#include <string.h>

/* Looks s up in a table of n strings; the index or -EINVAL. */
static inline int
conf_enum_from_string(const char *const *table, size_t n, const char *s)
{
    if (!s)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(table[i], s) == 0)
            return (int)i;
    return -EINVAL;
}

#define CONF_ENUM_DECL(name, type)                                                                 \
    const char *name##_to_string(type v);                                                          \
    int name##_from_string(const char *s, type *ret)

#define CONF_ENUM_IMPL(name, type, last, ...)                                                      \
    static const char *const name##_table[] = {__VA_ARGS__};                                       \
    _Static_assert(sizeof(name##_table) / sizeof(name##_table[0]) == (size_t)(last),               \
                   #name " has one string per value");                                             \
    const char *name##_to_string(type v)                                                           \
    {                                                                                              \
        if ((int)v < 0 || (size_t)v >= (size_t)(last))                                             \
            return NULL;                                                                           \
        return name##_table[v];                                                                    \
    }                                                                                              \
    int name##_from_string(const char *s, type *ret)                                               \
    {                                                                                              \
        int i = conf_enum_from_string(name##_table, (size_t)(last), s);                            \
        if (i < 0)                                                                                 \
            return i;                                                                              \
        *ret = (type)i;                                                                            \
        return 0;                                                                                  \
    }

#endif
