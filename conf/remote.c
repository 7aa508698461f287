/* Remotes, copies and manifests (see remote.h). */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "err.h"
#include "hash.h"
#include "remote.h"
#include "text.h"

CONF_ENUM_IMPL(conf_copy_state, enum conf_copy_state, CONF_COPY_STATE_LAST, "uploading",
               "completed", "failed");

void
conf_remote_clear(struct conf_remote *r)
{
    if (!r)
        return;
    free(r->name);
    free(r->endpoint);
    free(r->region);
    free(r->bucket);
    free(r->prefix);
    free(r->access_key);
    if (r->secret)
        explicit_bzero(r->secret, strlen(r->secret));
    free(r->secret);
    free(r->ca_file);
    free(r->key_file);
    memset(r, 0, sizeof(*r));
}

void
conf_remote_list_free(struct conf_remote *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        conf_remote_clear(&list[i]);
    free(list);
}

void
conf_copy_clear(struct conf_copy *c)
{
    if (!c)
        return;
    free(c->backup_id);
    free(c->remote);
    free(c->job_id);
    free(c->error);
    memset(c, 0, sizeof(*c));
}

void
conf_copy_list_free(struct conf_copy *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        conf_copy_clear(&list[i]);
    free(list);
}

void
conf_copy_part_list_free(struct conf_copy_part *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        free(list[i].etag);
    free(list);
}

void
conf_manifest_free(struct conf_manifest *m)
{
    if (!m)
        return;
    for (size_t i = 0; m->objects && m->b && i < m->b->n_disks; i++)
        free(m->objects[i]);
    conf_backup_free(m->b);
    free(m->host);
    free(m->checkpoint_xml);
    free(m->compression);
    free(m->encryption);
    free(m->key_id);
    free(m->objects);
    free(m->object_bytes);
    free(m);
}

void
conf_manifest_list_free(struct conf_manifest **list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        conf_manifest_free(list[i]);
    free(list);
}

#define MANIFEST_FORMAT  "virtvault-offsite-manifest"
#define MANIFEST_VERSION 1
/* Optional members are left out when unset (never null): the parser takes them as absent. */

int
conf_manifest_format(const struct conf_manifest *m, char **ret)
{
    const struct conf_backup *b = m->b;
    json_auto_t *disks = json_array();
    json_auto_t *j = NULL;
    char *text;

    if (!disks)
        return -ENOMEM;
    for (size_t i = 0; i < b->n_disks; i++) {
        const struct conf_backup_disk *d = &b->disks[i];
        if (json_array_append_new(
                disks,
                json_pack(
                    "{s:s, s:s, s:s*, s:I, s:I, s:s*, s:s*, s:s, s:I}", "target", d->target, "file",
                    d->file, "backing", d->backing, "size", (json_int_t)d->size, "stored_bytes",
                    (json_int_t)d->stored_bytes, "sha256", d->sha256, "checksum_algorithm",
                    d->sha256 ? (d->checksum_algorithm ? d->checksum_algorithm : HASH_ALG_FILE)
                              : NULL,
                    "object", m->objects[i], "object_bytes", (json_int_t)m->object_bytes[i])) < 0)
            return -ENOMEM;
    }
    j = json_pack("{s:s, s:i, s:s, s:s, s:s*, s:s, s:s, s:s*, s:s*, s:s*, s:s*, s:s*, s:s*, "
                  "s:I, s:I, s:I, s:I, s:s, s:s, s:s*, s:O, s:o*}",
                  "format", MANIFEST_FORMAT, "version", MANIFEST_VERSION, "backup_id", b->id,
                  "domain_uuid", b->domain_uuid, "domain_name", b->domain_name, "host", m->host,
                  "type", conf_backup_type_to_string(b->type), "chain_id", b->chain_id, "parent_id",
                  b->parent_id, "base_checkpoint", b->base_checkpoint, "checkpoint", b->checkpoint,
                  "checkpoint_xml", m->checkpoint_xml, "domain_xml", b->domain_xml, "started_ms",
                  (json_int_t)b->started_at, "finished_ms", (json_int_t)b->finished_at,
                  "stored_bytes", (json_int_t)b->stored_bytes, "copied_ms",
                  (json_int_t)m->copied_ms, "compression", m->compression, "encryption",
                  m->encryption, "key_id", m->key_id, "disks", disks, "retain_until_ms",
                  m->retain_until_ms ? json_integer(m->retain_until_ms) : NULL);
    if (!j)
        return -ENOMEM;
    text = json_dumps(j, JSON_INDENT(1) | JSON_SORT_KEYS);
    if (!text)
        return -ENOMEM;
    *ret = text;
    return 0;
}

/* A new copy of s, or NULL for NULL; *oom set when the copy fails. */
static char *
dup_opt(const char *s, bool *oom)
{
    char *c;

    if (!s)
        return NULL;
    c = strdup(s);
    if (!c)
        *oom = true;
    return c;
}

/* True for a name made of [A-Za-z0-9._-] (what a vault path or disk target may hold), 1..128. */
static bool
safe_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 128 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* True for a relative path of safe names joined by '/' (no "..", no leading '/'). */
static bool
safe_path(const char *s)
{
    char buf[1024];
    char *save = NULL;
    size_t n = 0;

    if (strlen(s) >= sizeof(buf) || s[0] == '/')
        return false;
    snprintf(buf, sizeof(buf), "%s", s);
    for (char *t = strtok_r(buf, "/", &save); t; t = strtok_r(NULL, "/", &save), n++)
        if (!safe_name(t))
            return false;
    return n > 0 && s[strlen(s) - 1] != '/' && !strstr(s, "//");
}

static bool
hex_string(const char *s, size_t len)
{
    return s && strlen(s) == len && strspn(s, "0123456789abcdef") == len;
}

/* Reads the disks array of a manifest into m. */
static int
parse_disks(json_t *disks, struct conf_manifest *m)
{
    struct conf_backup *b = m->b;
    size_t n = json_array_size(disks), i;
    json_t *v;

    if (n == 0 || n > 64)
        return err_set(-EBADMSG, "a manifest names 1 to 64 disks");
    b->disks = calloc(n, sizeof(*b->disks));
    m->objects = calloc(n, sizeof(*m->objects));
    m->object_bytes = calloc(n, sizeof(*m->object_bytes));
    if (!b->disks || !m->objects || !m->object_bytes)
        return -ENOMEM;
    b->n_disks = n;
    json_array_foreach(disks, i, v)
    {
        const char *target = NULL, *file = NULL, *backing = NULL, *sha = NULL, *object = NULL;
        const char *alg = NULL;
        json_int_t size = 0, stored = 0, obytes = 0;
        json_error_t e;
        bool oom = false;

        if (json_unpack_ex(v, &e, JSON_STRICT, "{s:s, s:s, s?s, s:I, s:I, s?s, s?s, s:s, s:I}",
                           "target", &target, "file", &file, "backing", &backing, "size", &size,
                           "stored_bytes", &stored, "sha256", &sha, "checksum_algorithm", &alg,
                           "object", &object, "object_bytes", &obytes) < 0)
            return err_set(-EBADMSG, "manifest disk %zu: %s", i, e.text);
        if (!safe_name(target) || !safe_path(file) || (backing && !safe_path(backing)) ||
            (sha && !hex_string(sha, 64)) ||
            (alg && strcmp(alg, HASH_ALG_FILE) != 0 && strcmp(alg, HASH_ALG_PIECES) != 0) ||
            size < 0 || stored < 0 || obytes < 0 || strlen(object) > 1024 || !object[0])
            return err_set(-EBADMSG, "manifest disk %zu: a field out of range", i);
        b->disks[i].target = dup_opt(target, &oom);
        b->disks[i].file = dup_opt(file, &oom);
        b->disks[i].backing = dup_opt(backing, &oom);
        b->disks[i].sha256 = dup_opt(sha, &oom);
        b->disks[i].checksum_algorithm = dup_opt(alg, &oom);
        b->disks[i].size = (uint64_t)size;
        b->disks[i].stored_bytes = (uint64_t)stored;
        m->objects[i] = dup_opt(object, &oom);
        m->object_bytes[i] = (uint64_t)obytes;
        if (oom)
            return -ENOMEM;
    }
    return 0;
}

int
conf_manifest_parse(const char *text, size_t len, struct conf_manifest **ret)
{
    _cleanup_(conf_manifest_freep) struct conf_manifest *m = calloc(1, sizeof(*m));
    json_auto_t *j = NULL;
    json_error_t e;
    const char *format = NULL, *id = NULL, *uuid = NULL, *name = NULL, *host = NULL, *type = NULL,
               *chain = NULL, *parent = NULL, *base = NULL, *cp = NULL, *cp_xml = NULL,
               *dom_xml = NULL, *comp = NULL, *enc = NULL, *key_id = NULL;
    json_int_t version = 0, started = 0, finished = 0, stored = 0, copied = 0, retain = 0;
    json_t *disks = NULL;
    bool oom = false;
    int r;

    if (!m || !(m->b = calloc(1, sizeof(*m->b))))
        return -ENOMEM;
    if (len > CONF_MANIFEST_MAX)
        return err_set(-EBADMSG, "a manifest larger than %d bytes", CONF_MANIFEST_MAX);
    j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
    if (!j)
        return err_set(-EBADMSG, "a manifest that is not JSON: %s", e.text);
    if (json_unpack_ex(j, &e, JSON_STRICT,
                       "{s:s, s:I, s:s, s:s, s?s, s:s, s:s, s?s, s?s, s?s, s?s, s?s, s?s, s:I, "
                       "s:I, s:I, s:I, s:s, s:s, s?s, s:o, s?I}",
                       "format", &format, "version", &version, "backup_id", &id, "domain_uuid",
                       &uuid, "domain_name", &name, "host", &host, "type", &type, "chain_id",
                       &chain, "parent_id", &parent, "base_checkpoint", &base, "checkpoint", &cp,
                       "checkpoint_xml", &cp_xml, "domain_xml", &dom_xml, "started_ms", &started,
                       "finished_ms", &finished, "stored_bytes", &stored, "copied_ms", &copied,
                       "compression", &comp, "encryption", &enc, "key_id", &key_id, "disks", &disks,
                       "retain_until_ms", &retain) < 0)
        return err_set(-EBADMSG, "not a manifest: %s", e.text);
    if (strcmp(format, MANIFEST_FORMAT) != 0 || version != MANIFEST_VERSION)
        return err_set(-EBADMSG, "a manifest of another format or version");
    if (!safe_name(id) || !text_is_uuid(uuid) || (chain && !safe_name(chain)) ||
        (parent && !safe_name(parent)) || !json_is_array(disks))
        return err_set(-EBADMSG, "a manifest with an id, UUID, chain or parent out of range");
    if (conf_backup_type_from_string(type, &m->b->type) < 0 || m->b->type == CONF_BACKUP_TYPE_AUTO)
        return err_set(-EBADMSG, "a manifest with an unknown type");
    if (strcmp(comp, "zstd") != 0)
        return err_set(-EBADMSG, "a manifest with an unknown compression");
    if (strcmp(enc, "none") == 0 ? key_id != NULL
                                 : strcmp(enc, "aes-256-gcm") != 0 || !hex_string(key_id, 64))
        return err_set(-EBADMSG, "a manifest with an unknown encryption or key id");
    m->b->id = dup_opt(id, &oom);
    m->b->domain_uuid = dup_opt(uuid, &oom);
    m->b->domain_name = dup_opt(name, &oom);
    m->b->chain_id = dup_opt(chain, &oom);
    m->b->parent_id = dup_opt(parent, &oom);
    m->b->base_checkpoint = dup_opt(base, &oom);
    m->b->checkpoint = dup_opt(cp, &oom);
    m->b->domain_xml = dup_opt(dom_xml, &oom);
    m->b->started_at = started;
    m->b->finished_at = finished;
    m->b->stored_bytes = stored < 0 ? 0 : (uint64_t)stored;
    m->b->state = CONF_BACKUP_STATE_COMPLETED;
    m->b->verify_ok = -1;
    m->host = dup_opt(host, &oom);
    m->checkpoint_xml = dup_opt(cp_xml, &oom);
    m->compression = dup_opt(comp, &oom);
    m->encryption = dup_opt(enc, &oom);
    m->key_id = dup_opt(key_id, &oom);
    m->copied_ms = copied;
    m->retain_until_ms = retain > 0 ? retain : 0;
    if (oom)
        return -ENOMEM;
    r = parse_disks(disks, m);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(m);
    return 0;
}
