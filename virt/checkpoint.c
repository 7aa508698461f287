/* Checkpoints: list, look up, create, redefine, delete; libvirt jobs on a domain. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cleanup.h"
#include "err.h"
#include "text.h"
#include "virt_priv.h"

/* The largest checkpoint XML built here (a name, a description, a few disks). */
#define SPEC_XML_MAX (64 * 1024)

static int
parse_int64(const char *s, int64_t *ret)
{
    char *end;
    long long v;

    if (!s)
        return -EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return -EINVAL;
    *ret = v;
    return 0;
}

static int
parse_disks(xmlXPathContextPtr ctx, struct conf_checkpoint_def *c)
{
    _cleanup_(virt_xml_objp) xmlXPathObjectPtr set =
        xmlXPathEvalExpression((const xmlChar *)"/domaincheckpoint/disks/disk", ctx);
    int n = set && set->nodesetval ? set->nodesetval->nodeNr : 0;
    xmlNodePtr saved = ctx->node;

    if (n == 0)
        return 0;
    c->disks = calloc((size_t)n, sizeof(*c->disks));
    if (!c->disks)
        return -ENOMEM;
    for (int i = 0; i < n; i++) {
        struct conf_checkpoint_disk *d = &c->disks[c->n_disks];
        _cleanup_free_ char *mode = NULL;
        _cleanup_free_ char *size = NULL;

        ctx->node = set->nodesetval->nodeTab[i];
        d->target = virt_xml_string(ctx, "string(@name)");
        mode = virt_xml_string(ctx, "string(@checkpoint)");
        d->bitmap_name = virt_xml_string(ctx, "string(@bitmap)");
        size = virt_xml_string(ctx, "string(@size)");
        ctx->node = saved;
        if (!d->target) {
            conf_checkpoint_disk_clear(d);
            continue;
        }
        d->bitmap = !mode || strcmp(mode, "bitmap") == 0;
        if (parse_int64(size, &d->size_bytes) < 0)
            d->size_bytes = -1;
        c->n_disks++;
    }
    return 0;
}

int
virt_checkpoint_parse(const char *xml, struct conf_checkpoint_def **ret)
{
    _cleanup_(conf_checkpoint_def_freep) struct conf_checkpoint_def *c = NULL;
    _cleanup_(virt_xml_docp) xmlDocPtr doc = NULL;
    _cleanup_(virt_xml_ctxp) xmlXPathContextPtr ctx = NULL;
    _cleanup_free_ char *created = NULL;
    int r;

    r = virt_xml_parse(xml, &doc, &ctx);
    if (r < 0)
        return err_set(-EINVAL, "the checkpoint XML cannot be parsed");
    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->name = virt_xml_string(ctx, "string(/domaincheckpoint/name)");
    if (!c->name)
        return err_set(-EINVAL, "the checkpoint XML has no <name>");
    c->parent = virt_xml_string(ctx, "string(/domaincheckpoint/parent/name)");
    c->description = virt_xml_string(ctx, "string(/domaincheckpoint/description)");
    created = virt_xml_string(ctx, "string(/domaincheckpoint/creationTime)");
    if (parse_int64(created, &c->created) < 0)
        c->created = 0;
    r = parse_disks(ctx, c);
    if (r < 0)
        return r;
    c->xml = strdup(xml);
    if (!c->xml)
        return -ENOMEM;
    *ret = TAKE_PTR(c);
    return 0;
}

static bool
driver_is_qemu(virConnectPtr conn)
{
    return strcasecmp(virt_driver_name(conn), "QEMU") == 0;
}

int
virt_checkpoint_caps_get(const char *domain, struct virt_checkpoint_caps *ret)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    struct virt_checkpoint_caps caps = {0};
    int active, r;

    r = virt_domain_open(domain, &conn, &dom);
    if (r < 0)
        return r;
    active = virDomainIsActive(dom);
    if (active < 0)
        return virt_error("read the domain state");
    caps.active = active == 1;
    if (driver_is_qemu(conn)) {
        caps.validate = caps.active;
        caps.sizes = caps.active;
        caps.image_bitmaps = !caps.active;
    }
    *ret = caps;
    return 0;
}

static int
lookup_checkpoint(virDomainPtr dom, const char *name, virDomainCheckpointPtr *ret)
{
    virDomainCheckpointPtr cp = virDomainCheckpointLookupByName(dom, name, 0);

    if (!cp) {
        virErrorPtr e = virGetLastError();
        if (e && e->code == VIR_ERR_NO_DOMAIN_CHECKPOINT) {
            virResetLastError();
            return err_set(-ENOENT, "checkpoint '%s' not found", name);
        }
        return virt_error("look up checkpoint");
    }
    *ret = cp;
    return 0;
}

/* The shared connection, the domain and its checkpoint name, in one step (new references). */
static int
checkpoint_open(const char *domain, const char *name, virConnectPtr *ret_conn,
                virDomainPtr *ret_dom, virDomainCheckpointPtr *ret_cp)
{
    int r = virt_domain_open(domain, ret_conn, ret_dom);

    if (r < 0)
        return r;
    return lookup_checkpoint(*ret_dom, name, ret_cp);
}

static int
describe(virDomainCheckpointPtr cp, struct conf_checkpoint_def **ret)
{
    _cleanup_free_ char *xml = virDomainCheckpointGetXMLDesc(cp, 0);

    if (!xml)
        return virt_error("read checkpoint XML");
    return virt_checkpoint_parse(xml, ret);
}

int
virt_checkpoint_list(const char *domain, struct conf_checkpoint_def **ret, size_t *ret_n)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    virDomainCheckpointPtr *cps = NULL;
    struct conf_checkpoint_def *list;
    size_t n_ok = 0;
    int n, r;

    r = virt_domain_open(domain, &conn, &dom);
    if (r < 0)
        return r;
    n = virDomainListAllCheckpoints(dom, &cps, VIR_DOMAIN_CHECKPOINT_LIST_TOPOLOGICAL);
    if (n < 0)
        return virt_error("list checkpoints");
    list = calloc(n > 0 ? (size_t)n : 1, sizeof(*list));
    r = list ? 0 : -ENOMEM;
    for (int i = 0; i < n; i++) {
        if (r == 0) {
            struct conf_checkpoint_def *c = NULL;
            int q = describe(cps[i], &c);
            if (q == 0) {
                list[n_ok++] = *c;
                free(c);
            } else if (q != -ENOENT) {
                r = q; /* a checkpoint deleted meanwhile is skipped */
            }
        }
        virDomainCheckpointFree(cps[i]);
    }
    free(cps);
    if (r < 0) {
        conf_checkpoint_def_list_free(list, n_ok);
        return r;
    }
    *ret = list;
    *ret_n = n_ok;
    return 0;
}

int
virt_checkpoint_names(const char *domain, char ***ret, size_t *ret_n)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    virDomainCheckpointPtr *cps = NULL;
    char **names;
    size_t k = 0;
    int n, r;

    r = virt_domain_open(domain, &conn, &dom);
    if (r < 0)
        return r;
    n = virDomainListAllCheckpoints(dom, &cps, 0);
    if (n < 0)
        return virt_error("list checkpoints");
    names = calloc((size_t)n + 1, sizeof(*names));
    r = names ? 0 : -ENOMEM;
    for (int i = 0; i < n; i++) {
        const char *name = virDomainCheckpointGetName(cps[i]);
        if (r == 0 && name && !(names[k] = strdup(name)))
            r = -ENOMEM;
        else if (r == 0 && name)
            k++;
        virDomainCheckpointFree(cps[i]);
    }
    free(cps);
    if (r < 0) {
        for (size_t i = 0; i < k; i++)
            free(names[i]);
        free(names);
        return r;
    }
    *ret = names;
    *ret_n = k;
    return 0;
}

int
virt_checkpoint_get(const char *domain, const char *name, bool with_size,
                    struct conf_checkpoint_def **ret)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    _cleanup_cp_ virDomainCheckpointPtr cp = NULL;
    _cleanup_(conf_checkpoint_def_freep) struct conf_checkpoint_def *c = NULL;
    int r;

    r = checkpoint_open(domain, name, &conn, &dom, &cp);
    if (r < 0)
        return r;
    r = describe(cp, &c);
    if (r < 0)
        return r;
    if (with_size && virDomainIsActive(dom) == 1) {
        _cleanup_(conf_checkpoint_def_freep) struct conf_checkpoint_def *sized = NULL;
        _cleanup_free_ char *xml = virDomainCheckpointGetXMLDesc(
            cp, VIR_DOMAIN_CHECKPOINT_XML_SIZE | VIR_DOMAIN_CHECKPOINT_XML_NO_DOMAIN);

        if (!xml)
            return virt_error("read checkpoint sizes");
        r = virt_checkpoint_parse(xml, &sized);
        if (r < 0)
            return r;
        for (size_t i = 0; i < c->n_disks; i++)
            for (size_t k = 0; k < sized->n_disks; k++)
                if (strcmp(c->disks[i].target, sized->disks[k].target) == 0)
                    c->disks[i].size_bytes = sized->disks[k].size_bytes;
    }
    *ret = TAKE_PTR(c);
    return 0;
}

/* The targets of the domain's disks of device 'disk', from its XML. */
static int
domain_disk_targets(virDomainPtr dom, char ***ret, size_t *ret_n)
{
    _cleanup_free_ char *xml = virt_domain_xml_desc(dom, 0);
    _cleanup_(virt_xml_docp) xmlDocPtr doc = NULL;
    _cleanup_(virt_xml_ctxp) xmlXPathContextPtr ctx = NULL;
    _cleanup_(virt_xml_objp) xmlXPathObjectPtr set = NULL;
    char **targets;
    size_t n = 0;
    int count, r;

    if (!xml)
        return virt_error("read domain XML");
    r = virt_xml_parse(xml, &doc, &ctx);
    if (r < 0)
        return r;
    set = xmlXPathEvalExpression(
        (const xmlChar *)"/domain/devices/disk[not(@device) or @device='disk']/target/@dev", ctx);
    count = set && set->nodesetval ? set->nodesetval->nodeNr : 0;
    targets = calloc((size_t)count + 1, sizeof(*targets));
    if (!targets)
        return -ENOMEM;
    for (int i = 0; i < count; i++) {
        xmlChar *v = xmlNodeGetContent(set->nodesetval->nodeTab[i]);
        if (v) {
            targets[n] = strdup((const char *)v);
            xmlFree(v);
            if (targets[n])
                n++;
        }
    }
    *ret = targets;
    *ret_n = n;
    return 0;
}

static void
strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

static bool
spec_has_disk(const struct virt_checkpoint_spec *spec, const char *target)
{
    for (size_t i = 0; i < spec->n_disks; i++)
        if (strcmp(spec->disks[i], target) == 0)
            return true;
    return false;
}

/* Writes one escaped value between two literal pieces of XML. */
static int
put_between(FILE *f, const char *before, const char *value, const char *after)
{
    int r;

    fputs(before, f);
    r = virt_xml_put(f, value);
    fputs(after, f);
    return r;
}

/* Builds the <domaincheckpoint> document for spec. */
static int
spec_xml(virDomainPtr dom, const struct virt_checkpoint_spec *spec, char **ret)
{
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    FILE *f;
    int r = 0;

    f = open_memstream(&buf, &len);
    if (!f)
        return -ENOMEM;
    fputs("<domaincheckpoint>\n", f);
    r = put_between(f, "  <name>", spec->name, "</name>\n");
    if (r == 0 && spec->description)
        r = put_between(f, "  <description>", spec->description, "</description>\n");
    if (r == 0 && spec->disks) {
        char **targets = NULL;
        size_t n = 0;

        r = domain_disk_targets(dom, &targets, &n);
        for (size_t i = 0; r == 0 && i < spec->n_disks; i++) {
            bool found = false;
            for (size_t k = 0; k < n; k++)
                found = found || strcmp(targets[k], spec->disks[i]) == 0;
            if (!found)
                r = err_set(-EINVAL, "the domain has no disk '%s'", spec->disks[i]);
        }
        if (r == 0) {
            fputs("  <disks>\n", f);
            for (size_t k = 0; r == 0 && k < n; k++)
                r = put_between(f, "    <disk name='", targets[k],
                                spec_has_disk(spec, targets[k]) ? "' checkpoint='bitmap'/>\n"
                                                                : "' checkpoint='no'/>\n");
            fputs("  </disks>\n", f);
        }
        strv_free(targets, n);
    }
    fputs("</domaincheckpoint>\n", f);
    if (fclose(f) != 0 && r == 0)
        r = -ENOMEM;
    if (r < 0)
        return r;
    if (len > SPEC_XML_MAX)
        return err_set(-EINVAL, "the checkpoint description is too large");
    *ret = TAKE_PTR(buf);
    return 0;
}

int
virt_checkpoint_create(const char *domain, const struct virt_checkpoint_spec *spec,
                       struct conf_checkpoint_def **ret)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    _cleanup_cp_ virDomainCheckpointPtr cp = NULL;
    _cleanup_free_ char *xml = NULL;
    int r;

    r = virt_domain_open(domain, &conn, &dom);
    if (r < 0)
        return r;
    r = spec_xml(dom, spec, &xml);
    if (r < 0)
        return r;
    cp = virDomainCheckpointCreateXML(dom, xml, 0);
    if (!cp) {
        virErrorPtr e = virGetLastError();
        /* libvirt says "already exists" as an invalid-argument error. */
        if (e && e->code == VIR_ERR_INVALID_ARG && e->message &&
            strstr(e->message, "already exists")) {
            virResetLastError();
            return err_set(-EEXIST, "checkpoint '%s' exists already", spec->name);
        }
        return virt_error("create checkpoint");
    }
    return describe(cp, ret);
}

int
virt_checkpoint_redefine(const char *domain, const char *xml, bool validate)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    _cleanup_cp_ virDomainCheckpointPtr cp = NULL;
    unsigned flags = VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE;
    int r;

    r = virt_domain_open(domain, &conn, &dom);
    if (r < 0)
        return r;
    if (validate)
        flags |= VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE_VALIDATE;
    cp = virDomainCheckpointCreateXML(dom, xml, flags);
    if (!cp)
        return virt_error("redefine checkpoint");
    return 0;
}

int
virt_checkpoint_delete(const char *domain, const char *name, unsigned flags)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    _cleanup_cp_ virDomainCheckpointPtr cp = NULL;
    unsigned vflags = 0;
    int r;

    r = checkpoint_open(domain, name, &conn, &dom, &cp);
    if (r < 0)
        return r;
    if (flags & VIRT_CHECKPOINT_DELETE_CHILDREN)
        vflags |= VIR_DOMAIN_CHECKPOINT_DELETE_CHILDREN;
    if (flags & VIRT_CHECKPOINT_DELETE_METADATA_ONLY)
        vflags |= VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY;
    if (virDomainCheckpointDelete(cp, vflags) < 0)
        return virt_error("delete checkpoint");
    return 0;
}

static const char *const job_operations[] = {
    [VIR_DOMAIN_JOB_OPERATION_UNKNOWN] = "a job",
    [VIR_DOMAIN_JOB_OPERATION_START] = "starting",
    [VIR_DOMAIN_JOB_OPERATION_SAVE] = "a save",
    [VIR_DOMAIN_JOB_OPERATION_RESTORE] = "a restore",
    [VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN] = "an incoming migration",
    [VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT] = "an outgoing migration",
    [VIR_DOMAIN_JOB_OPERATION_SNAPSHOT] = "a snapshot",
    [VIR_DOMAIN_JOB_OPERATION_SNAPSHOT_REVERT] = "a snapshot revert",
    [VIR_DOMAIN_JOB_OPERATION_DUMP] = "a dump",
    [VIR_DOMAIN_JOB_OPERATION_BACKUP] = "a backup",
};

int
virt_domain_job_active(const char *domain, char *what, size_t size)
{
    int op = 0;
    int r = virt_job_operation(domain, &op);

    if (r <= 0)
        return r;
    if (op < 0 || op >= (int)ARRAY_SIZE(job_operations) || !job_operations[op])
        op = VIR_DOMAIN_JOB_OPERATION_UNKNOWN;
    snprintf(what, size, "%s", job_operations[op]);
    return 1;
}
