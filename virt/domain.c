/* Domains: listing, lookup, disks and what each domain supports. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cleanup.h"
#include "err.h"
#include "text.h"
#include "virt_clone.h"
#include "virt_priv.h"

/* libvirt's states, by their value; the rest are CONF_DOMAIN_UNKNOWN. */
static const enum conf_domain_state states[] = {
    [VIR_DOMAIN_NOSTATE] = CONF_DOMAIN_NOSTATE,
    [VIR_DOMAIN_RUNNING] = CONF_DOMAIN_RUNNING,
    [VIR_DOMAIN_BLOCKED] = CONF_DOMAIN_BLOCKED,
    [VIR_DOMAIN_PAUSED] = CONF_DOMAIN_PAUSED,
    [VIR_DOMAIN_SHUTDOWN] = CONF_DOMAIN_SHUTDOWN,
    [VIR_DOMAIN_SHUTOFF] = CONF_DOMAIN_SHUTOFF,
    [VIR_DOMAIN_CRASHED] = CONF_DOMAIN_CRASHED,
    [VIR_DOMAIN_PMSUSPENDED] = CONF_DOMAIN_PMSUSPENDED,
};

/* What this thread asked libvirt for (virt_domain_lookups_take, virt_domain_xml_fetches_take). */
static _Thread_local unsigned lookups, xml_fetches;

unsigned
virt_domain_lookups_take(void)
{
    unsigned n = lookups;

    lookups = 0;
    return n;
}

unsigned
virt_domain_xml_fetches_take(void)
{
    unsigned n = xml_fetches;

    xml_fetches = 0;
    return n;
}

char *
virt_domain_xml_desc(virDomainPtr dom, unsigned flags)
{
    xml_fetches++;
    return virDomainGetXMLDesc(dom, flags);
}

int
virt_lookup(virConnectPtr conn, const char *name_or_uuid, virDomainPtr *ret)
{
    virDomainPtr dom = NULL;

    if (text_is_uuid(name_or_uuid)) {
        lookups++;
        dom = virDomainLookupByUUIDString(conn, name_or_uuid);
    }
    if (!dom) {
        lookups++;
        dom = virDomainLookupByName(conn, name_or_uuid);
    }
    if (!dom) {
        virErrorPtr e = virGetLastError();
        if (!e || e->code == VIR_ERR_NO_DOMAIN) {
            virResetLastError();
            return err_set(-ENOENT, "domain '%s' not found", name_or_uuid);
        }
        return virt_error("look up domain");
    }
    *ret = dom;
    return 0;
}

/* The domain this thread resolved once (virt_domain_scope_begin), or none. */
static _Thread_local struct {
    virConnectPtr conn;
    virDomainPtr dom;
    char uuid[VIR_UUID_STRING_BUFLEN];
    char *name;
} scope;

/* Whether name_or_uuid names the domain of this thread's scope. */
static bool
in_scope(const char *name_or_uuid)
{
    return scope.dom &&
           (strcasecmp(name_or_uuid, scope.uuid) == 0 || strcmp(name_or_uuid, scope.name) == 0);
}

int
virt_domain_scope_begin(const char *name_or_uuid)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    const char *name;
    int r;

    virt_domain_scope_end();
    r = virt_domain_open(name_or_uuid, &conn, &dom);
    if (r < 0)
        return r;
    name = virDomainGetName(dom);
    if (virDomainGetUUIDString(dom, scope.uuid) < 0 || !name)
        return virt_error("read the domain's name and UUID");
    scope.name = strdup(name);
    if (!scope.name)
        return -ENOMEM;
    scope.conn = TAKE_PTR(conn);
    scope.dom = TAKE_PTR(dom);
    return 0;
}

void
virt_domain_scope_end(void)
{
    if (scope.dom)
        virDomainFree(scope.dom);
    if (scope.conn)
        virConnectClose(scope.conn);
    free(scope.name);
    memset(&scope, 0, sizeof(scope));
}

int
virt_domain_open(const char *name_or_uuid, virConnectPtr *ret_conn, virDomainPtr *ret_dom)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    int r;

    if (in_scope(name_or_uuid) && virConnectRef(scope.conn) == 0) {
        if (virDomainRef(scope.dom) < 0) {
            virConnectClose(scope.conn);
            return virt_error("take the domain's handle");
        }
        *ret_conn = scope.conn;
        *ret_dom = scope.dom;
        return 0;
    }
    r = virt_conn_get(&conn);
    if (r < 0)
        return r;
    r = virt_lookup(conn, name_or_uuid, ret_dom);
    if (r < 0)
        return r;
    *ret_conn = TAKE_PTR(conn);
    return 0;
}

/* ---- resolving names and UUIDs, with a small cache ---- */

#define REF_SLOTS 512

static struct {
    pthread_mutex_t lock;
    struct {
        char key[256]; /* what was asked: a name or a UUID */
        struct conf_domain_ref ref;
        uint64_t epoch, expires_ns;
    } slot[REF_SLOTS];
} refs = {.lock = PTHREAD_MUTEX_INITIALIZER};
static size_t
ref_slot(const char *key)
{
    return text_hash(key) % REF_SLOTS;
}

static bool
ref_cached(const char *key, uint64_t epoch, struct conf_domain_ref *ret)
{
    size_t i = ref_slot(key);
    bool hit;

    pthread_mutex_lock(&refs.lock);
    hit = refs.slot[i].epoch == epoch && text_mono_ns() < refs.slot[i].expires_ns &&
          strcmp(refs.slot[i].key, key) == 0;
    if (hit)
        *ret = refs.slot[i].ref;
    pthread_mutex_unlock(&refs.lock);
    return hit;
}

static void
ref_keep(const char *key, uint64_t epoch, const struct conf_domain_ref *ref)
{
    size_t i = ref_slot(key);

    pthread_mutex_lock(&refs.lock);
    snprintf(refs.slot[i].key, sizeof(refs.slot[i].key), "%s", key);
    refs.slot[i].ref = *ref;
    refs.slot[i].epoch = epoch;
    refs.slot[i].expires_ns = text_mono_ns() + (uint64_t)VIRT_DOMAIN_REF_TTL_MS * 1000000;
    pthread_mutex_unlock(&refs.lock);
}

int
virt_domain_resolve(const char *name_or_uuid, struct conf_domain_ref *ret)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    /* Read before the lookup: an event that comes during it makes what it finds stale. */
    uint64_t epoch = virt_events_epoch();
    bool cacheable = strlen(name_or_uuid) < sizeof(refs.slot[0].key);
    struct conf_domain_ref ref = {0};
    const char *name;
    int r;

    /* Without a connection nothing is answered from the cache either: the lookup says why. */
    if (cacheable && virt_connected() && ref_cached(name_or_uuid, epoch, ret))
        return 0;
    r = virt_domain_open(name_or_uuid, &conn, &dom);
    if (r < 0)
        return r;
    name = virDomainGetName(dom);
    if (!name || virDomainGetUUIDString(dom, ref.uuid) < 0)
        return virt_error("read domain information");
    text_copy_utf8(ref.name, sizeof(ref.name), name);
    if (cacheable)
        ref_keep(name_or_uuid, epoch, &ref);
    *ret = ref;
    return 0;
}

int
virt_job_operation(const char *domain, int *ret_op)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    virTypedParameterPtr params = NULL;
    int type = VIR_DOMAIN_JOB_NONE, nparams = 0, op = VIR_DOMAIN_JOB_OPERATION_UNKNOWN, r;

    r = virt_domain_open(domain, &conn, &dom);
    if (r < 0)
        return r;
    if (virDomainGetJobStats(dom, &type, &params, &nparams, 0) < 0) {
        virErrorPtr e = virGetLastError();
        if (e && (e->code == VIR_ERR_NO_SUPPORT || e->code == VIR_ERR_OPERATION_INVALID)) {
            virResetLastError(); /* no job API (test driver), or not running: no job */
            return 0;
        }
        return virt_error("read the domain's job");
    }
    if (virTypedParamsGetInt(params, nparams, VIR_DOMAIN_JOB_OPERATION, &op) <= 0)
        op = VIR_DOMAIN_JOB_OPERATION_UNKNOWN;
    virTypedParamsFree(params, nparams);
    if (type == VIR_DOMAIN_JOB_NONE)
        return 0;
    *ret_op = op;
    return 1;
}

static void
feature_set(struct conf_feature *f, const char *reason)
{
    f->supported = reason == NULL;
    f->reason = reason ? strdup(reason) : NULL;
}

/* Reads the disks of the domain XML in ctx into d. */
static int
parse_disks(xmlXPathContextPtr ctx, struct conf_domain *d)
{
    xmlXPathObjectPtr set;
    int n;

    set = xmlXPathEvalExpression((const xmlChar *)"/domain/devices/disk", ctx);
    n = set && set->nodesetval ? set->nodesetval->nodeNr : 0;
    d->disks = n > 0 ? calloc((size_t)n, sizeof(*d->disks)) : NULL;
    for (int i = 0; i < n && d->disks; i++) {
        struct conf_disk *k = &d->disks[d->n_disks];
        xmlNodePtr saved = ctx->node;

        ctx->node = set->nodesetval->nodeTab[i];
        k->target = virt_xml_string(ctx, "string(target/@dev)");
        k->device = virt_xml_string(ctx, "string(@device)");
        k->bus = virt_xml_string(ctx, "string(target/@bus)");
        k->type = virt_xml_string(ctx, "string(@type)");
        k->source = virt_xml_string(ctx, "string(source/@file | source/@dev | source/@name)");
        k->format = virt_xml_string(ctx, "string(driver/@type)");
        k->alias = virt_xml_string(ctx, "string(alias/@name)");
        ctx->node = saved;
        if (k->target)
            d->n_disks++;
        else
            conf_disk_clear(k);
    }
    if (set)
        xmlXPathFreeObject(set);
    return n > 0 && !d->disks ? -ENOMEM : 0;
}

/* Decides, without side effects, what the domain can do and why not. */
static void
derive_features(virConnectPtr conn, struct conf_domain *d)
{
    const char *driver = virt_driver_name(conn);
    bool is_test = strcasecmp(driver, "test") == 0;
    bool running = conf_domain_state_active(d->state);
    bool qcow2 = false;
    const char *cp = NULL, *bk = NULL;

    for (size_t i = 0; i < d->n_disks; i++)
        if (conf_disk_is_qcow2(&d->disks[i]) && conf_disk_is_disk(&d->disks[i]))
            qcow2 = true;

    feature_set(&d->snapshots, NULL);

    if (!running)
        cp = "the domain is not running: libvirt creates checkpoints only for running domains";
    else if (!is_test && !qcow2)
        cp = "no qcow2 disk: checkpoints need dirty bitmaps, which only qcow2 images hold";
    feature_set(&d->checkpoints, cp);

    if (is_test)
        bk = "the libvirt test driver has no backup API";
    else if (!virt_backup_supported(conn))
        bk = "this hypervisor does not offer libvirt's backup API";
    else if (!qcow2)
        bk = "no qcow2 disk: backups read qcow2 images";
    /* A stopped domain's images are read directly (qemu-nbd) into the vault. */
    feature_set(&d->push_backup, bk);
    feature_set(&d->pull_backup,
                bk        ? bk
                : running ? NULL
                          : "the domain is not running: libvirt serves pull exports of running "
                            "domains only (pull with target vault reads its images instead)");
    /* Stopped: from the qcow2 bitmaps of the last checkpoint, checked when asked. */
    feature_set(&d->incremental, bk ? bk : running ? cp : NULL);
}

static bool
same_source(const char *a, const char *b)
{
    return a && b ? strcmp(a, b) == 0 : a == b;
}

/*
 * Whether the disks read from the persistent definition of running domain
 * dom are the ones it runs with: the definition was not changed while it
 * ran, and libvirt's block statistics name the same targets on the same
 * sources. false also when libvirt cannot tell (the caller reads the live
 * XML then).
 */
static bool
definition_disks_live(virDomainPtr dom, const struct conf_domain *d)
{
    virDomainPtr doms[] = {dom, NULL};
    virDomainStatsRecordPtr *recs = NULL;
    unsigned count = 0;
    bool same;

    if (virDomainIsUpdated(dom) != 0 ||
        virDomainListGetStats(doms, VIR_DOMAIN_STATS_BLOCK, &recs, 0) != 1) {
        if (recs)
            virDomainStatsRecordListFree(recs);
        virResetLastError();
        return false;
    }
    same = virTypedParamsGetUInt(recs[0]->params, recs[0]->nparams, "block.count", &count) == 1 &&
           count == d->n_disks;
    for (unsigned i = 0; same && i < count; i++) {
        const char *target = NULL, *path = NULL;
        char key[64];

        snprintf(key, sizeof(key), "block.%u.name", i);
        same = virTypedParamsGetString(recs[0]->params, recs[0]->nparams, key, &target) == 1;
        snprintf(key, sizeof(key), "block.%u.path", i);
        if (virTypedParamsGetString(recs[0]->params, recs[0]->nparams, key, &path) != 1)
            path = NULL;
        same = same && i < d->n_disks && strcmp(d->disks[i].target, target) == 0 &&
               same_source(d->disks[i].source, path);
    }
    virDomainStatsRecordListFree(recs);
    virResetLastError();
    return same;
}

/* Reads the disks of dom's live XML into d, in place of those it has. */
static int
read_live_disks(virDomainPtr dom, struct conf_domain *d)
{
    _cleanup_free_ char *xml = virt_domain_xml_desc(dom, 0);
    _cleanup_(virt_xml_docp) xmlDocPtr doc = NULL;
    _cleanup_(virt_xml_ctxp) xmlXPathContextPtr ctx = NULL;
    int r;

    if (!xml)
        return virt_error("read domain XML");
    r = virt_xml_parse(xml, &doc, &ctx);
    if (r < 0)
        return r;
    for (size_t i = 0; i < d->n_disks; i++)
        conf_disk_clear(&d->disks[i]);
    free(d->disks);
    d->disks = NULL;
    d->n_disks = 0;
    return parse_disks(ctx, d);
}

/*
 * Reads dom into d: its name, state and sizes, and its XML (with flags,
 * fetched and parsed once) for the disks; with keep, that XML redacted
 * into d->xml. The disks are always the ones the domain runs with: when
 * flags ask for the persistent definition of a running domain whose disks
 * differ from it (changed while it ran), its live XML is read for them.
 */
static int
fill_domain(virConnectPtr conn, virDomainPtr dom, unsigned flags, bool keep, struct conf_domain *d)
{
    virDomainInfo info;
    _cleanup_free_ char *xml = NULL;
    _cleanup_(virt_xml_docp) xmlDocPtr doc = NULL;
    _cleanup_(virt_xml_ctxp) xmlXPathContextPtr ctx = NULL;
    const char *name;
    int r;

    name = virDomainGetName(dom);
    if (!name || virDomainGetInfo(dom, &info) < 0 || virDomainGetUUIDString(dom, d->uuid) < 0)
        return virt_error("read domain information");
    d->name = strdup(name);
    if (!d->name)
        return -ENOMEM;
    d->state = info.state < ARRAY_SIZE(states) ? states[info.state] : CONF_DOMAIN_UNKNOWN;
    d->id = (int)virDomainGetID(dom);
    d->persistent = virDomainIsPersistent(dom) == 1;
    d->vcpus = info.nrVirtCpu;
    d->memory_bytes = (uint64_t)info.memory * 1024;
    xml = virt_domain_xml_desc(dom, flags);
    if (!xml)
        return virt_error("read domain XML");
    r = virt_xml_parse(xml, &doc, &ctx);
    if (r < 0)
        return r;
    r = parse_disks(ctx, d);
    if (r >= 0 && (flags & VIR_DOMAIN_XML_INACTIVE) && virDomainIsActive(dom) == 1 &&
        !definition_disks_live(dom, d))
        r = read_live_disks(dom, d);
    if (r < 0)
        return r;
    derive_features(conn, d);
    /* Last: the redaction changes the document the disks were read from. */
    return keep ? virt_clone_redact(ctx, &d->xml) : 0;
}

static int
domain_get(const char *name_or_uuid, unsigned flags, bool keep, struct conf_domain **ret)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    _cleanup_domain_ struct conf_domain *d = NULL;
    int r;

    r = virt_domain_open(name_or_uuid, &conn, &dom);
    if (r < 0)
        return r;
    d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    r = fill_domain(conn, dom, flags, keep, d);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(d);
    return 0;
}

int
virt_domain_get(const char *name_or_uuid, struct conf_domain **ret)
{
    return domain_get(name_or_uuid, 0, false, ret);
}

int
virt_domain_get_definition(const char *name_or_uuid, struct conf_domain **ret)
{
    /* Secure: to know where a password was; the password itself is never kept. */
    return domain_get(name_or_uuid, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE, true, ret);
}

static int
by_name(const void *a, const void *b)
{
    return strcmp(((const struct conf_domain *)a)->name, ((const struct conf_domain *)b)->name);
}

/* A domain of a listing and its name, to be sorted before anything else is read. */
struct named {
    virDomainPtr dom;
    const char *name;
};

static int
named_by_name(const void *a, const void *b)
{
    return strcmp(((const struct named *)a)->name, ((const struct named *)b)->name);
}

/*
 * Every domain with its name, ordered by name: one call to libvirt (names
 * are held by the handles). *ret is a new array of *ret_n; free it with
 * named_free().
 */
static int
named_list(virConnectPtr conn, struct named **ret, size_t *ret_n)
{
    virDomainPtr *doms = NULL;
    struct named *list;
    size_t k = 0;
    int n;

    n = virConnectListAllDomains(conn, &doms, 0);
    if (n < 0)
        return virt_error("list domains");
    list = calloc(n > 0 ? (size_t)n : 1, sizeof(*list));
    if (!list) {
        for (int i = 0; i < n; i++)
            virDomainFree(doms[i]);
        free(doms);
        return -ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        const char *name = virDomainGetName(doms[i]);
        if (!name) {
            virDomainFree(doms[i]);
            continue;
        }
        list[k++] = (struct named){doms[i], name};
    }
    free(doms);
    qsort(list, k, sizeof(*list), named_by_name);
    *ret = list;
    *ret_n = k;
    return 0;
}

static void
named_free(struct named *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        virDomainFree(list[i].dom);
    free(list);
}

int
virt_domain_list_page(const char *after, size_t limit, struct conf_domain **ret, size_t *ret_n,
                      bool *ret_more)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    struct named *all = NULL;
    struct conf_domain *list;
    size_t n_all = 0, n_ok = 0, i = 0;
    int r;

    r = virt_conn_get(&conn);
    if (r < 0)
        return r;
    r = named_list(conn, &all, &n_all);
    if (r < 0)
        return r;
    while (after && i < n_all && strcmp(all[i].name, after) <= 0)
        i++;
    list = calloc(limit ? limit : 1, sizeof(*list));
    r = list ? 0 : -ENOMEM;
    for (; r == 0 && i < n_all && n_ok < limit; i++) {
        int q = fill_domain(conn, all[i].dom, 0, false, &list[n_ok]);
        if (q == 0)
            n_ok++;
        else if (q == -ENOENT)
            conf_domain_clear(&list[n_ok]); /* undefined meanwhile: skip it */
        else
            r = q;
    }
    named_free(all, n_all);
    if (r < 0) {
        if (list)
            conf_domain_list_free(list, n_ok + 1);
        return r;
    }
    *ret = list;
    *ret_n = n_ok;
    *ret_more = i < n_all;
    return 0;
}

int
virt_domain_list_brief(struct conf_domain **ret, size_t *ret_n)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    struct named *all = NULL;
    struct conf_domain *list;
    size_t n_all = 0, n_ok = 0;
    int r;

    r = virt_conn_get(&conn);
    if (r < 0)
        return r;
    r = named_list(conn, &all, &n_all);
    if (r < 0)
        return r;
    list = calloc(n_all ? n_all : 1, sizeof(*list));
    r = list ? 0 : -ENOMEM;
    for (size_t i = 0; r == 0 && i < n_all; i++) {
        struct conf_domain *d = &list[n_ok];
        if (virDomainGetUUIDString(all[i].dom, d->uuid) < 0) {
            virResetLastError();
            continue;
        }
        d->name = strdup(all[i].name);
        if (!d->name)
            r = -ENOMEM;
        else
            n_ok++;
    }
    named_free(all, n_all);
    if (r < 0) {
        if (list)
            conf_domain_list_free(list, n_ok);
        return r;
    }
    *ret = list;
    *ret_n = n_ok;
    return 0;
}

int
virt_domain_list(struct conf_domain **ret, size_t *ret_n)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    virDomainPtr *doms = NULL;
    struct conf_domain *list;
    size_t n_ok = 0;
    int n, r;

    r = virt_conn_get(&conn);
    if (r < 0)
        return r;
    n = virConnectListAllDomains(conn, &doms, 0);
    if (n < 0)
        return virt_error("list domains");
    list = calloc(n > 0 ? (size_t)n : 1, sizeof(*list));
    r = list ? 0 : -ENOMEM;
    for (int i = 0; i < n; i++) {
        if (r == 0) {
            int q = fill_domain(conn, doms[i], 0, false, &list[n_ok]);
            if (q == 0)
                n_ok++;
            else if (q == -ENOENT)
                conf_domain_clear(&list[n_ok]); /* undefined meanwhile: skip it */
            else
                r = q;
        }
        virDomainFree(doms[i]);
    }
    free(doms);
    if (r < 0) {
        conf_domain_list_free(list, n_ok + 1);
        return r;
    }
    qsort(list, n_ok, sizeof(*list), by_name);
    *ret = list;
    *ret_n = n_ok;
    return 0;
}
