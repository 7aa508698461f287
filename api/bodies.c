/* The request bodies of every resource; see bodies.h. */
#include <errno.h>
#include <string.h>

#include "bodies.h"
#include "cleanup.h"
#include "err.h"
#include "text.h"

#define DESCRIPTION_MAX 1024

/* Free text that goes into XML: bounded, no NUL, no control characters but tab and newline. */
static int
check_description(const char *s, size_t len)
{
    if (len > DESCRIPTION_MAX)
        return err_set(-EINVAL, "description: at most %d bytes", DESCRIPTION_MAX);
    if (strlen(s) != len)
        return err_set(-EINVAL, "description: must not contain NUL characters");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p < 0x20 && *p != '\t' && *p != '\n') || *p == 0x7f)
            return err_set(-EINVAL, "description: control characters other than tab and newline "
                                    "are not allowed");
    return 0;
}

/* A list of 1 to API_BODY_DISKS_MAX disk targets ("vda"), into names[]. */
static int
read_disk_targets(json_t *disks, const char **names, size_t *ret_n)
{
    size_t n = json_array_size(disks);

    if (!json_is_array(disks) || n == 0 || n > API_BODY_DISKS_MAX)
        return err_set(-EINVAL, "disks: name 1 to %d disk targets (or leave it out for all)",
                       API_BODY_DISKS_MAX);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(disks, i);
        const char *t = json_string_value(v);

        if (!json_is_string(v) || strlen(t) != json_string_length(v) || !text_name_valid(t))
            return err_set(-EINVAL, "disks[%zu]: must be a disk target such as \"vda\"", i);
        names[i] = t;
    }
    *ret_n = n;
    return 0;
}

int
api_checkpoint_body_read(const struct api_request *req, struct api_checkpoint_body *out)
{
    const char *name = NULL, *description = NULL;
    size_t name_len = 0, description_len = 0;
    json_t *disks = NULL;
    int r;

    memset(out, 0, sizeof(*out));
    r = api_body_unpack(req, "{s?s%, s?s%, s?o}", "name", &name, &name_len, "description",
                        &description, &description_len, "disks", &disks);
    if (r < 0)
        return r;
    if (name && (strlen(name) != name_len || !text_name_valid(name)))
        return err_set(-EINVAL,
                       "name: use 1 to %d characters from A-Z a-z 0-9 . _ -, not starting "
                       "with '.'",
                       NAME_MAX_LEN);
    if (description) {
        r = check_description(description, description_len);
        if (r < 0)
            return r;
    }
    if (disks) {
        r = read_disk_targets(disks, out->disks, &out->req.n_disks);
        if (r < 0)
            return r;
        out->req.disks = out->disks;
    }
    out->req.name = name;
    out->req.description = description;
    return 0;
}

int
api_reconcile_body_read(const struct api_request *req, bool *adopt)
{
    int flag = 0;
    int r = api_body_unpack(req, "{s?b}", "adopt", &flag);

    *adopt = flag;
    return r;
}

int
api_snapshot_body_read(const struct api_request *req, struct api_snapshot_body *out)
{
    struct core_snapshot_req *q = &out->req;
    json_t *disks = NULL, *d;
    int quiesce = 0;
    size_t i;
    int r;

    memset(out, 0, sizeof(*out));
    r = api_body_unpack(req, "{s?s, s?s, s?s, s?s, s?s, s?b, s?o}", "name", &q->name, "description",
                        &q->description, "kind", &q->kind, "location", &q->location, "memory_file",
                        &q->memory_file, "quiesce", &quiesce, "disks", &disks);
    if (r < 0)
        return r;
    q->quiesce = quiesce;
    q->disks = out->disks;
    if (!disks)
        return 0;
    if (!json_is_array(disks))
        return err_set(-EINVAL, "disks must be an array of objects");
    if (json_array_size(disks) > API_BODY_DISKS_MAX)
        return err_set(-EINVAL, "disks: at most %d entries", API_BODY_DISKS_MAX);
    json_array_foreach(disks, i, d)
    {
        struct core_snapshot_disk_req *dq = &out->disks[i];
        json_error_t jerr;

        if (json_unpack_ex(d, &jerr, JSON_STRICT, "{s:s, s?s, s?s}", "target", &dq->target,
                           "location", &dq->location, "file", &dq->file) < 0)
            return err_set(-EINVAL, "disks[%zu]: %s", i, jerr.text);
    }
    q->n_disks = json_array_size(disks);
    return 0;
}

int
api_revert_body_read(const struct api_request *req, enum conf_snapshot_start *start, bool *force)
{
    static const struct {
        const char *name;
        enum conf_snapshot_start start;
    } starts[] = {
        {"as_taken", CONF_SNAPSHOT_START_AS_TAKEN},
        {"running", CONF_SNAPSHOT_START_RUNNING},
        {"paused", CONF_SNAPSHOT_START_PAUSED},
    };
    const char *name = NULL;
    int flag = 0;
    int r;

    r = api_body_unpack(req, "{s?s, s?b}", "start", &name, "force", &flag);
    if (r < 0)
        return r;
    *force = flag;
    *start = CONF_SNAPSHOT_START_AS_TAKEN;
    if (!name)
        return 0;
    for (size_t i = 0; i < ARRAY_SIZE(starts); i++)
        if (strcmp(name, starts[i].name) == 0) {
            *start = starts[i].start;
            return 0;
        }
    return err_set(-EINVAL, "start must be running, paused or as_taken, not '%s'", name);
}

int
api_backup_body_read(const struct api_request *req, struct api_backup_body *out)
{
    const char *type = "auto", *since = NULL, *mode = "push", *target = NULL;
    enum conf_backup_type type_v;
    enum conf_backup_mode mode_v;
    json_t *disks = NULL;
    json_int_t bandwidth = 0;
    int r;

    memset(out, 0, sizeof(*out));
    r = api_body_unpack(req, "{s?s, s?s, s?o, s?I, s?s, s?s}", "type", &type, "since", &since,
                        "disks", &disks, "bandwidth", &bandwidth, "mode", &mode, "target", &target);
    if (r < 0)
        return r;
    if (conf_backup_mode_from_string(mode, &mode_v) < 0)
        return err_set(-EINVAL, "mode must be push or pull");
    if (target && strcmp(target, "vault") != 0 && strcmp(target, "client") != 0)
        return err_set(-EINVAL, "target must be client or vault");
    if (target && strcmp(target, "client") == 0 && mode_v == CONF_BACKUP_MODE_PUSH)
        return err_set(-EINVAL, "target client goes with mode pull (a push backup goes into "
                                "the vault)");
    if (bandwidth && mode_v == CONF_BACKUP_MODE_PULL)
        return err_set(-EINVAL, "bandwidth goes with mode push only (a pull reader sets its "
                                "own pace)");
    if (conf_backup_type_from_string(type, &type_v) < 0)
        return err_set(-EINVAL, "type must be one of full, incremental, differential, auto");
    if (since && type_v != CONF_BACKUP_TYPE_DIFFERENTIAL)
        return err_set(-EINVAL, "since goes with type differential only");
    if (since && !text_name_valid(since))
        return err_set(-EINVAL, "since: '%s' is not a valid checkpoint name", since);
    if (bandwidth < 0)
        return err_set(-EINVAL, "bandwidth must be a number of bytes per second, 0 for no limit");
    out->req = (struct core_backup_request){
        .type = type_v,
        .since = since,
        .bandwidth = (uint64_t)bandwidth,
        .mode = mode_v,
        .to_vault = target && strcmp(target, "vault") == 0,
    };
    if (disks) {
        r = read_disk_targets(disks, out->disks, &out->req.n_disks);
        if (r < 0)
            return r;
        out->req.disks = out->disks;
    }
    return 0;
}

/* The names of "keep" in a restore's define, as the API spells them. */
static const struct {
    const char *name;
    unsigned flag;
} restore_keep[] = {
    {"lun", CORE_RESTORE_KEEP_LUN},
    {"filesystem", CORE_RESTORE_KEEP_FILESYSTEM},
    {"hostdev", CORE_RESTORE_KEEP_HOSTDEV},
    {"logs", CORE_RESTORE_KEEP_LOGS},
};

/* define.keep: a list of distinct names from restore_keep, into *ret. */
static int
read_restore_keep(json_t *keep, unsigned *ret)
{
    unsigned flags = 0;

    if (!json_is_array(keep) || json_array_size(keep) > ARRAY_SIZE(restore_keep))
        return err_set(-EINVAL,
                       "define.keep: a list of at most %zu of \"lun\", \"filesystem\", "
                       "\"hostdev\", \"logs\"",
                       ARRAY_SIZE(restore_keep));
    for (size_t i = 0; i < json_array_size(keep); i++) {
        const char *v = json_string_value(json_array_get(keep, i));
        unsigned flag = 0;

        for (size_t k = 0; v && k < ARRAY_SIZE(restore_keep); k++)
            if (strlen(v) == json_string_length(json_array_get(keep, i)) &&
                strcmp(v, restore_keep[k].name) == 0)
                flag = restore_keep[k].flag;
        if (!flag)
            return err_set(-EINVAL,
                           "define.keep[%zu]: must be one of \"lun\", \"filesystem\", "
                           "\"hostdev\", \"logs\"",
                           i);
        if (flags & flag)
            return err_set(-EINVAL, "define.keep[%zu]: \"%s\" is named twice", i, v);
        flags |= flag;
    }
    *ret = flags;
    return 0;
}

int
api_restore_body_read(const struct api_request *req, struct core_restore_request *out)
{
    json_t *define = NULL, *keep = NULL;
    json_int_t bandwidth = 0;
    int r;

    memset(out, 0, sizeof(*out));
    out->format = "qcow2";
    r = api_body_unpack(req, "{s:s, s?s, s?o, s?I}", "target_dir", &out->target_dir, "format",
                        &out->format, "define", &define, "bandwidth", &bandwidth);
    if (r < 0)
        return r;
    if (bandwidth < 0)
        return err_set(-EINVAL, "bandwidth must be a number of bytes per second, 0 for no limit");
    out->bandwidth = (uint64_t)bandwidth;
    if (define && !json_is_null(define)) {
        json_error_t jerr;

        if (json_unpack_ex(define, &jerr, JSON_STRICT, "{s:s, s?o}", "name", &out->define_name,
                           "keep", &keep) < 0)
            return err_set(-EINVAL, "define must be {\"name\": \"...\", \"keep\"?: [...]}: %s",
                           jerr.text);
        if (keep)
            return read_restore_keep(keep, &out->keep);
    }
    return 0;
}

int
api_retention_read(const json_t *obj, struct conf_retention *out)
{
    struct conf_retention r = {{0}};
    const char *key;
    json_t *v;

    if (!json_is_object(obj))
        return err_set(-EINVAL, "retention must be an object");
    json_object_foreach((json_t *)obj, key, v)
    {
        int o;
        for (o = 0; o < CONF_RETENTION_OPTION_LAST; o++)
            if (strcmp(key, conf_retention_option_to_string(o)) == 0)
                break;
        if (o == CONF_RETENTION_OPTION_LAST)
            return err_set(-EINVAL, "retention.%s is not a retention option", key);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > UINT32_MAX)
            return err_set(-EINVAL, "retention.%s must be a non-negative integer", key);
        r.keep[o] = (uint32_t)json_integer_value(v);
    }
    *out = r;
    return 0;
}
