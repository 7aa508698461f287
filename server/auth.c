#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    _cleanup_free_ char *buf = NULL;
    size_t len;
    int r;

    if (!f) {
        r = -errno;
        snprintf(err, err_size, "cannot read token file %s: %s", path, strerror(errno));
        return r;
    }
    buf = malloc(AUTH_MAX_FILE + 1);
    if (!buf)
        return -ENOMEM;
    len = fread(buf, 1, AUTH_MAX_FILE + 1, f);
    if (ferror(f)) {
        snprintf(err, err_size, "cannot read token file %s", path);
        return -EIO;
    }
    return auth_parse(buf, len, ret, err, err_size);
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
