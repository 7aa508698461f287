/* Reading libvirt's XML with libxml2's XPath. */
#include <errno.h>
#include <libxml/parser.h>
#include <stdio.h>
#include <string.h>

#include "cleanup.h"
#include "err.h"
#include "text.h"
#include "virt_priv.h"

int
virt_xml_parse(const char *xml, xmlDocPtr *ret_doc, xmlXPathContextPtr *ret_ctx)
{
    xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "libvirt.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    xmlXPathContextPtr ctx;

    if (!doc)
        return err_set(-EIO, "libvirt returned XML that cannot be parsed");
    ctx = xmlXPathNewContext(doc);
    if (!ctx) {
        xmlFreeDoc(doc);
        return -ENOMEM;
    }
    *ret_doc = doc;
    *ret_ctx = ctx;
    return 0;
}

char *
virt_xml_string(xmlXPathContextPtr ctx, const char *xpath)
{
    xmlXPathObjectPtr obj = xmlXPathEvalExpression((const xmlChar *)xpath, ctx);
    char *out = NULL;

    if (!obj)
        return NULL;
    if (obj->type == XPATH_NODESET && obj->nodesetval && obj->nodesetval->nodeNr > 0) {
        xmlChar *v = xmlNodeGetContent(obj->nodesetval->nodeTab[0]);
        if (v) {
            out = strdup((const char *)v);
            xmlFree(v);
        }
    } else if (obj->type == XPATH_STRING && obj->stringval && obj->stringval[0]) {
        out = strdup((const char *)obj->stringval);
    }
    xmlXPathFreeObject(obj);
    return out;
}

void
virt_xml_free(xmlDocPtr doc, xmlXPathContextPtr ctx)
{
    if (ctx)
        xmlXPathFreeContext(ctx);
    if (doc)
        xmlFreeDoc(doc);
}

int
virt_xml_put(FILE *f, const char *value)
{
    _cleanup_free_ char *e = NULL;

    if (!value)
        return 0;
    e = text_xml_escape(value);
    if (!e)
        return -ENOMEM;
    fputs(e, f);
    return 0;
}
