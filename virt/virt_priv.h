/*
 * virt_priv.h - what the files of virt/ share. Only virt/ includes this.
 */
#ifndef VV_VIRT_PRIV_H
#define VV_VIRT_PRIV_H

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <stdio.h>

#include "virt.h"

/*
 * Gives a new reference to the shared connection, or -ENOTCONN with a
 * detail when libvirt cannot be reached now. Release with virConnectClose
 * (or _cleanup_conn_).
 */
int virt_conn_get(virConnectPtr *ret);

/*
 * Turns libvirt's last error on this thread into a negative errno with a
 * detail "what: libvirt's message". When the error shows the connection is
 * gone, the connection is marked lost so that it is opened again.
 */
int virt_error(const char *what);

/* Looks up a domain by name or UUID on conn; -ENOENT when there is none. */
int virt_lookup(virConnectPtr conn, const char *name_or_uuid, virDomainPtr *ret);

/*
 * The shared connection and a domain on it, in one step: what nearly every
 * operation begins with. Both are new references on success.
 */
int virt_domain_open(const char *name_or_uuid, virConnectPtr *ret_conn, virDomainPtr *ret_dom);

/*
 * A number that changes with every domain event and every new connection:
 * what virt_domain_resolve() cached under an older one is stale.
 */
uint64_t virt_events_epoch(void);

/*
 * Whether libvirt runs a job on the domain: 1 with its operation
 * (VIR_DOMAIN_JOB_OPERATION_*) in *ret_op, 0 when none (or the driver has
 * no job API, or the domain is not running), or a negative errno.
 */
int virt_job_operation(const char *domain, int *ret_op);

/* virDomainGetXMLDesc, counted for virt_domain_xml_fetches_take(). */
char *virt_domain_xml_desc(virDomainPtr dom, unsigned flags);

/* Driver name of the connection ("QEMU", "Test", ...), cached per connection. */
const char *virt_driver_name(virConnectPtr conn);

/* True when the connection's hypervisor offers the backup API. */
bool virt_backup_supported(virConnectPtr conn);

/* XML helpers (xml.c). */
int virt_xml_parse(const char *xml, xmlDocPtr *ret_doc, xmlXPathContextPtr *ret_ctx);
char *virt_xml_string(xmlXPathContextPtr ctx, const char *xpath);
void virt_xml_free(xmlDocPtr doc, xmlXPathContextPtr ctx);

/* Writes value escaped for XML (text_xml_escape) to f; nothing for NULL. 0 or -ENOMEM. */
int virt_xml_put(FILE *f, const char *value);

static inline void
virt_xml_docp(xmlDocPtr *d)
{
    if (*d)
        xmlFreeDoc(*d);
}
static inline void
virt_xml_ctxp(xmlXPathContextPtr *c)
{
    if (*c)
        xmlXPathFreeContext(*c);
}
static inline void
virt_xml_objp(xmlXPathObjectPtr *o)
{
    if (*o)
        xmlXPathFreeObject(*o);
}

static inline void
virt_checkpoint_handle_freep(virDomainCheckpointPtr *c)
{
    if (*c)
        virDomainCheckpointFree(*c);
}
#define _cleanup_cp_ __attribute__((cleanup(virt_checkpoint_handle_freep)))

static inline void
virt_conn_closep(virConnectPtr *c)
{
    if (*c)
        virConnectClose(*c);
}
static inline void
virt_dom_freep(virDomainPtr *d)
{
    if (*d)
        virDomainFree(*d);
}
#define _cleanup_conn_ __attribute__((cleanup(virt_conn_closep)))
#define _cleanup_dom_  __attribute__((cleanup(virt_dom_freep)))

#endif
