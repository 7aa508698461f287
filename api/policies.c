/*
 * /v1/policies[/{name}], POST /v1/policies/{name}:run: protection policies
 * (core/policy.h), and their part of GET /metrics.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "bodies.h"
#include "cleanup.h"
#include "core/policy.h"
#include "err.h"
#include "text.h"

#define VERIFY_DAYS_MAX 36500

/* A domain name, or a glob pattern of the characters names have and * ? [ ] ! ^. */
static bool
domain_pattern_valid(const char *s, size_t len)
{
    if (len == 0 || len > NAME_MAX_LEN || strlen(s) != len)
        return false;
    if (!conf_policy_is_pattern(s))
        return text_name_valid(s);
    for (const char *p = s; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-*?[]!^", *p))
            return false;
    return true;
}

static int
read_domains(const json_t *v, struct conf_policy *p)
{
    size_t n = json_array_size(v);

    if (!json_is_array(v) || n == 0 || n > CONF_POLICY_DOMAINS_MAX)
        return err_set_pointer(-EINVAL, "/domains",
                               "must be a list of 1 to %d domain names or glob patterns",
                               CONF_POLICY_DOMAINS_MAX);
    p->domains = calloc(n, sizeof(*p->domains));
    if (!p->domains)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        const char *s = json_string_value(e);
        char ptr[TEXT_POINTER_MAX];

        text_pointer_join(ptr, sizeof(ptr), "/domains", NULL, i);
        if (!s || !domain_pattern_valid(s, json_string_length(e)))
            return err_set_pointer(-EINVAL, ptr,
                                   "must be a domain name or a glob pattern (* ? [...]) of at "
                                   "most %d characters",
                                   NAME_MAX_LEN);
        for (size_t k = 0; k < p->n_domains; k++)
            if (strcmp(p->domains[k], s) == 0)
                return err_set_pointer(-EINVAL, ptr, "names '%s' a second time", s);
        p->domains[p->n_domains] = strdup(s);
        if (!p->domains[p->n_domains])
            return -ENOMEM;
        p->n_domains++;
    }
    return 0;
}

/* The shape of a schedule object ({"interval_seconds": N}), checked with the other types. */
static int
check_interval(const json_t *v)
{
    json_t *iv;

    if (api_fields_check(
            v, "/schedule",
            (const struct api_field[]){{"interval_seconds", API_FIELD_INTEGER, true, false},
                                       {NULL, API_FIELD_STRING, false, false}}) < 0)
        return -EINVAL;
    iv = json_object_get(v, "interval_seconds");
    if (json_integer_value(iv) < 1 || json_integer_value(iv) > CONF_INTERVAL_MAX)
        return err_set_pointer(-EINVAL, "/schedule/interval_seconds",
                               "must be from 1 to %lld seconds", (long long)CONF_INTERVAL_MAX);
    return 0;
}

/* A schedule whose type check_interval() (for an object) has passed. */
static int
read_schedule(const json_t *v, struct conf_schedule *s)
{
    memset(s, 0, sizeof(*s));
    if (json_is_string(v)) {
        if (strlen(json_string_value(v)) != json_string_length(v))
            return err_set_pointer(-EINVAL, "/schedule", "must not contain NUL characters");
        s->kind = CONF_SCHEDULE_CRON;
        snprintf(s->text, sizeof(s->text), "%s", json_string_value(v));
        return conf_cron_parse(json_string_value(v), &s->cron);
    }
    s->kind = CONF_SCHEDULE_INTERVAL;
    s->interval_s = json_integer_value(json_object_get(v, "interval_seconds"));
    return 0;
}

/* The backup body, checked by the code that checks POST .../backups; errors under /backup. */
static int
read_backup(json_t *v, struct conf_policy_backup *b)
{
    struct api_request sub = {.body = v};
    struct api_backup_body body;
    int r;

    if (!json_is_object(v))
        return err_set_pointer(-EINVAL, "/backup", "must be an object");
    r = api_backup_body_read(&sub, &body);
    if (r < 0) {
        const char *name = NULL, *detail = NULL;
        char ptr[TEXT_POINTER_MAX], msg[512];

        if (err_field(&name, &detail) == ERR_FIELD_POINTER) {
            snprintf(ptr, sizeof(ptr), "/backup%s", name);
            snprintf(msg, sizeof(msg), "%s", detail);
            return err_set_pointer(r, ptr, "%s", msg);
        }
        return r;
    }
    if (body.req.mode == CONF_BACKUP_MODE_PULL && !body.req.to_vault)
        return err_set_pointer(-EINVAL, "/backup/target",
                               "must be \"vault\" with mode pull: no client reads a policy's "
                               "backups");
    if (body.req.since)
        return err_set_pointer(-EINVAL, "/backup/since",
                               "is not for policies: a differential counts from the chain's full "
                               "backup");
    b->type = body.req.type;
    b->mode = body.req.mode;
    b->to_vault = body.req.to_vault;
    b->bandwidth = body.req.bandwidth;
    if (body.req.n_disks) {
        b->disks = calloc(body.req.n_disks, sizeof(*b->disks));
        if (!b->disks)
            return -ENOMEM;
        for (size_t i = 0; i < body.req.n_disks; i++) {
            b->disks[i] = strdup(body.req.disks[i]);
            if (!b->disks[i])
                return -ENOMEM;
            b->n_disks++;
        }
    }
    return 0;
}

/* Whether v has the JSON type a policy body wants for field f. */
static bool
field_type_ok(const char *f, const json_t *v)
{
    if (strcmp(f, "schedule") == 0)
        return json_is_string(v) || json_is_object(v);
    if (strcmp(f, "verify_after_days") == 0)
        return json_is_number(v) || json_is_null(v);
    if (strcmp(f, "domains") == 0)
        return json_is_array(v);
    if (strcmp(f, "backup") == 0 || strcmp(f, "retention") == 0 ||
        strcmp(f, "remote_retention") == 0)
        return json_is_object(v);
    if (strcmp(f, "copy_to") == 0)
        return json_is_string(v) || json_is_null(v);
    if (strcmp(f, "enabled") == 0)
        return json_is_boolean(v);
    return json_is_string(v); /* name */
}

int
api_policy_body_read(const struct api_request *req, const char *path_name, struct conf_policy **ret)
{
    static const struct {
        const char *name;
        const char *wants;
    } fields[] = {
        {"name", "must be a string"},
        {"domains", "must be an array"},
        {"schedule", "must be a cron expression or {\"interval_seconds\": N}"},
        {"backup", "must be an object"},
        {"retention", "must be an object"},
        {"verify_after_days", "must be a number or null"},
        {"enabled", "must be true or false"},
        {"copy_to", "must be a remote's name or null"},
        {"remote_retention", "must be an object"},
    };
    _cleanup_(conf_policy_freep) struct conf_policy *p = calloc(1, sizeof(*p));
    json_t *empty = NULL;
    const json_t *body = req->body;
    const char *key, *name;
    json_t *v;
    int r;

    if (!p)
        return -ENOMEM;
    if (!body)
        body = empty = json_object(); /* an absent body counts as {} */
    if (!json_is_object(body)) {
        json_decref(empty);
        return err_set_pointer(-EINVAL, "", "must be a JSON object");
    }
    /* Every field's type first, so that the field named is the one that is wrong. */
    r = 0;
    json_object_foreach((json_t *)body, key, v)
    {
        char ptr[TEXT_POINTER_MAX];
        size_t f = 0;

        while (f < ARRAY_SIZE(fields) && strcmp(fields[f].name, key) != 0)
            f++;
        text_pointer_join(ptr, sizeof(ptr), "", key, 0);
        if (f == ARRAY_SIZE(fields)) {
            r = err_set_pointer(-EINVAL, ptr, "is not a field of this request body");
            break;
        }
        if (!field_type_ok(key, v)) {
            r = err_set_pointer(-EINVAL, ptr, "%s", fields[f].wants);
            break;
        }
        if (json_is_object(v) && strcmp(key, "schedule") == 0 && (r = check_interval(v)) < 0)
            break;
    }
    json_decref(empty);
    if (r < 0)
        return r;
    if (!path_name && !json_object_get(body, "name"))
        return err_set_pointer(-EINVAL, "/name", "is required");
    if (!json_object_get(body, "domains"))
        return err_set_pointer(-EINVAL, "/domains", "is required");
    if (!json_object_get(body, "schedule"))
        return err_set_pointer(-EINVAL, "/schedule", "is required");

    v = json_object_get(body, "name");
    name = json_string_value(v);
    if (v && (strlen(name) != json_string_length(v) || !text_name_valid(name)))
        return err_set_pointer(-EINVAL, "/name",
                               "must be 1 to %d characters from A-Z a-z 0-9 . _ -, not starting "
                               "with '.'",
                               NAME_MAX_LEN);
    if (path_name && name && strcmp(name, path_name) != 0)
        return err_set_pointer(-EINVAL, "/name",
                               "must be the name in the path ('%s'): a policy is not renamed",
                               path_name);
    p->name = strdup(path_name ? path_name : name);
    if (!p->name)
        return -ENOMEM;

    v = json_object_get(body, "backup");
    p->backup.type = CONF_BACKUP_TYPE_AUTO;
    p->backup.mode = CONF_BACKUP_MODE_PUSH;
    if (v) {
        r = read_backup(v, &p->backup);
        if (r < 0)
            return r;
    }
    v = json_object_get(body, "retention");
    if (v) {
        r = api_retention_read(v, "/retention", &p->retention);
        if (r < 0)
            return r;
    }
    v = json_object_get(body, "copy_to");
    if (v && !json_is_null(v)) {
        const char *remote = json_string_value(v);
        if (strlen(remote) != json_string_length(v) || !text_name_valid(remote))
            return err_set_pointer(-EINVAL, "/copy_to", "must be a remote's name");
        p->copy_to = strdup(remote);
        if (!p->copy_to)
            return -ENOMEM;
    }
    v = json_object_get(body, "remote_retention");
    if (v) {
        r = api_retention_read(v, "/remote_retention", &p->remote_retention);
        if (r < 0)
            return r;
        if (!p->copy_to && !conf_retention_keeps_all(&p->remote_retention))
            return err_set_pointer(-EINVAL, "/remote_retention",
                                   "needs copy_to: what a remote keeps applies to copies");
    }
    v = json_object_get(body, "verify_after_days");
    p->verify_after_s = -1;
    if (v && !json_is_null(v)) {
        double days = json_number_value(v);
        if (!isfinite(days) || days < 0 || days > VERIFY_DAYS_MAX)
            return err_set_pointer(-EINVAL, "/verify_after_days",
                                   "must be a number of days from 0 to %d, or null for no "
                                   "verification",
                                   VERIFY_DAYS_MAX);
        p->verify_after_s = (int64_t)(days * 86400.0 + 0.5);
    }
    v = json_object_get(body, "enabled");
    p->enabled = v ? json_is_true(v) : true;
    /* Domains and the cron text last: a body built around another wrong field names that one. */
    r = read_domains(json_object_get(body, "domains"), p);
    if (r >= 0)
        r = read_schedule(json_object_get(body, "schedule"), &p->schedule);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(p);
    return 0;
}

static json_t *
schedule_json(const struct conf_schedule *s)
{
    if (s->kind == CONF_SCHEDULE_CRON)
        return json_string(s->text);
    return json_pack("{s:I}", "interval_seconds", (json_int_t)s->interval_s);
}

static json_t *
backup_json(const struct conf_policy_backup *b)
{
    json_t *disks = json_null();

    if (b->n_disks) {
        json_decref(disks);
        disks = json_array();
        for (size_t i = 0; disks && i < b->n_disks; i++)
            json_array_append_new(disks, json_string(b->disks[i]));
    }
    return json_pack("{s:s, s:s, s:s?, s:o, s:I}", "type", conf_backup_type_to_string(b->type),
                     "mode", conf_backup_mode_to_string(b->mode), "target",
                     b->mode == CONF_BACKUP_MODE_PULL ? "vault" : NULL, "disks", disks, "bandwidth",
                     (json_int_t)b->bandwidth);
}

static json_t *
retention_json(const struct conf_retention *r)
{
    json_t *o = json_object();

    for (int i = 0; o && i < CONF_RETENTION_OPTION_LAST; i++)
        if (r->keep[i])
            json_object_set_new(o, conf_retention_option_to_string(i), json_integer(r->keep[i]));
    return o;
}

static json_t *
last_run_json(const struct conf_policy_member *m)
{
    if (!m->last_run_ms && !m->last_result)
        return json_null();
    return json_pack("{s:o, s:s?, s:s?, s:b, s:s?}", "started_at", api_time_json(m->last_run_ms),
                     "result", m->last_result, "job_id", m->last_job, "catch_up", m->last_catch_up,
                     "detail", m->last_detail);
}

/* The JSON form of a policy with how it stands per domain. New reference or NULL. */
static json_t *
policy_json(const struct conf_policy *p, const struct core_policy_domain *d, size_t n)
{
    json_t *domains = json_array(), *members = json_array();
    const struct conf_policy_member *last = NULL;
    int64_t next = 0, prot = 0;
    bool overdue = false, prot_all = n > 0;

    if (!domains || !members) {
        json_decref(domains);
        json_decref(members);
        return NULL;
    }
    for (size_t i = 0; i < p->n_domains; i++)
        json_array_append_new(domains, json_string(p->domains[i]));
    for (size_t i = 0; i < n; i++) {
        const struct core_policy_domain *x = &d[i];

        json_array_append_new(
            members, json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:b, s:o}", "domain", x->m.domain,
                               "domain_uuid", x->m.domain_uuid, "next_run",
                               api_time_json(x->next_run_ms), "last_run", last_run_json(&x->m),
                               "last_success", api_time_json(x->m.last_success_ms),
                               "protected_until", api_time_json(x->protected_until_ms), "overdue",
                               x->overdue, "joined_at", api_time_json(x->m.since_ms)));
        if (x->next_run_ms && (!next || x->next_run_ms < next))
            next = x->next_run_ms;
        if (x->m.last_run_ms && (!last || x->m.last_run_ms > last->last_run_ms))
            last = &x->m;
        if (!x->protected_until_ms)
            prot_all = false;
        else if (!prot || x->protected_until_ms < prot)
            prot = x->protected_until_ms;
        overdue = overdue || x->overdue;
    }
    return json_pack(
        "{s:s, s:o, s:o, s:o, s:o, s:o, s:b, s:o, s:o, s:I, s:o, s:o, s:o, s:b, s:o, s:o, s:o}",
        "name", p->name, "domains", domains, "schedule", schedule_json(&p->schedule), "backup",
        backup_json(&p->backup), "retention", retention_json(&p->retention), "verify_after_days",
        p->verify_after_s < 0 ? json_null() : json_real((double)p->verify_after_s / 86400.0),
        "enabled", p->enabled, "created_at", api_time_json(p->created_ms), "updated_at",
        api_time_json(p->updated_ms), "period_seconds",
        (json_int_t)conf_schedule_period(&p->schedule, text_now_ms() / 1000), "next_run",
        api_time_json(next), "last_run", last ? last_run_json(last) : json_null(),
        "protected_until", api_time_json(prot_all ? prot : 0), "overdue", overdue, "members",
        members, "copy_to", p->copy_to ? json_string(p->copy_to) : json_null(), "remote_retention",
        retention_json(&p->remote_retention));
}

/* The JSON of p with its members, read now. */
static int
policy_full_json(const struct conf_policy *p, json_t **ret)
{
    struct core_policy_domain *d = NULL;
    size_t n = 0;
    json_t *out;
    int r;

    r = core_policy_domains(p, &d, &n);
    if (r < 0)
        return r;
    out = policy_json(p, d, n);
    core_policy_domains_free(d, n);
    if (!out)
        return -ENOMEM;
    *ret = out;
    return 0;
}

int
api_policies_list(const struct api_request *req, struct api_response *resp)
{
    struct conf_policy **list = NULL;
    struct api_page page;
    size_t n = 0, shown = 0;
    json_t *items;
    const char *next = NULL;
    int r;

    r = api_query_page(req, "policies", &page);
    if (r < 0)
        return r;
    r = core_policy_list(&list, &n);
    if (r < 0) {
        api_page_clear(&page);
        return r;
    }
    /* By name; a page starts strictly after the name its token holds. */
    items = json_array();
    for (size_t i = 0; items && r >= 0 && i < n; i++) {
        json_t *o = NULL;
        if (page.after && strcmp(list[i]->name, page.after) <= 0)
            continue;
        if (shown == page.limit) {
            next = list[i - 1]->name;
            break;
        }
        r = policy_full_json(list[i], &o);
        if (r >= 0)
            json_array_append_new(items, o);
        shown++;
    }
    if (r >= 0 && !items)
        r = -ENOMEM;
    if (r >= 0)
        r = api_reply(resp, 200, api_page_json(items, "policies", next));
    else
        json_decref(items);
    conf_policy_list_free(list, n);
    api_page_clear(&page);
    return r;
}

int
api_policy_create(const struct api_request *req, struct api_response *resp)
{
    _cleanup_(conf_policy_freep) struct conf_policy *p = NULL;
    json_t *out = NULL;
    int r;

    r = api_policy_body_read(req, NULL, &p);
    if (r < 0)
        return r;
    r = core_policy_create(p);
    if (r < 0)
        return r;
    r = policy_full_json(p, &out);
    if (r < 0)
        return r;
    api_set_location(resp, "/v1/policies/%s", p->name);
    return api_reply(resp, 201, out);
}

int
api_policy_get(const struct api_request *req, struct api_response *resp)
{
    _cleanup_(conf_policy_freep) struct conf_policy *p = NULL;
    json_t *out = NULL;
    int r;

    r = core_policy_get(req->params[0], &p);
    if (r >= 0)
        r = policy_full_json(p, &out);
    if (r < 0)
        return r;
    return api_reply(resp, 200, out);
}

int
api_policy_put(const struct api_request *req, struct api_response *resp)
{
    _cleanup_(conf_policy_freep) struct conf_policy *p = NULL;
    json_t *out = NULL;
    int r;

    /* A policy is made by POST: a PUT on none is 404, whatever its body. */
    r = core_policy_get(req->params[0], &p);
    if (r < 0)
        return r;
    conf_policy_free(TAKE_PTR(p));
    r = api_policy_body_read(req, req->params[0], &p);
    if (r >= 0)
        r = core_policy_update(p);
    if (r >= 0)
        r = policy_full_json(p, &out);
    if (r < 0)
        return r;
    return api_reply(resp, 200, out);
}

int
api_policy_delete(const struct api_request *req, struct api_response *resp)
{
    int r = core_policy_delete(req->params[0]);

    if (r < 0)
        return r;
    resp->status = 204;
    return 0;
}

int
api_policy_run(const struct api_request *req, struct api_response *resp)
{
    _cleanup_(conf_policy_freep) struct conf_policy *p = NULL;
    json_t *out = NULL;
    size_t n = 0;
    int r;

    r = api_body_unpack(req, API_NO_FIELDS, "{}");
    if (r >= 0)
        r = core_policy_run(req->params[0], &n);
    if (r >= 0)
        r = core_policy_get(req->params[0], &p);
    if (r >= 0)
        r = policy_full_json(p, &out);
    if (r < 0)
        return r;
    api_set_location(resp, "/v1/policies/%s", p->name);
    return api_reply(resp, 202, out);
}

/* A label value as Prometheus' text format wants it: \\ \" \n escaped. */
static void
put_label(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', f);
        if (*s == '\n') {
            fputs("\\n", f);
            continue;
        }
        fputc(*s, f);
    }
}

int
api_policy_metrics(FILE *f)
{
    struct conf_policy **list = NULL;
    struct core_policy_runs *runs = NULL;
    char **names = NULL;
    uint64_t *bytes = NULL;
    size_t n = 0, n_runs = 0, n_bytes = 0;
    struct core_policy_ticks ticks;
    uint64_t cumulative = 0;
    int r;

    r = core_policy_list(&list, &n);
    if (r < 0)
        return r;
    fputs("# HELP virtvault_domain_last_backup_success_timestamp_seconds When the last backup a "
          "policy took of the domain succeeded.\n"
          "# TYPE virtvault_domain_last_backup_success_timestamp_seconds gauge\n",
          f);
    for (size_t i = 0; i < n; i++) {
        struct core_policy_domain *d = NULL;
        size_t nd = 0;
        if (core_policy_domains(list[i], &d, &nd) < 0)
            continue;
        for (size_t k = 0; k < nd; k++)
            if (d[k].m.last_success_ms) {
                fputs("virtvault_domain_last_backup_success_timestamp_seconds{domain=\"", f);
                put_label(f, d[k].m.domain);
                fprintf(f, "\"} %.3f\n", (double)d[k].m.last_success_ms / 1000.0);
            }
        core_policy_domains_free(d, nd);
    }
    fputs("# HELP virtvault_domain_overdue 1 when the domain had no successful backup within "
          "twice its policy's period.\n"
          "# TYPE virtvault_domain_overdue gauge\n",
          f);
    for (size_t i = 0; i < n; i++) {
        struct core_policy_domain *d = NULL;
        size_t nd = 0;
        if (!list[i]->enabled || core_policy_domains(list[i], &d, &nd) < 0)
            continue;
        for (size_t k = 0; k < nd; k++) {
            fputs("virtvault_domain_overdue{domain=\"", f);
            put_label(f, d[k].m.domain);
            fprintf(f, "\",policy=\"%s\"} %d\n", list[i]->name, d[k].overdue ? 1 : 0);
        }
        core_policy_domains_free(d, nd);
    }
    conf_policy_list_free(list, n);
    err_clear();
    fputs("# HELP virtvault_policy_runs_total Runs of policies since start, by result.\n"
          "# TYPE virtvault_policy_runs_total counter\n",
          f);
    if (core_policy_runs(&runs, &n_runs) >= 0) {
        for (size_t i = 0; i < n_runs; i++)
            fprintf(f, "virtvault_policy_runs_total{policy=\"%s\",result=\"%s\"} %llu\n",
                    runs[i].policy, runs[i].result, (unsigned long long)runs[i].count);
        free(runs);
    }
    core_policy_ticks_get(&ticks);
    fputs("# HELP virtvault_policy_tick_seconds Time the policy scheduler took per pass over "
          "every policy and domain.\n"
          "# TYPE virtvault_policy_tick_seconds histogram\n",
          f);
    for (size_t b = 0; b < CORE_POLICY_TICK_BUCKETS; b++) {
        cumulative += ticks.count[b];
        fprintf(f, "virtvault_policy_tick_seconds_bucket{le=\"%g\"} %llu\n",
                core_policy_tick_bounds[b], (unsigned long long)cumulative);
    }
    fprintf(f, "virtvault_policy_tick_seconds_bucket{le=\"+Inf\"} %llu\n",
            (unsigned long long)ticks.total);
    fprintf(f, "virtvault_policy_tick_seconds_sum %.6f\n", ticks.sum_s);
    fprintf(f, "virtvault_policy_tick_seconds_count %llu\n", (unsigned long long)ticks.total);
    fprintf(f,
            "# HELP virtvault_policy_tick_max_seconds The longest pass of the policy scheduler.\n"
            "# TYPE virtvault_policy_tick_max_seconds gauge\n"
            "virtvault_policy_tick_max_seconds %.6f\n",
            ticks.max_s);
    fputs("# HELP virtvault_vault_bytes Bytes the vault holds of the domain's completed "
          "backups.\n"
          "# TYPE virtvault_vault_bytes gauge\n",
          f);
    if (core_policy_vault_bytes(&names, &bytes, &n_bytes) >= 0) {
        for (size_t i = 0; i < n_bytes; i++) {
            fputs("virtvault_vault_bytes{domain=\"", f);
            put_label(f, names[i]);
            fprintf(f, "\"} %llu\n", (unsigned long long)bytes[i]);
            free(names[i]);
        }
        free(names);
        free(bytes);
    }
    err_clear();
    return 0;
}
