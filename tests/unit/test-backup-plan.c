/*
 * Unit tests: backup planning (core/backup_plan.h) against catalogs made in
 * memory, no database and no libvirt: which disks, which type, which
 * parent, with healthy, broken, orphaned and missing checkpoints, a
 * differential's base, auto falling back to full, and disks added or grown
 * since the last backup.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/backup_plan.h"
#include "err.h"
#include "tap.h"

#define UUID "6695eb01-f6a4-8304-79aa-97f2502e193f"
#define GIB  (1ull << 30)

static struct conf_backup_disk vda_1g = {
    .target = (char *)"vda", .file = (char *)"f.vda.qcow2", .size = GIB};
static struct conf_backup_disk vda_client = {
    .target = (char *)"vda", .file = (char *)"", .size = GIB};

/* A completed backup of one disk (vda, 1 GiB) that created checkpoint "vv-<id>". */
static struct conf_backup
backup(const char *id, enum conf_backup_type type, const char *chain, const char *parent,
       const char *checkpoint)
{
    return (struct conf_backup){
        .id = (char *)id,
        .domain_uuid = (char *)UUID,
        .mode = CONF_BACKUP_MODE_PUSH,
        .type = type,
        .state = CONF_BACKUP_STATE_COMPLETED,
        .chain_id = (char *)chain,
        .parent_id = (char *)parent,
        .checkpoint = (char *)checkpoint,
        .n_disks = 1,
        .disks = &vda_1g,
    };
}

static struct conf_backup b1, b2, b3, c4;

/* A full b1, incrementals b2 and b3 on it (chain c1), newest first. */
static struct conf_backup *chain[] = {&b3, &b2, &b1};
static struct backup_plan_checkpoint healthy[] = {
    {.name = "vv-b1", .state = CONF_CHECKPOINT_OK, .in_libvirt = true},
    {.name = "vv-b2", .state = CONF_CHECKPOINT_REDEFINED, .in_libvirt = true},
    {.name = "vv-b3", .state = CONF_CHECKPOINT_OK, .in_libvirt = true},
};

static const struct backup_plan_disk vda[] = {{"vda", GIB}};
static const struct backup_plan_disk vda_grown[] = {{"vda", 2 * GIB}};
static const struct backup_plan_disk vda_vdb[] = {{"vda", GIB}, {"vdb", GIB}};

static struct backup_plan_catalog
catalog(struct conf_backup **backups, size_t n, struct backup_plan_checkpoint *cps, size_t n_cps)
{
    return (struct backup_plan_catalog){
        .backups = backups, .n_backups = n, .checkpoints = cps, .n_checkpoints = n_cps};
}

static struct core_backup_request
request(enum conf_backup_type type, const char *since)
{
    return (struct core_backup_request){.type = type, .since = since};
}

/* Plans and says whether the outcome is want_r, want_type and want_parent (an id or NULL). */
static int
plans(const struct backup_plan_catalog *cat, const struct core_backup_request *req,
      const struct backup_plan_disk *disks, size_t n, int want_r, enum conf_backup_type want_type,
      const char *want_parent, const char *want_detail)
{
    enum conf_backup_type type = CONF_BACKUP_TYPE_LAST;
    const struct conf_backup *parent = (const struct conf_backup *)1;
    int r;

    err_clear();
    r = backup_plan_choose(cat, req, disks, n, &type, &parent);
    if (r != want_r) {
        printf("# returned %d (%s), wanted %d\n", r, err_detail() ? err_detail() : "", want_r);
        return 0;
    }
    if (r < 0) {
        if (want_detail && (!err_detail() || !strstr(err_detail(), want_detail))) {
            printf("# detail '%s' lacks '%s'\n", err_detail() ? err_detail() : "", want_detail);
            return 0;
        }
        return 1;
    }
    if (type != want_type ||
        (want_parent ? !parent || strcmp(parent->id, want_parent) != 0 : parent != NULL)) {
        printf("# type %s parent %s\n", conf_backup_type_to_string(type),
               parent ? parent->id : "none");
        return 0;
    }
    return 1;
}

static void
test_select_disks(void)
{
    struct conf_disk disks[] = {
        {.target = (char *)"vda",
         .device = (char *)"disk",
         .source = (char *)"/a.qcow2",
         .format = (char *)"qcow2"},
        {.target = (char *)"hdc",
         .device = (char *)"cdrom",
         .source = (char *)"/x.iso",
         .format = (char *)"raw"},
        {.target = (char *)"vdb",
         .device = (char *)"disk",
         .source = (char *)"/b.qcow2",
         .format = (char *)"qcow2"},
        {.target = (char *)"vdc",
         .device = (char *)"disk",
         .source = (char *)"/c.img",
         .format = (char *)"raw"},
    };
    struct conf_domain d = {.name = (char *)"web1", .n_disks = 4, .disks = disks};
    struct backup_plan_disk out[8];
    size_t n = 0;
    const char *vdb_only[] = {"vdb"}, *raw[] = {"vdc"}, *twice[] = {"vda", "vda"},
               *unknown[] = {"vdz"};
    struct core_backup_request req = {0};

    ok(backup_plan_select_disks(&d, &req, out, 8, &n) == 0 && n == 2 &&
           strcmp(out[0].target, "vda") == 0 && strcmp(out[1].target, "vdb") == 0,
       "no disks named: every qcow2 disk, in the domain's order");
    req = (struct core_backup_request){.disks = vdb_only, .n_disks = 1};
    ok(backup_plan_select_disks(&d, &req, out, 8, &n) == 0 && n == 1 &&
           strcmp(out[0].target, "vdb") == 0,
       "a disk named: that disk only");
    req = (struct core_backup_request){.disks = raw, .n_disks = 1};
    ok(backup_plan_select_disks(&d, &req, out, 8, &n) == -EINVAL &&
           strstr(err_detail(), "not qcow2"),
       "a raw disk named: refused with the reason");
    req = (struct core_backup_request){.disks = twice, .n_disks = 2};
    ok(backup_plan_select_disks(&d, &req, out, 8, &n) == -EINVAL &&
           strstr(err_detail(), "named twice"),
       "a disk named twice: refused");
    req = (struct core_backup_request){.disks = unknown, .n_disks = 1};
    ok(backup_plan_select_disks(&d, &req, out, 8, &n) == -EINVAL &&
           strstr(err_detail(), "no disk 'vdz'"),
       "an unknown disk: refused");
    d.n_disks = 2; /* vda and the cdrom */
    disks[0].format = (char *)"raw";
    req = (struct core_backup_request){0};
    ok(backup_plan_select_disks(&d, &req, out, 8, &n) == -EINVAL,
       "a domain without qcow2 disks: nothing to back up");
}

static void
test_chain(void)
{
    struct backup_plan_catalog cat = catalog(chain, 3, healthy, 3);
    struct backup_plan_checkpoint cps[3];

    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_FULL}, vda, 1, 0,
             CONF_BACKUP_TYPE_FULL, NULL, NULL),
       "full: no parent, whatever the catalog");
    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_INCREMENTAL}, vda, 1, 0,
             CONF_BACKUP_TYPE_INCREMENTAL, "b3", NULL),
       "healthy chain: an incremental counts from the newest backup");
    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_AUTO}, vda, 1, 0,
             CONF_BACKUP_TYPE_INCREMENTAL, "b3", NULL),
       "healthy chain: auto is an incremental");

    memcpy(cps, healthy, sizeof(cps));
    cps[2].state = CONF_CHECKPOINT_BROKEN;
    cps[2].reason = "bitmap gone";
    cat = catalog(chain, 3, cps, 3);
    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_INCREMENTAL}, vda, 1,
             -EBADFD, 0, NULL, "checkpoint 'vv-b3' is broken: bitmap gone"),
       "broken checkpoint: an incremental is refused with the reason");
    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_AUTO}, vda, 1, 0,
             CONF_BACKUP_TYPE_FULL, NULL, NULL),
       "broken checkpoint: auto falls back to full");

    memcpy(cps, healthy, sizeof(cps));
    cps[2].state = CONF_CHECKPOINT_REDEFINED;
    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_INCREMENTAL}, vda, 1, 0,
             CONF_BACKUP_TYPE_INCREMENTAL, "b3", NULL),
       "redefined checkpoint (put back from the store): a base");

    /*
     * Orphaned: stored because the reconciler found it in libvirt without a
     * row of its own (the row was lost), so not the service's: it is not put
     * back when libvirt loses it and nothing vouches for its bitmap. Like
     * the offline path (core_checkpoint_newest_healthy) and the reason the
     * reconciler stores ("adopt it ... to use it as a base"), planning takes
     * only ok and redefined checkpoints as a base.
     */
    memcpy(cps, healthy, sizeof(cps));
    cps[2].state = CONF_CHECKPOINT_ORPHANED;
    cps[2].reason = "found in libvirt but not created through virtvault: adopt it";
    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_INCREMENTAL}, vda, 1,
             -EBADFD, 0, NULL, "checkpoint 'vv-b3' of backup b3 is orphaned: found in libvirt"),
       "orphaned checkpoint: an incremental is refused, saying to adopt it");
    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_AUTO}, vda, 1, 0,
             CONF_BACKUP_TYPE_FULL, NULL, NULL),
       "orphaned checkpoint: auto falls back to full");
    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_DIFFERENTIAL}, vda, 1, 0,
             CONF_BACKUP_TYPE_DIFFERENTIAL, "b1", NULL),
       "orphaned newest checkpoint: a differential's base (the full's) is still sound");
    memcpy(cps, healthy, sizeof(cps));
    cps[0].state = CONF_CHECKPOINT_ORPHANED;
    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_INCREMENTAL}, vda, 1, 0,
             CONF_BACKUP_TYPE_INCREMENTAL, "b3", NULL),
       "an older checkpoint orphaned: the newest backup is still a base");
    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_DIFFERENTIAL}, vda, 1,
             -EBADFD, 0, NULL, "'vv-b1' of backup b1 is orphaned"),
       "orphaned full checkpoint: a differential is refused");
    struct backup_plan_checkpoint with_foreign[4];
    memcpy(with_foreign, healthy, sizeof(healthy));
    with_foreign[3] = (struct backup_plan_checkpoint){
        .name = "theirs", .state = CONF_CHECKPOINT_ORPHANED, .in_libvirt = true};
    cat = catalog(chain, 3, with_foreign, 4);
    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_AUTO}, vda, 1, 0,
             CONF_BACKUP_TYPE_INCREMENTAL, "b3", NULL),
       "another tool's orphaned checkpoint beside the chain: no matter");
    cat = catalog(chain, 3, cps, 3);

    memcpy(cps, healthy, sizeof(cps));
    cat = catalog(chain, 3, cps, 2); /* vv-b3 is not stored */
    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_INCREMENTAL}, vda, 1,
             -EBADFD, 0, NULL, "checkpoint 'vv-b3' of backup b3 was deleted"),
       "missing checkpoint: an incremental is refused");
    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_AUTO}, vda, 1, 0,
             CONF_BACKUP_TYPE_FULL, NULL, NULL),
       "missing checkpoint: auto falls back to full");
    cat = catalog(chain, 3, cps + 1, 2); /* vv-b1 is not stored */
    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_DIFFERENTIAL}, vda, 1,
             -EBADFD, 0, NULL, "checkpoint 'vv-b1' of backup b1 was deleted"),
       "missing checkpoint of the full: a differential is refused");
    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_AUTO}, vda, 1, 0,
             CONF_BACKUP_TYPE_INCREMENTAL, "b3", NULL),
       "missing checkpoint of an older backup: auto still counts from the newest");

    memcpy(cps, healthy, sizeof(cps));
    cps[2].in_libvirt = false;
    cat = catalog(chain, 3, cps, 3);
    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_INCREMENTAL}, vda, 1,
             -EBADFD, 0, NULL, "is gone from libvirt"),
       "checkpoint stored but gone from libvirt: refused");
    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_AUTO}, vda, 1, 0,
             CONF_BACKUP_TYPE_FULL, NULL, NULL),
       "checkpoint gone from libvirt: auto falls back to full");

    cat = catalog(chain, 3, healthy, 3);
    cat.libvirt_error = -ENOTCONN;
    cat.libvirt_detail = "libvirt is not connected";
    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_AUTO}, vda, 1, -ENOTCONN,
             0, NULL, "libvirt is not connected"),
       "libvirt unreachable when the parent is checked: its error, no silent full");

    cat = catalog(NULL, 0, NULL, 0);
    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_INCREMENTAL}, vda, 1,
             -EBADFD, 0, NULL, "take a full backup first"),
       "no backup yet: an incremental is refused");
    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_AUTO}, vda, 1, 0,
             CONF_BACKUP_TYPE_FULL, NULL, NULL),
       "no backup yet: auto is full");
    cat.libvirt_error = -ENOTCONN;
    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_AUTO}, vda, 1, 0,
             CONF_BACKUP_TYPE_FULL, NULL, NULL),
       "no backup yet: libvirt's state does not matter");
}

static void
test_differential(void)
{
    struct backup_plan_catalog cat = catalog(chain, 3, healthy, 3);
    struct conf_backup *no_full[] = {&b3, &b2};
    struct core_backup_request req = request(CONF_BACKUP_TYPE_DIFFERENTIAL, NULL);

    ok(plans(&cat, &req, vda, 1, 0, CONF_BACKUP_TYPE_DIFFERENTIAL, "b1", NULL),
       "differential: counts from the full backup of the current chain");
    req = request(CONF_BACKUP_TYPE_DIFFERENTIAL, "vv-b2");
    ok(plans(&cat, &req, vda, 1, 0, CONF_BACKUP_TYPE_DIFFERENTIAL, "b2", NULL),
       "differential since a checkpoint: counts from the backup that created it");
    req = request(CONF_BACKUP_TYPE_DIFFERENTIAL, "vv-nope");
    ok(plans(&cat, &req, vda, 1, -EBADFD, 0, NULL, "created checkpoint 'vv-nope'"),
       "differential since an unknown checkpoint: refused");
    cat = catalog(no_full, 2, healthy, 3);
    req = request(CONF_BACKUP_TYPE_DIFFERENTIAL, NULL);
    ok(plans(&cat, &req, vda, 1, -EBADFD, 0, NULL, "has no full backup"),
       "differential on a chain without its full backup: refused");

    struct backup_plan_checkpoint cps[3];
    memcpy(cps, healthy, sizeof(cps));
    cps[0].state = CONF_CHECKPOINT_BROKEN;
    cat = catalog(chain, 3, cps, 3);
    ok(plans(&cat, &req, vda, 1, -EBADFD, 0, NULL, "'vv-b1' is broken"),
       "differential whose base checkpoint is broken: refused");

    memcpy(cps, healthy, sizeof(cps));
    cps[2].state = CONF_CHECKPOINT_BROKEN;
    cat = catalog(chain, 3, cps, 3);
    ok(plans(&cat, &req, vda, 1, 0, CONF_BACKUP_TYPE_DIFFERENTIAL, "b1", NULL),
       "differential: the newest checkpoint broken does not matter, the full's decides");
    cat = catalog(chain, 3, healthy, 3);
    ok(plans(&cat, &req, vda_vdb, 2, -EBADFD, 0, NULL, "the disks changed since backup b1"),
       "differential with a disk added since its full: refused");
    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_AUTO}, vda, 1, 0,
             CONF_BACKUP_TYPE_INCREMENTAL, "b3", NULL),
       "auto never picks differential");
}

static void
test_disks_changed(void)
{
    struct backup_plan_catalog cat = catalog(chain, 3, healthy, 3);

    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_INCREMENTAL}, vda_vdb, 2,
             -EBADFD, 0, NULL, "the disks changed since backup b3"),
       "a disk added since the last backup: an incremental is refused");
    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_AUTO}, vda_vdb, 2, 0,
             CONF_BACKUP_TYPE_FULL, NULL, NULL),
       "a disk added since the last backup: auto falls back to full");
    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_INCREMENTAL}, vda_grown,
             1, -EBADFD, 0, NULL, "disk 'vda' is new or changed size"),
       "a disk grown since the last backup: refused");
    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_AUTO}, vda_grown, 1, 0,
             CONF_BACKUP_TYPE_FULL, NULL, NULL),
       "a disk grown since the last backup: auto falls back to full");

    /* The last backup had vda and vdb; vdb is no longer taken. */
    static struct conf_backup_disk two[] = {
        {.target = (char *)"vda", .file = (char *)"f.vda.qcow2", .size = GIB},
        {.target = (char *)"vdb", .file = (char *)"f.vdb.qcow2", .size = GIB}};
    struct conf_backup b5 = backup("b5", CONF_BACKUP_TYPE_FULL, "c5", NULL, "vv-b5");
    struct conf_backup *after_two[] = {&b5, &b3, &b2, &b1};
    struct backup_plan_checkpoint cps[4];
    memcpy(cps, healthy, sizeof(healthy));
    cps[3] = (struct backup_plan_checkpoint){
        .name = "vv-b5", .state = CONF_CHECKPOINT_OK, .in_libvirt = true};
    b5.n_disks = 2;
    b5.disks = two;
    cat = catalog(after_two, 4, cps, 4);
    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_INCREMENTAL}, vda_vdb, 2,
             0, CONF_BACKUP_TYPE_INCREMENTAL, "b5", NULL),
       "the same two disks: an incremental of both");
    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_INCREMENTAL}, vda, 1,
             -EBADFD, 0, NULL, "the disks changed since backup b5"),
       "a disk left out since the last backup: an incremental is refused");
    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_AUTO}, vda, 1, 0,
             CONF_BACKUP_TYPE_FULL, NULL, NULL),
       "a disk left out since the last backup: auto falls back to full");
}

static void
test_client_pull(void)
{
    struct conf_backup *with_pull[] = {&c4, &b3, &b2, &b1};
    struct backup_plan_checkpoint cps[4];
    struct backup_plan_catalog cat;

    memcpy(cps, healthy, sizeof(healthy));
    cps[3] = (struct backup_plan_checkpoint){
        .name = "vv-c4", .state = CONF_CHECKPOINT_OK, .in_libvirt = true};
    cat = catalog(with_pull, 4, cps, 4);
    ok(plans(&cat, &(struct core_backup_request){.type = CONF_BACKUP_TYPE_INCREMENTAL}, vda, 1, 0,
             CONF_BACKUP_TYPE_INCREMENTAL, "b3", NULL),
       "into the vault: a backup a client read (no images) is no parent");
    ok(plans(&cat,
             &(struct core_backup_request){.type = CONF_BACKUP_TYPE_INCREMENTAL,
                                           .mode = CONF_BACKUP_MODE_PULL},
             vda, 1, 0, CONF_BACKUP_TYPE_INCREMENTAL, "c4", NULL),
       "read by a client: counts from the newest backup, a client's too");
}

int
main(void)
{
    b1 = backup("b1", CONF_BACKUP_TYPE_FULL, "c1", NULL, "vv-b1");
    b2 = backup("b2", CONF_BACKUP_TYPE_INCREMENTAL, "c1", "b1", "vv-b2");
    b3 = backup("b3", CONF_BACKUP_TYPE_INCREMENTAL, "c1", "b2", "vv-b3");
    c4 = backup("c4", CONF_BACKUP_TYPE_INCREMENTAL, "c1", "b3", "vv-c4");
    c4.mode = CONF_BACKUP_MODE_PULL;
    c4.disks = &vda_client;

    test_select_disks();
    test_chain();
    test_differential();
    test_disks_changed();
    test_client_pull();
    return tap_done();
}
