/*
 * Unit tests: the choice of a chain to adopt from a bucket's manifests
 * (core/offsite_adopt.h), on manifests made in memory: the newest chain
 * first, its lineage complete and oldest first, the disks matching in
 * targets and sizes, an older chain when the newest cannot be used, and
 * the reasons when none can.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/offsite_adopt.h"
#include "err.h"
#include "tap.h"

#define UUID  "6695eb01-f6a4-8304-79aa-97f2502e193f"
#define OTHER "11111111-2222-3333-4444-555555555555"
#define GIB   (1ull << 30)

static struct conf_backup_disk vda_1g = {.target = (char *)"vda", .size = GIB};
static struct conf_backup_disk vda_2g = {.target = (char *)"vda", .size = 2 * GIB};

/* A manifest of a completed backup of one disk that created checkpoint "vv-<id>". */
struct fixture {
    struct conf_backup b;
    struct conf_manifest m;
    char checkpoint[32];
};

static void
make(struct fixture *f, const char *uuid, const char *id, const char *chain, const char *parent,
     int64_t started, struct conf_backup_disk *disk)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->checkpoint, sizeof(f->checkpoint), "vv-%s", id);
    f->b = (struct conf_backup){
        .id = (char *)id,
        .domain_uuid = (char *)uuid,
        .type = parent ? CONF_BACKUP_TYPE_INCREMENTAL : CONF_BACKUP_TYPE_FULL,
        .state = CONF_BACKUP_STATE_COMPLETED,
        .chain_id = (char *)chain,
        .parent_id = (char *)parent,
        .checkpoint = f->checkpoint,
        .started_at = started,
        .n_disks = 1,
        .disks = disk,
    };
    f->m.b = &f->b;
    f->m.checkpoint_xml = (char *)"<domaincheckpoint/>";
}

static const struct backup_plan_disk vda[] = {{"vda", GIB}};
static const struct backup_plan_disk vda_grown[] = {{"vda", 2 * GIB}};
static const struct backup_plan_disk vdb[] = {{"vdb", GIB}};
static const struct backup_plan_disk vda_vdb[] = {{"vda", GIB}, {"vdb", GIB}};

/* The ids list[idx[0..n)] names, joined by spaces, into buf. */
static const char *
ids(struct conf_manifest *const *list, const size_t *idx, size_t n, char *buf, size_t size)
{
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++)
        snprintf(buf + strlen(buf), size - strlen(buf), "%s%s", i ? " " : "", list[idx[i]]->b->id);
    return buf;
}

int
main(void)
{
    struct fixture a1, a2, a3, b1, b2, o1;
    struct conf_manifest *list[6];
    size_t idx[8], n = 0;
    char buf[128];
    int r;

    /* Chain a (a1 full, a2, a3) older than chain b (b1 full, b2); o1 of another domain. */
    make(&a1, UUID, "a1", "a1", NULL, 100, &vda_1g);
    make(&a2, UUID, "a2", "a1", "a1", 200, &vda_1g);
    make(&a3, UUID, "a3", "a1", "a2", 300, &vda_1g);
    make(&b1, UUID, "b1", "b1", NULL, 400, &vda_1g);
    make(&b2, UUID, "b2", "b1", "b1", 500, &vda_1g);
    make(&o1, OTHER, "o1", "o1", NULL, 900, &vda_1g);
    /* Any order: the bucket lists by id. */
    list[0] = &b2.m, list[1] = &a1.m, list[2] = &o1.m, list[3] = &a3.m, list[4] = &b1.m,
    list[5] = &a2.m;

    r = offsite_adopt_choose(list, 6, UUID, vda, 1, idx, 8, &n);
    ok(r == 0 && strcmp(ids(list, idx, n, buf, sizeof(buf)), "b1 b2") == 0,
       "the newest chain, oldest first: %s (r %d)", buf, r);

    /* The newest chain lacks its full: the older one is taken. */
    list[4] = &o1.m;
    r = offsite_adopt_choose(list, 6, UUID, vda, 1, idx, 8, &n);
    ok(r == 0 && strcmp(ids(list, idx, n, buf, sizeof(buf)), "a1 a2 a3") == 0,
       "an older chain when the newest is broken: %s (r %d)", buf, r);
    list[4] = &b1.m;

    /* A backup without its checkpoint's XML cannot be redefined. */
    b1.m.checkpoint_xml = NULL;
    a2.m.checkpoint_xml = NULL;
    r = offsite_adopt_choose(list, 6, UUID, vda, 1, idx, 8, &n);
    ok(r == -EBADFD && err_detail() && strstr(err_detail(), "b1") &&
           strstr(err_detail(), "checkpoint XML"),
       "no chain without checkpoint XML; the newest's reason: %s", err_detail());
    err_clear();
    b1.m.checkpoint_xml = a2.m.checkpoint_xml = (char *)"<domaincheckpoint/>";

    /* Disks: a resized, another or an added disk does not match. */
    r = offsite_adopt_choose(list, 6, UUID, vda_grown, 1, idx, 8, &n);
    ok(r == -EBADFD && strstr(err_detail(), "resized"), "a resized disk: %s", err_detail());
    err_clear();
    r = offsite_adopt_choose(list, 6, UUID, vdb, 1, idx, 8, &n);
    ok(r == -EBADFD && strstr(err_detail(), "vdb"), "another disk: %s", err_detail());
    err_clear();
    r = offsite_adopt_choose(list, 6, UUID, vda_vdb, 2, idx, 8, &n);
    ok(r == -EBADFD && strstr(err_detail(), "2"), "an added disk: %s", err_detail());
    err_clear();

    /* The newest chain grew its disk at b2: only chain a matches the old size... */
    b2.b.disks = &vda_2g;
    r = offsite_adopt_choose(list, 6, UUID, vda, 1, idx, 8, &n);
    ok(r == 0 && strcmp(ids(list, idx, n, buf, sizeof(buf)), "a1 a2 a3") == 0,
       "the chain whose newest backup matches: %s", buf);
    /* ...and chain b the new one. */
    r = offsite_adopt_choose(list, 6, UUID, vda_grown, 1, idx, 8, &n);
    ok(r == 0 && strcmp(ids(list, idx, n, buf, sizeof(buf)), "b1 b2") == 0,
       "a grown disk matches the chain that saw it grow: %s", buf);
    b2.b.disks = &vda_1g;

    /* A chain longer than the room for it. */
    r = offsite_adopt_choose(list, 6, UUID, vda, 1, idx, 1, &n);
    ok(r == -EBADFD && strstr(err_detail(), "longer"), "too long: %s", err_detail());
    err_clear();

    /* A backup that did not complete is no part of a chain. */
    a2.b.state = CONF_BACKUP_STATE_FAILED;
    list[4] = &o1.m;
    r = offsite_adopt_choose(list, 6, UUID, vda, 1, idx, 8, &n);
    ok(r == -EBADFD && strstr(err_detail(), "b2"), "no complete chain: %s", err_detail());
    err_clear();
    a2.b.state = CONF_BACKUP_STATE_COMPLETED;
    list[4] = &b1.m;

    /* Nothing of the domain: -ENOENT. */
    r = offsite_adopt_choose(list, 6, "00000000-0000-0000-0000-000000000000", vda, 1, idx, 8, &n);
    ok(r == -ENOENT && strstr(err_detail(), "holds no backup"), "none of the domain: %s",
       err_detail());
    err_clear();
    r = offsite_adopt_choose(list, 0, UUID, vda, 1, idx, 8, &n);
    ok(r == -ENOENT, "an empty bucket");
    err_clear();
    return tap_done();
}
