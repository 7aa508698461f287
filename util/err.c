#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

static _Thread_local struct err_state cur;

int
err_set(int errnum, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cur.detail, sizeof(cur.detail), fmt, ap);
    va_end(ap);
    cur.have = true;
    cur.kind = ERR_FIELD_NONE;
    return errnum;
}

/* "/disks/0/target" -> "disks[0].target", "" -> "the body", for the sentence. */
static void
pointer_words(const char *pointer, char *buf, size_t size)
{
    size_t used = 0;

    buf[0] = '\0';
    if (!pointer[0]) {
        snprintf(buf, size, "the body");
        return;
    }
    while (*pointer == '/' && used + 1 < size) {
        const char *seg = pointer + 1;
        size_t len = strcspn(seg, "/");
        bool index = len > 0 && strspn(seg, "0123456789") == len;

        if (index)
            used += (size_t)snprintf(buf + used, size - used, "[%.*s]", (int)len, seg);
        else
            used +=
                (size_t)snprintf(buf + used, size - used, "%s%.*s", used ? "." : "", (int)len, seg);
        if (used >= size)
            break;
        pointer = seg + len;
    }
}

static int __attribute__((format(printf, 4, 0)))
set_field(int errnum, enum err_field_kind kind, const char *name, const char *fmt, va_list ap)
{
    char words[400];

    vsnprintf(cur.field, sizeof(cur.field), fmt, ap);
    snprintf(cur.name, sizeof(cur.name), "%s", name);
    if (kind == ERR_FIELD_POINTER)
        pointer_words(cur.name, words, sizeof(words));
    else
        snprintf(words, sizeof(words), "query parameter '%s'", cur.name);
    snprintf(cur.detail, sizeof(cur.detail), "%s: %s", words, cur.field);
    cur.have = true;
    cur.kind = kind;
    return errnum;
}

int
err_set_pointer(int errnum, const char *pointer, const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = set_field(errnum, ERR_FIELD_POINTER, pointer, fmt, ap);
    va_end(ap);
    return r;
}

int
err_set_parameter(int errnum, const char *name, const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = set_field(errnum, ERR_FIELD_PARAMETER, name, fmt, ap);
    va_end(ap);
    return r;
}

enum err_field_kind
err_field(const char **ret_name, const char **ret_detail)
{
    if (cur.have && cur.kind != ERR_FIELD_NONE) {
        if (ret_name)
            *ret_name = cur.name;
        if (ret_detail)
            *ret_detail = cur.field;
    }
    return cur.have ? cur.kind : ERR_FIELD_NONE;
}

const char *
err_detail(void)
{
    return cur.have ? cur.detail : NULL;
}

void
err_clear(void)
{
    cur.have = false;
    cur.detail[0] = '\0';
    cur.kind = ERR_FIELD_NONE;
}

void
err_save(struct err_state *st)
{
    *st = cur;
}

void
err_restore(const struct err_state *st)
{
    cur = *st;
}
