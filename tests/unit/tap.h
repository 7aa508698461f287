/*
 * tap.h - a tiny TAP producer for table-driven unit tests.
 *
 *     ok(cond, "what %s", ...);   one test point
 *     return tap_done();          plan line and exit status
 */
#ifndef VV_TAP_H
#define VV_TAP_H

#include <stdarg.h>
#include <stdio.h>

static int tap_n, tap_failed;

__attribute__((format(printf, 2, 3))) static inline int
ok(int cond, const char *fmt, ...)
{
    va_list ap;

    tap_n++;
    printf("%s %d - ", cond ? "ok" : "not ok", tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    if (!cond)
        tap_failed++;
    return cond;
}

static inline int
tap_done(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}

#endif
