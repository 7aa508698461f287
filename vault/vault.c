/* Backup files on disk: layout, images, sealing, external programs. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "err.h"
#include "hash.h"
#include "subprocess.h"
#include "text.h"
#include "vault.h"

#define QEMU_IMG     "qemu-img"
#define OUTPUT_MAX   (256u << 10)
#define STDERR_QUOTE 400

extern char **environ;

int
vault_prepare(const char *dir)
{
    struct stat st;

    if (mkdir(dir, 0750) < 0 && errno != EEXIST)
        return err_set(-errno, "cannot create vault folder %s: %s", dir, strerror(errno));
    if (stat(dir, &st) < 0)
        return err_set(-errno, "cannot use vault folder %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return err_set(-ENOTDIR, "vault %s is not a folder", dir);
    if (access(dir, W_OK | X_OK) < 0)
        return err_set(-errno, "vault folder %s is not writable: %s", dir, strerror(errno));
    return 0;
}

/* A part of a vault path: a plain name, no separators, nothing hidden. */
static bool
plain_name(const char *s)
{
    return s && text_name_valid(s);
}

int
vault_image_path(const char *uuid, const char *chain_id, const char *backup_id, const char *disk,
                 char **ret)
{
    char *p;

    if (!plain_name(uuid) || !plain_name(chain_id) || !plain_name(backup_id) || !plain_name(disk))
        return err_set(-EINVAL, "not a plain name in a vault path");
    if (asprintf(&p, "%s/%s/%s.%s.qcow2", uuid, chain_id, backup_id, disk) < 0)
        return -ENOMEM;
    *ret = p;
    return 0;
}

/* "<vault>/<rel><suffix>" into buf. */
static int
full_path(char *buf, size_t size, const char *vault, const char *rel, const char *suffix)
{
    if ((size_t)snprintf(buf, size, "%s/%s%s", vault, rel, suffix) >= size)
        return err_set(-ENAMETOOLONG, "vault path too long: %s/%s", vault, rel);
    return 0;
}

/* mkdir -p of the folders of rel below vault. */
/*
 * Opens the folder of "<vault>/<rel>" by descriptor, one component at a
 * time from the vault, creating what is missing (0750) and following no
 * symbolic link; *ret_name points at rel's last component.
 */
static int
open_parent_at(const char *vault, const char *rel, int *ret_fd, const char **ret_name)
{
    _cleanup_close_ int fd = open(vault, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    const char *seg = rel, *slash;
    char name[NAME_MAX + 1];

    if (fd < 0)
        return err_set(-errno, "cannot open the vault %s: %s", vault, strerror(errno));
    for (; (slash = strchr(seg, '/')); seg = slash + 1) {
        size_t len = (size_t)(slash - seg);
        int next;

        if (len == 0 || len > NAME_MAX)
            return err_set(-EINVAL, "not a plain name in the vault path %s", rel);
        memcpy(name, seg, len);
        name[len] = '\0';
        if (!plain_name(name))
            return err_set(-EINVAL, "not a plain name in the vault path %s", rel);
        if (mkdirat(fd, name, 0750) < 0 && errno != EEXIST)
            return err_set(-errno, "cannot create %s/%.*s: %s", vault, (int)(slash - rel), rel,
                           strerror(errno));
        next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0)
            return err_set(errno == ELOOP || errno == ENOTDIR ? -EACCES : -errno,
                           "cannot open %s/%.*s: %s", vault, (int)(slash - rel), rel,
                           errno == ELOOP ? "it is a symbolic link" : strerror(errno));
        close(fd);
        fd = next;
    }
    *ret_fd = TAKE_FD(fd);
    *ret_name = seg;
    return 0;
}

static int
fsync_path(const char *path, int flags)
{
    _cleanup_close_ int fd = open(path, flags | O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return err_set(-errno, "cannot open %s: %s", path, strerror(errno));
    if (fsync(fd) < 0)
        return err_set(-errno, "cannot sync %s: %s", path, strerror(errno));
    return 0;
}

/* fsyncs the folder that holds path. */
static int
fsync_parent(const char *path)
{
    _cleanup_free_ char *dir = strdup(path);
    char *slash;

    if (!dir)
        return -ENOMEM;
    slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        return fsync_path(".", O_DIRECTORY);
    return fsync_path(dir, O_DIRECTORY);
}

/* Reads fd to its end into a growing buffer capped at OUTPUT_MAX (the rest is dropped). */
static void
drain(int fd, char **buf, size_t *len)
{
    char chunk[4096];
    ssize_t n;

    while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
        size_t take = *len + (size_t)n > OUTPUT_MAX ? OUTPUT_MAX - *len : (size_t)n;
        char *nb;

        if (take == 0)
            continue;
        nb = realloc(*buf, *len + take + 1);
        if (!nb)
            return;
        memcpy(nb + *len, chunk, take);
        *len += take;
        nb[*len] = '\0';
        *buf = nb;
    }
}

/*
 * Starts argv with stdin from /dev/null, stdout and stderr into the given
 * pipes, pass_fd (when >= 0, and not VAULT_PASSED_FD itself) as its
 * descriptor VAULT_PASSED_FD, an empty signal mask and default handlers: the daemon blocks
 * SIGINT/SIGTERM in its threads, and a child that inherited that would
 * ignore a cancel.
 */
static int
spawn_child(char *const argv[], int out_fd, int err_fd, int pass_fd, pid_t *ret_pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, defaults;
    int rc;

    sigemptyset(&none);
    sigfillset(&defaults);
    sigdelset(&defaults, SIGKILL);
    sigdelset(&defaults, SIGSTOP);
    if (posix_spawn_file_actions_init(&fa) != 0)
        return ENOMEM;
    if (posix_spawnattr_init(&attr) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return ENOMEM;
    }
    rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
    if (rc == 0 && pass_fd >= 0)
        rc = posix_spawn_file_actions_adddup2(&fa, pass_fd, VAULT_PASSED_FD);
    if (rc == 0)
        rc = posix_spawnattr_setsigmask(&attr, &none);
    if (rc == 0)
        rc = posix_spawnattr_setsigdefault(&attr, &defaults);
    if (rc == 0)
        rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    if (rc == 0)
        rc = posix_spawnp(ret_pid, argv[0], &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    return rc;
}

/* vault_run, with pass_fd (or -1) handed to the program as VAULT_PASSED_FD. */
static int
run(char *const argv[], int pass_fd, const struct conf_cancel *cancel, char **ret_out,
    int *ret_status)
{
    int out[2] = {-1, -1}, errp[2] = {-1, -1};
    _cleanup_free_ char *obuf = NULL;
    _cleanup_free_ char *ebuf = NULL;
    size_t olen = 0, elen = 0;
    bool killed = false, hard = false;
    uint64_t kill_at = 0;
    pid_t pid;
    int status, rc;

    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
        int e = errno;
        closep(&out[0]);
        closep(&out[1]);
        return err_set(-e, "cannot make a pipe: %s", strerror(e));
    }
    rc = spawn_child(argv, out[1], errp[1], pass_fd, &pid);
    close(out[1]);
    close(errp[1]);
    if (rc != 0) {
        close(out[0]);
        close(errp[0]);
        return err_set(-rc, "cannot run %s: %s", argv[0], strerror(rc));
    }
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    fcntl(errp[0], F_SETFL, O_NONBLOCK);

    struct pollfd pfd[2] = {{.fd = out[0], .events = POLLIN}, {.fd = errp[0], .events = POLLIN}};
    for (;;) {
        int n = poll(pfd, 2, 100);
        if (n > 0) {
            if (pfd[0].revents)
                drain(out[0], &obuf, &olen);
            if (pfd[1].revents)
                drain(errp[0], &ebuf, &elen);
        }
        /*
         * Cancellation is looked at before the child is reaped: a cancelled run ends
         * cancelled even when the program was quick enough to finish first.
         */
        if (!killed && cancel && atomic_load(&cancel->cancelled)) {
            kill(pid, SIGTERM);
            killed = true;
            kill_at = text_mono_ns() + (uint64_t)VAULT_KILL_GRACE_MS * 1000000u;
        } else if (killed && !hard && text_mono_ns() >= kill_at) {
            /* It had its grace period: a program that ignores SIGTERM is not waited for. */
            kill(pid, SIGKILL);
            hard = true;
        }
        rc = waitpid(pid, &status, WNOHANG);
        if (rc == pid)
            break;
        if (rc < 0 && errno != EINTR) {
            status = -1;
            break;
        }
    }
    drain(out[0], &obuf, &olen);
    drain(errp[0], &ebuf, &elen);
    close(out[0]);
    close(errp[0]);

    if (killed)
        return err_set(-ECANCELED, "%s was cancelled", argv[0]);
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        int code = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        const char *why = ebuf && elen ? ebuf : obuf && olen ? obuf : "no message";
        size_t wl = strcspn(why, "\n");

        if (ret_status)
            *ret_status = code;
        if (ret_out && obuf)
            *ret_out = TAKE_PTR(obuf);
        return err_set(-EIO, "%s %s failed (exit %d): %.*s", argv[0], argv[1] ? argv[1] : "", code,
                       (int)(wl > STDERR_QUOTE ? STDERR_QUOTE : wl), why);
    }
    if (ret_status)
        *ret_status = 0;
    if (ret_out)
        *ret_out = obuf ? TAKE_PTR(obuf) : strdup("");
    return 0;
}

int
vault_run(char *const argv[], const struct conf_cancel *cancel, char **ret_out, int *ret_status)
{
    return run(argv, -1, cancel, ret_out, ret_status);
}

/*
 * Creates the qcow2 image name in the folder dirfd with O_EXCL (never over an
 * existing file or link) of virtual size size, an overlay on backing when
 * given (written as given, not opened: -u), through qemu-img writing into
 * the descriptor; with sync, fsync()ed. On failure no file is left.
 */
static int
qcow2_create_at(int dirfd, const char *name, uint64_t size, const char *backing, bool sync)
{
    char sz[32], out_arg[32];
    _cleanup_close_ int fd = -1;
    _cleanup_close_ int passed = -1;
    char *argv[14];
    size_t argc = 0;
    int r;

    fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
    if (fd < 0)
        return err_set(-errno, "cannot create %s: %s", name, strerror(errno));
    /* Not VAULT_PASSED_FD itself, so that the child's dup2 clears close-on-exec. */
    passed = fcntl(fd, F_DUPFD_CLOEXEC, VAULT_PASSED_FD + 1);
    if (passed < 0) {
        r = err_set(-errno, "cannot pass %s on: %s", name, strerror(errno));
        (void)unlinkat(dirfd, name, 0);
        return r;
    }
    snprintf(sz, sizeof(sz), "%" PRIu64, size);
    snprintf(out_arg, sizeof(out_arg), "/dev/fd/%d", VAULT_PASSED_FD);
    argv[argc++] = (char *)QEMU_IMG;
    argv[argc++] = (char *)"create";
    argv[argc++] = (char *)"-q";
    argv[argc++] = (char *)"-f";
    argv[argc++] = (char *)"qcow2";
    if (backing) {
        argv[argc++] = (char *)"-b";
        argv[argc++] = (char *)backing;
        argv[argc++] = (char *)"-F";
        argv[argc++] = (char *)"qcow2";
        argv[argc++] = (char *)"-u";
    }
    argv[argc++] = out_arg;
    argv[argc++] = sz;
    argv[argc] = NULL;
    r = run(argv, passed, NULL, NULL, NULL);
    if (r >= 0 && sync && fsync(fd) < 0)
        r = err_set(-errno, "cannot sync %s: %s", name, strerror(errno));
    if (r < 0)
        (void)unlinkat(dirfd, name, 0);
    return r;
}

int
vault_image_create(const char *vault, const char *rel, uint64_t size, const char *backing)
{
    char part[NAME_MAX + 1];
    _cleanup_close_ int dirfd = -1;
    const char *name = NULL;
    int r;

    if (backing && !plain_name(backing) && strchr(backing, '/'))
        return err_set(-EINVAL, "backing file '%s' is not in the image's folder", backing);
    r = open_parent_at(vault, rel, &dirfd, &name);
    if (r < 0)
        return r;
    if ((size_t)snprintf(part, sizeof(part), "%s%s", name, VAULT_PART_SUFFIX) >= sizeof(part))
        return err_set(-ENAMETOOLONG, "file name too long: %s", name);
    /* A .part left by a crash goes; the new one must be this call's own, not a planted link. */
    if (unlinkat(dirfd, part, 0) < 0 && errno != ENOENT)
        return err_set(-errno, "cannot replace %s/%s: %s", vault, rel, strerror(errno));
    /* The backing file is written as given, relative to the image: the size is known. */
    return qcow2_create_at(dirfd, part, size, backing, false);
}

int
vault_image_writeback(const char *vault, const char *rel)
{
    char part[PATH_MAX];
    _cleanup_close_ int fd = -1;
    int r;

    r = full_path(part, sizeof(part), vault, rel, VAULT_PART_SUFFIX);
    if (r < 0)
        return r;
    fd = open(part, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE) < 0)
        return -errno;
    return 0;
}

int
vault_image_seal(const char *vault, const char *rel, struct vault_follow *follow,
                 uint64_t *ret_stored, struct vault_checksum *ret_sum)
{
    char part[PATH_MAX], final[PATH_MAX];
    struct vault_checksum sum = {0};
    uint64_t stored = 0;
    int r = 0;

    r = full_path(part, sizeof(part), vault, rel, VAULT_PART_SUFFIX);
    if (r >= 0)
        r = full_path(final, sizeof(final), vault, rel, "");
    if (r < 0)
        return r;
    r = vault_file_checksum(part, follow, true, NULL, &stored, ret_sum ? &sum : NULL);
    if (r >= 0 && rename(part, final) < 0)
        r = err_set(-errno, "cannot rename %s: %s", part, strerror(errno));
    if (r >= 0)
        r = fsync_parent(final);
    if (r < 0) {
        vault_checksum_clear(&sum);
        return r;
    }
    if (ret_stored)
        *ret_stored = stored;
    if (ret_sum)
        *ret_sum = sum;
    return 0;
}

int
vault_image_remove(const char *vault, const char *rel)
{
    static const char *const suffixes[] = {"", VAULT_PART_SUFFIX};
    char path[PATH_MAX];
    int r;

    for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++) {
        r = full_path(path, sizeof(path), vault, rel, suffixes[i]);
        if (r < 0)
            return r;
        if (unlink(path) < 0 && errno != ENOENT)
            return err_set(-errno, "cannot delete %s: %s", path, strerror(errno));
    }
    return 0;
}

void
vault_prune_dirs(const char *vault, const char *rel)
{
    char path[PATH_MAX];
    char *slash;

    if (full_path(path, sizeof(path), vault, rel, "") < 0)
        return;
    while ((slash = strrchr(path, '/')) && (size_t)(slash - path) > strlen(vault)) {
        *slash = '\0';
        if (rmdir(path) < 0)
            break;
    }
}

static uint64_t
be64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

int
vault_qcow2_backing(const char *path, char **ret)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    unsigned char hdr[20];
    uint64_t off;
    uint32_t len;
    char *name;

    if (fd < 0)
        return err_set(-errno, "cannot open %s: %s", path, strerror(errno));
    if (pread(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) || memcmp(hdr, "QFI\xfb", 4) != 0)
        return err_set(-EINVAL, "%s is not a qcow2 image", path);
    off = be64(hdr + 8);
    len = (uint32_t)(be64(hdr + 12) & 0xffffffffu);
    if (off == 0 || len == 0) {
        *ret = NULL;
        return 0;
    }
    if (len > 1023)
        return err_set(-EINVAL, "%s: backing file name too long", path);
    name = calloc(1, len + 1);
    if (!name)
        return -ENOMEM;
    if (pread(fd, name, len, (off_t)off) != (ssize_t)len) {
        free(name);
        return err_set(-EINVAL, "%s: cannot read the backing file name", path);
    }
    *ret = name;
    return 0;
}

/* Whether name in dirfd can be opened with O_DIRECT (qemu-img's cache mode none). */
static bool
direct_io_ok(int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_WRONLY | O_DIRECT | O_NOFOLLOW | O_CLOEXEC);

    if (fd < 0)
        return false;
    close(fd);
    return true;
}

int
vault_image_flatten_at(int dirfd, const char *name, const char *src, const char *format,
                       uint64_t rate, const struct conf_cancel *cancel)
{
    char part[NAME_MAX + 1], rate_arg[32], out_arg[32];
    _cleanup_close_ int fd = -1;
    _cleanup_close_ int passed = -1;
    struct stat st;
    int r;

    if (strcmp(format, "qcow2") != 0 && strcmp(format, "raw") != 0)
        return err_set(-EINVAL, "format must be qcow2 or raw");
    if (!plain_name(name))
        return err_set(-EINVAL, "'%s' is not a plain file name", name);
    if ((size_t)snprintf(part, sizeof(part), "%s%s", name, VAULT_PART_SUFFIX) >= sizeof(part))
        return err_set(-ENAMETOOLONG, "file name too long: %s", name);
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
        return err_set(-EEXIST, "%s exists already; restore does not replace files", name);
    /* A .part left by a crash goes; the new one must be this call's own, not a planted link. */
    if (unlinkat(dirfd, part, 0) < 0 && errno != ENOENT)
        return err_set(-errno, "cannot replace %s: %s", part, strerror(errno));
    fd = openat(dirfd, part, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
    if (fd < 0)
        return err_set(-errno, "cannot create %s: %s", part, strerror(errno));
    /* Not VAULT_PASSED_FD itself, so that the child's dup2 clears close-on-exec. */
    passed = fcntl(fd, F_DUPFD_CLOEXEC, VAULT_PASSED_FD + 1);
    if (passed < 0) {
        r = err_set(-errno, "cannot pass %s on: %s", part, strerror(errno));
        (void)unlinkat(dirfd, part, 0);
        return r;
    }
    snprintf(rate_arg, sizeof(rate_arg), "%" PRIu64, rate);
    snprintf(out_arg, sizeof(out_arg), "/dev/fd/%d", VAULT_PASSED_FD);

    char *argv[18];
    size_t argc = 0;
    argv[argc++] = (char *)QEMU_IMG;
    argv[argc++] = (char *)"convert";
    if (rate) {
        argv[argc++] = (char *)"-r";
        argv[argc++] = rate_arg;
    }
    /*
     * The new file is written past the page cache (it is synced at the end anyway:
     * one copy less, no writeback storm) by 16 requests at once, in any order for
     * raw (a qcow2 keeps its clusters in disk order); holes stay holes, as the
     * file is new. A file system without O_DIRECT (tmpfs) keeps the cache.
     */
    if (direct_io_ok(dirfd, part)) {
        argv[argc++] = (char *)"-t";
        argv[argc++] = (char *)"none";
    }
    argv[argc++] = (char *)"-m";
    argv[argc++] = (char *)"16";
    if (strcmp(format, "raw") == 0)
        argv[argc++] = (char *)"-W";
    argv[argc++] = (char *)"-f";
    argv[argc++] = (char *)"qcow2";
    argv[argc++] = (char *)"-O";
    argv[argc++] = (char *)format;
    argv[argc++] = (char *)src;
    argv[argc++] = out_arg;
    argv[argc] = NULL;
    r = run(argv, passed, cancel, NULL, NULL);
    if (r >= 0 && fsync(fd) < 0)
        r = err_set(-errno, "cannot sync %s: %s", part, strerror(errno));
    if (r >= 0 && linkat(dirfd, part, dirfd, name, 0) < 0)
        r = err_set(errno == EEXIST ? -EEXIST : -errno, "cannot create %s: %s", name,
                    strerror(errno));
    (void)unlinkat(dirfd, part, 0);
    if (r >= 0 && fsync(dirfd) < 0)
        r = err_set(-errno, "cannot sync the folder of %s: %s", name, strerror(errno));
    return r;
}

int
vault_dir_open(const char *path, char *const *roots, size_t n_roots, int *ret_fd)
{
    char link[64], resolved[PATH_MAX], root[PATH_MAX];
    _cleanup_close_ int fd = -1;
    ssize_t n;
    int r;

    r = vault_dir_inside(path, roots, n_roots);
    if (r < 0)
        return r;
    fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return err_set(-errno, "cannot open %s: %s", path, strerror(errno));
    /* What was opened, not what the path names now, must lie inside a root. */
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, resolved, sizeof(resolved) - 1);
    if (n < 0)
        return err_set(-errno, "cannot resolve %s: %s", path, strerror(errno));
    resolved[n] = '\0';
    for (size_t i = 0; i < n_roots; i++) {
        size_t rl;

        if (!realpath(roots[i], root))
            continue;
        rl = strlen(root);
        if (strncmp(resolved, root, rl) == 0 && (resolved[rl] == '/' || resolved[rl] == '\0')) {
            *ret_fd = TAKE_FD(fd);
            return 0;
        }
    }
    return err_set(-EACCES, "%s leads outside the restore roots", path);
}

/* Runs "qemu-img check" on the image qemu-img opens as spec, reporting path. */
static int
image_check(const char *spec, const char *path, const struct conf_cancel *cancel)
{
    _cleanup_free_ char *out = NULL;
    char *argv[] = {(char *)QEMU_IMG, (char *)"check", (char *)"-U", (char *)"-f",
                    (char *)"qcow2",  (char *)spec,    NULL};
    int status = 0, r;

    r = vault_run(argv, cancel, &out, &status);
    if (r == -EIO && status > 0) {
        /* 1: the check could not run; 2: corruption; 3: leaked clusters only. */
        const char *what = status == 3 ? "leaked clusters" : "corruption";
        char *line = out ? strstr(out, "ERROR") : NULL;
        size_t ll = line ? strcspn(line, "\n") : 0;

        if (status == 1)
            return r;
        return err_set(-EBADMSG, "qemu-img check found %s in %s%s%.*s", what, path,
                       line ? ": " : "", (int)(ll > 200 ? 200 : ll), line ? line : "");
    }
    return r;
}

int
vault_image_check(const char *path, const struct conf_cancel *cancel)
{
    return image_check(path, path, cancel);
}

int
vault_image_check_alone(const char *path, const struct conf_cancel *cancel)
{
    _cleanup_free_ char *spec = NULL;

    for (const char *p = path; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
            return err_set(-EINVAL, "cannot check %s without its backing file: an odd name", path);
    if (asprintf(&spec,
                 "json:{\"driver\": \"qcow2\", \"backing\": null, "
                 "\"file\": {\"driver\": \"file\", \"filename\": \"%s\"}}",
                 path) < 0)
        return -ENOMEM;
    return image_check(spec, path, cancel);
}

/* The root of roots path names by its text (realpath of the root into root), or -1. */
static ssize_t
dir_root_of(const char *path, char *const *roots, size_t n_roots, char root[PATH_MAX])
{
    for (size_t i = 0; i < n_roots; i++) {
        size_t rl;

        if (!realpath(roots[i], root))
            continue;
        rl = strlen(root);
        if (strncmp(path, root, rl) == 0 && (path[rl] == '/' || path[rl] == '\0'))
            return (ssize_t)rl;
    }
    return -1;
}

int
vault_dir_valid(const char *path, char *const *roots, size_t n_roots)
{
    char root[PATH_MAX];
    _cleanup_free_ char *copy = NULL;
    char *save = NULL;

    if (!path || path[0] != '/')
        return err_set_pointer(-EINVAL, "/target_dir", "must be an absolute path");
    copy = strdup(path);
    if (!copy)
        return -ENOMEM;
    for (char *seg = strtok_r(copy, "/", &save); seg; seg = strtok_r(NULL, "/", &save))
        if (strcmp(seg, ".") == 0 || strcmp(seg, "..") == 0)
            return err_set_pointer(-EINVAL, "/target_dir", "must not contain '.' or '..'");
    if (dir_root_of(path, roots, n_roots, root) < 0)
        return err_set_pointer(-EINVAL, "/target_dir", "%s is not inside a restore root", path);
    return 0;
}

int
vault_dir_inside(const char *path, char *const *roots, size_t n_roots)
{
    char resolved[PATH_MAX], root[PATH_MAX];
    _cleanup_free_ char *copy = NULL;
    ssize_t found;
    size_t rl;
    int r;

    r = vault_dir_valid(path, roots, n_roots);
    if (r < 0)
        return r;
    /* Create each missing folder, then resolve it: no symlink may lead out. */
    found = dir_root_of(path, roots, n_roots, root);
    if (found < 0)
        return err_set_pointer(-EINVAL, "/target_dir", "%s is not inside a restore root", path);
    rl = (size_t)found;
    copy = strdup(path);
    if (!copy)
        return -ENOMEM;
    for (char *p = copy + rl + 1; p <= copy + strlen(path); p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(copy, 0750) < 0 && errno != EEXIST)
            return err_set(-errno, "cannot create %s: %s", copy, strerror(errno));
        if (!realpath(copy, resolved))
            return err_set(-errno, "cannot resolve %s: %s", copy, strerror(errno));
        if (strncmp(resolved, root, rl) != 0 || (resolved[rl] != '/' && resolved[rl] != '\0'))
            return err_set(-EACCES, "%s leads outside the restore roots", copy);
        *p = c;
        if (c == '\0')
            break;
    }
    return 0;
}

/* Copies the file src into the new file dst (created 0640, O_EXCL), data only. */
static int
copy_file(const char *src, const char *dst)
{
    _cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
    _cleanup_close_ int out = -1;
    struct stat st;
    off_t left;

    if (in < 0)
        return err_set(-errno, "cannot open %s: %s", src, strerror(errno));
    if (fstat(in, &st) < 0)
        return err_set(-errno, "cannot stat %s: %s", src, strerror(errno));
    out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
    if (out < 0)
        return err_set(-errno, "cannot create %s: %s", dst, strerror(errno));
    for (left = st.st_size; left > 0;) {
        ssize_t n = copy_file_range(in, NULL, out, NULL, (size_t)left, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return err_set(n < 0 ? -errno : -EIO, "cannot copy %s: %s", src,
                           n < 0 ? strerror(errno) : "it shrank");
        left -= n;
    }
    return 0;
}

int
vault_image_merge(const char *vault, const char *rel, const char *new_backing,
                  const struct conf_cancel *cancel, uint64_t *ret_stored,
                  struct vault_checksum *ret_sum)
{
    char src[PATH_MAX], part[PATH_MAX];
    int r;

    if (new_backing && (!plain_name(new_backing) || strchr(new_backing, '/')))
        return err_set(-EINVAL, "backing file '%s' is not in the image's folder", new_backing);
    r = full_path(src, sizeof(src), vault, rel, "");
    if (r >= 0)
        r = full_path(part, sizeof(part), vault, rel, VAULT_PART_SUFFIX);
    if (r < 0)
        return r;
    if (unlink(part) < 0 && errno != ENOENT)
        return err_set(-errno, "cannot replace %s: %s", part, strerror(errno));
    if (!new_backing) {
        /*
         * The file is made here and handed over as a descriptor: a qemu-img that outlives
         * a killed daemon writes into a file a restart may have unlinked, never a new one.
         */
        char out_arg[32];
        _cleanup_close_ int fd = -1;
        _cleanup_close_ int passed = -1;

        fd = open(part, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
        if (fd < 0)
            return err_set(-errno, "cannot create %s: %s", part, strerror(errno));
        passed = fcntl(fd, F_DUPFD_CLOEXEC, VAULT_PASSED_FD + 1);
        if (passed < 0) {
            r = err_set(-errno, "cannot pass %s on: %s", part, strerror(errno));
            (void)unlink(part);
            return r;
        }
        snprintf(out_arg, sizeof(out_arg), "/dev/fd/%d", VAULT_PASSED_FD);
        char *argv[] = {
            (char *)QEMU_IMG, (char *)"convert", (char *)"-W", (char *)"-f", (char *)"qcow2",
            (char *)"-O",     (char *)"qcow2",   src,          out_arg,      NULL};
        r = run(argv, passed, cancel, NULL, NULL);
    } else {
        /* The copy names its backing file by the same relative name: it lies beside rel. */
        char *argv[] = {(char *)QEMU_IMG,
                        (char *)"rebase",
                        (char *)"-f",
                        (char *)"qcow2",
                        (char *)"-b",
                        (char *)new_backing,
                        (char *)"-F",
                        (char *)"qcow2",
                        part,
                        NULL};
        r = copy_file(src, part);
        if (r >= 0)
            r = run(argv, -1, cancel, NULL, NULL);
    }
    if (r >= 0)
        r = vault_file_checksum(part, NULL, true, cancel ? &cancel->cancelled : NULL, ret_stored,
                                ret_sum);
    if (r < 0)
        (void)unlink(part);
    return r;
}

int
vault_image_install(const char *vault, const char *rel)
{
    char part[PATH_MAX], final[PATH_MAX];
    int r;

    r = full_path(part, sizeof(part), vault, rel, VAULT_PART_SUFFIX);
    if (r >= 0)
        r = full_path(final, sizeof(final), vault, rel, "");
    if (r < 0)
        return r;
    if (rename(part, final) < 0)
        return err_set(-errno, "cannot rename %s: %s", part, strerror(errno));
    return fsync_parent(final);
}

int
vault_image_measure(const char *vault, const char *rel, uint64_t *ret)
{
    char src[PATH_MAX];
    _cleanup_free_ char *out = NULL;
    const char *p;
    int r;

    r = full_path(src, sizeof(src), vault, rel, "");
    if (r < 0)
        return r;
    char *argv[] = {(char *)QEMU_IMG,
                    (char *)"measure",
                    (char *)"--output=json",
                    (char *)"-f",
                    (char *)"qcow2",
                    (char *)"-O",
                    (char *)"qcow2",
                    src,
                    NULL};
    r = run(argv, -1, NULL, &out, NULL);
    if (r < 0)
        return r;
    p = out ? strstr(out, "\"required\":") : NULL;
    if (!p)
        return err_set(-EIO, "qemu-img measure gave no size for %s", src);
    *ret = strtoull(p + strlen("\"required\":"), NULL, 10);
    return 0;
}

int
vault_overlay_create_at(int dirfd, const char *name, uint64_t size, const char *backing)
{
    if (!plain_name(name))
        return err_set(-EINVAL, "'%s' is not a plain file name", name);
    if (backing && backing[0] != '/')
        return err_set(-EINVAL, "backing file '%s' is not an absolute path", backing);
    return qcow2_create_at(dirfd, name, size, backing, true);
}

int
vault_export_start(const char *image, const char *socket, const char *name, pid_t *ret_pid)
{
    char socket_arg[PATH_MAX + 16];
    const char *argv[] = {
        "qemu-nbd", "--read-only", "--persistent", "--shared=16", "--format=qcow2", "-x", name,
        socket_arg, "--",          image,          NULL};

    if ((size_t)snprintf(socket_arg, sizeof(socket_arg), "--socket=%s", socket) >=
        sizeof(socket_arg))
        return err_set(-ENAMETOOLONG, "socket path too long");
    (void)unlink(socket);
    return subprocess_spawn(argv, ret_pid);
}

void
vault_export_stop(pid_t pid, const char *socket)
{
    (void)subprocess_stop(pid, VAULT_KILL_GRACE_MS);
    if (socket)
        (void)unlink(socket);
}

int
vault_export_clients(const char *socket)
{
    char line[PATH_MAX + 128];
    FILE *f = fopen("/proc/net/unix", "re");
    int n = 0;

    if (!f)
        return -errno;
    while (fgets(line, sizeof(line), f)) {
        char st[8], path[PATH_MAX];
        size_t len;

        /* "Num RefCount Protocol Flags Type St Inode Path": St 03 is a connected socket. */
        if (sscanf(line, "%*s %*s %*s %*s %*s %7s %*s %4095s", st, path) != 2)
            continue;
        len = strlen(path);
        if (strcmp(st, "03") == 0 && len == strlen(socket) && strcmp(path, socket) == 0)
            n++;
    }
    fclose(f);
    return n;
}
