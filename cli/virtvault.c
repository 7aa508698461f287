/* virtvault: the command-line client of virtvaultd's REST API.
 *
 * Exit codes: 0 done, 1 failed job, 2 usage, 3 not found, 4 conflict/busy, 5 unreachable. */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

enum {
    EXIT_DONE = 0,
    EXIT_JOB_FAILED = 1,
    EXIT_USAGE = 2,
    EXIT_NOT_FOUND = 3,
    EXIT_CONFLICT = 4,
    EXIT_UNREACHABLE = 5,
};

#define CLI_RETRIES 3
#define CLI_WAIT_S  2 /* seconds each GET of a job waits for its end (?wait=) */

/* One command: resource and verb, the HTTP method, a path template whose %s take the
 * positional arguments in order, their count, whether it starts a job, and whether it
 * lists (a paged list: limit and page_token in, next_page_token out). */
struct cli_command {
    const char *resource;
    const char *verb;
    const char *method;
    const char *path;
    int nargs;
    bool starts_job;
    const char *args_help;
    bool paged;
};

static const struct cli_command cli_commands[] = {
    {"version", NULL, "GET", "/v1/version", 0, false, "", false},
    {"audit", NULL, "GET", "/v1/audit", 0, false, "", true},
    {"domains", "list", "GET", "/v1/domains", 0, false, "", true},
    {"domains", "show", "GET", "/v1/domains/%s", 1, false, "DOMAIN", false},
    {"snapshots", "list", "GET", "/v1/domains/%s/snapshots", 1, false, "DOMAIN", true},
    {"snapshots", "show", "GET", "/v1/domains/%s/snapshots/%s", 2, false, "DOMAIN NAME", false},
    {"snapshots", "create", "POST", "/v1/domains/%s/snapshots", 1, true, "DOMAIN", false},
    {"snapshots", "delete", "DELETE", "/v1/domains/%s/snapshots/%s", 2, true, "DOMAIN NAME", false},
    {"snapshots", "revert", "POST", "/v1/domains/%s/snapshots/%s/revert", 2, true, "DOMAIN NAME",
     false},
    {"checkpoints", "list", "GET", "/v1/domains/%s/checkpoints", 1, false, "DOMAIN", true},
    {"checkpoints", "show", "GET", "/v1/domains/%s/checkpoints/%s", 2, false, "DOMAIN NAME", false},
    {"checkpoints", "create", "POST", "/v1/domains/%s/checkpoints", 1, true, "DOMAIN", false},
    {"checkpoints", "delete", "DELETE", "/v1/domains/%s/checkpoints/%s", 2, true, "DOMAIN NAME",
     false},
    {"checkpoints", "reconcile", "POST", "/v1/domains/%s/checkpoints:reconcile", 1, true, "DOMAIN",
     false},
    {"backups", "list", "GET", "/v1/domains/%s/backups", 1, false, "DOMAIN", true},
    {"backups", "show", "GET", "/v1/domains/%s/backups/%s", 2, false, "DOMAIN ID", false},
    {"backups", "create", "POST", "/v1/domains/%s/backups", 1, true, "DOMAIN", false},
    {"backups", "delete", "DELETE", "/v1/domains/%s/backups/%s", 2, true, "DOMAIN ID", false},
    {"backups", "restore", "POST", "/v1/domains/%s/backups/%s/restore", 2, true, "DOMAIN ID",
     false},
    {"backups", "verify", "POST", "/v1/domains/%s/backups/%s/verify", 2, true, "DOMAIN ID", false},
    {"backups", "finish", "POST", "/v1/domains/%s/backups/%s/finish", 2, true, "DOMAIN ID", false},
    {"backups", "prune", "POST", "/v1/domains/%s/backups:prune", 1, true,
     "DOMAIN --body '{\"retention\": {\"keep_last\": N}, \"dry_run\": BOOL}'", false},
    {"backups", "protect", "PATCH", "/v1/domains/%s/backups/%s", 2, false, "DOMAIN ID", false},
    {"backups", "unprotect", "PATCH", "/v1/domains/%s/backups/%s", 2, false, "DOMAIN ID", false},
    {"policies", "list", "GET", "/v1/policies", 0, false, "", true},
    {"policies", "show", "GET", "/v1/policies/%s", 1, false, "NAME", false},
    {"policies", "create", "POST", "/v1/policies", 0, false, "", false},
    {"policies", "update", "PUT", "/v1/policies/%s", 1, false, "NAME", false},
    {"policies", "delete", "DELETE", "/v1/policies/%s", 1, false, "NAME", false},
    {"policies", "run", "POST", "/v1/policies/%s:run", 1, false, "NAME", false},
    {"backups", "instant-recovery", "POST", "/v1/domains/%s/backups/%s/instant-recovery", 2, true,
     "DOMAIN ID", false},
    {"backups", "mount", "POST", "/v1/domains/%s/backups/%s/mounts", 2, false, "DOMAIN ID", false},
    {"mounts", "list", "GET", "/v1/mounts", 0, false, "", true},
    {"mounts", "show", "GET", "/v1/mounts/%s", 1, false, "ID", false},
    {"mounts", "delete", "DELETE", "/v1/mounts/%s", 1, false, "ID", false},
    {"jobs", "list", "GET", "/v1/jobs", 0, false, "", true},
    {"jobs", "show", "GET", "/v1/jobs/%s", 1, false, "ID", false},
    {"jobs", "cancel", "DELETE", "/v1/jobs/%s", 1, false, "ID", false},
    {"jobs", "wait", "GET", "/v1/jobs/%s", 1, true, "ID", false},
    {"webhooks", "list", "GET", "/v1/webhooks", 0, false, "", true},
    {"webhooks", "show", "GET", "/v1/webhooks/%s", 1, false, "ID", false},
    {"webhooks", "create", "POST", "/v1/webhooks", 0, false, "", false},
    {"webhooks", "update", "PUT", "/v1/webhooks/%s", 1, false, "ID", false},
    {"webhooks", "delete", "DELETE", "/v1/webhooks/%s", 1, false, "ID", false},
    {"webhooks", "deliveries", "GET", "/v1/webhooks/%s/deliveries", 1, false, "ID", true},
    /* offsite copies (docs/offsite.md) */
    {"remotes", "list", "GET", "/v1/remotes", 0, false, "", true},
    {"remotes", "show", "GET", "/v1/remotes/%s", 1, false, "NAME", false},
    {"remotes", "create", "POST", "/v1/remotes", 1, false, "NAME", false},
    {"remotes", "update", "PUT", "/v1/remotes/%s", 1, false, "NAME", false},
    {"remotes", "delete", "DELETE", "/v1/remotes/%s", 1, false, "NAME", false},
    {"remotes", "check", "POST", "/v1/remotes/%s:check", 1, false, "NAME", false},
    {"remotes", "backups", "GET", "/v1/remotes/%s/backups", 1, false, "NAME", true},
    {"remotes", "restore", "POST", "/v1/remotes/%s/backups/%s/restore", 2, true, "NAME ID", false},
    {"remotes", "delete-backup", "DELETE", "/v1/remotes/%s/backups/%s", 2, false, "NAME ID", false},
    {"backups", "copy", "POST", "/v1/domains/%s/backups/%s/copies", 2, true, "DOMAIN ID", false},
    {"backups", "copies", "GET", "/v1/domains/%s/backups/%s/copies", 2, false, "DOMAIN ID", false},
    {"remotes", "prune", "POST", "/v1/remotes/%s/backups:prune", 1, true, "NAME", false},
    {"checkpoints", "adopt", "POST", "/v1/domains/%s/checkpoints:adopt", 1, false, "DOMAIN", false},
};

/* The fields of a remote a change sends again: PUT replaces them all. */
static const char *const cli_remote_fields[] = {
    "endpoint",   "region",  "bucket",   "prefix",    "path_style",
    "access_key", "ca_file", "key_file", "lock_days", NULL,
};

/* Commands whose body is more than --body: the first argument also goes into arg_field, and a
 * change starts from the fields in merge of a GET of its path (a PUT replaces them all). */
static const struct {
    const char *resource;
    const char *verb;
    const char *arg_field;
    const char *const *merge;
} cli_body_sources[] = {
    {"remotes", "create", "name", NULL},
    {"remotes", "update", NULL, cli_remote_fields},
};

/* How a command's own option fills its request. */
enum cli_opt_kind {
    CLI_OPT_TEXT,   /* a string field */
    CLI_OPT_PATH,   /* a string field that may be null: "" sends null */
    CLI_OPT_NUMBER, /* an integer field */
    CLI_OPT_TRUE,   /* a flag that sets the field true */
    CLI_OPT_FALSE,  /* a flag that sets the field false */
    CLI_OPT_LIST,   /* comma-separated: an array of strings */
    CLI_OPT_SECRET, /* a file whose first line is the field (else $VIRTVAULT_REMOTE_SECRET) */
    CLI_OPT_QUERY,  /* a query parameter */
};

/*
 * The options of one command (after RESOURCE VERB, in any order with its arguments): --name
 * sets the body field (a dot names a field inside an object: define.name) or, for
 * CLI_OPT_QUERY, the query parameter. --body, when given too, is the body they change.
 */
struct cli_option {
    const char *resource;
    const char *verb;
    const char *name;
    const char *field;
    enum cli_opt_kind kind;
    bool required;
    const char *arg; /* what the usage shows as its value */
};

#define CLI_REMOTE_OPTIONS(verb, req)                                                              \
    {"remotes", verb, "endpoint", "endpoint", CLI_OPT_TEXT, req, "URL"},                           \
        {"remotes", verb, "bucket", "bucket", CLI_OPT_TEXT, req, "BUCKET"},                        \
        {"remotes", verb, "prefix", "prefix", CLI_OPT_TEXT, false, "PREFIX"},                      \
        {"remotes", verb, "region", "region", CLI_OPT_TEXT, false, "REGION"},                      \
        {"remotes", verb, "virtual-host", "path_style", CLI_OPT_FALSE, false, NULL},               \
        {"remotes", verb, "path-style", "path_style", CLI_OPT_TRUE, false, NULL},                  \
        {"remotes", verb, "access-key", "access_key", CLI_OPT_TEXT, req, "KEY"},                   \
        {"remotes", verb, "secret-file", "secret", CLI_OPT_SECRET, req, "PATH"},                   \
        {"remotes", verb, "ca-file", "ca_file", CLI_OPT_PATH, false, "PATH"},                      \
        {"remotes", verb, "key-file", "key_file", CLI_OPT_PATH, false, "PATH"},                    \
    {                                                                                              \
        "remotes", verb, "lock-days", "lock_days", CLI_OPT_NUMBER, false, "DAYS"                   \
    }

#define CLI_RESTORE_OPTIONS(resource)                                                              \
    {resource, "restore", "target-dir", "target_dir", CLI_OPT_TEXT, true, "DIR"},                  \
        {resource, "restore", "format", "format", CLI_OPT_TEXT, false, "qcow2|raw"},               \
        {resource, "restore", "define", "define.name", CLI_OPT_TEXT, false, "NAME"},               \
        {resource, "restore", "keep", "define.keep", CLI_OPT_LIST, false, "WHAT,..."},             \
    {                                                                                              \
        resource, "restore", "bandwidth", "bandwidth", CLI_OPT_NUMBER, false, "BYTES"              \
    }

static const struct cli_option cli_options_table[] = {
    CLI_REMOTE_OPTIONS("create", true),
    CLI_REMOTE_OPTIONS("update", false),
    CLI_RESTORE_OPTIONS("remotes"),
    CLI_RESTORE_OPTIONS("backups"),
    {"remotes", "backups", "domain", "domain", CLI_OPT_QUERY, false, "DOMAIN"},
    {"remotes", "backups", "host", "host", CLI_OPT_QUERY, false, "HOST"},
    {"backups", "copy", "remote", "remote", CLI_OPT_TEXT, true, "NAME"},
    {"backups", "copy", "bandwidth", "bandwidth", CLI_OPT_NUMBER, false, "BYTES"},
    {"remotes", "prune", "domain", "domain", CLI_OPT_TEXT, true, "DOMAIN"},
    {"remotes", "prune", "keep-last", "retention.keep_last", CLI_OPT_NUMBER, false, "N"},
    {"remotes", "prune", "keep-hourly", "retention.keep_hourly", CLI_OPT_NUMBER, false, "N"},
    {"remotes", "prune", "keep-daily", "retention.keep_daily", CLI_OPT_NUMBER, false, "N"},
    {"remotes", "prune", "keep-weekly", "retention.keep_weekly", CLI_OPT_NUMBER, false, "N"},
    {"remotes", "prune", "keep-monthly", "retention.keep_monthly", CLI_OPT_NUMBER, false, "N"},
    {"remotes", "prune", "keep-yearly", "retention.keep_yearly", CLI_OPT_NUMBER, false, "N"},
    {"remotes", "prune", "dry-run", "dry_run", CLI_OPT_TRUE, false, NULL},
    {"checkpoints", "adopt", "remote", "remote", CLI_OPT_TEXT, true, "NAME"},
};

#define CLI_MAX_OPTIONS 16 /* of one command */

/* The commands whose body is fixed: --body is not theirs to give. */
static const struct {
    const char *resource;
    const char *verb;
    const char *body;
} cli_fixed_bodies[] = {
    {"backups", "protect", "{\"protected\": true}"},
    {"backups", "unprotect", "{\"protected\": false}"},
};

/* The fixed body of cmd, or NULL. */
static const char *
cli_fixed_body(const struct cli_command *cmd)
{
    for (size_t i = 0; i < sizeof(cli_fixed_bodies) / sizeof(cli_fixed_bodies[0]); i++)
        if (cmd->verb && strcmp(cli_fixed_bodies[i].resource, cmd->resource) == 0 &&
            strcmp(cli_fixed_bodies[i].verb, cmd->verb) == 0)
            return cli_fixed_bodies[i].body;
    return NULL;
}

struct cli_options {
    const char *url;
    const char *token_file;
    bool json;
    bool wait;
    const char *body;
    const char *limit;      /* --limit: one page of this many; NULL: every page */
    const char *page_token; /* --page-token: start after the page that gave it */
};

struct cli_buffer {
    char *data;
    size_t len;
};

static char *cli_token;
static const char *cli_socket;
static char cli_base[1024];

static void
cli_usage(FILE *f)
{
    fputs("Usage: virtvault [--url URL] [--token-file PATH] [-o table|json] [--wait]\n"
          "                 [--body JSON] [--limit N] [--page-token TOKEN]\n"
          "                 RESOURCE [VERB] [ARG]...\n"
          "Lists print every page; --limit N prints one page of N (1 to 1000) and, when there\n"
          "is more, the --page-token of the next on stderr.\n"
          "Commands:\n",
          f);
    for (size_t i = 0; i < sizeof(cli_commands) / sizeof(cli_commands[0]); i++) {
        const struct cli_command *c = &cli_commands[i];

        fprintf(f, "  %s %s %s", c->resource, c->verb ? c->verb : "", c->args_help);
        for (size_t k = 0; k < sizeof(cli_options_table) / sizeof(cli_options_table[0]); k++) {
            const struct cli_option *op = &cli_options_table[k];

            if (!c->verb || strcmp(op->resource, c->resource) != 0 ||
                strcmp(op->verb, c->verb) != 0)
                continue;
            fprintf(f, " %s--%s%s%s%s", op->required ? "" : "[", op->name, op->arg ? " " : "",
                    op->arg ? op->arg : "", op->required ? "" : "]");
        }
        fputc('\n', f);
    }
    fputs("A remote's secret is never taken on the command line: --secret-file PATH, or\n"
          "$VIRTVAULT_REMOTE_SECRET.\n",
          f);
}

static size_t
cli_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct cli_buffer *b = userdata;
    size_t n = size * nmemb;
    char *p = realloc(b->data, b->len + n + 1);

    if (!p)
        return 0;
    memcpy(p + b->len, ptr, n);
    b->data = p;
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static void
cli_uuid(char *out, size_t size)
{
    unsigned char r[16] = {0};

    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        for (size_t i = 0; i < sizeof(r); i++)
            r[i] = (unsigned char)rand();
    }
    r[6] = (r[6] & 0x0f) | 0x40;
    r[8] = (r[8] & 0x3f) | 0x80;
    snprintf(out, size, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13],
             r[14], r[15]);
}

static void
cli_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* One request, retried on a connection failure, a timeout, 502 or 503 (a POST with the same
 * Idempotency-Key). Returns the HTTP status, or -1 when the service was not reached. */
static long
cli_request(const char *method, const char *path, const char *body, json_t **ret_json)
{
    char url[4096], key[64], hdr[128];
    long status = -1;

    cli_uuid(key, sizeof(key));
    snprintf(url, sizeof(url), "%s%s", cli_base, path);
    *ret_json = NULL;
    for (int attempt = 0; attempt < CLI_RETRIES; attempt++) {
        struct cli_buffer b = {NULL, 0};
        struct curl_slist *h = NULL;
        char *auth = NULL;
        CURL *c = curl_easy_init();
        CURLcode rc;

        if (!c)
            return -1;
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, cli_write);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
        if (cli_socket)
            curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, cli_socket);
        if (cli_token && asprintf(&auth, "Authorization: Bearer %s", cli_token) >= 0)
            h = curl_slist_append(h, auth);
        h = curl_slist_append(h, "Accept: application/json");
        if (strcmp(method, "POST") == 0) {
            snprintf(hdr, sizeof(hdr), "Idempotency-Key: %s", key);
            h = curl_slist_append(h, hdr);
        }
        if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
            strcmp(method, "PATCH") == 0) {
            h = curl_slist_append(h, "Content-Type: application/json");
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "{}");
        }
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        rc = curl_easy_perform(c);
        if (rc == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        else
            status = -1;
        curl_slist_free_all(h);
        curl_easy_cleanup(c);
        free(auth);
        if (status == -1 || status == 502 || status == 503) {
            free(b.data);
            if (attempt + 1 < CLI_RETRIES) {
                cli_sleep_ms(500L << attempt);
                continue;
            }
            if (status == -1)
                return -1;
        }
        if (b.data)
            *ret_json = json_loads(b.data, JSON_DECODE_ANY, NULL);
        free(b.data);
        return status;
    }
    return status;
}

static int
cli_exit_for_status(long status)
{
    if (status < 0)
        return EXIT_UNREACHABLE;
    if (status < 400)
        return EXIT_DONE;
    if (status == 404)
        return EXIT_NOT_FOUND;
    if (status == 409 || status == 412 || status == 423 || status == 429 || status == 503)
        return EXIT_CONFLICT;
    if (status >= 500)
        return EXIT_UNREACHABLE;
    return EXIT_USAGE;
}

static void
cli_print_problem(long status, json_t *j)
{
    const char *detail = json_string_value(json_object_get(j, "detail"));
    json_t *errors = json_object_get(j, "errors");
    size_t i;
    json_t *e;

    fprintf(stderr, "virtvault: %s (HTTP %ld)\n", detail ? detail : "request failed", status);
    json_array_foreach(errors, i, e)
    {
        const char *pointer = json_string_value(json_object_get(e, "pointer"));
        const char *parameter = json_string_value(json_object_get(e, "parameter"));

        /* A body field by its JSON pointer ("" is the whole body), a query parameter as ?name. */
        fprintf(stderr, "  %s%s: %s\n", pointer ? "" : "?",
                pointer     ? (pointer[0] ? pointer : "(body)")
                : parameter ? parameter
                            : "",
                json_string_value(json_object_get(e, "detail")) ?: "");
    }
}

static void
cli_print_scalar(json_t *v)
{
    if (json_is_string(v))
        fputs(json_string_value(v), stdout);
    else if (json_is_null(v) || !v)
        fputs("-", stdout);
    else {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

        fputs(s ? s : "?", stdout);
        free(s);
    }
}

/* A list as a table whose columns are the first item's scalar keys; an object as KEY VALUE. */
static void
cli_print_table(json_t *j)
{
    json_t *items = json_is_array(j) ? j : NULL;
    const char *k;
    json_t *v;

    if (!items && json_is_object(j)) {
        json_object_foreach(j, k, v)
        {
            if (json_is_array(v) &&
                (json_array_size(v) == 0 || json_is_object(json_array_get(v, 0)))) {
                items = v;
                break;
            }
        }
        if (!items) {
            json_object_foreach(j, k, v)
            {
                printf("%-16s ", k);
                cli_print_scalar(v);
                putchar('\n');
            }
            return;
        }
    }
    if (!items) {
        cli_print_scalar(j);
        putchar('\n');
        return;
    }
    json_t *first = json_array_get(items, 0);
    size_t i;
    json_t *row;
    bool sep = false;

    json_object_foreach(first, k, v)
    {
        if (json_is_object(v) || json_is_array(v))
            continue;
        printf("%s%s", sep ? "\t" : "", k);
        sep = true;
    }
    if (first)
        putchar('\n');
    json_array_foreach(items, i, row)
    {
        sep = false;
        json_object_foreach(first, k, v)
        {
            if (json_is_object(v) || json_is_array(v))
                continue;
            if (sep)
                putchar('\t');
            cli_print_scalar(json_object_get(row, k));
            sep = true;
        }
        putchar('\n');
    }
}

static bool
cli_job_ended(const char *state)
{
    return state && (strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0 ||
                     strcmp(state, "cancelled") == 0);
}

static long
cli_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Follows the job until it ends; returns its last answer in *ret_job, and the exit code.
 * Each GET asks the service to answer when the job ends or CLI_WAIT_S seconds passed
 * (?wait=), so the end is seen at once and the progress shown still moves meanwhile.
 */
static int
cli_wait_job(const char *id, json_t **ret_job)
{
    char path[512];
    long delay = 200;
    bool tty = isatty(STDERR_FILENO);
    char last[64] = "";

    snprintf(path, sizeof(path), "/v1/jobs/%s?wait=%d", id, CLI_WAIT_S);
    for (;;) {
        json_t *j = NULL;
        long asked = cli_mono_ms();
        long status = cli_request("GET", path, NULL, &j);

        if (status != 200) {
            if (status > 0)
                cli_print_problem(status, j);
            else
                fprintf(stderr, "virtvault: %s unreachable\n", cli_base);
            json_decref(j);
            return cli_exit_for_status(status);
        }
        const char *state = json_string_value(json_object_get(j, "state"));
        json_t *p = json_object_get(j, "progress");
        json_int_t done = json_integer_value(json_object_get(p, "bytes_done"));
        json_int_t total = json_integer_value(json_object_get(p, "bytes_total"));
        int pct = total > 0 ? (int)(done * 100 / total) : 0;
        char line[64];

        snprintf(line, sizeof(line), "%s %d%%", state ? state : "?", pct);
        if (tty) {
            char bar[31];

            memset(bar, ' ', 30);
            memset(bar, '#', (size_t)(pct * 30 / 100));
            bar[30] = '\0';
            fprintf(stderr, "\rjob %s [%s] %3d%% %-10s", id, bar, pct, state ? state : "");
        } else if (strcmp(line, last) != 0) {
            fprintf(stderr, "job %s %s\n", id, line);
            snprintf(last, sizeof(last), "%s", line);
        }
        if (cli_job_ended(state)) {
            if (tty)
                fputc('\n', stderr);
            *ret_job = j;
            if (strcmp(state, "succeeded") == 0)
                return EXIT_DONE;
            json_t *err = json_object_get(j, "error");
            const char *d = json_string_value(json_object_get(err, "detail"));

            fprintf(stderr, "virtvault: job %s %s%s%s\n", id, state, d ? ": " : "", d ? d : "");
            return EXIT_JOB_FAILED;
        }
        json_decref(j);
        /* A service that answered at once though the job runs on does not wait: poll it. */
        if (cli_mono_ms() - asked < CLI_WAIT_S * 1000 / 2) {
            cli_sleep_ms(delay);
            if (delay < 2000)
                delay = delay * 3 / 2;
        }
    }
}

/*
 * A secret from the first line of the file at path (at most 4 KiB), or NULL with errno set.
 * The caller wipes and frees it.
 */
static char *
cli_read_secret(const char *path)
{
    char buf[4096];
    FILE *f = fopen(path, "re");
    size_t n;
    char *s;

    if (!f)
        return NULL;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    s = buf[0] ? strdup(buf) : NULL;
    if (!buf[0])
        errno = ENODATA;
    explicit_bzero(buf, sizeof(buf));
    return s;
}

/* Why cli_read_secret failed, for a message. */
static const char *
cli_secret_error(void)
{
    return errno == ENODATA ? "the file is empty" : strerror(errno);
}

/* The command of the table that RESOURCE VERB names, or NULL. */
static const struct cli_command *
cli_find(const char *resource, const char *verb)
{
    for (size_t i = 0; i < sizeof(cli_commands) / sizeof(cli_commands[0]); i++) {
        const struct cli_command *c = &cli_commands[i];

        if (strcmp(c->resource, resource) != 0)
            continue;
        if (!c->verb || (verb && strcmp(c->verb, verb) == 0))
            return c;
    }
    return NULL;
}

/* The path template with each %s replaced by the next of ARGS. */
static int
cli_expand(const char *tmpl, char **args, char *out, size_t size)
{
    size_t n = 0;

    for (const char *p = tmpl; *p; p++) {
        const char *add = NULL;
        size_t len = 1;

        if (p[0] == '%' && p[1] == 's') {
            add = *args++;
            len = strlen(add);
            p++;
        } else {
            add = p;
        }
        if (n + len + 1 > size)
            return -ENAMETOOLONG;
        memcpy(out + n, add, len);
        n += len;
    }
    out[n] = '\0';
    return 0;
}

/*
 * GETs the list at path: one page with o->limit, else every page (1000 items each) from
 * o->page_token on, joined into the first page's answer with next_page_token null.
 * Returns the HTTP status of the last request, its answer (or the joined one) in *ret_json.
 */
static long
cli_list(const char *path, const struct cli_options *o, json_t **ret_json)
{
    char *token = o->page_token ? strdup(o->page_token) : NULL;
    json_t *all = NULL;
    long status;

    *ret_json = NULL;
    for (;;) {
        char url[4096];
        char *esc = token ? curl_easy_escape(NULL, token, 0) : NULL;
        json_t *j = NULL, *next;

        snprintf(url, sizeof(url), "%s%climit=%s%s%s", path, strchr(path, '?') ? '&' : '?',
                 o->limit ? o->limit : "1000", esc ? "&page_token=" : "", esc ? esc : "");
        curl_free(esc);
        free(token);
        token = NULL;
        status = cli_request("GET", url, NULL, &j);
        if (status != 200 || o->limit) {
            json_decref(all);
            *ret_json = j;
            return status;
        }
        if (!all)
            all = json_incref(j);
        else
            json_array_extend(json_object_get(all, "items"), json_object_get(j, "items"));
        next = json_object_get(j, "next_page_token");
        if (json_is_string(next))
            token = strdup(json_string_value(next));
        json_decref(j);
        if (!token)
            break;
    }
    json_object_set_new(all, "next_page_token", json_null());
    if (json_object_get(all, "next_cursor")) /* the deprecated twin */
        json_object_set_new(all, "next_cursor", json_null());
    *ret_json = all;
    return status;
}

/* The option of cmd named by arg ("--name" or "--name=value"; len: of the name), or NULL. */
static const struct cli_option *
cli_option_find(const struct cli_command *cmd, const char *name, size_t len)
{
    for (size_t k = 0; cmd->verb && k < sizeof(cli_options_table) / sizeof(cli_options_table[0]);
         k++) {
        const struct cli_option *op = &cli_options_table[k];

        if (strcmp(op->resource, cmd->resource) == 0 && strcmp(op->verb, cmd->verb) == 0 &&
            strlen(op->name) == len && strncmp(op->name, name, len) == 0)
            return op;
    }
    return NULL;
}

/* Whether cmd has options of its own. */
static bool
cli_has_options(const struct cli_command *cmd)
{
    for (size_t k = 0; cmd->verb && k < sizeof(cli_options_table) / sizeof(cli_options_table[0]);
         k++)
        if (strcmp(cli_options_table[k].resource, cmd->resource) == 0 &&
            strcmp(cli_options_table[k].verb, cmd->verb) == 0)
            return true;
    return false;
}

/* Sets field of body to v (stolen); "a.b" is field b of the object a (made when missing). */
static int
cli_body_set(json_t *body, const char *field, json_t *v)
{
    const char *dot = strchr(field, '.');
    char outer[64];
    json_t *in;

    if (!dot)
        return json_object_set_new(body, field, v);
    snprintf(outer, sizeof(outer), "%.*s", (int)(dot - field), field);
    in = json_object_get(body, outer);
    if (!json_is_object(in)) {
        in = json_object();
        if (json_object_set_new(body, outer, in) < 0) {
            json_decref(v);
            return -1;
        }
    }
    return json_object_set_new(in, dot + 1, v);
}

/* Field of body ("a.b" as cli_body_set), borrowed, or NULL. */
static json_t *
cli_body_get(json_t *body, const char *field)
{
    const char *dot = strchr(field, '.');
    char outer[64];

    if (!dot)
        return json_object_get(body, field);
    snprintf(outer, sizeof(outer), "%.*s", (int)(dot - field), field);
    return json_object_get(json_object_get(body, outer), dot + 1);
}

/* The value of one command option as JSON (new), or NULL after a usage message. */
static json_t *
cli_option_value(const struct cli_option *op, const char *val)
{
    switch (op->kind) {
    case CLI_OPT_TEXT:
        return json_string(val);
    case CLI_OPT_PATH:
        return val[0] ? json_string(val) : json_null();
    case CLI_OPT_TRUE:
        return json_true();
    case CLI_OPT_FALSE:
        return json_false();
    case CLI_OPT_NUMBER: {
        char *end;
        long long n;

        errno = 0;
        n = strtoll(val, &end, 10);
        if (!val[0] || *end || errno || (val[0] < '0' || val[0] > '9')) {
            fprintf(stderr, "virtvault: --%s must be a whole number, 0 or more\n", op->name);
            return NULL;
        }
        return json_integer(n);
    }
    case CLI_OPT_LIST: {
        json_t *a = json_array();
        char *copy = strdup(val), *save = NULL;

        for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t && a;
             t = strtok_r(NULL, ",", &save))
            json_array_append_new(a, json_string(t));
        free(copy);
        return a;
    }
    case CLI_OPT_SECRET: {
        char *secret = cli_read_secret(val);
        json_t *j;

        if (!secret) {
            fprintf(stderr, "virtvault: --%s %s: %s\n", op->name, val, cli_secret_error());
            return NULL;
        }
        j = json_string(secret);
        explicit_bzero(secret, strlen(secret));
        free(secret);
        return j;
    }
    case CLI_OPT_QUERY:
        break;
    }
    return NULL;
}

/*
 * Splits args (what follows RESOURCE VERB) into the positional arguments (into pos, at most
 * max_pos; their count in *ret_npos), cmd's own options (their values into vals, by their index
 * in cli_options_table) and the global --wait, -o and --body (into o). Returns EXIT_DONE or
 * EXIT_USAGE after a message.
 */
static int
cli_split_args(const struct cli_command *cmd, int n, char **args, struct cli_options *o,
               const char **vals, char **pos, int max_pos, int *ret_npos)
{
    int npos = 0;
    bool rest = false;

    for (int i = 0; i < n; i++) {
        const char *a = args[i];
        const char *name = a + 2, *eq = strchr(a, '='), *val = NULL;
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const struct cli_option *op;

        if (rest || a[0] != '-' || a[1] == '\0') {
            if (npos == max_pos) {
                npos++;
                continue;
            }
            pos[npos++] = args[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            rest = true;
            continue;
        }
        if (strcmp(a, "-w") == 0 || strcmp(a, "--wait") == 0) {
            o->wait = true;
            continue;
        }
        if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0 || strcmp(a, "-b") == 0 ||
            strcmp(a, "--body") == 0) {
            bool out = a[1] == 'o' || strcmp(a, "--output") == 0;

            if (i + 1 >= n) {
                fprintf(stderr, "virtvault: %s needs a value\n", a);
                return EXIT_USAGE;
            }
            val = args[++i];
            if (out && strcmp(val, "json") != 0 && strcmp(val, "table") != 0) {
                fprintf(stderr, "virtvault: -o takes table or json\n");
                return EXIT_USAGE;
            }
            if (out)
                o->json = strcmp(val, "json") == 0;
            else
                o->body = val;
            continue;
        }
        if (a[1] == '-' && strncmp(name, "secret", len) == 0 && len == 6) {
            fprintf(stderr, "virtvault: the secret is never taken on the command line (it would "
                            "show in the process list and the shell's history): use --secret-file "
                            "PATH or $VIRTVAULT_REMOTE_SECRET\n");
            return EXIT_USAGE;
        }
        op = a[1] == '-' ? cli_option_find(cmd, name, len) : NULL;
        if (!op) {
            fprintf(stderr, "virtvault: %s %s has no option '%.*s'\n", cmd->resource,
                    cmd->verb ? cmd->verb : "", (int)(eq ? (size_t)(eq - a) : strlen(a)), a);
            return EXIT_USAGE;
        }
        if (op->kind == CLI_OPT_TRUE || op->kind == CLI_OPT_FALSE) {
            if (eq) {
                fprintf(stderr, "virtvault: --%s takes no value\n", op->name);
                return EXIT_USAGE;
            }
            val = "";
        } else if (eq) {
            val = eq + 1;
        } else if (i + 1 < n) {
            val = args[++i];
        } else {
            fprintf(stderr, "virtvault: --%s needs %s\n", op->name, op->arg);
            return EXIT_USAGE;
        }
        vals[op - cli_options_table] = val;
    }
    *ret_npos = npos;
    return EXIT_DONE;
}

/* The row of cli_body_sources for cmd, or NULL. */
static const char *const *
cli_body_source(const struct cli_command *cmd, const char **ret_arg_field)
{
    *ret_arg_field = NULL;
    for (size_t i = 0; cmd->verb && i < sizeof(cli_body_sources) / sizeof(cli_body_sources[0]); i++)
        if (strcmp(cli_body_sources[i].resource, cmd->resource) == 0 &&
            strcmp(cli_body_sources[i].verb, cmd->verb) == 0) {
            *ret_arg_field = cli_body_sources[i].arg_field;
            return cli_body_sources[i].merge;
        }
    return NULL;
}

/*
 * The body of cmd: a GET of path's fields for a change (cli_body_sources' merge), then --body
 * over it, then the first argument (its arg_field), then the options in vals. Returns EXIT_DONE
 * with the body (new) in *ret, or an exit code after a message.
 */
static int
cli_build_body(const struct cli_command *cmd, const char *path, const struct cli_options *o,
               char **args, const char **vals, json_t **ret)
{
    json_t *body = json_object(), *given = o->body ? json_loads(o->body, 0, NULL) : NULL;
    const char *k, *arg_field;
    const char *const *merge = cli_body_source(cmd, &arg_field);
    json_t *v;

    if (!body) {
        json_decref(given);
        return EXIT_USAGE;
    }
    if (merge) {
        json_t *now = NULL;
        long status = cli_request("GET", path, NULL, &now);

        if (status != 200) {
            if (status < 0)
                fprintf(stderr, "virtvault: %s unreachable\n", cli_base);
            else
                cli_print_problem(status, now);
            json_decref(now);
            json_decref(body);
            json_decref(given);
            return cli_exit_for_status(status);
        }
        for (size_t i = 0; merge[i]; i++)
            if ((v = json_object_get(now, merge[i])))
                json_object_set(body, merge[i], v);
        json_decref(now);
    }
    for (size_t i = 0; i < sizeof(cli_options_table) / sizeof(cli_options_table[0]); i++) {
        const struct cli_option *op = &cli_options_table[i];

        if (op->kind == CLI_OPT_SECRET && cmd->verb && strcmp(op->resource, cmd->resource) == 0 &&
            strcmp(op->verb, cmd->verb) == 0 && cli_body_get(given, op->field)) {
            fprintf(stderr, "virtvault: the secret is never taken on the command line: use "
                            "--secret-file PATH or $VIRTVAULT_REMOTE_SECRET, not --body\n");
            json_decref(given);
            json_decref(body);
            return EXIT_USAGE;
        }
    }
    json_object_foreach(given, k, v) json_object_set(body, k, v);
    json_decref(given);
    if (arg_field)
        json_object_set_new(body, arg_field, json_string(args[0]));
    for (size_t i = 0; i < sizeof(cli_options_table) / sizeof(cli_options_table[0]); i++) {
        const struct cli_option *op = &cli_options_table[i];
        const char *val = vals[i];
        json_t *j;

        if (!cmd->verb || strcmp(op->resource, cmd->resource) != 0 ||
            strcmp(op->verb, cmd->verb) != 0 || op->kind == CLI_OPT_QUERY)
            continue;
        if (!val && op->kind == CLI_OPT_SECRET && getenv("VIRTVAULT_REMOTE_SECRET") &&
            getenv("VIRTVAULT_REMOTE_SECRET")[0]) {
            cli_body_set(body, op->field, json_string(getenv("VIRTVAULT_REMOTE_SECRET")));
            continue;
        }
        if (!val) {
            if (op->required && !cli_body_get(body, op->field)) {
                fprintf(stderr, "virtvault: %s %s needs --%s %s%s\n", cmd->resource, cmd->verb,
                        op->name, op->arg,
                        op->kind == CLI_OPT_SECRET ? " or $VIRTVAULT_REMOTE_SECRET" : "");
                json_decref(body);
                return EXIT_USAGE;
            }
            continue;
        }
        j = cli_option_value(op, val);
        if (!j) {
            json_decref(body);
            return EXIT_USAGE;
        }
        cli_body_set(body, op->field, j);
    }
    *ret = body;
    return EXIT_DONE;
}

/* path with cmd's query options in vals appended (escaped). Returns 0 or -ENAMETOOLONG. */
static int
cli_add_query(const struct cli_command *cmd, const char **vals, char *path, size_t size)
{
    for (size_t i = 0; i < sizeof(cli_options_table) / sizeof(cli_options_table[0]); i++) {
        const struct cli_option *op = &cli_options_table[i];
        char *esc;
        size_t len = strlen(path);
        int n;

        if (!vals[i] || op->kind != CLI_OPT_QUERY || !cmd->verb ||
            strcmp(op->resource, cmd->resource) != 0 || strcmp(op->verb, cmd->verb) != 0)
            continue;
        esc = curl_easy_escape(NULL, vals[i], 0);
        if (!esc)
            return -ENOMEM;
        n = snprintf(path + len, size - len, "%c%s=%s", strchr(path, '?') ? '&' : '?', op->field,
                     esc);
        curl_free(esc);
        if (n < 0 || (size_t)n >= size - len)
            return -ENAMETOOLONG;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"url", required_argument, NULL, 'u'},
        {"token-file", required_argument, NULL, 't'},
        {"output", required_argument, NULL, 'o'},
        {"wait", no_argument, NULL, 'w'},
        {"body", required_argument, NULL, 'b'},
        {"limit", required_argument, NULL, 'l'},
        {"page-token", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct cli_options o = {
        getenv("VIRTVAULT_URL"), getenv("VIRTVAULT_TOKEN_FILE"), false, false, NULL, NULL, NULL};
    const struct cli_command *cmd;
    char path[2048];
    int opt, ret;

    while ((opt = getopt_long(argc, argv, "+u:t:o:wb:l:p:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'u':
            o.url = optarg;
            break;
        case 't':
            o.token_file = optarg;
            break;
        case 'o':
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "table") != 0) {
                fprintf(stderr, "virtvault: -o takes table or json\n");
                return EXIT_USAGE;
            }
            o.json = strcmp(optarg, "json") == 0;
            break;
        case 'w':
            o.wait = true;
            break;
        case 'b':
            o.body = optarg;
            break;
        case 'l': {
            char *end;
            unsigned long n;

            errno = 0;
            n = strtoul(optarg, &end, 10);
            if (optarg[0] < '0' || optarg[0] > '9' || *end || errno || n < 1 || n > 1000) {
                fprintf(stderr, "virtvault: --limit must be a number from 1 to 1000\n");
                return EXIT_USAGE;
            }
            o.limit = optarg;
            break;
        }
        case 'p':
            o.page_token = optarg;
            break;
        case 'h':
            cli_usage(stdout);
            return EXIT_DONE;
        default:
            cli_usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        cli_usage(stderr);
        return EXIT_USAGE;
    }
    cmd = cli_find(argv[optind], optind + 1 < argc ? argv[optind + 1] : NULL);
    if (!cmd) {
        fprintf(stderr, "virtvault: unknown command '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    optind += cmd->verb ? 2 : 1;
    /* What follows RESOURCE VERB: its arguments, its own options, --wait, -o and --body. */
    const char *vals[sizeof(cli_options_table) / sizeof(cli_options_table[0])] = {0};
    char *pos[4];
    int npos = 0;

    ret = cli_split_args(cmd, argc - optind, argv + optind, &o, vals, pos, 4, &npos);
    if (ret != EXIT_DONE)
        return ret;
    if (npos != cmd->nargs) {
        fprintf(stderr, "virtvault: %s %s takes %s\n", cmd->resource, cmd->verb ? cmd->verb : "",
                cmd->nargs ? cmd->args_help : "no arguments");
        return EXIT_USAGE;
    }
    if ((o.limit || o.page_token) && !cmd->paged) {
        fprintf(stderr, "virtvault: --limit and --page-token are for lists\n");
        return EXIT_USAGE;
    }
    if (o.body) {
        json_t *b = json_loads(o.body, 0, NULL);

        if (!json_is_object(b)) {
            fprintf(stderr, "virtvault: --body is not a JSON object\n");
            json_decref(b);
            return EXIT_USAGE;
        }
        json_decref(b);
    }
    for (int i = 0; i < npos; i++) {
        if (strpbrk(pos[i], "/?#%") || pos[i][0] == '\0') {
            fprintf(stderr, "virtvault: bad argument '%s'\n", pos[i]);
            return EXIT_USAGE;
        }
    }
    if (cli_expand(cmd->path, pos, path, sizeof(path)) < 0) {
        fprintf(stderr, "virtvault: argument too long\n");
        return EXIT_USAGE;
    }

    if (!o.url)
        o.url = "http://127.0.0.1:8080";
    if (strncmp(o.url, "unix:", 5) == 0) {
        cli_socket = o.url + 5;
        snprintf(cli_base, sizeof(cli_base), "http://localhost");
    } else {
        snprintf(cli_base, sizeof(cli_base), "%s", o.url);
        size_t n = strlen(cli_base);
        if (n && cli_base[n - 1] == '/')
            cli_base[n - 1] = '\0';
    }
    if (o.token_file) {
        cli_token = cli_read_secret(o.token_file);
        if (!cli_token) {
            fprintf(stderr, "virtvault: cannot read %s: %s\n", o.token_file, cli_secret_error());
            return EXIT_USAGE;
        }
    } else if (!cli_socket) {
        cli_token = cli_read_secret("admin-token");
        if (!cli_token)
            cli_token = cli_read_secret("/var/lib/virtvault/admin-token");
    }

    curl_global_init(CURL_GLOBAL_DEFAULT);
    json_t *j = NULL;
    char *built = NULL; /* the body cmd's options made; it may hold a secret */
    long status;

    if (cli_add_query(cmd, vals, path, sizeof(path)) < 0) {
        fprintf(stderr, "virtvault: argument too long\n");
        ret = EXIT_USAGE;
        goto out;
    }
    const char *arg_field;

    if (cli_body_source(cmd, &arg_field) || arg_field ||
        (cli_has_options(cmd) && strcmp(cmd->method, "GET") != 0)) {
        json_t *body = NULL;

        ret = cli_build_body(cmd, path, &o, pos, vals, &body);
        if (ret != EXIT_DONE)
            goto out;
        built = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        if (!built) {
            ret = EXIT_USAGE;
            goto out;
        }
        o.body = built;
    }
    if (strcmp(cmd->resource, "jobs") == 0 && cmd->verb && strcmp(cmd->verb, "wait") == 0) {
        ret = cli_wait_job(pos[0], &j);
        status = 200;
    } else {
        const char *fixed = cli_fixed_body(cmd);

        status = cmd->paged ? cli_list(path, &o, &j)
                            : cli_request(cmd->method, path, fixed ? fixed : o.body, &j);
        ret = cli_exit_for_status(status);
        if (status < 0)
            fprintf(stderr, "virtvault: %s unreachable\n", cli_base);
        else if (status >= 400)
            cli_print_problem(status, j);
        else if (strcmp(cmd->path, "/v1/remotes/%s:check") == 0 &&
                 json_is_false(json_object_get(j, "ok"))) {
            /* The bucket answered, but not as it should: the check failed. */
            fprintf(stderr, "virtvault: remote %s: the check failed at %s: %s\n", pos[0],
                    json_string_value(json_object_get(j, "failed_step")) ?: "?",
                    json_string_value(json_object_get(j, "detail")) ?: "");
            ret = EXIT_JOB_FAILED;
        } else if (o.wait && cmd->starts_job && status == 202) {
            /* A backup names its job in job_id; a job answers itself. */
            json_t *jid = json_object_get(j, "job_id");
            const char *id = json_string_value(jid ? jid : json_object_get(j, "id"));

            if (id) {
                char *idc = strdup(id);
                json_t *job = NULL;

                ret = cli_wait_job(idc, &job);
                free(idc);
                if (job) {
                    json_decref(j);
                    j = job;
                }
            }
        }
    }
    if (j && (ret == EXIT_DONE || ret == EXIT_JOB_FAILED) && status < 400) {
        if (o.json) {
            char *s = json_dumps(j, JSON_INDENT(2) | JSON_ENCODE_ANY);

            if (s)
                puts(s);
            free(s);
        } else {
            cli_print_table(j);
        }
        if (cmd->paged && json_is_string(json_object_get(j, "next_page_token")))
            fprintf(stderr, "virtvault: more: --page-token %s\n",
                    json_string_value(json_object_get(j, "next_page_token")));
    }
out:
    json_decref(j);
    if (built) {
        explicit_bzero(built, strlen(built));
        free(built);
    }
    free(cli_token);
    curl_global_cleanup();
    return ret;
}
