/*
 * Files inside backup points (core/files.h):
 *   GET /v1/domains/{domain}/backups/{id}/disks/{disk}/filesystems
 *   GET .../disks/{disk}/files?path=/etc[&filesystem=/dev/sda1]   a folder, paged by name
 *   GET .../disks/{disk}/files/content?path=/etc/hostname           a file's bytes (Range)
 * The first request on a backup point's disk launches its appliance, which
 * takes seconds: it runs deferred, off the HTTP threads; the requests after
 * it find the handle launched and answer at once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "api_json.h"
#include "cleanup.h"
#include "core/files.h"
#include "err.h"

#define PATH_PARAM_MAX 4096

static const char *const list_keys[] = {"path", "filesystem", "limit", "page_token", NULL};
static const char *const content_keys[] = {"path", "filesystem", NULL};

static int
no_files(void)
{
    return err_set(-EOPNOTSUPP, "this build has no file access (built without libguestfs)");
}

/* The `path` query parameter: present, absolute, of a sane length. */
static int
query_path(const struct api_request *req, const char **ret)
{
    const char *p = req->query(req, "path");

    if (!p)
        return err_set_parameter(-EINVAL, "path", "is required: an absolute path such as /etc");
    if (p[0] != '/')
        return err_set_parameter(-EINVAL, "path", "must be absolute (start with /)");
    if (strlen(p) > PATH_PARAM_MAX)
        return err_set_parameter(-EINVAL, "path", "must be at most %d bytes", PATH_PARAM_MAX);
    *ret = p;
    return 0;
}

/* The `filesystem` query parameter, or NULL when absent. */
static int
query_filesystem(const struct api_request *req, const char **ret)
{
    const char *f = req->query(req, "filesystem");

    if (f && (f[0] == '\0' || strlen(f) > 255))
        return err_set_parameter(-EINVAL, "filesystem",
                                 "must name a device of the disk's filesystems, e.g. /dev/sda1");
    *ret = f;
    return 0;
}

/*
 * s as a JSON string: a filesystem's names are bytes, and JSON needs UTF-8,
 * so a byte that does not start a valid UTF-8 sequence becomes U+FFFD.
 */
static json_t *
text_json(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    _cleanup_free_ char *out = NULL;
    size_t at = 0;
    json_t *j = json_string(s);

    if (j || !s)
        return j;
    out = malloc(strlen(s) * 3 + 1);
    if (!out)
        return NULL;
    while (*p) {
        size_t len = *p < 0x80         ? 1
                     : (*p >> 5) == 6  ? 2
                     : (*p >> 4) == 14 ? 3
                     : (*p >> 3) == 30 ? 4
                                       : 0;
        bool ok = len > 0;

        for (size_t k = 1; ok && k < len; k++)
            ok = (p[k] & 0xc0) == 0x80;
        if (ok) {
            memcpy(out + at, p, len);
            at += len;
            p += len;
        } else {
            memcpy(out + at, "\xef\xbf\xbd", 3);
            at += 3;
            p++;
        }
    }
    out[at] = '\0';
    /* Overlong forms and surrogates pass the check above but not jansson's: drop them too. */
    j = json_string(out);
    return j ? j : json_string("\xef\xbf\xbd");
}

static int
filesystems_now(const struct api_request *req, struct api_response *resp)
{
    struct conf_filesystem *fs = NULL;
    size_t n = 0;
    json_t *items;
    int r;

    r = core_backup_filesystems(req->params[0], req->params[1], req->params[2], &fs, &n);
    if (r < 0)
        return r;
    items = json_array();
    for (size_t i = 0; items && i < n; i++) {
        json_t *it = json_pack("{s:o, s:o, s:o, s:o, s:o}", "device", text_json(fs[i].device),
                               "type", text_json(fs[i].type), "label", text_json(fs[i].label),
                               "uuid", text_json(fs[i].uuid), "size",
                               fs[i].size >= 0 ? json_integer(fs[i].size) : json_null());
        if (!it || json_array_append_new(items, it) < 0) {
            json_decref(items);
            items = NULL;
        }
    }
    conf_filesystems_free(fs, n);
    if (!items)
        return -ENOMEM;
    return api_reply(resp, 200, api_list(items));
}

/*
 * What every route checks before it reads anything, in the order the
 * service answers: the backup and disk exist (404, 409), then the build can
 * read files (501).
 */
static int
files_target(const struct api_request *req)
{
    int r = core_backup_files_target(req->params[0], req->params[1], req->params[2]);

    if (r < 0)
        return r;
    return core_files_available() ? 0 : no_files();
}

/*
 * Answers a request on a path inside the disk: checks the target, then the
 * path and filesystem parameters, so bad input answers at once; then runs
 * now() here when the backup point's appliance is launched, else deferred
 * with the query parameters named in keys.
 */
static int
path_route(const struct api_request *req, struct api_response *resp, api_handler_fn now,
           const char *const *keys)
{
    const char *path, *filesystem;
    int r;

    r = files_target(req);
    if (r >= 0)
        r = query_path(req, &path);
    if (r >= 0)
        r = query_filesystem(req, &filesystem);
    if (r < 0)
        return r;
    if (core_files_warm(req->params[1]))
        return now(req, resp);
    return api_defer(req, resp, now, keys);
}

int
api_backup_filesystems(const struct api_request *req, struct api_response *resp)
{
    int r = files_target(req);

    if (r < 0)
        return r;
    if (core_files_warm(req->params[1]))
        return filesystems_now(req, resp);
    return api_defer(req, resp, filesystems_now, NULL);
}

static json_t *
file_json(const struct conf_file *f)
{
    char mode[8];
    json_t *o;

    snprintf(mode, sizeof(mode), "%04o", f->mode);
    o = json_pack("{s:o, s:s, s:I, s:s, s:o}", "name", text_json(f->name), "type",
                  conf_file_type_to_string(f->type), "size", (json_int_t)f->size, "mode", mode,
                  "mtime", api_time_json(f->mtime_s * 1000));
    if (o && f->type == CONF_FILE_SYMLINK && f->target &&
        json_object_set_new(o, "target", text_json(f->target)) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static int
files_list_now(const struct api_request *req, struct api_response *resp)
{
    _cleanup_(api_page_clear) struct api_page page = {0};
    struct core_files_dir *d = NULL;
    const char *path, *filesystem;
    size_t start = 0, end;
    json_t *items, *out;
    int r;

    r = query_path(req, &path);
    if (r >= 0)
        r = query_filesystem(req, &filesystem);
    if (r >= 0)
        r = api_query_page(req, "files", &page);
    if (r < 0)
        return r;
    r = core_backup_files_list(req->params[0], req->params[1], req->params[2], filesystem, path,
                               &d);
    if (r < 0)
        return r;
    /* Sorted by name: the key is the last name answered. */
    if (page.after)
        while (start < d->n && strcmp(d->items[start].name, page.after) <= 0)
            start++;
    end = start + page.limit < d->n ? start + page.limit : d->n;
    items = json_array();
    for (size_t i = start; items && i < end; i++)
        if (json_array_append_new(items, file_json(&d->items[i])) < 0) {
            json_decref(items);
            items = NULL;
        }
    out = items ? api_page_json(items, "files", end < d->n ? d->items[end - 1].name : NULL) : NULL;
    if (out && (json_object_set_new(out, "path", text_json(d->path)) < 0 ||
                json_object_set_new(out, "filesystem", json_string(d->filesystem)) < 0)) {
        json_decref(out);
        out = NULL;
    }
    core_files_dir_free(d);
    if (!out)
        return -ENOMEM;
    return api_reply(resp, 200, out);
}

int
api_backup_files_list(const struct api_request *req, struct api_response *resp)
{
    _cleanup_(api_page_clear) struct api_page page = {0};
    int r;

    /* Bad input answers at once, launched or not: paging, the resource, then the rest. */
    r = api_query_page(req, "files", &page);
    if (r < 0)
        return r;
    return path_route(req, resp, files_list_now, list_keys);
}

static ssize_t
content_read(void *opaque, uint64_t pos, char *buf, size_t max)
{
    /* The stream asks only within the size and ends in an error on 0 (a file that shrank). */
    return core_file_reader_read(opaque, pos, buf, max);
}

static void
content_free(void *opaque)
{
    core_file_reader_free(opaque);
}

/*
 * Writes the Content-Disposition of an attachment named name into buf:
 * filename= with the name's printable ASCII (others as '_'), and
 * filename*= (RFC 6266, 8187) with every byte outside the safe set
 * percent-encoded.
 */
static void
disposition(const char *name, char *buf, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t at = 0;
    int n;

    n = snprintf(buf, size, "attachment; filename=\"");
    at = n > 0 ? (size_t)n : 0;
    for (const unsigned char *p = (const unsigned char *)name; *p && at + 64 < size; p++)
        buf[at++] = *p < 0x20 || *p >= 0x7f || *p == '"' || *p == '\\' ? '_' : (char)*p;
    at += (size_t)snprintf(buf + at, size - at, "\"; filename*=UTF-8''");
    for (const unsigned char *p = (const unsigned char *)name; *p && at + 8 < size; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("!#$&+-.^_`|~", *p)) {
            buf[at++] = (char)*p;
        } else {
            buf[at++] = '%';
            buf[at++] = hex[*p >> 4];
            buf[at++] = hex[*p & 15];
        }
    }
    buf[at] = '\0';
}

static int
content_now(const struct api_request *req, struct api_response *resp)
{
    struct core_file_reader *rd = NULL;
    const char *path, *filesystem;
    struct api_stream *st;
    int r;

    r = query_path(req, &path);
    if (r >= 0)
        r = query_filesystem(req, &filesystem);
    if (r < 0)
        return r;
    r = core_backup_file_open(req->params[0], req->params[1], req->params[2], filesystem, path,
                              &rd);
    if (r < 0)
        return r;
    st = calloc(1, sizeof(*st));
    if (!st) {
        core_file_reader_free(rd);
        return -ENOMEM;
    }
    *st = (struct api_stream){
        .size = core_file_reader_size(rd),
        .ranges = true,
        .content_type = "application/octet-stream",
        .read = content_read,
        .free = content_free,
        .opaque = rd,
    };
    disposition(core_file_reader_name(rd), st->disposition, sizeof(st->disposition));
    return api_reply_stream(resp, st);
}

int
api_backup_file_content(const struct api_request *req, struct api_response *resp)
{
    return path_route(req, resp, content_now, content_keys);
}

int
api_files_metrics(FILE *f)
{
    uint64_t launches = 0;
    unsigned open = 0;

    core_files_stats(&launches, &open);
    fprintf(f,
            "# HELP virtvault_files_appliance_launches_total libguestfs appliances launched to "
            "read files inside backups.\n"
            "# TYPE virtvault_files_appliance_launches_total counter\n"
            "virtvault_files_appliance_launches_total %llu\n"
            "# HELP virtvault_files_handles_open File handles of backup points open (launched "
            "or launching).\n"
            "# TYPE virtvault_files_handles_open gauge\n"
            "virtvault_files_handles_open %u\n",
            (unsigned long long)launches, open);
    return 0;
}
