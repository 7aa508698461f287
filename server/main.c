/*
 * virtvaultd: the process. Parses options, opens the core, serves HTTP
 * until SIGINT or SIGTERM, then lets requests in flight finish and closes
 * everything in order.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "cleanup.h"
#include "config.h"
#include "core/audit.h"
#include "core/idempotency.h"
#include "core/core.h"
#include "err.h"
#include "events.h"
#include "http.h"
#include "log.h"
#include "options.h"
#include "tls.h"

/* The web UI: --web-dir, else the installed copy, else ./web. */
static const char *
pick_web_dir(const char *given)
{
    static const char *const candidates[] = {VV_DATADIR "/web", "web"};
    struct stat st;

    if (given)
        return given;
    for (size_t i = 0; i < ARRAY_SIZE(candidates); i++)
        if (stat(candidates[i], &st) == 0 && S_ISDIR(st.st_mode))
            return candidates[i];
    return NULL;
}

static const char *
env_lookup(const char *name)
{
    return getenv(name);
}

/*
 * Loads the token file; without --token-file, the default one next to the
 * database, made with one admin token on first start.
 */
static int
setup_auth(struct options *opts, struct auth *auth, char *err, size_t err_size)
{
    _cleanup_free_ char *secret = NULL;
    int r;

    if (!opts->token_file) {
        r = auth_default_paths(opts->db, &opts->token_file, &secret);
        if (r < 0) {
            snprintf(err, err_size, "%s", strerror(-r));
            return r;
        }
        r = auth_create(opts->token_file, secret, err, err_size);
        if (r == 0)
            log_info("first start: made an admin token; it is in %s (its hash in %s)", secret,
                     opts->token_file);
        else if (r != -EEXIST)
            return r;
    }
    return auth_load(opts->token_file, auth, err, err_size);
}

int
main(int argc, char **argv)
{
    struct options opts;
    enum options_action action;
    struct auth auth = {0};
    struct http_server *srv = NULL;
    _cleanup_free_ char *cert = NULL;
    _cleanup_free_ char *key = NULL;
    char err[512];
    unsigned port = 0;
    sigset_t sigs;
    int sig, r;

    if (options_parse(argc, argv, env_lookup, &opts, &action, err, sizeof(err)) < 0) {
        fprintf(stderr, "virtvaultd: %s\n", err);
        return 2;
    }
    if (action == OPTIONS_HELP) {
        fputs(options_usage, stdout);
        options_clear(&opts);
        return 0;
    }
    if (action == OPTIONS_VERSION) {
        printf("virtvaultd %s\n", VV_VERSION);
        options_clear(&opts);
        return 0;
    }
    /* Nothing the service writes (database, vault, restored images) is for others. */
    umask(027);
    log_setup(opts.log_level, opts.log_format);

    if (opts.tls_cert && tls_load(opts.tls_cert, opts.tls_key, time(NULL), &cert, &key) < 0) {
        fprintf(stderr, "virtvaultd: %s\n", err_detail());
        options_clear(&opts);
        auth_clear(&auth);
        return 2;
    }

    if (opts.no_auth) {
        bool loopback = false;
        r = http_listen_loopback(opts.listen, &loopback);
        if (r < 0 || !loopback) {
            fprintf(stderr, "virtvaultd: %s\n",
                    r < 0 ? err_detail()
                          : "--no-auth is accepted only with a loopback --listen address");
            options_clear(&opts);
            return 2;
        }
    } else if (setup_auth(&opts, &auth, err, sizeof(err)) < 0) {
        fprintf(stderr, "virtvaultd: %s\n", err);
        options_clear(&opts);
        return 2;
    }
    /* Signals are taken by sigwait() below; every thread started later inherits the mask. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct core_config ccfg = {
        .db_path = opts.db,
        .vault_dir = opts.vault_dir,
        .libvirt_uri = opts.libvirt_uri,
        .restore_roots = opts.restore_roots,
        .pull_idle_timeout = opts.pull_idle_timeout,
        .mount_idle_seconds = opts.mount_idle_seconds,
        .reconcile_max_age = opts.reconcile_max_age,
        .webhook_retry_base_ms = opts.webhook_retry_base_ms,
        .webhook_retry_cap_ms = opts.webhook_retry_cap_ms,
        .webhook_retry_for_ms = (int64_t)opts.webhook_retry_for * 1000,
        .max_policy_jobs = opts.max_policy_jobs,
        .files_idle_seconds = opts.files_idle_seconds,
        .files_max_handles = opts.files_max_handles,
        .guestfs_backend_settings = opts.guestfs_backend_settings,
    };
    r = core_start(&ccfg);
    if (r < 0) {
        log_error("cannot start: %s", err_detail() ? err_detail() : strerror(-r));
        options_clear(&opts);
        auth_clear(&auth);
        return 1;
    }

    if (core_audit_start(opts.audit_retention_days) < 0)
        log_warn("the audit log's old records stay until the next try");
    if (core_idem_start() < 0)
        log_warn("expired and unsettled Idempotency-Keys stay until the next try");

    r = events_start();
    if (r < 0) {
        log_error("cannot start the event hub: %s", strerror(-r));
        core_stop();
        options_clear(&opts);
        auth_clear(&auth);
        return 1;
    }

    struct http_config hcfg = {
        .listen = opts.listen,
        .web_dir = pick_web_dir(opts.web_dir),
        .tls_cert_pem = cert,
        .tls_key_pem = key,
        .auth = opts.no_auth ? NULL : &auth,
        .allowed_hosts = opts.allowed_hosts,
        .socket_group = opts.socket_group,
        .threads = opts.threads,
        .conn_timeout = opts.conn_timeout,
        .conn_limit = opts.conn_limit,
        .per_ip_limit = opts.per_ip_limit,
        .max_body = opts.max_body,
    };
    r = http_start(&hcfg, &srv, &port);
    if (r < 0) {
        log_error("cannot start: %s", err_detail() ? err_detail() : strerror(-r));
        events_stop();
        core_stop();
        options_clear(&opts);
        auth_clear(&auth);
        return r == -EPERM || r == -EINVAL ? 2 : 1;
    }
    if (opts.no_auth)
        log_warn("--no-auth: authentication is off; anyone on this host may use every route");
    else
        log_info("authentication on: %zu token(s) from %s", auth.n, opts.token_file);
    if (!hcfg.web_dir)
        log_warn("no web UI folder found; use --web-dir");
    if (strncmp(opts.listen, "unix:", 5) == 0)
        log_info("virtvaultd %s listening on %s (libvirt %s, database %s, vault %s)", VV_VERSION,
                 opts.listen, opts.libvirt_uri, opts.db, opts.vault_dir);
    else
        log_info("virtvaultd %s listening on %s://%.*s:%u (libvirt %s, database %s, vault %s)",
                 VV_VERSION, cert ? "https" : "http",
                 (int)(strrchr(opts.listen, ':') - opts.listen), opts.listen, port,
                 opts.libvirt_uri, opts.db, opts.vault_dir);

    do {
        r = sigwait(&sigs, &sig);
    } while (r != 0);
    log_info("received %s: finishing requests in flight and shutting down",
             sig == SIGINT ? "SIGINT" : "SIGTERM");
    http_stop(srv);
    events_stop();
    core_stop();
    auth_clear(&auth);
    options_clear(&opts);
    log_info("stopped");
    return 0;
}
