/*
 * subprocess.h - running a helper program (qemu-img) and reading what it prints.
 *
 * The program is started with posix_spawnp() from an argument vector: no
 * shell ever sees the arguments, so a value that came from outside cannot
 * become a command. stdin is /dev/null; stdout and stderr are read into
 * buffers with a hard maximum each; the child gets default handling of
 * every signal and an empty signal mask (the daemon blocks SIGINT/SIGTERM in
 * its threads, and a signal ignored here must not stay ignored there).
 * A child that outlives the timeout is killed.
 */
#ifndef VV_SUBPROCESS_H
#define VV_SUBPROCESS_H

#include <stddef.h>
#include <sys/types.h>

#define SUBPROCESS_OUTPUT_MAX (1u << 20)

struct subprocess_result {
    int exit_code; /* exit status, or 128 + signal number when killed by one */
    char *out;     /* what it printed on stdout, NUL-terminated; owned */
    size_t out_len;
    char *err; /* what it printed on stderr, NUL-terminated; owned */
};

/*
 * Runs argv[0] (searched in PATH) with argv (NULL-terminated) and waits for
 * it, at most timeout_ms. On success fills *ret (free it with
 * subprocess_result_clear()) whatever the exit code was. Returns -ENOENT with a
 * detail when the program cannot be started, -ETIMEDOUT when it had to be
 * killed, -EFBIG when it printed more than SUBPROCESS_OUTPUT_MAX on one stream,
 * -ENOMEM or another negative errno otherwise.
 */
int subprocess_capture(const char *const argv[], int timeout_ms, struct subprocess_result *ret);

/*
 * Starts argv[0] (searched in PATH) with argv and does not wait: a helper
 * that serves until stopped. Its stdout and stderr go to /dev/null; it
 * gets the same clean signal state. *ret_pid is the child, for
 * subprocess_stop().
 */
int subprocess_spawn(const char *const argv[], pid_t *ret_pid);

/*
 * Stops a child started by subprocess_spawn(): SIGTERM, SIGKILL when it is
 * still there after grace_ms, and reaps it. A child that is gone already
 * is no error.
 */
int subprocess_stop(pid_t pid, int grace_ms);

/* Frees the buffers of r (not r itself). Accepts a zeroed result. */
void subprocess_result_clear(struct subprocess_result *r);

#endif
