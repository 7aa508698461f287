#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "cleanup.h"
#include "hash.h"
#include "text.h"

#define AUTH_MAX_FILE   (1u << 20)
#define AUTH_MAX_TOKENS 4096

__attribute__((format(printf, 3, 4))) static int
fail(char *err, size_t size, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static bool
is_hex64(const char *s, size_t len)
{
    if (len != 64)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* Parses one non-empty line into *t; returns 0 or -EINVAL with a message. */
static int
parse_line(char *line, unsigned lineno, struct auth_token *t, char *err, size_t size)
{
    char *save = NULL;
    char *word = strtok_r(line, " \t", &save);
    int field = 0;

    memset(t, 0, sizeof(*t));
    for (; word; word = strtok_r(NULL, " \t", &save), field++) {
        if (field == 0) {
            if (!text_startswith(word, "sha256:") || !is_hex64(word + 7, strlen(word + 7)))
                return fail(err, size,
                            "token file line %u: expected sha256:<64 lowercase hex digits>",
                            lineno);
            memcpy(t->hash, word + 7, 65);
        } else if (field == 1) {
            if (role_from_string(word, &t->role) < 0)
                return fail(err, size, "token file line %u: role must be viewer, operator or admin",
                            lineno);
        } else if (text_startswith(word, "name=")) {
            if (strlen(word + 5) >= sizeof(t->name) || !word[5])
                return fail(err, size, "token file line %u: name must be 1-63 characters", lineno);
            snprintf(t->name, sizeof(t->name), "%s", word + 5);
        } else if (text_startswith(word, "expires=")) {
            if (text_time_parse(word + 8, &t->expires) < 0)
                return fail(err, size, "token file line %u: expires must be an RFC 3339 UTC time",
                            lineno);
        } else {
            return fail(err, size, "token file line %u: unknown field", lineno);
        }
    }
    if (field < 2)
        return fail(err, size, "token file line %u: expected a hash and a role", lineno);
    return 0;
}

int
auth_parse(const char *text, size_t len, struct auth *ret, char *err, size_t err_size)
{
    _cleanup_free_ char *copy = NULL;
    _cleanup_free_ struct auth_token *tokens = NULL;
    size_t n = 0;
    unsigned lineno = 0;
    char *line, *next;

    if (len > AUTH_MAX_FILE)
        return fail(err, err_size, "token file is larger than %u bytes", AUTH_MAX_FILE);
    if (memchr(text, '\0', len))
        return fail(err, err_size, "token file contains a NUL byte");
    copy = strndup(text, len);
    tokens = calloc(AUTH_MAX_TOKENS, sizeof(*tokens));
    if (!copy || !tokens)
        return -ENOMEM;
    for (line = copy; line; line = next) {
        char *p;

        lineno++;
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if ((p = strchr(line, '#')))
            *p = '\0';
        for (p = line + strlen(line); p > line && strchr(" \t\r", p[-1]); p--)
            p[-1] = '\0';
        while (*line == ' ' || *line == '\t')
            line++;
        if (!*line)
            continue;
        if (n >= AUTH_MAX_TOKENS)
            return fail(err, err_size, "token file has more than %d tokens", AUTH_MAX_TOKENS);
        int r = parse_line(line, lineno, &tokens[n], err, err_size);
        if (r < 0)
            return r;
        n++;
    }
    if (n == 0)
        return fail(err, err_size, "token file lists no token");
    ret->tokens = TAKE_PTR(tokens);
    ret->n = n;
    return 0;
}

int
auth_load(const char *path, struct auth *ret, char *err, size_t err_size)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    _cleanup_free_ char *buf = NULL;
    struct stat st;
    size_t len = 0;
    int r;

    if (fd < 0 || fstat(fd, &st) < 0) {
        r = -errno;
        snprintf(err, err_size, "cannot read token file %s: %s", path, strerror(errno));
        return r;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, err_size, "token file %s is not a regular file", path);
        return -EINVAL;
    }
    /* Whoever may change the file may make themselves admin: only its owner, us or root. */
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(err, err_size,
                 "token file %s is writable by group or others (mode %04o); chmod go-w it", path,
                 (unsigned)(st.st_mode & 07777));
        return -EPERM;
    }
    if (st.st_uid != geteuid() && st.st_uid != 0) {
        snprintf(err, err_size, "token file %s is owned by uid %u, not by this user or root", path,
                 (unsigned)st.st_uid);
        return -EPERM;
    }
    buf = malloc(AUTH_MAX_FILE + 1);
    if (!buf)
        return -ENOMEM;
    for (;;) {
        ssize_t n = read(fd, buf + len, AUTH_MAX_FILE + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            snprintf(err, err_size, "cannot read token file %s: %s", path, strerror(errno));
            return r;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > AUTH_MAX_FILE)
            break;
    }
    return auth_parse(buf, len, ret, err, err_size);
}

int
auth_default_paths(const char *db_path, char **ret_tokens, char **ret_secret)
{
    const char *slash = strrchr(db_path, '/');
    int dir_len = slash ? (int)(slash - db_path) : 1;
    const char *dir = slash ? db_path : ".";
    char *tokens = NULL, *secret = NULL;

    if (slash == db_path)
        dir_len = 0; /* a database at the root: "/tokens" */
    if (asprintf(&tokens, "%.*s/tokens", dir_len, dir) < 0)
        return -ENOMEM;
    if (asprintf(&secret, "%.*s/admin-token", dir_len, dir) < 0) {
        free(tokens);
        return -ENOMEM;
    }
    *ret_tokens = tokens;
    *ret_secret = secret;
    return 0;
}

/* Writes all of text into a new file at path (mode 0600, never an existing one). */
static int
write_new_file(const char *path, const char *text)
{
    _cleanup_close_ int fd =
        open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
    size_t len = strlen(text), done = 0;

    if (fd < 0)
        return -errno;
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int r = -errno;
            unlink(path);
            return r;
        }
        done += (size_t)n;
    }
    if (fsync(fd) < 0) {
        int r = -errno;
        unlink(path);
        return r;
    }
    return 0;
}

int
auth_create(const char *tokens_path, const char *secret_path, char *err, size_t err_size)
{
    unsigned char raw[32];
    char token[2 * sizeof(raw) + 2]; /* the hex digits, a newline and the NUL */
    char hex[HASH_SHA256_HEX_LEN + 1];
    char line[256];
    struct stat st;
    int r;

    if (lstat(tokens_path, &st) == 0)
        return -EEXIST;
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        snprintf(err, err_size, "cannot make a token: no random bytes");
        return -EIO;
    }
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(token + 2 * i, 3, "%02x", raw[i]);
    hash_sha256_hex(token, strlen(token), hex);
    snprintf(line, sizeof(line),
             "# made by virtvaultd on first start; the token itself is in %s\n"
             "sha256:%s admin name=admin\n",
             "admin-token", hex);
    /* A secret left by a start that died before writing the token file is stale. */
    if (unlink(secret_path) < 0 && errno != ENOENT) {
        r = -errno;
        snprintf(err, err_size, "cannot replace %s: %s", secret_path, strerror(errno));
        return r;
    }
    strcat(token, "\n");
    r = write_new_file(secret_path, token);
    explicit_bzero(token, sizeof(token));
    explicit_bzero(raw, sizeof(raw));
    if (r < 0) {
        snprintf(err, err_size, "cannot write %s: %s", secret_path, strerror(-r));
        return r;
    }
    r = write_new_file(tokens_path, line);
    if (r < 0) {
        unlink(secret_path);
        if (r == -EEXIST)
            return r;
        snprintf(err, err_size, "cannot write token file %s: %s", tokens_path, strerror(-r));
        return r;
    }
    return 0;
}

void
auth_clear(struct auth *a)
{
    free(a->tokens);
    a->tokens = NULL;
    a->n = 0;
}

enum auth_result
auth_check(const struct auth *a, const char *header, time_t now,
           const struct auth_token **ret_token)
{
    char hex[HASH_SHA256_HEX_LEN + 1];
    const struct auth_token *found = NULL;
    const char *tok;

    if (!header || strncasecmp(header, "Bearer ", 7) != 0)
        return AUTH_MISSING;
    tok = header + 7;
    while (*tok == ' ')
        tok++;
    if (!*tok)
        return AUTH_MISSING;
    hash_sha256_hex(tok, strlen(tok), hex);
    /* Look at every entry, so the time taken does not say which one matched. */
    for (size_t i = 0; i < a->n; i++)
        if (hash_equal(hex, a->tokens[i].hash) && !found)
            found = &a->tokens[i];
    if (!found)
        return AUTH_INVALID;
    if (found->expires && found->expires <= now)
        return AUTH_EXPIRED;
    *ret_token = found;
    return AUTH_OK;
}
