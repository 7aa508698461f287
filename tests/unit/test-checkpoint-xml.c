/* Unit tests: reading libvirt's checkpoint XML. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "virt/virt.h"

static const char full[] =
    "<domaincheckpoint>\n"
    "  <name>cp2</name>\n"
    "  <description>a &lt;b&gt; &amp; c</description>\n"
    "  <parent><name>cp1</name></parent>\n"
    "  <creationTime>1795691131</creationTime>\n"
    "  <disks>\n"
    "    <disk name='vda' checkpoint='bitmap' bitmap='cp2' size='8388608'/>\n"
    "    <disk name='vdb' checkpoint='no'/>\n"
    "  </disks>\n"
    "  <domain type='kvm'><name>d</name></domain>\n"
    "</domaincheckpoint>\n";

static const char root[] = "<domaincheckpoint><name>r</name><creationTime>5</creationTime>"
                           "<disks><disk name='sda' checkpoint='bitmap' bitmap='r'/></disks>"
                           "</domaincheckpoint>";

static const struct {
    const char *title, *xml;
    int ret;
    const char *name, *parent, *description;
    long long created;
    size_t n_disks;
} cases[] = {
    {"full XML with <domain>", full, 0, "cp2", "cp1", "a <b> & c", 1795691131, 2},
    {"a root without description or sizes", root, 0, "r", NULL, NULL, 5, 1},
    {"no name", "<domaincheckpoint><disks/></domaincheckpoint>", -EINVAL, NULL, NULL, NULL, 0, 0},
    {"not XML", "<domaincheckpoint><name>x", -EINVAL, NULL, NULL, NULL, 0, 0},
    {"another document", "<domain><name>x</name></domain>", -EINVAL, NULL, NULL, NULL, 0, 0},
};

static int
same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int
main(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct conf_checkpoint_def *c = NULL;
        int r = virt_checkpoint_parse(cases[i].xml, &c);

        if (cases[i].ret < 0) {
            ok(r == cases[i].ret && !c, "%s: refused (%d)", cases[i].title, r);
            continue;
        }
        ok(r == 0 && same(c->name, cases[i].name) && same(c->parent, cases[i].parent) &&
               same(c->description, cases[i].description) && c->created == cases[i].created &&
               c->n_disks == cases[i].n_disks && strcmp(c->xml, cases[i].xml) == 0,
           "%s", cases[i].title);
        conf_checkpoint_def_free(c);
    }

    struct conf_checkpoint_def *c = NULL;
    ok(virt_checkpoint_parse(full, &c) == 0 && c->disks[0].bitmap &&
           strcmp(c->disks[0].bitmap_name, "cp2") == 0 && c->disks[0].size_bytes == 8388608 &&
           !c->disks[1].bitmap && !c->disks[1].bitmap_name && c->disks[1].size_bytes == -1,
       "disks: bitmap, name and size; checkpoint='no' has neither");
    conf_checkpoint_def_free(c);
    return tap_done();
}
