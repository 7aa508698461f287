/*
 * Starting a domain and moving its disks with libvirt's block copy: what an
 * instant recovery needs to run from the vault and then leave it.
 *
 * A copy is a full one (not shallow), into an existing qcow2 file without a
 * backing file (REUSE_EXT), so that what it ends with stands alone. libvirt
 * 9.0 takes a block copy of a persistent domain only as a transient job.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "err.h"
#include "text.h"
#include "virt_priv.h"

int
virt_domain_start(const char *uuid)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    int r;

    r = virt_domain_open(uuid, &conn, &dom);
    if (r < 0)
        return r;
    if (virDomainCreate(dom) < 0)
        return virt_error("start the domain");
    return 0;
}

int
virt_block_copy_start(const char *uuid, const char *target, const char *dest, uint64_t bandwidth)
{
    virTypedParameter params[1];
    int n_params = 0;
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    _cleanup_free_ char *esc = text_xml_escape(dest);
    _cleanup_free_ char *xml = NULL;
    int r;

    if (!esc)
        return -ENOMEM;
    r = virt_domain_open(uuid, &conn, &dom);
    if (r < 0)
        return r;
    if (asprintf(&xml, "<disk type='file'><driver type='qcow2'/><source file='%s'/></disk>", esc) <
        0)
        return -ENOMEM;
    if (bandwidth) {
        memset(params, 0, sizeof(params));
        snprintf(params[0].field, sizeof(params[0].field), "%s", VIR_DOMAIN_BLOCK_COPY_BANDWIDTH);
        params[0].type = VIR_TYPED_PARAM_ULLONG;
        params[0].value.ul = bandwidth;
        n_params = 1;
    }
    if (virDomainBlockCopy(dom, target, xml, n_params ? params : NULL, n_params,
                           VIR_DOMAIN_BLOCK_COPY_REUSE_EXT | VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB) <
        0)
        return virt_error("start the block copy");
    return 0;
}

int
virt_block_job_get(const char *uuid, const char *target, struct virt_block_job *ret)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    virDomainBlockJobInfo info = {0};
    int r, n;

    r = virt_domain_open(uuid, &conn, &dom);
    if (r < 0)
        return r;
    n = virDomainGetBlockJobInfo(dom, target, &info, 0);
    if (n < 0)
        return virt_error("read the block job");
    *ret = (struct virt_block_job){
        .active = n == 1,
        .copy = n == 1 && info.type == VIR_DOMAIN_BLOCK_JOB_TYPE_COPY,
        .done = info.cur,
        .total = info.end,
        /* libvirt reports cur == end only once the mirror is ready to pivot. */
        .ready = n == 1 && info.end > 0 && info.cur == info.end,
    };
    return 0;
}

int
virt_block_job_end(const char *uuid, const char *target, bool pivot)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    int r;

    r = virt_domain_open(uuid, &conn, &dom);
    if (r < 0)
        return r;
    if (virDomainBlockJobAbort(dom, target, pivot ? VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT : 0) < 0)
        return virt_error(pivot ? "pivot to the copy" : "abort the block copy");
    return 0;
}

int
virt_disk_source(const char *uuid, const char *target, char **ret)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    _cleanup_free_ char *xml = NULL;
    __attribute__((cleanup(virt_xml_docp))) xmlDocPtr doc = NULL;
    __attribute__((cleanup(virt_xml_ctxp))) xmlXPathContextPtr ctx = NULL;
    char xpath[160];
    char *src;
    int r;

    if (!text_name_valid(target))
        return err_set(-EINVAL, "'%s' is not a disk target", target);
    r = virt_domain_open(uuid, &conn, &dom);
    if (r < 0)
        return r;
    xml = virt_domain_xml_desc(dom, 0);
    if (!xml)
        return virt_error("read the domain's XML");
    r = virt_xml_parse(xml, &doc, &ctx);
    if (r < 0)
        return r;
    snprintf(xpath, sizeof(xpath), "string(/domain/devices/disk[target/@dev='%s']/source/@file)",
             target);
    src = virt_xml_string(ctx, xpath);
    if (!src || !src[0]) {
        free(src);
        return err_set(-ENOENT, "the domain has no file disk '%s'", target);
    }
    *ret = src;
    return 0;
}

int
virt_domain_is_active(const char *uuid)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    _cleanup_dom_ virDomainPtr dom = NULL;
    int r;

    r = virt_domain_open(uuid, &conn, &dom);
    if (r < 0)
        return r;
    r = virDomainIsActive(dom);
    if (r < 0)
        return virt_error("read whether the domain runs");
    return r;
}
