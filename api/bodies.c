/* The request bodies of every resource; see bodies.h. */
#include <errno.h>
#include <string.h>

#include "bodies.h"
#include "cleanup.h"
#include "err.h"
#include "text.h"

#define DESCRIPTION_MAX 1024

/* The end of a list of struct api_field. */
#define FIELDS_END                                                                                 \
    {                                                                                              \
        NULL, API_FIELD_STRING, false, false                                                       \
    }

/* Free text that goes into XML: bounded, no NUL, no control characters but tab and newline. */
static int
check_description(const char *s, size_t len)
{
    if (len > DESCRIPTION_MAX)
        return err_set_pointer(-EINVAL, "/description", "must be at most %d bytes",
                               DESCRIPTION_MAX);
    if (strlen(s) != len)
        return err_set_pointer(-EINVAL, "/description", "must not contain NUL characters");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p < 0x20 && *p != '\t' && *p != '\n') || *p == 0x7f)
            return err_set_pointer(-EINVAL, "/description",
                                   "must not contain control characters other than tab and "
                                   "newline");
    return 0;
}

/* A list of 1 to API_BODY_DISKS_MAX disk targets ("vda"), into names[]. */
static int
read_disk_targets(json_t *disks, const char **names, size_t *ret_n)
{
    size_t n = json_array_size(disks);

    if (!json_is_array(disks) || n == 0 || n > API_BODY_DISKS_MAX)
        return err_set_pointer(-EINVAL, "/disks",
                               "must name 1 to %d disk targets (or be left out for all)",
                               API_BODY_DISKS_MAX);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(disks, i);
        const char *t = json_string_value(v);
        char ptr[TEXT_POINTER_MAX];

        text_pointer_join(ptr, sizeof(ptr), "/disks", NULL, i);
        if (!json_is_string(v) || strlen(t) != json_string_length(v) || !text_name_valid(t))
            return err_set_pointer(-EINVAL, ptr, "must be a disk target such as \"vda\"");
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
    r = api_body_unpack(req,
                        (const struct api_field[]){{"name", API_FIELD_STRING, false, false},
                                                   {"description", API_FIELD_STRING, false, false},
                                                   {"disks", API_FIELD_ARRAY, false, false},
                                                   FIELDS_END},
                        "{s?s%, s?s%, s?o}", "name", &name, &name_len, "description", &description,
                        &description_len, "disks", &disks);
    if (r < 0)
        return r;
    if (name && (strlen(name) != name_len || !text_name_valid(name)))
        return err_set_pointer(-EINVAL, "/name",
                               "must be 1 to %d characters from A-Z a-z 0-9 . _ -, not "
                               "starting with '.'",
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
    int r = api_body_unpack(
        req, (const struct api_field[]){{"adopt", API_FIELD_BOOL, false, false}, FIELDS_END},
        "{s?b}", "adopt", &flag);

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
    r = api_body_unpack(req,
                        (const struct api_field[]){{"name", API_FIELD_STRING, false, false},
                                                   {"description", API_FIELD_STRING, false, false},
                                                   {"kind", API_FIELD_STRING, false, false},
                                                   {"location", API_FIELD_STRING, false, false},
                                                   {"memory_file", API_FIELD_STRING, false, false},
                                                   {"quiesce", API_FIELD_BOOL, false, false},
                                                   {"disks", API_FIELD_ARRAY, false, false},
                                                   FIELDS_END},
                        "{s?s, s?s, s?s, s?s, s?s, s?b, s?o}", "name", &q->name, "description",
                        &q->description, "kind", &q->kind, "location", &q->location, "memory_file",
                        &q->memory_file, "quiesce", &quiesce, "disks", &disks);
    if (r < 0)
        return r;
    q->quiesce = quiesce;
    q->disks = out->disks;
    if (!disks)
        return 0;
    if (json_array_size(disks) > API_BODY_DISKS_MAX)
        return err_set_pointer(-EINVAL, "/disks", "must have at most %d entries",
                               API_BODY_DISKS_MAX);
    json_array_foreach(disks, i, d)
    {
        static const struct api_field disk_fields[] = {
            {"target", API_FIELD_STRING, true, false},
            {"location", API_FIELD_STRING, false, false},
            {"file", API_FIELD_STRING, false, false},
            FIELDS_END,
        };
        struct core_snapshot_disk_req *dq = &out->disks[i];
        char ptr[TEXT_POINTER_MAX];

        text_pointer_join(ptr, sizeof(ptr), "/disks", NULL, i);
        r = api_fields_check(d, ptr, disk_fields);
        if (r < 0)
            return r;
        if (json_unpack(d, "{s:s, s?s, s?s}", "target", &dq->target, "location", &dq->location,
                        "file", &dq->file) < 0)
            return err_set(-EIO, "%s could not be read", ptr);
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

    r = api_body_unpack(req,
                        (const struct api_field[]){{"start", API_FIELD_STRING, false, false},
                                                   {"force", API_FIELD_BOOL, false, false},
                                                   FIELDS_END},
                        "{s?s, s?b}", "start", &name, "force", &flag);
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
    return err_set_pointer(-EINVAL, "/start", "must be running, paused or as_taken");
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
    r = api_body_unpack(req,
                        (const struct api_field[]){{"type", API_FIELD_STRING, false, false},
                                                   {"since", API_FIELD_STRING, false, false},
                                                   {"disks", API_FIELD_ARRAY, false, false},
                                                   {"bandwidth", API_FIELD_INTEGER, false, false},
                                                   {"mode", API_FIELD_STRING, false, false},
                                                   {"target", API_FIELD_STRING, false, false},
                                                   FIELDS_END},
                        "{s?s, s?s, s?o, s?I, s?s, s?s}", "type", &type, "since", &since, "disks",
                        &disks, "bandwidth", &bandwidth, "mode", &mode, "target", &target);
    if (r < 0)
        return r;
    if (conf_backup_mode_from_string(mode, &mode_v) < 0)
        return err_set_pointer(-EINVAL, "/mode", "must be push or pull");
    if (target && strcmp(target, "vault") != 0 && strcmp(target, "client") != 0)
        return err_set_pointer(-EINVAL, "/target", "must be client or vault");
    if (target && mode_v == CONF_BACKUP_MODE_PUSH)
        return err_set_pointer(-EINVAL, "/target",
                               "goes with mode pull only (a push backup always goes into the "
                               "vault)");
    if (bandwidth < 0)
        return err_set_pointer(-EINVAL, "/bandwidth",
                               "must be a number of bytes per second, 0 for no limit");
    if (bandwidth && mode_v == CONF_BACKUP_MODE_PULL)
        return err_set_pointer(-EINVAL, "/bandwidth",
                               "goes with mode push only (a pull reader sets its own pace)");
    if (conf_backup_type_from_string(type, &type_v) < 0)
        return err_set_pointer(-EINVAL, "/type",
                               "must be one of full, incremental, differential, auto");
    if (since && !text_name_valid(since))
        return err_set_pointer(-EINVAL, "/since", "must be a checkpoint name");
    if (since && type_v != CONF_BACKUP_TYPE_DIFFERENTIAL)
        return err_set_pointer(-EINVAL, "/since", "goes with type differential only");
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

    if (json_array_size(keep) > ARRAY_SIZE(restore_keep))
        return err_set_pointer(-EINVAL, "/define/keep",
                               "must be a list of at most %zu of \"lun\", \"filesystem\", "
                               "\"hostdev\", \"logs\"",
                               ARRAY_SIZE(restore_keep));
    for (size_t i = 0; i < json_array_size(keep); i++) {
        const char *v = json_string_value(json_array_get(keep, i));
        unsigned flag = 0;
        char ptr[TEXT_POINTER_MAX];

        text_pointer_join(ptr, sizeof(ptr), "/define/keep", NULL, i);
        for (size_t k = 0; v && k < ARRAY_SIZE(restore_keep); k++)
            if (strlen(v) == json_string_length(json_array_get(keep, i)) &&
                strcmp(v, restore_keep[k].name) == 0)
                flag = restore_keep[k].flag;
        if (!flag)
            return err_set_pointer(-EINVAL, ptr,
                                   "must be one of \"lun\", \"filesystem\", \"hostdev\", "
                                   "\"logs\"");
        if (flags & flag)
            return err_set_pointer(-EINVAL, ptr, "names \"%s\" a second time", v);
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
    r = api_body_unpack(req,
                        (const struct api_field[]){{"target_dir", API_FIELD_STRING, true, false},
                                                   {"format", API_FIELD_STRING, false, false},
                                                   {"define", API_FIELD_OBJECT, false, true},
                                                   {"bandwidth", API_FIELD_INTEGER, false, false},
                                                   FIELDS_END},
                        "{s:s, s?s, s?o, s?I}", "target_dir", &out->target_dir, "format",
                        &out->format, "define", &define, "bandwidth", &bandwidth);
    if (r < 0)
        return r;
    if (bandwidth < 0)
        return err_set_pointer(-EINVAL, "/bandwidth",
                               "must be a number of bytes per second, 0 for no limit");
    out->bandwidth = (uint64_t)bandwidth;
    if (define && !json_is_null(define)) {
        static const struct api_field define_fields[] = {
            {"name", API_FIELD_STRING, true, false},
            {"keep", API_FIELD_ARRAY, false, false},
            FIELDS_END,
        };

        r = api_fields_check(define, "/define", define_fields);
        if (r < 0)
            return r;
        if (json_unpack(define, "{s:s, s?o}", "name", &out->define_name, "keep", &keep) < 0)
            return err_set(-EIO, "define could not be read");
        if (keep)
            return read_restore_keep(keep, &out->keep);
    }
    return 0;
}

int
api_instant_recovery_body_read(const struct api_request *req,
                               struct core_instant_recovery_request *out)
{
    json_int_t bandwidth = 0;
    int start = 1;
    int r;

    memset(out, 0, sizeof(*out));
    r = api_body_unpack(req,
                        (const struct api_field[]){{"name", API_FIELD_STRING, true, false},
                                                   {"target_dir", API_FIELD_STRING, true, false},
                                                   {"start", API_FIELD_BOOL, false, false},
                                                   {"bandwidth", API_FIELD_INTEGER, false, false},
                                                   FIELDS_END},
                        "{s:s, s:s, s?b, s?I}", "name", &out->name, "target_dir", &out->target_dir,
                        "start", &start, "bandwidth", &bandwidth);
    if (r < 0)
        return r;
    if (bandwidth < 0)
        return err_set_pointer(-EINVAL, "/bandwidth",
                               "must be a number of bytes per second, 0 for no limit");
    out->bandwidth = (uint64_t)bandwidth;
    out->start = start != 0;
    return 0;
}

int
api_retention_read(const json_t *obj, const char *at, struct conf_retention *out)
{
    struct conf_retention r = {{0}};
    char ptr[TEXT_POINTER_MAX];
    const char *key;
    json_t *v;

    if (!json_is_object(obj))
        return err_set_pointer(-EINVAL, at, "must be an object");
    json_object_foreach((json_t *)obj, key, v)
    {
        int o;
        for (o = 0; o < CONF_RETENTION_OPTION_LAST; o++)
            if (strcmp(key, conf_retention_option_to_string(o)) == 0)
                break;
        text_pointer_join(ptr, sizeof(ptr), at, key, 0);
        if (o == CONF_RETENTION_OPTION_LAST)
            return err_set_pointer(-EINVAL, ptr, "is not a retention option");
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > UINT32_MAX)
            return err_set_pointer(-EINVAL, ptr, "must be an integer from 0 to %u", UINT32_MAX);
        r.keep[o] = (uint32_t)json_integer_value(v);
    }
    *out = r;
    return 0;
}

int
api_prune_body_read(const struct api_request *req, struct conf_retention *retention, bool *dry_run)
{
    static const struct api_field fields[] = {{"retention", API_FIELD_OBJECT, true, false},
                                              {"dry_run", API_FIELD_BOOL, false, false},
                                              {NULL, API_FIELD_STRING, false, false}};
    json_t *obj = NULL;
    int dry = 0;
    int r;

    r = api_body_unpack(req, fields, "{s:o, s?b}", "retention", &obj, "dry_run", &dry);
    if (r < 0)
        return r;
    r = api_retention_read(obj, "/retention", retention);
    if (r < 0)
        return r;
    *dry_run = dry;
    return 0;
}

int
api_protect_body_read(const struct api_request *req, bool *on)
{
    static const struct api_field fields[] = {{"protected", API_FIELD_BOOL, true, false},
                                              {NULL, API_FIELD_STRING, false, false}};
    int v = 0;
    int r;

    r = api_body_unpack(req, fields, "{s:b}", "protected", &v);
    if (r < 0)
        return r;
    *on = v;
    return 0;
}
