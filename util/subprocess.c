/* Running a helper program without a shell; see subprocess.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "err.h"
#include "subprocess.h"
#include "text.h"

extern char **environ;

struct sink {
    int fd;
    char *buf;
    size_t len, cap;
    bool overflow;
};

static int
sink_read(struct sink *s)
{
    char chunk[4096];
    ssize_t n = read(s->fd, chunk, sizeof(chunk));

    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 0 : -errno;
    if (n == 0) {
        close(s->fd);
        s->fd = -1;
        return 0;
    }
    if (s->len + (size_t)n > SUBPROCESS_OUTPUT_MAX) {
        s->overflow = true; /* keep draining so the child is not stuck on a full pipe */
        return 0;
    }
    if (s->len + (size_t)n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8192;
        while (cap < s->len + (size_t)n + 1)
            cap *= 2;
        char *b = realloc(s->buf, cap);
        if (!b)
            return -ENOMEM;
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, chunk, (size_t)n);
    s->len += (size_t)n;
    s->buf[s->len] = '\0';
    return 0;
}

static char *
sink_take(struct sink *s)
{
    if (!s->buf)
        return strdup("");
    return TAKE_PTR(s->buf);
}

static int
start(const char *const argv[], int out_fd, int err_fd, pid_t *ret_pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, defaults;
    pid_t pid;
    int r;

    /* Nothing blocked and nothing ignored, whatever the calling thread has. */
    sigemptyset(&none);
    sigfillset(&defaults);
    sigdelset(&defaults, SIGKILL);
    sigdelset(&defaults, SIGSTOP);
    if (posix_spawn_file_actions_init(&fa) != 0)
        return -ENOMEM;
    if (posix_spawnattr_init(&attr) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return -ENOMEM;
    }
    r = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    if (r == 0)
        r = posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO);
    if (r == 0)
        r = posix_spawn_file_actions_adddup2(&fa, err_fd, STDERR_FILENO);
    if (r == 0)
        r = posix_spawnattr_setsigmask(&attr, &none);
    if (r == 0)
        r = posix_spawnattr_setsigdefault(&attr, &defaults);
    if (r == 0)
        r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    if (r == 0)
        r = posix_spawnp(&pid, argv[0], &fa, &attr, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (r != 0)
        return err_set(r == ENOENT ? -ENOENT : -r, "cannot run %s: %s", argv[0], strerror(r));
    *ret_pid = pid;
    return 0;
}

static int
wait_exit(pid_t pid)
{
    int status;

    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

int
subprocess_capture(const char *const argv[], int timeout_ms, struct subprocess_result *ret)
{
    int out_pipe[2], err_pipe[2];
    struct sink sinks[2] = {{.fd = -1}, {.fd = -1}};
    uint64_t deadline = text_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    bool timed_out = false;
    pid_t pid = -1;
    int r = 0, code;

    if (pipe2(out_pipe, O_CLOEXEC) < 0)
        return -errno;
    if (pipe2(err_pipe, O_CLOEXEC) < 0) {
        r = -errno;
        close(out_pipe[0]);
        close(out_pipe[1]);
        return r;
    }
    r = start(argv, out_pipe[1], err_pipe[1], &pid);
    close(out_pipe[1]);
    close(err_pipe[1]);
    sinks[0].fd = out_pipe[0];
    sinks[1].fd = err_pipe[0];
    if (r < 0) {
        close(out_pipe[0]);
        close(err_pipe[0]);
        return r;
    }

    while (r == 0 && (sinks[0].fd >= 0 || sinks[1].fd >= 0)) {
        struct pollfd pfd[2];
        nfds_t n = 0;
        uint64_t now = text_mono_ns();

        if (now >= deadline) {
            timed_out = true;
            break;
        }
        for (size_t i = 0; i < 2; i++)
            if (sinks[i].fd >= 0)
                pfd[n++] = (struct pollfd){.fd = sinks[i].fd, .events = POLLIN};
        int p = poll(pfd, n, (int)((deadline - now) / 1000000u) + 1);
        if (p < 0 && errno != EINTR)
            r = -errno;
        for (nfds_t k = 0; r == 0 && p > 0 && k < n; k++) {
            if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            for (size_t i = 0; i < 2; i++)
                if (sinks[i].fd == pfd[k].fd)
                    r = sink_read(&sinks[i]);
        }
    }
    if (timed_out || r < 0)
        kill(pid, SIGKILL);
    code = wait_exit(pid);
    for (size_t i = 0; i < 2; i++)
        if (sinks[i].fd >= 0)
            close(sinks[i].fd);
    if (timed_out)
        r = err_set(-ETIMEDOUT, "%s did not finish within %d ms", argv[0], timeout_ms);
    else if (r == 0 && (sinks[0].overflow || sinks[1].overflow))
        r = err_set(-EFBIG, "%s printed more than %u bytes", argv[0], SUBPROCESS_OUTPUT_MAX);
    if (r == 0) {
        struct subprocess_result res = {.exit_code = code, .out_len = sinks[0].len};

        res.out = sink_take(&sinks[0]);
        res.err = sink_take(&sinks[1]);
        if (!res.out || !res.err) {
            subprocess_result_clear(&res);
            r = -ENOMEM;
        } else {
            *ret = res;
        }
    }
    free(sinks[0].buf);
    free(sinks[1].buf);
    return r;
}

void
subprocess_result_clear(struct subprocess_result *r)
{
    if (!r)
        return;
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
    r->out_len = 0;
}

int
subprocess_spawn(const char *const argv[], pid_t *ret_pid)
{
    int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    int r;

    if (null_fd < 0)
        return err_set(-errno, "cannot open /dev/null: %s", strerror(errno));
    r = start(argv, null_fd, null_fd, ret_pid);
    close(null_fd);
    return r;
}

int
subprocess_stop(pid_t pid, int grace_ms)
{
    uint64_t deadline = text_mono_ns() + (uint64_t)grace_ms * 1000000u;
    int status;

    if (pid <= 0)
        return 0;
    (void)kill(pid, SIGTERM);
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid || (w < 0 && errno == ECHILD))
            return 0;
        if (w < 0 && errno != EINTR)
            return -errno;
        if (text_mono_ns() > deadline) {
            (void)kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            return 0;
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}
