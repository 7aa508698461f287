#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "options.h"

const char options_usage[] =
    "Usage: virtvaultd [OPTION]...\n"
    "REST/JSON service for libvirt snapshots, checkpoints and backups.\n"
    "\n"
    "  --listen HOST:PORT     address to serve on (default 127.0.0.1:8080), or unix:PATH\n"
    "                         for a Unix socket where root and --socket-group are admin\n"
    "  --libvirt-uri URI      libvirt connection (default test:///default)\n"
    "  --db PATH              SQLite database (default ./virtvault.db)\n"
    "  --vault-dir PATH       folder for backups and managed files (default ./vault)\n"
    "  --web-dir PATH         folder of the web UI (default: the installed one)\n"
    "  --token-file PATH      bearer tokens with roles (default: 'tokens' in the folder of\n"
    "                         --db, created with one admin token on first start)\n"
    "  --no-auth              serve without authentication (loopback --listen only)\n"
    "  --allowed-hosts LIST   ','-separated host names the Host header may carry besides\n"
    "                         the --listen address\n"
    "  --socket-group GROUP   group of the unix: socket (mode 0660); its members are admin\n"
    "                         (default: the service's own group)\n"
    "  --tls-cert PATH        serve HTTPS with this certificate (PEM)\n"
    "  --tls-key PATH         private key for --tls-cert (PEM)\n"
    "  --log-level LEVEL      debug, info, warn or error (default info)\n"
    "  --log-format FORMAT    text or json (default text)\n"
    "  --threads N            HTTP worker threads (default 4)\n"
    "  --conn-timeout SECS    a request must be in, and an idle connection closes, within\n"
    "                         SECS (default 30)\n"
    "  --conn-limit N         connections in all (default 512)\n"
    "  --per-ip-limit N       connections from one address (default 64)\n"
    "  --max-body BYTES       largest request body accepted (default 1048576)\n"
    "  --restore-roots DIRS   ':'-separated absolute folders that restores may write into\n"
    "                         (default: the vault's folder 'restore')\n"
    "  --pull-idle-timeout SECS  abandon a pull backup whose exports nobody read for SECS\n"
    "                         (default 600)\n"
    "  --mount-idle-seconds SECS  unmount a mounted backup point nobody read for SECS\n"
    "                         (default 600)\n"
    "  --reconcile-max-age SECS  reads answer from the catalog and compare a domain with\n"
    "                         libvirt again in the background once its last comparison is\n"
    "                         older than SECS; 0 compares before every read (default 5)\n"
    "  --max-policy-jobs N    jobs that protection policies run at once on the host\n"
    "                         (default 2)\n"
    "  --audit-retention-days DAYS  delete audit records older than DAYS; 0 keeps them\n"
    "                         forever (default 90)\n"
    "  --webhook-retry-base-ms MS  wait MS before a failed webhook delivery's first retry,\n"
    "                         doubled after each failure (default 1000)\n"
    "  --webhook-retry-cap-ms MS  the longest wait between two attempts (default 300000)\n"
    "  --webhook-retry-for SECS  give a delivery up SECS after its event (default 86400)\n"
    "  --files-idle-seconds SECS  close a file handle of a backup point (its libguestfs\n"
    "                         appliance) nobody used for SECS (default 300)\n"
    "  --files-max-handles N  file handles open at once, ~500 MB each (default 2)\n"
    "  --guestfs-backend-settings LIST  ':'-separated libguestfs backend settings for\n"
    "                         the appliances (default force_tcg; '' tries KVM)\n"
    "  --help                 show this help and exit\n"
    "  --version              show the version and exit\n"
    "\n"
    "Every option can also be set as VIRTVAULT_<OPTION>, e.g. VIRTVAULT_LISTEN=0.0.0.0:8080.\n";

enum {
    OPT_LISTEN = 1000,
    OPT_LIBVIRT_URI,
    OPT_DB,
    OPT_VAULT_DIR,
    OPT_WEB_DIR,
    OPT_TOKEN_FILE,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_LOG_LEVEL,
    OPT_LOG_FORMAT,
    OPT_THREADS,
    OPT_CONN_TIMEOUT,
    OPT_CONN_LIMIT,
    OPT_PER_IP_LIMIT,
    OPT_MAX_BODY,
    OPT_RESTORE_ROOTS,
    OPT_PULL_IDLE_TIMEOUT,
    OPT_MOUNT_IDLE_SECONDS,
    OPT_RECONCILE_MAX_AGE,
    OPT_NO_AUTH,
    OPT_ALLOWED_HOSTS,
    OPT_SOCKET_GROUP,
    OPT_AUDIT_RETENTION_DAYS,
    OPT_WEBHOOK_RETRY_BASE_MS,
    OPT_WEBHOOK_RETRY_CAP_MS,
    OPT_WEBHOOK_RETRY_FOR,
    OPT_MAX_POLICY_JOBS,
    OPT_FILES_IDLE_SECONDS,
    OPT_FILES_MAX_HANDLES,
    OPT_GUESTFS_BACKEND_SETTINGS,
    OPT_HELP,
    OPT_VERSION,
};

static const struct option long_options[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"libvirt-uri", required_argument, NULL, OPT_LIBVIRT_URI},
    {"db", required_argument, NULL, OPT_DB},
    {"vault-dir", required_argument, NULL, OPT_VAULT_DIR},
    {"web-dir", required_argument, NULL, OPT_WEB_DIR},
    {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"conn-timeout", required_argument, NULL, OPT_CONN_TIMEOUT},
    {"conn-limit", required_argument, NULL, OPT_CONN_LIMIT},
    {"per-ip-limit", required_argument, NULL, OPT_PER_IP_LIMIT},
    {"max-body", required_argument, NULL, OPT_MAX_BODY},
    {"restore-roots", required_argument, NULL, OPT_RESTORE_ROOTS},
    {"pull-idle-timeout", required_argument, NULL, OPT_PULL_IDLE_TIMEOUT},
    {"mount-idle-seconds", required_argument, NULL, OPT_MOUNT_IDLE_SECONDS},
    {"reconcile-max-age", required_argument, NULL, OPT_RECONCILE_MAX_AGE},
    {"no-auth", no_argument, NULL, OPT_NO_AUTH},
    {"allowed-hosts", required_argument, NULL, OPT_ALLOWED_HOSTS},
    {"socket-group", required_argument, NULL, OPT_SOCKET_GROUP},
    {"audit-retention-days", required_argument, NULL, OPT_AUDIT_RETENTION_DAYS},
    {"webhook-retry-base-ms", required_argument, NULL, OPT_WEBHOOK_RETRY_BASE_MS},
    {"webhook-retry-cap-ms", required_argument, NULL, OPT_WEBHOOK_RETRY_CAP_MS},
    {"webhook-retry-for", required_argument, NULL, OPT_WEBHOOK_RETRY_FOR},
    {"max-policy-jobs", required_argument, NULL, OPT_MAX_POLICY_JOBS},
    {"files-idle-seconds", required_argument, NULL, OPT_FILES_IDLE_SECONDS},
    {"files-max-handles", required_argument, NULL, OPT_FILES_MAX_HANDLES},
    {"guestfs-backend-settings", required_argument, NULL, OPT_GUESTFS_BACKEND_SETTINGS},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

__attribute__((format(printf, 3, 4))) static int
fail(char *err, size_t size, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
    /* The message echoes what the user typed: keep it on one printable line. */
    for (char *p = err; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return -EINVAL;
}

static int
parse_uint(const char *s, unsigned long long min, unsigned long long max, unsigned long long *ret)
{
    char *end;
    unsigned long long v;

    if (!s || *s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -EINVAL;
    *ret = v;
    return 0;
}

static int
set_string(char **slot, const char *value)
{
    char *copy = strdup(value);

    if (!copy)
        return -ENOMEM;
    free(*slot);
    *slot = copy;
    return 0;
}

/* Checks a HOST:PORT value: a host (or [v6]) and a port 0..65535. */
static int
listen_valid(const char *v)
{
    const char *colon = strrchr(v, ':');
    unsigned long long port;

    if (strncmp(v, "unix:", 5) == 0)
        return v[5] == '/' && strlen(v + 5) < 108 ? 0 : -EINVAL;
    if (!colon || colon == v)
        return -EINVAL;
    for (const char *p = v; p < colon; p++)
        if ((unsigned char)*p <= ' ' || *p == '/')
            return -EINVAL;
    if (v[0] == '[' && colon[-1] != ']')
        return -EINVAL;
    return parse_uint(colon + 1, 0, 65535, &port);
}

/* Applies one option; name is how the user spelled it, for messages. */
static int
apply(struct options *o, int id, const char *name, const char *value, char *err, size_t size)
{
    unsigned long long n;

    if (value && value[0] == '\0')
        return fail(err, size, "%s: empty value", name);
    switch (id) {
    case OPT_LISTEN:
        if (listen_valid(value) < 0)
            return fail(err, size, "%s: '%s' is not HOST:PORT or unix:/ABSOLUTE/PATH", name, value);
        return set_string(&o->listen, value);
    case OPT_LIBVIRT_URI:
        return set_string(&o->libvirt_uri, value);
    case OPT_DB:
        return set_string(&o->db, value);
    case OPT_VAULT_DIR:
        return set_string(&o->vault_dir, value);
    case OPT_WEB_DIR:
        return set_string(&o->web_dir, value);
    case OPT_TOKEN_FILE:
        return set_string(&o->token_file, value);
    case OPT_TLS_CERT:
        return set_string(&o->tls_cert, value);
    case OPT_TLS_KEY:
        return set_string(&o->tls_key, value);
    case OPT_LOG_LEVEL:
        if (log_level_from_string(value, &o->log_level) < 0)
            return fail(err, size, "%s: '%s' is not one of debug, info, warn, error", name, value);
        return 0;
    case OPT_LOG_FORMAT:
        if (log_format_from_string(value, &o->log_format) < 0)
            return fail(err, size, "%s: '%s' is not one of text, json", name, value);
        return 0;
    case OPT_THREADS:
        if (parse_uint(value, 1, 256, &n) < 0)
            return fail(err, size, "%s: '%s' is not a number from 1 to 256", name, value);
        o->threads = (unsigned)n;
        return 0;
    case OPT_CONN_TIMEOUT:
        if (parse_uint(value, 1, 3600, &n) < 0)
            return fail(err, size, "%s: '%s' is not a number of seconds from 1 to 3600", name,
                        value);
        o->conn_timeout = (unsigned)n;
        return 0;
    case OPT_CONN_LIMIT:
        if (parse_uint(value, 1, 65536, &n) < 0)
            return fail(err, size, "%s: '%s' is not a number from 1 to 65536", name, value);
        o->conn_limit = (unsigned)n;
        return 0;
    case OPT_PER_IP_LIMIT:
        if (parse_uint(value, 1, 65536, &n) < 0)
            return fail(err, size, "%s: '%s' is not a number from 1 to 65536", name, value);
        o->per_ip_limit = (unsigned)n;
        return 0;
    case OPT_MAX_BODY:
        if (parse_uint(value, 1024, 64ull << 20, &n) < 0)
            return fail(err, size, "%s: '%s' is not a size from 1024 to 67108864 bytes", name,
                        value);
        o->max_body = (size_t)n;
        return 0;
    case OPT_RESTORE_ROOTS:
        for (const char *p = value; p; p = strchr(p, ':') ? strchr(p, ':') + 1 : NULL)
            if (*p != '/')
                return fail(err, size, "%s: '%s' is not a list of absolute folders", name, value);
        return set_string(&o->restore_roots, value);
    case OPT_PULL_IDLE_TIMEOUT:
        if (parse_uint(value, 1, 7 * 24 * 3600, &n) < 0)
            return fail(err, size, "%s: '%s' is not a number of seconds from 1 to 604800", name,
                        value);
        o->pull_idle_timeout = (unsigned)n;
        return 0;
    case OPT_MOUNT_IDLE_SECONDS:
        if (parse_uint(value, 1, 7 * 24 * 3600, &n) < 0)
            return fail(err, size, "%s: '%s' is not a number of seconds from 1 to 604800", name,
                        value);
        o->mount_idle_seconds = (unsigned)n;
        return 0;
    case OPT_RECONCILE_MAX_AGE:
        if (parse_uint(value, 0, 24 * 3600, &n) < 0)
            return fail(err, size, "%s: '%s' is not a number of seconds from 0 to 86400", name,
                        value);
        o->reconcile_max_age = (unsigned)n;
        return 0;
    case OPT_NO_AUTH:
        if (!value || strcmp(value, "1") == 0 || strcmp(value, "true") == 0 ||
            strcmp(value, "yes") == 0)
            o->no_auth = true;
        else if (strcmp(value, "0") == 0 || strcmp(value, "false") == 0 || strcmp(value, "no") == 0)
            o->no_auth = false;
        else
            return fail(err, size, "%s: '%s' is not one of 1, true, yes, 0, false, no", name,
                        value);
        return 0;
    case OPT_ALLOWED_HOSTS:
        for (const char *p = value; *p; p++)
            if ((unsigned char)*p <= ' ' || *p == '/' || *p == '@' || (unsigned char)*p >= 0x7f)
                return fail(err, size, "%s: '%s' is not a ','-separated list of host names", name,
                            value);
        return set_string(&o->allowed_hosts, value);
    case OPT_SOCKET_GROUP:
        return set_string(&o->socket_group, value);
    case OPT_AUDIT_RETENTION_DAYS:
        if (parse_uint(value, 0, 36500, &n) < 0)
            return fail(err, size, "%s: '%s' is not a number of days from 0 to 36500", name, value);
        o->audit_retention_days = (unsigned)n;
        return 0;
    case OPT_WEBHOOK_RETRY_BASE_MS:
        if (parse_uint(value, 10, 3600 * 1000, &n) < 0)
            return fail(err, size, "%s: '%s' is not a number of milliseconds from 10 to 3600000",
                        name, value);
        o->webhook_retry_base_ms = (unsigned)n;
        return 0;
    case OPT_WEBHOOK_RETRY_CAP_MS:
        if (parse_uint(value, 10, 24 * 3600 * 1000, &n) < 0)
            return fail(err, size, "%s: '%s' is not a number of milliseconds from 10 to 86400000",
                        name, value);
        o->webhook_retry_cap_ms = (unsigned)n;
        return 0;
    case OPT_WEBHOOK_RETRY_FOR:
        if (parse_uint(value, 1, 30 * 24 * 3600, &n) < 0)
            return fail(err, size, "%s: '%s' is not a number of seconds from 1 to 2592000", name,
                        value);
        o->webhook_retry_for = (unsigned)n;
        return 0;
    case OPT_MAX_POLICY_JOBS:
        if (parse_uint(value, 1, 64, &n) < 0)
            return fail(err, size, "%s: '%s' is not a number from 1 to 64", name, value);
        o->max_policy_jobs = (unsigned)n;
        return 0;
    case OPT_FILES_IDLE_SECONDS:
        if (parse_uint(value, 1, 7 * 24 * 3600, &n) < 0)
            return fail(err, size, "%s: '%s' is not a number of seconds from 1 to 604800", name,
                        value);
        o->files_idle_seconds = (unsigned)n;
        return 0;
    case OPT_FILES_MAX_HANDLES:
        if (parse_uint(value, 1, 64, &n) < 0)
            return fail(err, size, "%s: '%s' is not a number from 1 to 64", name, value);
        o->files_max_handles = (unsigned)n;
        return 0;
    case OPT_GUESTFS_BACKEND_SETTINGS:
        for (const char *p = value; *p; p++)
            if ((unsigned char)*p < ' ' || (unsigned char)*p >= 0x7f)
                return fail(err, size, "%s: '%s' is not a ':'-separated list of settings", name,
                            value);
        return set_string(&o->guestfs_backend_settings, value);
    default:
        return fail(err, size, "%s: unknown option", name);
    }
}

static void
set_defaults(struct options *o)
{
    memset(o, 0, sizeof(*o));
    o->log_level = LOG_LEVEL_INFO;
    o->log_format = LOG_FORMAT_TEXT;
    o->threads = 4;
    o->conn_timeout = 30;
    o->conn_limit = 512;
    o->per_ip_limit = 64;
    o->max_body = 1u << 20;
    o->pull_idle_timeout = 600;
    o->mount_idle_seconds = 600;
    o->reconcile_max_age = 5;
    o->audit_retention_days = 90;
    o->webhook_retry_base_ms = 1000;
    o->webhook_retry_cap_ms = 300 * 1000;
    o->webhook_retry_for = 24 * 3600;
    o->max_policy_jobs = 2;
    o->files_idle_seconds = 300;
    o->files_max_handles = 2;
}

static int
fill_missing(struct options *o)
{
    static const struct {
        size_t offset;
        const char *value;
    } defaults[] = {
        {offsetof(struct options, listen), "127.0.0.1:8080"},
        {offsetof(struct options, libvirt_uri), "test:///default"},
        {offsetof(struct options, db), "virtvault.db"},
        {offsetof(struct options, vault_dir), "vault"},
        {offsetof(struct options, guestfs_backend_settings), "force_tcg"},
    };

    for (size_t i = 0; i < ARRAY_SIZE(defaults); i++) {
        char **slot = (char **)((char *)o + defaults[i].offset);
        if (!*slot && set_string(slot, defaults[i].value) < 0)
            return -ENOMEM;
    }
    return 0;
}

int
options_parse(int argc, char **argv, options_getenv_fn env, struct options *opts,
              enum options_action *ret_action, char *err, size_t err_size)
{
    struct options o;
    enum options_action action = OPTIONS_RUN;
    int r, c;

    set_defaults(&o);
    /* The environment first: VIRTVAULT_LISTEN for --listen, and so on. */
    for (const struct option *lo = long_options; env && lo->name; lo++) {
        char var[64] = "VIRTVAULT_";
        const char *value;
        size_t n = strlen(var);

        if (lo->has_arg == no_argument && lo->val != OPT_NO_AUTH)
            continue;
        for (const char *p = lo->name; *p && n < sizeof(var) - 1; p++)
            var[n++] = *p == '-' ? '_' : (char)(*p - ('a' <= *p && *p <= 'z' ? 32 : 0));
        var[n] = '\0';
        value = env(var);
        if (!value)
            continue;
        r = apply(&o, lo->val, var, value, err, err_size);
        if (r < 0) {
            options_clear(&o);
            return r;
        }
    }

    optind = 0; /* full reset, also of GNU getopt's internal state */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", long_options, NULL)) != -1) {
        if (c == OPT_HELP) {
            action = OPTIONS_HELP;
        } else if (c == OPT_VERSION) {
            action = OPTIONS_VERSION;
        } else if (c == '?' || c == ':') {
            const char *bad = argv[optind - 1];
            options_clear(&o);
            if (c == ':')
                return fail(err, err_size, "%s: missing value", bad);
            return fail(err, err_size, "%s: unknown option (see --help)", bad);
        } else if (c == OPT_NO_AUTH) {
            r = apply(&o, c, "--no-auth", NULL, err, err_size);
            if (r < 0) {
                options_clear(&o);
                return r;
            }
        } else {
            char name[64];
            snprintf(name, sizeof(name), "--%s", long_options[c - OPT_LISTEN].name);
            r = apply(&o, c, name, optarg, err, err_size);
            if (r < 0) {
                options_clear(&o);
                return r;
            }
        }
    }
    if (optind < argc) {
        options_clear(&o);
        return fail(err, err_size, "%s: unexpected argument (see --help)", argv[optind]);
    }
    if ((o.tls_cert == NULL) != (o.tls_key == NULL)) {
        options_clear(&o);
        return fail(err, err_size, "--tls-cert and --tls-key go together");
    }
    if (o.no_auth && o.token_file) {
        options_clear(&o);
        return fail(err, err_size, "--no-auth and --token-file exclude each other");
    }
    if (fill_missing(&o) < 0) {
        options_clear(&o);
        return -ENOMEM;
    }
    *opts = o;
    *ret_action = action;
    return 0;
}

void
options_clear(struct options *o)
{
    free(o->listen);
    free(o->libvirt_uri);
    free(o->db);
    free(o->vault_dir);
    free(o->web_dir);
    free(o->token_file);
    free(o->tls_cert);
    free(o->tls_key);
    free(o->restore_roots);
    free(o->allowed_hosts);
    free(o->guestfs_backend_settings);
    free(o->socket_group);
    memset(o, 0, sizeof(*o));
}
