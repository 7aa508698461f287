/*
 * options.h - the command line and its VIRTVAULT_* environment twins.
 *
 * Every option --foo-bar VALUE can also be given as VIRTVAULT_FOO_BAR; the
 * command line wins. options_parse() never exits and never prints: it
 * returns what to do, and a one-line message on error.
 */
#ifndef VV_OPTIONS_H
#define VV_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

#include "log.h"

struct options {
    char *listen; /* "HOST:PORT" or "unix:PATH" */
    char *libvirt_uri;
    char *db;
    char *vault_dir;
    char *web_dir;
    char *token_file;    /* NULL: the default one next to db (see auth_default_paths) */
    bool no_auth;        /* --no-auth: serve without tokens, loopback only */
    char *allowed_hosts; /* ','-separated names the Host header may carry, or NULL */
    char *socket_group;  /* group of a unix: listen socket, or NULL: ours */
    char *tls_cert;
    char *tls_key;
    enum log_level log_level;
    enum log_format log_format;
    unsigned threads;               /* HTTP worker threads */
    unsigned conn_timeout;          /* seconds an idle connection is kept */
    unsigned conn_limit;            /* connections in all */
    unsigned per_ip_limit;          /* connections from one address */
    size_t max_body;                /* bytes */
    char *restore_roots;            /* ':'-separated folders restores may write into, or NULL */
    unsigned audit_retention_days;  /* 0: keep audit records forever */
    unsigned pull_idle_timeout;     /* seconds a pull backup's exports may go unread */
    unsigned max_policy_jobs;       /* jobs policies run at once on the host */
    unsigned mount_idle_seconds;    /* seconds a mount may go unread */
    unsigned reconcile_max_age;     /* seconds a read trusts a domain's last reconcile */
    unsigned webhook_retry_base_ms; /* the first retry of a webhook delivery waits this long */
    unsigned webhook_retry_cap_ms;  /* the longest wait between two attempts */
    unsigned webhook_retry_for;     /* seconds after its event a delivery is given up */
    unsigned files_idle_seconds;    /* seconds a file handle of a backup point may go unused */
    unsigned files_max_handles;     /* file handles (libguestfs appliances) open at once */
    char *guestfs_backend_settings; /* ':'-separated libguestfs backend settings */
};

enum options_action {
    OPTIONS_RUN,
    OPTIONS_HELP,
    OPTIONS_VERSION,
};

/* Lookup of an environment variable; getenv in production, a table in tests. */
typedef const char *(*options_getenv_fn)(const char *name);

/*
 * Fills *opts from defaults, then the environment, then argv. On success
 * returns 0 and sets *ret_action. On a bad option or value returns -EINVAL
 * and writes a one-line message (no newline) into err.
 */
int options_parse(int argc, char **argv, options_getenv_fn env, struct options *opts,
                  enum options_action *ret_action, char *err, size_t err_size);

/* Frees the strings of opts. */
void options_clear(struct options *opts);

/* The --help text. */
extern const char options_usage[];

#endif
