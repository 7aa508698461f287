/*
 * auth.h - bearer tokens with roles, read from the token file.
 *
 * The file holds one token a line, as the SHA-256 of the token (never the
 * token itself), its role and optional fields:
 *
 *     # comment
 *     sha256:<64 hex> <viewer|operator|admin> [name=<label>] [expires=<RFC 3339 UTC>]
 *
 * A request presents "Authorization: Bearer <token>"; its hash is compared
 * in constant time with every entry.
 */
#ifndef VV_AUTH_H
#define VV_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "router.h"

struct auth_token {
    char hash[65];
    enum role role;
    char name[64];
    time_t expires; /* 0: never */
};

struct auth {
    struct auth_token *tokens;
    size_t n;
};

/*
 * Parses the text of a token file. On success *ret holds the tokens (free
 * with auth_clear). On error returns -EINVAL and a one-line message naming
 * the line in err.
 */
int auth_parse(const char *text, size_t len, struct auth *ret, char *err, size_t err_size);

/*
 * Reads and parses path; as auth_parse, plus -errno when it cannot be read
 * and -EPERM when the file is writable by group or others, or owned by
 * another user than the caller's effective one or root.
 */
int auth_load(const char *path, struct auth *ret, char *err, size_t err_size);

/*
 * The token file used when none is given: "tokens" in the folder of the
 * database db_path, and "admin-token" beside it, the file that holds the
 * token made on first start. *ret_tokens and *ret_secret are new strings.
 * Returns 0 or -ENOMEM.
 */
int auth_default_paths(const char *db_path, char **ret_tokens, char **ret_secret);

/*
 * First start: makes a random admin token, writes it to secret_path and its
 * hash to tokens_path, both new files of mode 0600. Returns 0; -EEXIST,
 * touching nothing, when tokens_path exists; or a negative errno with a
 * one-line message in err. The token is never logged or returned.
 */
int auth_create(const char *tokens_path, const char *secret_path, char *err, size_t err_size);

void auth_clear(struct auth *a);

enum auth_result {
    AUTH_OK,
    AUTH_MISSING, /* no bearer token presented */
    AUTH_INVALID, /* unknown token */
    AUTH_EXPIRED, /* known but past its expiry */
};

/*
 * Checks the value of an Authorization header (may be NULL) at time now.
 * On AUTH_OK *ret_token points at the matching entry (borrowed).
 */
enum auth_result auth_check(const struct auth *a, const char *header, time_t now,
                            const struct auth_token **ret_token);

#endif
