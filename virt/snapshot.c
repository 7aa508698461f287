/* Domain snapshots (see virt_snapshot.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "err.h"
#include "text.h"
#include "virt_priv.h"
#include "virt_snapshot.h"

#define XML_MAX (1u << 20)

static void
snap_freep(virDomainSnapshotPtr *s)
{
    if (*s)
        virDomainSnapshotFree(*s);
}
#define _cleanup_snap_ __attribute__((cleanup(snap_freep)))

static enum conf_snapshot_location
location_from_xml(const char *s, enum conf_snapshot_location def)
{
    if (!s)
        return def;
    if (strcmp(s, "internal") == 0)
        return CONF_SNAPSHOT_LOCATION_INTERNAL;
    if (strcmp(s, "external") == 0)
        return CONF_SNAPSHOT_LOCATION_EXTERNAL;
    if (strcmp(s, "no") == 0)
        return CONF_SNAPSHOT_LOCATION_NONE;
    return def;
}

/* libvirt's word for a location: as the API names them, but "no" for none. */
static const char *
location_to_xml(enum conf_snapshot_location l)
{
    return l == CONF_SNAPSHOT_LOCATION_NONE ? "no" : conf_snapshot_location_to_string(l);
}

/* Fills *s from libvirt's snapshot XML. */
static int
parse_snapshot(const char *xml, struct conf_snapshot *s)
{
    xmlDocPtr doc = NULL;
    xmlXPathContextPtr ctx = NULL;
    xmlXPathObjectPtr set;
    _cleanup_free_ char *created = NULL;
    _cleanup_free_ char *memory = NULL;
    int r, n;

    r = virt_xml_parse(xml, &doc, &ctx);
    if (r < 0)
        return r;
    s->name = virt_xml_string(ctx, "string(/domainsnapshot/name)");
    s->description = virt_xml_string(ctx, "string(/domainsnapshot/description)");
    s->parent = virt_xml_string(ctx, "string(/domainsnapshot/parent/name)");
    s->domain_state = virt_xml_string(ctx, "string(/domainsnapshot/state)");
    created = virt_xml_string(ctx, "string(/domainsnapshot/creationTime)");
    memory = virt_xml_string(ctx, "string(/domainsnapshot/memory/@snapshot)");
    s->memory_file = virt_xml_string(ctx, "string(/domainsnapshot/memory/@file)");
    s->created = created ? strtoll(created, NULL, 10) : 0;
    /* Without a <memory> element, a snapshot of a running domain holds its memory. */
    s->memory =
        location_from_xml(memory, s->domain_state && (strcmp(s->domain_state, "running") == 0 ||
                                                      strcmp(s->domain_state, "paused") == 0)
                                      ? CONF_SNAPSHOT_LOCATION_INTERNAL
                                      : CONF_SNAPSHOT_LOCATION_NONE);

    set = xmlXPathEvalExpression((const xmlChar *)"/domainsnapshot/disks/disk", ctx);
    n = set && set->nodesetval ? set->nodesetval->nodeNr : 0;
    s->disks = n > 0 ? calloc((size_t)n, sizeof(*s->disks)) : NULL;
    for (int i = 0; i < n && s->disks; i++) {
        struct conf_snapshot_disk *d = &s->disks[s->n_disks];
        xmlNodePtr saved = ctx->node;
        _cleanup_free_ char *loc = NULL;

        ctx->node = set->nodesetval->nodeTab[i];
        d->target = virt_xml_string(ctx, "string(@name)");
        loc = virt_xml_string(ctx, "string(@snapshot)");
        d->location = location_from_xml(loc, CONF_SNAPSHOT_LOCATION_INTERNAL);
        if (d->location == CONF_SNAPSHOT_LOCATION_EXTERNAL)
            d->file = virt_xml_string(ctx, "string(source/@file | source/@dev | source/@name)");
        ctx->node = saved;
        if (d->target) {
            s->n_disks++;
        } else {
            free(d->file);
            d->file = NULL;
        }
    }
    if (set)
        xmlXPathFreeObject(set);
    virt_xml_free(doc, ctx);
    if ((n > 0 && !s->disks) || !s->name)
        return s->name ? -ENOMEM : err_set(-EIO, "libvirt returned a snapshot without a name");
    return 0;
}

/* Reads one snapshot object into *s (zeroed by the caller). */
static int
read_snapshot(virDomainSnapshotPtr snap, bool count_children, struct conf_snapshot *s)
{
    _cleanup_free_ char *xml = virDomainSnapshotGetXMLDesc(snap, 0);
    int r, cur;

    if (!xml)
        return virt_error("read snapshot XML");
    r = parse_snapshot(xml, s);
    if (r < 0) {
        conf_snapshot_clear(s);
        return r;
    }
    cur = virDomainSnapshotIsCurrent(snap, 0);
    if (cur < 0) {
        conf_snapshot_clear(s);
        return virt_error("ask whether the snapshot is current");
    }
    s->is_current = cur == 1;
    if (count_children) {
        int n = virDomainSnapshotNumChildren(snap, 0);
        if (n < 0) {
            conf_snapshot_clear(s);
            return virt_error("count the snapshot's children");
        }
        s->n_children = (size_t)n;
    }
    return 0;
}

/*
 * virt_error(), except that a driver that does not know a flag (libvirt's
 * "unsupported flags" check answers VIR_ERR_INVALID_ARG) cannot do what was
 * asked: that is -EOPNOTSUPP, not a bad request.
 */
static int
snap_error(const char *what)
{
    virErrorPtr e = virGetLastError();

    if (e && e->code == VIR_ERR_INVALID_ARG && e->message &&
        strstr(e->message, "unsupported flags")) {
        int r = err_set(-EOPNOTSUPP, "%s: the %s driver cannot do this (%s)", what,
                        virt_driver_name(NULL), e->message);
        virResetLastError();
        return r;
    }
    return virt_error(what);
}

static int
lookup_snapshot(virDomainPtr dom, const char *name, virDomainSnapshotPtr *ret)
{
    virDomainSnapshotPtr snap = virDomainSnapshotLookupByName(dom, name, 0);

    if (!snap) {
        virErrorPtr e = virGetLastError();
        if (!e || e->code == VIR_ERR_NO_DOMAIN_SNAPSHOT) {
            virResetLastError();
            return err_set(-ENOENT, "snapshot '%s' not found", name);
        }
        return virt_error("look up snapshot");
    }
    *ret = snap;
    return 0;
}

/* The shared connection, the domain and its snapshot name, in one step (new references). */
static int
snapshot_open(const char *domain, const char *name, virConnectPtr *ret_conn, virDomainPtr *ret_dom,
              virDomainSnapshotPtr *ret_snap)
{
    int r = virt_domain_open(domain, ret_conn, ret_dom);

    if (r < 0)
        return r;
    return lookup_snapshot(*ret_dom, name, ret_snap);
}

int
virt_snapshot_list(const char *domain, struct conf_snapshot **ret, size_t *ret_n)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    virDomainSnapshotPtr *snaps = NULL;
    struct conf_snapshot *list;
    int n, r;

    r = virt_domain_open(domain, &conn, &dom);
    if (r < 0)
        return r;
    n = virDomainListAllSnapshots(dom, &snaps, 0);
    if (n < 0)
        return virt_error("list snapshots");
    list = calloc(n > 0 ? (size_t)n : 1, sizeof(*list));
    r = list ? 0 : -ENOMEM;
    for (int i = 0; i < n; i++) {
        if (r == 0)
            r = read_snapshot(snaps[i], false, &list[i]);
        virDomainSnapshotFree(snaps[i]);
    }
    free(snaps);
    if (r < 0) {
        conf_snapshot_list_free(list, (size_t)n);
        return r;
    }
    /* Children, counted from the parents named in the list itself. */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (list[j].parent && strcmp(list[j].parent, list[i].name) == 0)
                list[i].n_children++;
    *ret = list;
    *ret_n = (size_t)n;
    return 0;
}

int
virt_snapshot_get(const char *domain, const char *name, struct conf_snapshot **ret)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    _cleanup_snap_ virDomainSnapshotPtr snap = NULL;
    struct conf_snapshot *s;
    int r;

    r = snapshot_open(domain, name, &conn, &dom, &snap);
    if (r < 0)
        return r;
    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    r = read_snapshot(snap, true, s);
    if (r < 0) {
        free(s);
        return r;
    }
    *ret = s;
    return 0;
}

int
virt_snapshot_current(const char *domain, struct conf_snapshot **ret)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    _cleanup_snap_ virDomainSnapshotPtr snap = NULL;
    struct conf_snapshot *s;
    int r, has;

    r = virt_domain_open(domain, &conn, &dom);
    if (r < 0)
        return r;
    has = virDomainHasCurrentSnapshot(dom, 0);
    if (has < 0)
        return virt_error("ask for the current snapshot");
    if (has == 0)
        return err_set(-ENOENT, "domain '%s' has no current snapshot", domain);
    snap = virDomainSnapshotCurrent(dom, 0);
    if (!snap)
        return virt_error("read the current snapshot");
    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    r = read_snapshot(snap, true, s);
    if (r < 0) {
        free(s);
        return r;
    }
    *ret = s;
    return 0;
}

int
virt_snapshot_xml(const char *domain, const char *name, char **ret)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    _cleanup_snap_ virDomainSnapshotPtr snap = NULL;
    char *xml;
    int r;

    r = snapshot_open(domain, name, &conn, &dom, &snap);
    if (r < 0)
        return r;
    xml = virDomainSnapshotGetXMLDesc(snap, 0);
    if (!xml)
        return virt_error("read snapshot XML");
    *ret = xml;
    return 0;
}

int
virt_snapshot_descendants(const char *domain, const char *name, char ***ret, size_t *ret_n)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    _cleanup_snap_ virDomainSnapshotPtr snap = NULL;
    virDomainSnapshotPtr *kids = NULL;
    char **names;
    int n, r;

    r = snapshot_open(domain, name, &conn, &dom, &snap);
    if (r < 0)
        return r;
    n = virDomainSnapshotListAllChildren(snap, &kids, VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS);
    if (n < 0)
        return virt_error("list the snapshot's descendants");
    names = calloc(n > 0 ? (size_t)n : 1, sizeof(*names));
    r = names ? 0 : -ENOMEM;
    for (int i = 0; i < n; i++) {
        const char *kn = virDomainSnapshotGetName(kids[i]);
        if (r == 0 && !(names[i] = strdup(kn ? kn : "")))
            r = -ENOMEM;
        virDomainSnapshotFree(kids[i]);
    }
    free(kids);
    if (r < 0) {
        for (int i = 0; names && i < n; i++)
            free(names[i]);
        free(names);
        return r;
    }
    *ret = names;
    *ret_n = (size_t)n;
    return 0;
}

/* Writes the <domainsnapshot> XML for spec into a new string. */
static int
spec_xml(const struct virt_snapshot_spec *spec, char **ret)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int r = 0;

    if (!f)
        return -ENOMEM;
    fputs("<domainsnapshot>\n  <name>", f);
    r |= virt_xml_put(f, spec->name);
    fputs("</name>\n", f);
    if (spec->description) {
        fputs("  <description>", f);
        r |= virt_xml_put(f, spec->description);
        fputs("</description>\n", f);
    }
    if (spec->disk_only) {
        fputs("  <memory snapshot='no'/>\n", f);
    } else if (spec->memory == CONF_SNAPSHOT_LOCATION_EXTERNAL) {
        fputs("  <memory snapshot='external' file='", f);
        r |= virt_xml_put(f, spec->memory_file);
        fputs("'/>\n", f);
    } else {
        fputs("  <memory snapshot='internal'/>\n", f);
    }
    if (spec->n_disks > 0) {
        fputs("  <disks>\n", f);
        for (size_t i = 0; i < spec->n_disks; i++) {
            const struct virt_snapshot_spec_disk *d = &spec->disks[i];
            fputs("    <disk name='", f);
            r |= virt_xml_put(f, d->target);
            fprintf(f, "' snapshot='%s'", location_to_xml(d->location));
            if (d->location == CONF_SNAPSHOT_LOCATION_EXTERNAL && d->file) {
                fputs(">\n      <driver type='qcow2'/>\n      <source file='", f);
                r |= virt_xml_put(f, d->file);
                fputs("'/>\n    </disk>\n", f);
            } else {
                fputs("/>\n", f);
            }
        }
        fputs("  </disks>\n", f);
    }
    fputs("</domainsnapshot>\n", f);
    if (fclose(f) != 0 || r != 0 || !buf || len > XML_MAX) {
        free(buf);
        return -ENOMEM;
    }
    *ret = buf;
    return 0;
}

int
virt_snapshot_create(const char *domain, const struct virt_snapshot_spec *spec)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    _cleanup_free_ char *xml = NULL;
    virDomainSnapshotPtr snap;
    unsigned flags = 0;
    bool external = spec->memory == CONF_SNAPSHOT_LOCATION_EXTERNAL;
    int r;

    for (size_t i = 0; i < spec->n_disks; i++)
        external |= spec->disks[i].location == CONF_SNAPSHOT_LOCATION_EXTERNAL;
    if (spec->disk_only && external)
        flags |= VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY;
    if (external)
        flags |= VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC;
    if (spec->quiesce)
        flags |= VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE;

    r = spec_xml(spec, &xml);
    if (r < 0)
        return r;
    r = virt_domain_open(domain, &conn, &dom);
    if (r < 0)
        return r;
    snap = virDomainSnapshotCreateXML(dom, xml, flags);
    if (!snap)
        return snap_error("create snapshot");
    virDomainSnapshotFree(snap);
    return 0;
}

int
virt_snapshot_revert(const char *domain, const char *name, enum conf_snapshot_start start,
                     bool force)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    _cleanup_snap_ virDomainSnapshotPtr snap = NULL;
    unsigned flags = 0;
    int r;

    r = snapshot_open(domain, name, &conn, &dom, &snap);
    if (r < 0)
        return r;
    if (start == CONF_SNAPSHOT_START_RUNNING)
        flags |= VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING;
    else if (start == CONF_SNAPSHOT_START_PAUSED)
        flags |= VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED;
    if (force)
        flags |= VIR_DOMAIN_SNAPSHOT_REVERT_FORCE;
    if (virDomainRevertToSnapshot(snap, flags) < 0)
        return snap_error("revert to snapshot");
    return 0;
}

int
virt_snapshot_delete(const char *domain, const char *name, enum conf_snapshot_delete_mode mode,
                     bool metadata_only)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    _cleanup_snap_ virDomainSnapshotPtr snap = NULL;
    unsigned flags = 0;
    int r;

    r = snapshot_open(domain, name, &conn, &dom, &snap);
    if (r < 0)
        return r;
    if (mode == CONF_SNAPSHOT_DELETE_CHILDREN)
        flags |= VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN;
    else if (mode == CONF_SNAPSHOT_DELETE_CHILDREN_ONLY)
        flags |= VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN_ONLY;
    if (metadata_only)
        flags |= VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY;
    if (virDomainSnapshotDelete(snap, flags) < 0)
        return snap_error("delete snapshot");
    return 0;
}

int
virt_snapshot_job_active(const char *domain, bool *ret)
{
    int op = 0;
    int r = virt_job_operation(domain, &op);

    if (r < 0)
        return r;
    *ret = r > 0 && op == VIR_DOMAIN_JOB_OPERATION_SNAPSHOT;
    return 0;
}

int
virt_domain_job_progress(const char *domain, bool completed, uint64_t *ret_done,
                         uint64_t *ret_total)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    virTypedParameterPtr params = NULL;
    int nparams = 0, type = VIR_DOMAIN_JOB_NONE, r;
    unsigned long long done = 0, total = 0;

    r = virt_domain_open(domain, &conn, &dom);
    if (r < 0)
        return r;
    if (virDomainGetJobStats(dom, &type, &params, &nparams,
                             completed ? VIR_DOMAIN_JOB_STATS_COMPLETED : 0) < 0) {
        virResetLastError();
        return err_set(-ENOENT, "libvirt gives no job statistics for domain '%s'", domain);
    }
    if (virTypedParamsGetULLong(params, nparams, VIR_DOMAIN_JOB_DATA_TOTAL, &total) != 1 ||
        virTypedParamsGetULLong(params, nparams, VIR_DOMAIN_JOB_DATA_PROCESSED, &done) != 1) {
        total = done = 0;
        if (virTypedParamsGetULLong(params, nparams, VIR_DOMAIN_JOB_MEMORY_TOTAL, &total) != 1 ||
            virTypedParamsGetULLong(params, nparams, VIR_DOMAIN_JOB_MEMORY_PROCESSED, &done) != 1)
            total = done = 0;
    }
    virTypedParamsFree(params, nparams);
    if (type == VIR_DOMAIN_JOB_NONE || total == 0)
        return err_set(-ENOENT, "domain '%s' has no job with byte counts", domain);
    *ret_done = done;
    *ret_total = total;
    return 0;
}
