/*
 * A restored domain as a safe clone of its original: what of the stored
 * domain XML would reach into the original's data, its host devices or the
 * network is changed or dropped here, and every change is recorded (see
 * virt.h, virt_domain_define_restored).
 */
#include <errno.h>
#include <fcntl.h>
#include <libxml/tree.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "err.h"
#include "text.h"
#include "virt_clone.h"
#include "virt_priv.h"

#define CHANGES_MAX  256
#define LOOPBACK     "127.0.0.1"
#define NVRAM_SUFFIX "_VARS.fd"
#define COPY_CHUNK   (1u << 16)

void
virt_clone_changes_clear(struct virt_clone_changes *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        free(c->items[i].detail);
    free(c->items);
    c->items = NULL;
    c->n = 0;
}

int
virt_clone_change_add(struct virt_clone_changes *c, const char *what, const char *fmt, ...)
{
    struct virt_clone_change *items;
    va_list ap;
    char *detail;
    int n;

    if (c->n >= CHANGES_MAX)
        return err_set(-E2BIG, "the domain definition needs more than %d changes", CHANGES_MAX);
    va_start(ap, fmt);
    n = vasprintf(&detail, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -ENOMEM;
    items = realloc(c->items, (c->n + 1) * sizeof(*items));
    if (!items) {
        free(detail);
        return -ENOMEM;
    }
    c->items = items;
    snprintf(c->items[c->n].what, sizeof(c->items[c->n].what), "%s", what);
    c->items[c->n].detail = detail;
    c->n++;
    return 0;
}

/* An attribute of node as a new string, or NULL. */
static char *
prop(xmlNodePtr node, const char *name)
{
    xmlChar *v = xmlGetProp(node, (const xmlChar *)name);
    char *s = v ? strdup((const char *)v) : NULL;

    xmlFree(v);
    return s;
}

/* The first child element of node named name, or NULL. */
static xmlNodePtr
child(xmlNodePtr node, const char *name)
{
    for (xmlNodePtr c = node->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && xmlStrEqual(c->name, (const xmlChar *)name))
            return c;
    return NULL;
}

static void
drop(xmlNodePtr node)
{
    xmlUnlinkNode(node);
    xmlFreeNode(node);
}

/*
 * The nodes that xpath selects, evaluated once: callers may unlink and free
 * them while walking (the set is freed without touching them).
 */
static xmlXPathObjectPtr
select_nodes(xmlXPathContextPtr ctx, const char *xpath)
{
    return xmlXPathEvalExpression((const xmlChar *)xpath, ctx);
}

static int
set_count(xmlXPathObjectPtr set)
{
    return set && set->nodesetval ? set->nodesetval->nodeNr : 0;
}

static inline void
xpath_objp(xmlXPathObjectPtr *o)
{
    if (*o)
        xmlXPathFreeObject(*o);
}
#define _cleanup_xpath_ __attribute__((cleanup(xpath_objp)))

/* Graphics: loopback only, no password carried, no fixed port shared with the original. */
static int
graphics_local(xmlXPathContextPtr ctx, struct virt_clone_changes *changes)
{
    _cleanup_xpath_ xmlXPathObjectPtr set = select_nodes(ctx, "/domain/devices/graphics");
    int r;

    for (int i = 0; i < set_count(set); i++) {
        xmlNodePtr g = set->nodesetval->nodeTab[i];
        _cleanup_free_ char *type = prop(g, "type");
        _cleanup_free_ char *listen = prop(g, "listen");
        _cleanup_free_ char *port = prop(g, "port");
        bool had_password = xmlHasProp(g, (const xmlChar *)"passwd") != NULL;
        bool network = false;
        const char *t = type ? type : "graphics";

        if (type && strcmp(type, "vnc") != 0 && strcmp(type, "spice") != 0 &&
            strcmp(type, "rdp") != 0)
            continue;
        xmlUnsetProp(g, (const xmlChar *)"passwd");
        xmlUnsetProp(g, (const xmlChar *)"passwdValidTo");
        xmlUnsetProp(g, (const xmlChar *)"connected");
        for (xmlNodePtr c = g->children, next; c; c = next) {
            next = c->next;
            if (c->type != XML_ELEMENT_NODE || !xmlStrEqual(c->name, (const xmlChar *)"listen"))
                continue;
            _cleanup_free_ char *lt = prop(c, "type");
            _cleanup_free_ char *socket = prop(c, "socket");
            if (lt && strcmp(lt, "network") == 0)
                network = true;
            if (lt && (strcmp(lt, "socket") == 0 || strcmp(lt, "none") == 0) && !socket)
                continue;
            /* A socket path of the original, a network or an address: one loopback address. */
            drop(c);
        }
        if (!xmlSetProp(g, (const xmlChar *)"listen", (const xmlChar *)LOOPBACK))
            return -ENOMEM;
        xmlNodePtr l = xmlNewChild(g, NULL, (const xmlChar *)"listen", NULL);
        if (!l || !xmlSetProp(l, (const xmlChar *)"type", (const xmlChar *)"address") ||
            !xmlSetProp(l, (const xmlChar *)"address", (const xmlChar *)LOOPBACK))
            return -ENOMEM;
        if (!listen || strcmp(listen, LOOPBACK) != 0 || network) {
            r = virt_clone_change_add(changes, "graphics", "%s: listens on %s (was %s)", t,
                                      LOOPBACK,
                                      network  ? "a network"
                                      : listen ? listen
                                               : "the default");
            if (r < 0)
                return r;
        }
        if (had_password) {
            r = virt_clone_change_add(changes, "graphics", "%s: the password is not carried over",
                                      t);
            if (r < 0)
                return r;
        }
        if (port && strcmp(port, "-1") != 0) {
            xmlUnsetProp(g, (const xmlChar *)"port");
            xmlUnsetProp(g, (const xmlChar *)"tlsPort");
            xmlUnsetProp(g, (const xmlChar *)"websocket");
            if (!xmlSetProp(g, (const xmlChar *)"autoport", (const xmlChar *)"yes"))
                return -ENOMEM;
            r = virt_clone_change_add(changes, "graphics",
                                      "%s: port %s of the original replaced "
                                      "by an automatic one",
                                      t, port);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

/* <filesystem> and <hostdev>: the original's host folders and devices. */
static int
drop_host_devices(xmlXPathContextPtr ctx, unsigned keep, struct virt_clone_changes *changes)
{
    int r;

    if (!(keep & VIRT_CLONE_KEEP_FILESYSTEM)) {
        _cleanup_xpath_ xmlXPathObjectPtr set = select_nodes(ctx, "/domain/devices/filesystem");
        for (int i = 0; i < set_count(set); i++) {
            xmlNodePtr fs = set->nodesetval->nodeTab[i];
            xmlNodePtr src = child(fs, "source"), tgt = child(fs, "target");
            _cleanup_free_ char *dir = src ? prop(src, "dir") : NULL;
            _cleanup_free_ char *file = src ? prop(src, "file") : NULL;
            _cleanup_free_ char *mount = tgt ? prop(tgt, "dir") : NULL;

            r = virt_clone_change_add(changes, "filesystem", "%s (from %s) dropped",
                                      mount ? mount : "a filesystem",
                                      dir    ? dir
                                      : file ? file
                                             : "the host");
            if (r < 0)
                return r;
            drop(fs);
            set->nodesetval->nodeTab[i] = NULL;
        }
    }
    if (!(keep & VIRT_CLONE_KEEP_HOSTDEV)) {
        _cleanup_xpath_ xmlXPathObjectPtr set = select_nodes(
            ctx, "/domain/devices/hostdev | /domain/devices/interface[@type='hostdev']");
        for (int i = 0; i < set_count(set); i++) {
            xmlNodePtr h = set->nodesetval->nodeTab[i];
            _cleanup_free_ char *type = prop(h, "type");

            r = virt_clone_change_add(changes, "hostdev", "%s %s device of the host dropped",
                                      (const char *)h->name, type ? type : "a");
            if (r < 0)
                return r;
            drop(h);
            set->nodesetval->nodeTab[i] = NULL;
        }
    }
    return 0;
}

/* Character devices: no log file of the original, no output into its files. */
static int
drop_log_files(xmlXPathContextPtr ctx, unsigned keep, struct virt_clone_changes *changes)
{
    static const char *const devices =
        "/domain/devices/serial | /domain/devices/console | /domain/devices/parallel | "
        "/domain/devices/channel";
    _cleanup_xpath_ xmlXPathObjectPtr set = NULL;
    int r;

    if (keep & VIRT_CLONE_KEEP_LOGS)
        return 0;
    set = select_nodes(ctx, devices);
    for (int i = 0; i < set_count(set); i++) {
        xmlNodePtr dev = set->nodesetval->nodeTab[i];
        xmlNodePtr log = child(dev, "log");
        _cleanup_free_ char *type = prop(dev, "type");
        const char *kind = (const char *)dev->name;

        if (log) {
            _cleanup_free_ char *file = prop(log, "file");
            r = virt_clone_change_add(changes, "log", "%s: log file %s dropped", kind,
                                      file ? file : "");
            if (r < 0)
                return r;
            drop(log);
        }
        if (type && strcmp(type, "file") == 0) {
            xmlNodePtr src = child(dev, "source");
            _cleanup_free_ char *path = src ? prop(src, "path") : NULL;

            r = virt_clone_change_add(changes, "log",
                                      "%s: output file %s replaced by nothing "
                                      "(type null)",
                                      kind, path ? path : "");
            if (r < 0)
                return r;
            if (src)
                drop(src);
            if (!xmlSetProp(dev, (const xmlChar *)"type", (const xmlChar *)"null"))
                return -ENOMEM;
        }
    }
    return 0;
}

/* Copies the file src into a new file name under dirfd (O_EXCL), synced. */
static int
copy_file_at(const char *src, int dirfd, const char *name)
{
    _cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    _cleanup_close_ int out = -1;
    _cleanup_free_ char *buf = NULL;
    ssize_t n;

    if (in < 0)
        return -errno;
    out = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out < 0)
        return err_set(-errno, "cannot create %s: %s", name, strerror(errno));
    buf = malloc(COPY_CHUNK);
    if (!buf)
        return -ENOMEM;
    while ((n = read(in, buf, COPY_CHUNK)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || write(out, buf, (size_t)n) != n) {
            int e = n < 0 ? errno : EIO;
            (void)unlinkat(dirfd, name, 0);
            return err_set(-e, "cannot copy %s: %s", src, strerror(e));
        }
    }
    if (fsync(out) < 0) {
        int e = errno;
        (void)unlinkat(dirfd, name, 0);
        return err_set(-e, "cannot sync %s: %s", name, strerror(e));
    }
    return 0;
}

int
virt_clone_nvram(xmlXPathContextPtr ctx, const struct virt_clone_target *where, const char *name,
                 struct virt_clone_changes *changes, char **ret_created)
{
    _cleanup_xpath_ xmlXPathObjectPtr set = select_nodes(ctx, "/domain/os/nvram");
    _cleanup_free_ char *file = NULL;
    _cleanup_free_ char *path = NULL;
    _cleanup_free_ char *old = NULL;
    xmlNodePtr nv, src;
    int r;

    *ret_created = NULL;
    if (set_count(set) == 0)
        return 0;
    nv = set->nodesetval->nodeTab[0];
    /* <nvram>path</nvram>, or <nvram type='file'><source file='path'/></nvram>. */
    src = child(nv, "source");
    if (src)
        old = prop(src, "file");
    else {
        xmlChar *v = xmlNodeGetContent(nv);
        old = v && v[0] ? strdup((const char *)v) : NULL;
        xmlFree(v);
    }
    if (asprintf(&file, "%s%s", name, NVRAM_SUFFIX) < 0 ||
        asprintf(&path, "%s/%s", where->dir, file) < 0)
        return -ENOMEM;
    r = old ? copy_file_at(old, where->dirfd, file) : -ENOENT;
    if (r < 0 && r != -ENOENT)
        return r;
    if (src) {
        if (!xmlSetProp(src, (const xmlChar *)"file", (const xmlChar *)path))
            return -ENOMEM;
    } else {
        /* A valid name and a checked folder: nothing in path needs escaping but '&' and '<'. */
        _cleanup_free_ char *esc = text_xml_escape(path);
        if (!esc)
            return -ENOMEM;
        xmlNodeSetContent(nv, (const xmlChar *)esc);
    }
    if (r == 0) {
        *ret_created = strdup(file);
        if (!*ret_created) {
            (void)unlinkat(where->dirfd, file, 0);
            return -ENOMEM;
        }
        return virt_clone_change_add(changes, "nvram", "copied %s to %s", old, path);
    }
    return virt_clone_change_add(changes, "nvram",
                                 "%s of the original is missing: %s is made from the template "
                                 "on the first start",
                                 old ? old : "the variable store", path);
}

int
virt_clone_sanitize(xmlXPathContextPtr ctx, unsigned keep, struct virt_clone_changes *changes)
{
    int r;

    r = graphics_local(ctx, changes);
    if (r >= 0)
        r = drop_host_devices(ctx, keep, changes);
    if (r >= 0)
        r = drop_log_files(ctx, keep, changes);
    return r;
}

int
virt_clone_redact(xmlXPathContextPtr ctx, char **ret)
{
    _cleanup_xpath_ xmlXPathObjectPtr set = select_nodes(ctx, "/domain/devices/graphics[@passwd]");
    xmlChar *out = NULL;
    int len = 0;

    for (int i = 0; i < set_count(set); i++)
        if (!xmlSetProp(set->nodesetval->nodeTab[i], (const xmlChar *)"passwd",
                        (const xmlChar *)""))
            return -ENOMEM;
    xmlDocDumpMemory(ctx->doc, &out, &len);
    *ret = out ? strdup((const char *)out) : NULL;
    xmlFree(out);
    return *ret ? 0 : -ENOMEM;
}
