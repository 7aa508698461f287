/*
 * cleanup.h - scope-bound cleanup, in the manner of systemd's macro.h.
 *
 * A variable declared with _cleanup_(fn) has fn(&var) called when it leaves
 * scope, so a failure path is a plain "return -errno". TAKE_PTR() moves
 * ownership out of such a variable (it returns the pointer and clears it).
 * Every destructor used here accepts NULL.
 */
#ifndef VV_CLEANUP_H
#define VV_CLEANUP_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(fn) __attribute__((cleanup(fn)))

#define TAKE_PTR(p)                                                                                \
    ({                                                                                             \
        __typeof__(p) _taken = (p);                                                                \
        (p) = NULL;                                                                                \
        _taken;                                                                                    \
    })

#define TAKE_FD(fd)                                                                                \
    ({                                                                                             \
        int _taken = (fd);                                                                         \
        (fd) = -1;                                                                                 \
        _taken;                                                                                    \
    })

/* Declares fn##p(type **) that calls fn(*p) when *p is not NULL. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, fn)                                                      \
    static inline void fn##p(type *p)                                                              \
    {                                                                                              \
        if (*p)                                                                                    \
            fn(*p);                                                                                \
    }

static inline void
freep(void *p)
{
    free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void
closep(int *fd)
{
    if (*fd >= 0)
        close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline void
fclosep(FILE **f)
{
    if (*f)
        fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
