/* Snapshots: requests checked and completed, files placed, long ones run as jobs. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "busy.h"
#include "checkpoint.h"
#include "cleanup.h"
#include "core.h"
#include "err.h"
#include "jobs.h"
#include "log.h"
#include "snapshot.h"
#include "text.h"
#include "virt/virt.h"
#include "virt/virt_snapshot.h"

#define DESCRIPTION_MAX  4096
#define FILE_ARG_MAX     1024
#define RESUME_POLL_US   (250 * 1000)
#define RESUME_MAX_POLLS (4 * 3600)
#define PROGRESS_POLL_NS (200 * 1000 * 1000L)

struct plan_disk {
    char *target;
    enum conf_snapshot_location location;
    char *file;
};

/* A snapshot to create, with everything decided; owns its strings. */
struct plan {
    char *uuid;
    char *domain;
    char *name;
    char *description;
    bool disk_only;
    bool quiesce;
    enum conf_snapshot_location memory;
    char *memory_file;
    size_t n_disks;
    struct plan_disk *disks;
};

static void
plan_free(struct plan *p)
{
    if (!p)
        return;
    free(p->uuid);
    free(p->domain);
    free(p->name);
    free(p->description);
    free(p->memory_file);
    for (size_t i = 0; i < p->n_disks; i++) {
        free(p->disks[i].target);
        free(p->disks[i].file);
    }
    free(p->disks);
    free(p);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct plan *, plan_free)

static bool
has_control(const char *s, bool allow_space_controls)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == 0x7f)
            return true;
        if (*p < 0x20 && !(allow_space_controls && (*p == '\n' || *p == '\t' || *p == '\r')))
            return true;
    }
    return false;
}

/*
 * A name given in a path may be one that another tool made (libvirt allows
 * more than text_name_valid), so lookups only refuse what no snapshot name
 * can be.
 */
static int
lookup_name_check(const char *name)
{
    if (!name || !name[0] || strlen(name) > 255 || strchr(name, '/') || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0 || has_control(name, false))
        return err_set(-EINVAL, "'%s' is not a valid snapshot name", name ? name : "");
    return 0;
}

int
core_snapshot_list(const char *domain, struct conf_snapshot **ret, size_t *ret_n)
{
    return virt_snapshot_list(domain, ret, ret_n);
}

int
core_snapshot_get(const char *domain, const char *name, struct conf_snapshot **ret)
{
    int r = lookup_name_check(name);

    if (r < 0)
        return r;
    return virt_snapshot_get(domain, name, ret);
}

int
core_snapshot_current(const char *domain, struct conf_snapshot **ret)
{
    return virt_snapshot_current(domain, ret);
}

int
core_snapshot_xml(const char *domain, const char *name, char **ret)
{
    int r = lookup_name_check(name);

    if (r < 0)
        return r;
    return virt_snapshot_xml(domain, name, ret);
}

/*
 * True when path (a real path) is the domain's managed folder or lies below
 * it: a snapshot's files never land in another domain's folder or among the
 * vault's backups.
 */
static bool
inside_managed(const char *path, const char *managed)
{
    _cleanup_free_ char *root = realpath(managed, NULL);
    size_t n;

    if (!root)
        return false;
    n = strlen(root);
    return strncmp(path, root, n) == 0 && (path[n] == '\0' || path[n] == '/' || n == 1);
}

/* The managed folder of a domain, created when missing; a new string. */
static int
managed_dir(const char *uuid, char **ret)
{
    _cleanup_free_ char *dom_dir = NULL;
    _cleanup_free_ char *dir = NULL;

    if (asprintf(&dom_dir, "%s/%s", core_vault_dir(), uuid) < 0 ||
        asprintf(&dir, "%s/snapshots", dom_dir) < 0)
        return -ENOMEM;
    if (mkdir(dom_dir, 0750) < 0 && errno != EEXIST)
        return err_set(-errno, "cannot create %s: %s", dom_dir, strerror(errno));
    if (mkdir(dir, 0750) < 0 && errno != EEXIST)
        return err_set(-errno, "cannot create %s: %s", dir, strerror(errno));
    *ret = TAKE_PTR(dir);
    return 0;
}

/*
 * Decides where an external file goes: given (relative to managed, or
 * absolute) or, when NULL, managed/def_name. The result is a new absolute
 * path whose folder is real and inside managed (the domain's own folder),
 * and which names no existing file.
 */
static int
place_file(const char *managed, const char *given, const char *def_name, const char *what,
           char **ret)
{
    _cleanup_free_ char *joined = NULL;
    _cleanup_free_ char *real_dir = NULL;
    _cleanup_free_ char *path = NULL;
    char *slash, *base;
    struct stat st;

    if (given) {
        if (!given[0] || strlen(given) > FILE_ARG_MAX || has_control(given, false))
            return err_set(-EINVAL, "%s: '%s' is not a usable file name", what, given);
        /* No "..", anywhere: a path means what it says or is refused. */
        for (const char *p = given; (p = strstr(p, "..")); p += 2)
            if ((p == given || p[-1] == '/') && (p[2] == '\0' || p[2] == '/'))
                return err_set(-EINVAL, "%s: '%s' must not contain '..'", what, given);
        if (given[strlen(given) - 1] == '/')
            return err_set(-EINVAL, "%s: '%s' names a folder, not a file", what, given);
    }
    if (given && given[0] == '/')
        joined = strdup(given);
    else if (asprintf(&joined, "%s/%s", managed, given ? given : def_name) < 0)
        joined = NULL;
    if (!joined)
        return -ENOMEM;

    slash = strrchr(joined, '/');
    *slash = '\0';
    base = slash + 1;
    if (!base[0] || strcmp(base, ".") == 0)
        return err_set(-EINVAL, "%s: '%s' names no file", what, given ? given : def_name);
    real_dir = realpath(joined[0] ? joined : "/", NULL);
    if (!real_dir)
        return err_set(-EINVAL, "%s: the folder of '%s' does not exist", what,
                       given ? given : def_name);
    if (!inside_managed(real_dir, managed))
        return err_set(-EINVAL, "%s: '%s' lies outside the domain's own snapshot folder %s", what,
                       given ? given : def_name, managed);
    if (asprintf(&path, "%s/%s", real_dir, base) < 0)
        return -ENOMEM;
    if (lstat(path, &st) == 0)
        return err_set(-EEXIST, "%s: %s exists already", what, path);
    *ret = TAKE_PTR(path);
    return 0;
}

/* The request's location at JSON pointer `at` ("/location", "/disks/0/location"). */
static int
location_parse(const char *s, const char *at, bool allow_none, enum conf_snapshot_location *ret)
{
    enum conf_snapshot_location loc;

    if (conf_snapshot_location_from_string(s, &loc) < 0 ||
        (loc == CONF_SNAPSHOT_LOCATION_NONE && !allow_none))
        return err_set_pointer(-EINVAL, at, "must be internal, external%s",
                               allow_none ? " or none" : "");
    *ret = loc;
    return 0;
}

static const struct core_snapshot_disk_req *
find_disk_req(const struct core_snapshot_req *req, const char *target)
{
    for (size_t i = 0; i < req->n_disks; i++)
        if (req->disks[i].target && strcmp(req->disks[i].target, target) == 0)
            return &req->disks[i];
    return NULL;
}

/* Turns a request into a plan for domain d: defaults filled, names and places checked. */
static int
make_plan(const struct conf_domain *d, const struct core_snapshot_req *req, struct plan **ret)
{
    _cleanup_(plan_freep) struct plan *p = calloc(1, sizeof(*p));
    _cleanup_free_ char *managed = NULL;
    bool running = conf_domain_state_active(d->state);
    enum conf_snapshot_location def_loc;
    enum conf_snapshot_kind kind;
    char gen[64];
    bool any_external;
    int r;

    if (!p)
        return -ENOMEM;
    if (req->name) {
        if (!text_name_valid(req->name))
            return err_set_pointer(-EINVAL, "/name",
                                   "must be 1 to %d characters from A-Z a-z 0-9 . _ - not "
                                   "starting with '.'",
                                   NAME_MAX_LEN);
        if (strcmp(req->name, "current") == 0)
            return err_set_pointer(-EINVAL, "/name",
                                   "must not be 'current', which is reserved "
                                   "(GET .../snapshots/current)");
    } else {
        r = text_generated_name(gen, sizeof(gen), "snap");
        if (r < 0)
            return r;
    }
    if (req->description &&
        (strlen(req->description) > DESCRIPTION_MAX || has_control(req->description, true)))
        return err_set_pointer(-EINVAL, "/description",
                               "must be at most %d bytes, with no control characters",
                               DESCRIPTION_MAX);

    if (!req->kind)
        kind = running ? CONF_SNAPSHOT_KIND_FULL : CONF_SNAPSHOT_KIND_DISK_ONLY;
    else if (conf_snapshot_kind_from_string(req->kind, &kind) < 0)
        return err_set_pointer(-EINVAL, "/kind", "must be full or disk_only");
    p->disk_only = kind == CONF_SNAPSHOT_KIND_DISK_ONLY;
    if (!p->disk_only && !running)
        return err_set(-EBADFD,
                       "domain '%s' is %s: a full snapshot saves the memory of a running domain; "
                       "ask for kind disk_only",
                       d->name, conf_domain_state_to_string(d->state));

    def_loc =
        p->disk_only && running ? CONF_SNAPSHOT_LOCATION_EXTERNAL : CONF_SNAPSHOT_LOCATION_INTERNAL;
    if (req->location) {
        r = location_parse(req->location, "/location", false, &def_loc);
        if (r < 0)
            return r;
    }
    p->memory = p->disk_only ? CONF_SNAPSHOT_LOCATION_NONE : def_loc;
    if (req->memory_file && p->memory != CONF_SNAPSHOT_LOCATION_EXTERNAL)
        return err_set_pointer(-EINVAL, "/memory_file",
                               "goes with a full snapshot with location external only");
    if (req->quiesce && !p->disk_only)
        return err_set_pointer(-EINVAL, "/quiesce",
                               "goes with kind disk_only only: libvirt freezes the guest's file "
                               "systems only for disk-only snapshots");
    p->quiesce = req->quiesce;

    for (size_t i = 0; i < req->n_disks; i++) {
        const struct core_snapshot_disk_req *dr = &req->disks[i];
        bool known = false;
        char at[64];

        snprintf(at, sizeof(at), "/disks/%zu/target", i);
        if (!dr->target)
            return err_set_pointer(-EINVAL, at, "is required");
        for (size_t k = 0; k < d->n_disks; k++)
            known |= strcmp(d->disks[k].target, dr->target) == 0;
        if (!known)
            return err_set_pointer(-EINVAL, at, "domain '%s' has no disk '%s'", d->name,
                                   dr->target);
        if (find_disk_req(req, dr->target) != dr)
            return err_set_pointer(-EINVAL, at, "disk '%s' is named twice", dr->target);
    }

    p->disks = calloc(d->n_disks ? d->n_disks : 1, sizeof(*p->disks));
    if (!p->disks)
        return -ENOMEM;
    if (!(p->name = strdup(req->name ? req->name : gen)) || !(p->uuid = strdup(d->uuid)) ||
        !(p->domain = strdup(d->name)) ||
        (req->description && !(p->description = strdup(req->description))))
        return -ENOMEM;

    any_external = p->memory == CONF_SNAPSHOT_LOCATION_EXTERNAL;
    for (size_t k = 0; k < d->n_disks; k++) {
        const struct core_snapshot_disk_req *dr = find_disk_req(req, d->disks[k].target);
        bool is_disk = conf_disk_is_disk(&d->disks[k]);
        struct plan_disk *pd = &p->disks[p->n_disks];

        pd->location = is_disk ? def_loc : CONF_SNAPSHOT_LOCATION_NONE;
        char at[64];

        snprintf(at, sizeof(at), "/disks/%zu", dr ? (size_t)(dr - req->disks) : 0);
        if (dr && dr->location) {
            strcat(at, "/location");
            r = location_parse(dr->location, at, true, &pd->location);
            if (r < 0)
                return r;
        }
        if (dr && dr->file && pd->location != CONF_SNAPSHOT_LOCATION_EXTERNAL) {
            snprintf(at, sizeof(at), "/disks/%zu/file", (size_t)(dr - req->disks));
            return err_set_pointer(-EINVAL, at, "goes with an external disk snapshot only ('%s')",
                                   d->disks[k].target);
        }
        if (!(pd->target = strdup(d->disks[k].target)))
            return -ENOMEM;
        p->n_disks++;
        any_external |= pd->location == CONF_SNAPSHOT_LOCATION_EXTERNAL;
    }

    if (any_external) {
        r = managed_dir(d->uuid, &managed);
        if (r < 0)
            return r;
    }
    for (size_t k = 0; k < p->n_disks; k++) {
        struct plan_disk *pd = &p->disks[k];
        const struct core_snapshot_disk_req *dr = find_disk_req(req, pd->target);
        _cleanup_free_ char *def = NULL;
        char what[80];

        if (pd->location != CONF_SNAPSHOT_LOCATION_EXTERNAL)
            continue;
        if (asprintf(&def, "%s.%s.qcow2", p->name, pd->target) < 0)
            return -ENOMEM;
        snprintf(what, sizeof(what), "disk %s", pd->target);
        r = place_file(managed, dr ? dr->file : NULL, def, what, &pd->file);
        if (r < 0)
            return r;
        /* Two disks into one file would be a mistake libvirt may not catch. */
        for (size_t j = 0; j < k; j++)
            if (p->disks[j].file && strcmp(p->disks[j].file, pd->file) == 0)
                return err_set(-EINVAL, "disks %s and %s would share the file %s",
                               p->disks[j].target, pd->target, pd->file);
    }
    if (p->memory == CONF_SNAPSHOT_LOCATION_EXTERNAL) {
        _cleanup_free_ char *def = NULL;
        if (asprintf(&def, "%s.memory", p->name) < 0)
            return -ENOMEM;
        r = place_file(managed, req->memory_file, def, "memory_file", &p->memory_file);
        if (r < 0)
            return r;
        for (size_t k = 0; k < p->n_disks; k++)
            if (p->disks[k].file && strcmp(p->disks[k].file, p->memory_file) == 0)
                return err_set(-EINVAL, "memory_file and disk %s would share the file %s",
                               p->disks[k].target, p->memory_file);
    }
    *ret = TAKE_PTR(p);
    return 0;
}

static int
plan_execute(const struct plan *p)
{
    _cleanup_free_ struct virt_snapshot_spec_disk *disks =
        calloc(p->n_disks ? p->n_disks : 1, sizeof(*disks));
    struct virt_snapshot_spec spec = {
        .name = p->name,
        .description = p->description,
        .disk_only = p->disk_only,
        .quiesce = p->quiesce,
        .memory = p->memory,
        .memory_file = p->memory_file,
        .n_disks = p->n_disks,
        .disks = disks,
    };

    if (!disks)
        return -ENOMEM;
    for (size_t i = 0; i < p->n_disks; i++)
        disks[i] = (struct virt_snapshot_spec_disk){p->disks[i].target, p->disks[i].location,
                                                    p->disks[i].file};
    return virt_snapshot_create(p->uuid, &spec);
}

/* The job kind "snapshot_create": a full snapshot of a running domain. */

static int
snap_job_result(struct job *job, const struct plan *p)
{
    char json[160];

    /* The name follows text_name_valid: nothing in it needs escaping in JSON. */
    snprintf(json, sizeof(json), "{\"snapshot\":\"%s\"}", p->name);
    return job_set_result(job, json);
}

/* After a restart: waits for libvirt to finish the snapshot, then says how it ended. */
static int
snap_job_resume(struct job *job, const struct plan *p)
{
    _cleanup_(conf_snapshot_freep) struct conf_snapshot *s = NULL;
    bool active = true;
    int r;

    for (unsigned i = 0; active && i < RESUME_MAX_POLLS; i++) {
        r = virt_snapshot_job_active(p->uuid, &active);
        if (r < 0)
            return r;
        if (active)
            usleep(RESUME_POLL_US);
    }
    r = virt_snapshot_get(p->uuid, p->name, &s);
    if (r == -ENOENT)
        return err_set(-EIO,
                       "the service restarted while libvirt took snapshot '%s', and "
                       "libvirt did not complete it",
                       p->name);
    if (r < 0)
        return r;
    return snap_job_result(job, p);
}

/* Reports libvirt's byte counts while a snapshot runs (memory, for external ones). */
struct progress_poll {
    struct job *job;
    const char *uuid;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
};

static void *
progress_main(void *arg)
{
    struct progress_poll *pp = arg;

    pthread_mutex_lock(&pp->lock);
    while (!pp->stop) {
        struct timespec until;
        uint64_t done, total;

        pthread_mutex_unlock(&pp->lock);
        if (virt_domain_job_progress(pp->uuid, false, &done, &total) == 0)
            job_progress(pp->job, done, total);
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += PROGRESS_POLL_NS;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&pp->lock);
        if (!pp->stop)
            pthread_cond_timedwait(&pp->wake, &pp->lock, &until);
    }
    pthread_mutex_unlock(&pp->lock);
    return NULL;
}

static int
snap_job_run(struct job *job, void *data)
{
    const struct plan *p = data;
    struct progress_poll pp = {
        .job = job,
        .uuid = p->uuid,
        .lock = PTHREAD_MUTEX_INITIALIZER,
        .wake = PTHREAD_COND_INITIALIZER,
    };
    pthread_t poller;
    bool polling;
    uint64_t done, total;
    int r;

    if (job_resumed(job))
        return snap_job_resume(job, p);
    if (job_cancelled(job))
        return err_set(-ECANCELED, "the job was cancelled");
    polling = pthread_create(&poller, NULL, progress_main, &pp) == 0;
    r = plan_execute(p);
    if (polling) {
        pthread_mutex_lock(&pp.lock);
        pp.stop = true;
        pthread_cond_signal(&pp.wake);
        pthread_mutex_unlock(&pp.lock);
        pthread_join(poller, NULL);
    }
    if (r < 0)
        return r;
    /*
     * Only an external memory state gives byte counts; for other snapshots the
     * "completed" statistics would be those of some earlier job.
     */
    if (p->memory == CONF_SNAPSHOT_LOCATION_EXTERNAL &&
        virt_domain_job_progress(p->uuid, true, &done, &total) == 0)
        job_progress(job, done, total);
    return snap_job_result(job, p);
}

static int
snap_job_cancel(struct job *job, void *data)
{
    const struct plan *p = data;
    int r = virt_job_abort(p->uuid);

    /*
     * No job in libvirt: either run() has yet to call libvirt, and sees the
     * flag first, or libvirt is done and the job ends as libvirt ended it.
     */
    if (r == -EBADFD)
        return 0;
    return r;
}

static int
snap_job_recover(const struct conf_job *rec, void **ret_data)
{
    _cleanup_(plan_freep) struct plan *p = NULL;
    _cleanup_(conf_snapshot_freep) struct conf_snapshot *s = NULL;
    bool active = false;
    int r;

    if (!rec->domain_uuid || !rec->params || !text_name_valid(rec->params))
        return 0;
    r = virt_snapshot_job_active(rec->domain_uuid, &active);
    if (r < 0)
        return r;
    if (!active) {
        r = virt_snapshot_get(rec->domain_uuid, rec->params, &s);
        if (r == -ENOENT)
            return 0;
        if (r < 0)
            return r;
    }
    p = calloc(1, sizeof(*p));
    if (!p || !(p->uuid = strdup(rec->domain_uuid)) || !(p->name = strdup(rec->params)))
        return -ENOMEM;
    *ret_data = TAKE_PTR(p);
    return 1;
}

static void
snap_job_free(void *data)
{
    plan_free(data);
}

static const struct job_kind snapshot_create_kind = {
    .kind = CONF_JOB_KIND_SNAPSHOT_CREATE,
    .run = snap_job_run,
    .cancel = snap_job_cancel,
    .recover = snap_job_recover,
    .free_data = snap_job_free,
};

int
core_snapshot_init(void)
{
    return core_jobs_register(&snapshot_create_kind);
}

int
core_snapshot_create(const char *domain, const struct core_snapshot_req *req,
                     struct conf_snapshot **ret_snap, struct conf_job **ret_job)
{
    _cleanup_(conf_domain_freep) struct conf_domain *d = NULL;
    _cleanup_(plan_freep) struct plan *p = NULL;
    _cleanup_(conf_snapshot_freep) struct conf_snapshot *existing = NULL;
    _cleanup_claim_ const char *claimed = NULL;
    int r;

    r = virt_domain_get(domain, &d);
    if (r < 0)
        return r;
    r = make_plan(d, req, &p);
    if (r < 0)
        return r;
    r = virt_snapshot_get(d->uuid, p->name, &existing);
    if (r == 0)
        return err_set(-EEXIST, "domain '%s' has a snapshot '%s' already", d->name, p->name);
    if (r != -ENOENT)
        return r;

    if (!p->disk_only) {
        struct job_spec spec = {
            .kind = &snapshot_create_kind,
            .domain = d->name,
            .domain_uuid = d->uuid,
            .params = p->name,
            .data = p,
        };
        p = NULL; /* the job owns it now, whatever happens */
        return core_job_submit(&spec, ret_job);
    }

    r = core_busy_claim_scoped(d->uuid, "snapshot create", &claimed);
    if (r < 0)
        return r;
    r = plan_execute(p);
    if (r < 0)
        return r;
    return virt_snapshot_get(d->uuid, p->name, ret_snap);
}

/*
 * QEMU refuses to load an internal snapshot while the disks carry dirty
 * bitmaps ("Device has active dirty bitmaps"), and libvirt 9.0 leaves the
 * domain shut off when that happens. Refuse it here, before anything is
 * touched, and say what would make it possible.
 */
static int
revert_allowed(const struct conf_domain *d, const char *name)
{
    _cleanup_(conf_snapshot_freep) struct conf_snapshot *snap = NULL;
    struct core_checkpoint *cps = NULL;
    struct conf_versions v;
    bool internal;
    size_t n = 0;
    int r;

    r = virt_versions_get(&v);
    if (r < 0)
        return r;
    if (strcasecmp(v.driver, "QEMU") != 0)
        return 0;
    r = virt_snapshot_get(d->uuid, name, &snap);
    if (r < 0)
        return r;
    internal = snap->memory == CONF_SNAPSHOT_LOCATION_INTERNAL;
    for (size_t i = 0; i < snap->n_disks; i++)
        internal |= snap->disks[i].location == CONF_SNAPSHOT_LOCATION_INTERNAL;
    if (!internal)
        return 0;
    struct core_checkpoint_catalog cat;
    r = core_checkpoint_catalog_open(d->uuid, CORE_CHECKPOINT_READ_REFRESH, &cat);
    if (r < 0)
        return r;
    r = core_checkpoint_list(&cat, 0, &cps, &n);
    if (r < 0)
        return r;
    core_checkpoint_list_free(cps, n);
    if (n > 0)
        return err_set(-EBADFD,
                       "snapshot '%s' is internal and the domain's disks carry dirty bitmaps "
                       "(%zu checkpoint(s)): QEMU cannot load an internal snapshot then, and the "
                       "domain would be left shut off; delete the checkpoints first",
                       name, n);
    return 0;
}

int
core_snapshot_revert(const char *domain, const char *name, enum conf_snapshot_start start,
                     bool force)
{
    _cleanup_(conf_domain_freep) struct conf_domain *d = NULL;
    _cleanup_claim_ const char *claimed = NULL;
    int r;

    r = lookup_name_check(name);
    if (r < 0)
        return r;
    r = virt_domain_get(domain, &d);
    if (r < 0)
        return r;
    r = core_busy_claim_scoped(d->uuid, "snapshot revert", &claimed);
    if (r < 0)
        return r;
    r = revert_allowed(d, name);
    if (r < 0)
        return r;
    return virt_snapshot_revert(d->uuid, name, start, force);
}

void
core_snapshot_names_free(char **names, size_t n)
{
    for (size_t i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}

int
core_snapshot_delete(const char *domain, const char *name, enum conf_snapshot_delete_mode mode,
                     bool metadata_only, char ***ret_names, size_t *ret_n)
{
    _cleanup_(conf_domain_freep) struct conf_domain *d = NULL;
    _cleanup_claim_ const char *claimed = NULL;
    char **kids = NULL, **names;
    size_t n_kids = 0, n = 0;
    int r;

    r = lookup_name_check(name);
    if (r < 0)
        return r;
    r = virt_domain_get(domain, &d);
    if (r < 0)
        return r;
    r = core_busy_claim_scoped(d->uuid, "snapshot delete", &claimed);
    if (r < 0)
        return r;
    if (mode != CONF_SNAPSHOT_DELETE_ONE) {
        r = virt_snapshot_descendants(d->uuid, name, &kids, &n_kids);
        if (r < 0)
            return r;
    }
    names = calloc(n_kids + 1, sizeof(*names));
    if (!names) {
        core_snapshot_names_free(kids, n_kids);
        return -ENOMEM;
    }
    if (mode != CONF_SNAPSHOT_DELETE_CHILDREN_ONLY && !(names[n++] = strdup(name))) {
        core_snapshot_names_free(kids, n_kids);
        core_snapshot_names_free(names, n);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n_kids; i++)
        names[n++] = TAKE_PTR(kids[i]);
    free(kids);

    r = virt_snapshot_delete(d->uuid, name, mode, metadata_only);
    if (r < 0) {
        core_snapshot_names_free(names, n);
        return r;
    }
    *ret_names = names;
    *ret_n = n;
    return 0;
}
