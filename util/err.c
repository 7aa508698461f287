#include <stdarg.h>
#include <stdio.h>

#include "err.h"

static _Thread_local char detail[1024];
static _Thread_local int have_detail;

int
err_set(int errnum, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    have_detail = 1;
    return errnum;
}

const char *
err_detail(void)
{
    return have_detail ? detail : NULL;
}

void
err_clear(void)
{
    have_detail = 0;
    detail[0] = '\0';
}
