/* Push backups, their jobs and checkpoints; defining a restored domain. */
#include <errno.h>
#include <libxml/parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "err.h"
#include "text.h"
#include "virt_clone.h"
#include "virt_priv.h"

static inline void
virt_checkpoint_freep(virDomainCheckpointPtr *c)
{
    if (*c)
        virDomainCheckpointFree(*c);
}
#define _cleanup_checkpoint_ __attribute__((cleanup(virt_checkpoint_freep)))

int
virt_backup_supported_for(const char *uuid)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    int r;

    r = virt_domain_open(uuid, &conn, &dom);
    if (r < 0)
        return r;
    if (strcasecmp(virt_driver_name(conn), "test") == 0)
        return err_set(-EOPNOTSUPP,
                       "backups are not supported on libvirt's test driver (%s): "
                       "they need a QEMU/KVM hypervisor",
                       virt_uri());
    if (!virt_backup_supported(conn))
        return err_set(-EOPNOTSUPP, "the hypervisor at %s does not offer libvirt's backup API",
                       virt_uri());
    if (virDomainIsActive(dom) != 1)
        return err_set(-EBADFD, "the domain is not running: libvirt backs up running domains only");
    return 0;
}

/* Writes s escaped for XML to f; false when out of memory. */
static bool
put_escaped(FILE *f, const char *s)
{
    _cleanup_free_ char *e = text_xml_escape(s);

    if (!e)
        return false;
    fputs(e, f);
    return true;
}

/* Writes the <disk> of target into a <domaincheckpoint>, as a bitmap. */
static void
continue_checkpoint_disk(FILE *c, const char *target, bool *ok)
{
    fputs("<disk name='", c);
    *ok = *ok && put_escaped(c, target);
    fputs("' checkpoint='bitmap'/>", c);
}

/* The <domainbackup> and <domaincheckpoint> documents of spec, as new strings. */
static int
backup_xml(const struct virt_backup_spec *spec, char **ret_backup, char **ret_checkpoint)
{
    _cleanup_free_ char *bx = NULL;
    _cleanup_free_ char *cx = NULL;
    size_t bl = 0, cl = 0;
    FILE *b = open_memstream(&bx, &bl);
    FILE *c = open_memstream(&cx, &cl);
    bool ok = b && c;

    if (ok) {
        fputs(spec->socket ? "<domainbackup mode='pull'>" : "<domainbackup mode='push'>", b);
        if (spec->incremental) {
            fputs("<incremental>", b);
            ok = ok && put_escaped(b, spec->incremental);
            fputs("</incremental>", b);
        }
        if (spec->socket) {
            fputs("<server transport='unix' socket='", b);
            ok = ok && put_escaped(b, spec->socket);
            fputs("'/>", b);
        }
        fputs("<disks>", b);
        fputs("<domaincheckpoint><name>", c);
        ok = ok && put_escaped(c, spec->checkpoint);
        fputs("</name>", c);
        if (spec->description) {
            fputs("<description>", c);
            ok = ok && put_escaped(c, spec->description);
            fputs("</description>", c);
        }
        fputs("<disks>", c);
        for (size_t i = 0; ok && i < spec->n_disks; i++) {
            fputs("<disk name='", b);
            ok = ok && put_escaped(b, spec->disks[i].target);
            if (spec->socket) {
                /* The export is named after the disk; the scratch file keeps the frozen view. */
                fprintf(b, "' backup='yes' backupmode='%s' type='file'><scratch file='",
                        spec->incremental ? "incremental" : "full");
                ok = ok && put_escaped(b, spec->disks[i].file);
                fputs("'/><driver type='qcow2'/></disk>", b);
                continue_checkpoint_disk(c, spec->disks[i].target, &ok);
                continue;
            }
            fputs("' backup='yes' type='file'><target file='", b);
            ok = ok && put_escaped(b, spec->disks[i].file);
            fputs("'/><driver type='qcow2'/></disk>", b);
            continue_checkpoint_disk(c, spec->disks[i].target, &ok);
        }
        for (size_t i = 0; ok && i < spec->n_skip; i++) {
            fputs("<disk name='", b);
            ok = ok && put_escaped(b, spec->skip[i]);
            fputs("' backup='no'/>", b);
            fputs("<disk name='", c);
            ok = ok && put_escaped(c, spec->skip[i]);
            fputs("' checkpoint='no'/>", c);
        }
        fputs("</disks></domainbackup>", b);
        fputs("</disks></domaincheckpoint>", c);
    }
    if (b && fclose(b) != 0)
        ok = false;
    if (c && fclose(c) != 0)
        ok = false;
    if (!ok)
        return -ENOMEM;
    *ret_backup = TAKE_PTR(bx);
    *ret_checkpoint = TAKE_PTR(cx);
    return 0;
}

/* Removes checkpoint name after a failed step; keeps the first error's detail. */
static void
checkpoint_drop(virDomainPtr dom, const char *name)
{
    _cleanup_checkpoint_ virDomainCheckpointPtr cp = virDomainCheckpointLookupByName(dom, name, 0);

    if (cp)
        virDomainCheckpointDelete(cp, 0);
    virResetLastError();
}

int
virt_backup_begin(const char *uuid, const struct virt_backup_spec *spec, char **ret_checkpoint_xml)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    _cleanup_checkpoint_ virDomainCheckpointPtr cp = NULL;
    _cleanup_free_ char *bx = NULL;
    _cleanup_free_ char *cx = NULL;
    char *xml;
    int r;

    r = virt_domain_open(uuid, &conn, &dom);
    if (r < 0)
        return r;
    r = backup_xml(spec, &bx, &cx);
    if (r < 0)
        return r;
    /* Push targets are made beforehand; pull scratch files are QEMU's to create. */
    if (virDomainBackupBegin(dom, bx, cx,
                             spec->socket ? 0 : VIR_DOMAIN_BACKUP_BEGIN_REUSE_EXTERNAL) < 0)
        return virt_error("begin the backup");

    /* A limit is set right after the start; QEMU may copy a little before it applies. */
    for (size_t i = 0; spec->bandwidth && i < spec->n_disks; i++) {
        if (virDomainBlockJobSetSpeed(dom, spec->disks[i].target, spec->bandwidth,
                                      VIR_DOMAIN_BLOCK_JOB_SPEED_BANDWIDTH_BYTES) < 0) {
            r = virt_error("limit the backup's bandwidth");
            virDomainAbortJob(dom);
            checkpoint_drop(dom, spec->checkpoint);
            return r;
        }
    }

    cp = virDomainCheckpointLookupByName(dom, spec->checkpoint, 0);
    xml = cp ? virDomainCheckpointGetXMLDesc(cp, 0) : NULL;
    if (!xml) {
        r = virt_error("read the new checkpoint's XML");
        virDomainAbortJob(dom);
        virResetLastError();
        checkpoint_drop(dom, spec->checkpoint);
        return r;
    }
    *ret_checkpoint_xml = xml;
    return 0;
}

static uint64_t
param_u64(virTypedParameterPtr params, int n, const char *name)
{
    unsigned long long v = 0;

    if (virTypedParamsGetULLong(params, n, name, &v) <= 0)
        return 0;
    return v;
}

int
virt_job_get(const char *uuid, bool completed, struct virt_job_info *ret)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    virTypedParameterPtr params = NULL;
    struct virt_job_info info = {0};
    int n = 0, type = 0, op = 0, success = -1, r;
    const char *msg = NULL;

    r = virt_domain_open(uuid, &conn, &dom);
    if (r < 0)
        return r;
    if (virDomainGetJobStats(dom, &type, &params, &n,
                             completed ? VIR_DOMAIN_JOB_STATS_COMPLETED : 0) < 0)
        return virt_error("read the domain's job");
    switch (type) {
    case VIR_DOMAIN_JOB_BOUNDED:
    case VIR_DOMAIN_JOB_UNBOUNDED:
        info.state = VIRT_JOB_RUNNING;
        break;
    case VIR_DOMAIN_JOB_COMPLETED:
        info.state = VIRT_JOB_SUCCEEDED;
        break;
    case VIR_DOMAIN_JOB_FAILED:
        info.state = VIRT_JOB_FAILED;
        break;
    case VIR_DOMAIN_JOB_CANCELLED:
        info.state = VIRT_JOB_CANCELLED;
        break;
    default:
        info.state = VIRT_JOB_NONE;
    }
    if (virTypedParamsGetInt(params, n, VIR_DOMAIN_JOB_OPERATION, &op) > 0)
        info.backup = op == VIR_DOMAIN_JOB_OPERATION_BACKUP;
    /* An ended job says "completed" with success false when QEMU's job failed. */
    if (info.state == VIRT_JOB_SUCCEEDED &&
        virTypedParamsGetBoolean(params, n, VIR_DOMAIN_JOB_SUCCESS, &success) > 0 && !success)
        info.state = VIRT_JOB_FAILED;
    if (virTypedParamsGetString(params, n, VIR_DOMAIN_JOB_ERRMSG, &msg) > 0 && msg)
        snprintf(info.error, sizeof(info.error), "%s", msg);
    info.done = param_u64(params, n, VIR_DOMAIN_JOB_DISK_PROCESSED);
    info.total = param_u64(params, n, VIR_DOMAIN_JOB_DISK_TOTAL);
    if (!info.total)
        info.total = param_u64(params, n, VIR_DOMAIN_JOB_DATA_TOTAL);
    virTypedParamsFree(params, n);
    virResetLastError();
    *ret = info;
    return 0;
}

int
virt_job_abort(const char *uuid)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    int r;

    r = virt_domain_open(uuid, &conn, &dom);
    if (r < 0)
        return r;
    if (virDomainAbortJob(dom) < 0)
        return virt_error("abort the domain's job");
    return 0;
}

int
virt_disk_capacity(const char *uuid, const char *target, uint64_t *ret)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    virDomainBlockInfo info;
    int r;

    r = virt_domain_open(uuid, &conn, &dom);
    if (r < 0)
        return r;
    if (virDomainGetBlockInfo(dom, target, &info, 0) < 0)
        return virt_error("read the disk's size");
    *ret = info.capacity;
    return 0;
}

/* Removes every node that xpath selects (relative to ctx's node). */
static void
remove_nodes(xmlXPathContextPtr ctx, const char *xpath)
{
    xmlXPathObjectPtr set = xmlXPathEvalExpression((const xmlChar *)xpath, ctx);

    for (int i = 0; set && set->nodesetval && i < set->nodesetval->nodeNr; i++) {
        xmlNodePtr node = set->nodesetval->nodeTab[i];
        xmlUnlinkNode(node);
        xmlFreeNode(node);
        set->nodesetval->nodeTab[i] = NULL;
    }
    if (set)
        xmlXPathFreeObject(set);
}

/* Points one <disk> node at a restored image: a plain file of the given format. */
static int
retarget_disk(xmlNodePtr disk, const struct virt_restored_disk *rd)
{
    xmlNodePtr child, next, source = NULL, driver = NULL;

    for (child = disk->children; child; child = next) {
        next = child->next;
        if (child->type != XML_ELEMENT_NODE)
            continue;
        if (xmlStrEqual(child->name, (const xmlChar *)"source") ||
            xmlStrEqual(child->name, (const xmlChar *)"backingStore")) {
            xmlUnlinkNode(child);
            xmlFreeNode(child);
        } else if (xmlStrEqual(child->name, (const xmlChar *)"driver")) {
            driver = child;
        }
    }
    if (!xmlSetProp(disk, (const xmlChar *)"type", (const xmlChar *)"file"))
        return -ENOMEM;
    if (!driver) {
        driver = xmlNewChild(disk, NULL, (const xmlChar *)"driver", NULL);
        if (!driver || !xmlSetProp(driver, (const xmlChar *)"name", (const xmlChar *)"qemu"))
            return -ENOMEM;
    }
    if (!xmlSetProp(driver, (const xmlChar *)"type", (const xmlChar *)rd->format))
        return -ENOMEM;
    source = xmlNewNode(NULL, (const xmlChar *)"source");
    if (!source)
        return -ENOMEM;
    if (!xmlSetProp(source, (const xmlChar *)"file", (const xmlChar *)rd->path) ||
        !xmlAddNextSibling(driver, source)) {
        xmlFreeNode(source);
        return -ENOMEM;
    }
    return 0;
}

static inline void
xpath_objp(xmlXPathObjectPtr *o)
{
    if (*o)
        xmlXPathFreeObject(*o);
}
static inline void
xml_docp(xmlDocPtr *d)
{
    if (*d)
        xmlFreeDoc(*d);
}
static inline void
xpath_ctxp(xmlXPathContextPtr *c)
{
    if (*c)
        xmlXPathFreeContext(*c);
}
static inline void
xml_charp(xmlChar **s)
{
    xmlFree(*s);
}

/* Applies the restore to the <disk> nodes of ctx's document, recording each change. */
static int
retarget_disks(xmlXPathContextPtr ctx, const struct virt_restored_disk *disks, size_t n_disks,
               unsigned keep, struct virt_clone_changes *changes)
{
    __attribute__((cleanup(xpath_objp))) xmlXPathObjectPtr set =
        xmlXPathEvalExpression((const xmlChar *)"/domain/devices/disk", ctx);
    int r;

    for (int i = 0; set && set->nodesetval && i < set->nodesetval->nodeNr; i++) {
        xmlNodePtr disk = set->nodesetval->nodeTab[i];
        xmlNodePtr saved = ctx->node;
        _cleanup_free_ char *target = NULL;
        _cleanup_free_ char *device = NULL;
        _cleanup_free_ char *source = NULL;
        const struct virt_restored_disk *rd = NULL;
        bool lun;

        ctx->node = disk;
        target = virt_xml_string(ctx, "string(target/@dev)");
        device = virt_xml_string(ctx, "string(@device)");
        source = virt_xml_string(ctx, "string(source/@file | source/@dev | source/@name)");
        ctx->node = saved;
        lun = device && strcmp(device, "lun") == 0;
        for (size_t k = 0; target && k < n_disks; k++)
            if (strcmp(disks[k].target, target) == 0)
                rd = &disks[k];
        if (rd) {
            r = retarget_disk(disk, rd);
            if (r >= 0 && lun &&
                !xmlSetProp(disk, (const xmlChar *)"device", (const xmlChar *)"disk"))
                r = -ENOMEM;
            if (r >= 0)
                r = virt_clone_change_add(changes, "disk", "%s: %s (%s)%s", rd->target, rd->path,
                                          rd->format, lun ? ", a plain disk instead of a lun" : "");
            if (r < 0)
                return r;
        } else if (!device || strcmp(device, "disk") == 0 ||
                   (lun && !(keep & VIRT_CLONE_KEEP_LUN))) {
            /* A disk that was not backed up would be shared with the original: drop it. */
            r = virt_clone_change_add(
                changes, lun ? "lun" : "disk", "%s: dropped (%s%s, not in the backup)",
                target ? target : "a disk", lun ? "the lun " : "", source ? source : "no source");
            if (r < 0)
                return r;
            xmlUnlinkNode(disk);
            xmlFreeNode(disk);
            set->nodesetval->nodeTab[i] = NULL;
        }
    }
    return 0;
}

/* Removes UUID and MAC addresses (libvirt gives new ones), recording each. */
static int
forget_identity(xmlXPathContextPtr ctx, struct virt_clone_changes *changes)
{
    __attribute__((cleanup(xpath_objp))) xmlXPathObjectPtr macs =
        xmlXPathEvalExpression((const xmlChar *)"/domain/devices/interface/mac", ctx);
    int r;

    r = virt_clone_change_add(changes, "uuid", "a new UUID");
    for (int i = 0; r >= 0 && macs && macs->nodesetval && i < macs->nodesetval->nodeNr; i++) {
        __attribute__((cleanup(xml_charp))) xmlChar *addr =
            xmlGetProp(macs->nodesetval->nodeTab[i], (const xmlChar *)"address");
        r = virt_clone_change_add(changes, "mac", "interface %d: a new MAC address instead of %s",
                                  i, addr ? (const char *)addr : "none");
    }
    if (r < 0)
        return r;
    remove_nodes(ctx, "/domain/uuid | /domain/devices/interface/mac");
    return 0;
}

int
virt_domain_define_restored(const char *xml, const char *name,
                            const struct virt_restored_disk *disks, size_t n_disks,
                            const struct virt_clone_target *where, char ret_uuid[37],
                            struct virt_clone_changes *ret_changes)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    __attribute__((cleanup(xml_docp))) xmlDocPtr doc = NULL;
    __attribute__((cleanup(xpath_ctxp))) xmlXPathContextPtr ctx = NULL;
    __attribute__((cleanup(xpath_objp))) xmlXPathObjectPtr names = NULL;
    __attribute__((cleanup(xml_charp))) xmlChar *out = NULL;
    __attribute__((cleanup(virt_clone_changes_clear))) struct virt_clone_changes changes = {0};
    _cleanup_free_ char *nvram = NULL;
    _cleanup_free_ char *old_name = NULL;
    char uuid[VIR_UUID_STRING_BUFLEN];
    int len = 0, r;

    if (!text_name_valid(name))
        return err_set(-EINVAL, "'%s' is not a valid domain name", name);
    r = virt_conn_get(&conn);
    if (r < 0)
        return r;
    r = virt_xml_parse(xml, &doc, &ctx);
    if (r < 0)
        return r;

    names = xmlXPathEvalExpression((const xmlChar *)"/domain/name", ctx);
    if (!names || !names->nodesetval || names->nodesetval->nodeNr != 1)
        return err_set(-EINVAL, "the stored domain XML has no name");
    old_name = virt_xml_string(ctx, "string(/domain/name)");
    /* A valid name has nothing to escape. */
    xmlNodeSetContent(names->nodesetval->nodeTab[0], (const xmlChar *)name);
    r = virt_clone_change_add(&changes, "name", "%s instead of %s", name, old_name ? old_name : "");
    if (r >= 0)
        r = forget_identity(ctx, &changes);
    if (r >= 0)
        r = retarget_disks(ctx, disks, n_disks, where->keep, &changes);
    if (r >= 0)
        r = virt_clone_sanitize(ctx, where->keep, &changes);
    if (r >= 0)
        r = virt_clone_nvram(ctx, where, name, &changes, &nvram);
    if (r < 0)
        return r;
    xmlDocDumpMemory(doc, &out, &len);
    if (out)
        dom = virDomainDefineXML(conn, (const char *)out);
    if (!dom) {
        r = out ? virt_error("define the restored domain") : -ENOMEM;
        if (nvram)
            (void)unlinkat(where->dirfd, nvram, 0);
        return r;
    }
    if (virDomainGetUUIDString(dom, uuid) < 0)
        return virt_error("read the restored domain's UUID");
    memcpy(ret_uuid, uuid, 37);
    *ret_changes = changes;
    changes = (struct virt_clone_changes){0};
    return 0;
}

int
virt_checkpoint_define_offline(const char *uuid, const char *name, const char *parent,
                               const char *const *disks, size_t n_disks, const char *const *skip,
                               size_t n_skip, char **ret_xml)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    _cleanup_checkpoint_ virDomainCheckpointPtr cp = NULL;
    _cleanup_free_ char *domxml = NULL;
    _cleanup_free_ char *cx = NULL;
    size_t cl = 0;
    FILE *c;
    bool ok = true;
    char *xml;
    int r;

    r = virt_domain_open(uuid, &conn, &dom);
    if (r < 0)
        return r;
    if (virDomainIsActive(dom) != 0)
        return err_set(-EBADFD, "the domain is running: its checkpoints are libvirt's to create");
    domxml = virt_domain_xml_desc(dom, VIR_DOMAIN_XML_INACTIVE);
    if (!domxml)
        return virt_error("read the domain's XML");
    c = open_memstream(&cx, &cl);
    if (!c)
        return -ENOMEM;
    /* As libvirt writes it: the bitmap of each disk is named after the checkpoint. */
    fputs("<domaincheckpoint><name>", c);
    ok = put_escaped(c, name);
    fputs("</name>", c);
    if (parent) {
        fputs("<parent><name>", c);
        ok = ok && put_escaped(c, parent);
        fputs("</name></parent>", c);
    }
    fprintf(c, "<creationTime>%lld</creationTime><disks>", (long long)time(NULL));
    for (size_t i = 0; ok && i < n_disks; i++) {
        fputs("<disk name='", c);
        ok = ok && put_escaped(c, disks[i]);
        fputs("' checkpoint='bitmap' bitmap='", c);
        ok = ok && put_escaped(c, name);
        fputs("'/>", c);
    }
    for (size_t i = 0; ok && i < n_skip; i++) {
        fputs("<disk name='", c);
        ok = ok && put_escaped(c, skip[i]);
        fputs("' checkpoint='no'/>", c);
    }
    fputs("</disks>", c);
    fputs(domxml, c);
    fputs("</domaincheckpoint>", c);
    if (fclose(c) != 0 || !ok)
        return -ENOMEM;
    /* Validation needs a running domain; the bitmaps were just added by the caller. */
    cp = virDomainCheckpointCreateXML(dom, cx, VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE);
    if (!cp)
        return virt_error("redefine the checkpoint of the stopped domain");
    xml = virDomainCheckpointGetXMLDesc(cp, 0);
    if (!xml) {
        r = virt_error("read the new checkpoint's XML");
        virDomainCheckpointDelete(cp, VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY);
        virResetLastError();
        return r;
    }
    *ret_xml = xml;
    return 0;
}
