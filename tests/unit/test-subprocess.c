/* Unit tests: running helper programs without a shell. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "subprocess.h"
#include "tap.h"

static const struct {
    const char *title;
    const char *argv[6];
    int timeout_ms;
    int ret;         /* expected return */
    int exit_code;   /* expected exit code when ret == 0 */
    const char *out; /* expected stdout prefix, or NULL */
    const char *err; /* expected substring of stderr, or NULL */
} cases[] = {
    {"stdout is captured", {"printf", "%s", "hello", NULL}, 5000, 0, 0, "hello", NULL},
    {"arguments are not a shell's",
     {"printf", "%s", "$(id);`id`|x", NULL},
     5000,
     0,
     0,
     "$(id);`id`|x",
     NULL},
    {"the exit code is reported", {"sh", "-c", "exit 3", NULL}, 5000, 0, 3, "", NULL},
    {"stderr is captured apart",
     {"sh", "-c", "echo out; echo oops >&2", NULL},
     5000,
     0,
     0,
     "out\n",
     "oops"},
    {"stdin is empty", {"cat", NULL}, 5000, 0, 0, "", NULL},
    {"a missing program", {"no-such-program-vv", NULL}, 5000, -ENOENT, 0, NULL, NULL},
    {"a program that hangs is killed", {"sleep", "10", NULL}, 200, -ETIMEDOUT, 0, NULL, NULL},
    {"output beyond the cap",
     {"head", "-c", "2000000", "/dev/zero", NULL},
     5000,
     -EFBIG,
     0,
     NULL,
     NULL},
    {"a child killed by a signal", {"sh", "-c", "kill -9 $$", NULL}, 5000, 0, 137, "", NULL},
};

int
main(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct subprocess_result res = {.exit_code = -99};
        int r = subprocess_capture(cases[i].argv, cases[i].timeout_ms, &res);
        int good = r == cases[i].ret;

        if (good && r == 0) {
            good = res.exit_code == cases[i].exit_code &&
                   (!cases[i].out || strcmp(res.out, cases[i].out) == 0) &&
                   (!cases[i].err || strstr(res.err, cases[i].err));
        } else if (good) {
            good = res.exit_code == -99 && !res.out; /* untouched on failure */
        }
        ok(good, "%s (r=%d exit=%d)", cases[i].title, r, res.exit_code);
        subprocess_result_clear(&res);
    }

    /* What the daemon blocks or ignores does not reach the child. */
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, NULL);
    signal(SIGHUP, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    const char *status[] = {"grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status", NULL};
    struct subprocess_result res = {0};
    unsigned long long blk = ~0ull, ign = ~0ull;
    int r = subprocess_capture(status, 5000, &res);
    int parsed = r == 0 && sscanf(res.out, "SigBlk: %llx SigIgn: %llx", &blk, &ign) == 2;
    ok(parsed && blk == 0, "the child blocks no signal (%llx)", blk);
    /* Bit n-1 is signal n; libc's own realtime signals are not the daemon's doing. */
    ok((ign & 0x7fffffffull) == 0, "and ignores no standard signal (%llx)", ign);
    subprocess_result_clear(&res);
    return tap_done();
}
