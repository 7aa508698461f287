/*
 * The pure parts of offsite copies: S3 URL and key encoding, the XML
 * readers of S3's answers, the frames (zstd, AES-256-GCM) both ways and
 * what a decoder refuses, the manifest's JSON both ways and what its
 * parser refuses.
 */
#include <stdlib.h>
#include <string.h>

#include "conf/remote.h"
#include "net/frame.h"
#include "net/s3.h"
#include "tap.h"

static void
test_encode(void)
{
    static const struct {
        const char *in;
        bool slash;
        const char *out;
    } cases[] = {
        {"abc-._~XYZ019", false, "abc-._~XYZ019"},
        {"a b/c+d", true, "a%20b/c%2Bd"},
        {"a b/c+d", false, "a%20b%2Fc%2Bd"},
        {"=&?%", false, "%3D%26%3F%25"},
        {"\xc3\xa9", false, "%C3%A9"},
        {"", false, ""},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *o = s3_uri_encode(cases[i].in, cases[i].slash);
        ok(o && strcmp(o, cases[i].out) == 0, "uri encode %zu: %s", i, o ? o : "(null)");
        free(o);
    }
}

static void
test_url(void)
{
    struct s3_target path = {"http://127.0.0.1:7480", "us-east-1", "bkt", true, "a", "s", NULL};
    struct s3_target vhost = {"https://s3.example.com/", "eu-west-1", "bkt", false, "a", "s", NULL};
    char *u;

    u = s3_url(&path, "p/x y.img", "uploads=");
    ok(u && strcmp(u, "http://127.0.0.1:7480/bkt/p/x%20y.img?uploads=") == 0, "path style: %s", u);
    free(u);
    u = s3_url(&path, NULL, "versioning=");
    ok(u && strcmp(u, "http://127.0.0.1:7480/bkt?versioning=") == 0, "bucket, path style: %s", u);
    free(u);
    u = s3_url(&vhost, "k", NULL);
    ok(u && strcmp(u, "https://bkt.s3.example.com/k") == 0, "virtual host: %s", u);
    free(u);
}

static void
test_xml(void)
{
    static const char err[] = "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code>"
                              "<Message>The key &lt;a&amp;b&gt; &#39;x&#x27;</Message></Error>";
    static const char list[] =
        "<ListBucketResult><IsTruncated>true</IsTruncated>"
        "<Contents><Key>p/a&amp;b</Key><Size>12</Size></Contents>"
        "<Contents><Key>p/c</Key><Size>0</Size></Contents>"
        "<NextContinuationToken>tok/=+</NextContinuationToken></ListBucketResult>";
    static const char ups[] = "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated>"
                              "<Upload><Key>k</Key><UploadId>2~abc</UploadId></Upload>"
                              "</ListMultipartUploadsResult>";
    static const char *const bad[] = {
        "<Contents><Key>x</Key></Contents>",                 /* no size */
        "<Contents><Key>x</Key><Size>-1x</Size></Contents>", /* bad size */
        "<IsTruncated>true</IsTruncated>",                   /* no token */
        "<Contents><Key>x</Key><Size>1</Size>",              /* unclosed */
    };
    struct s3_result res = {0};
    struct s3_list l = {0};
    size_t pos = 0;
    char *v = NULL;

    s3_error_parse(err, strlen(err), &res);
    ok(strcmp(res.code, "NoSuchKey") == 0, "error code: %s", res.code);
    ok(strcmp(res.message, "The key <a&b> 'x'") == 0, "error message unescaped: %s", res.message);
    ok(s3_xml_next(err, strlen(err), "Nope", &pos, &v) == -ENOENT, "absent tag");
    ok(s3_xml_next("<a>x", 4, "a", &pos, &v) == -EINVAL, "unclosed tag");
    ok(s3_list_objects_parse(list, strlen(list), &l) == 0 && l.n == 2, "list: two keys");
    ok(l.n == 2 && strcmp(l.keys[0], "p/a&b") == 0 && l.sizes[0] == 12 && l.sizes[1] == 0,
       "list: keys and sizes");
    ok(l.next && strcmp(l.next, "tok/=+") == 0, "list: continuation token");
    s3_list_clear(&l);
    ok(s3_list_uploads_parse(ups, strlen(ups), &l) == 0 && l.n == 1 &&
           strcmp(l.upload_ids[0], "2~abc") == 0 && !l.next,
       "uploads: key and id");
    s3_list_clear(&l);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ok(s3_list_objects_parse(bad[i], strlen(bad[i]), &l) == -EINVAL, "bad listing %zu", i);
}

struct sink {
    unsigned char *data;
    size_t len;
};

static int
sink_write(void *opaque, uint64_t off, const void *data, size_t len)
{
    struct sink *s = opaque;

    if (off != s->len)
        return -EIO;
    s->data = realloc(s->data, s->len + len);
    memcpy(s->data + s->len, data, len);
    s->len += len;
    return 0;
}

/* Encodes raw as frames of about part bytes each into a new buffer. */
static unsigned char *
encode(const unsigned char *raw, size_t n, size_t step, const struct frame_key *key,
       size_t *ret_len)
{
    struct frame_enc *e = frame_enc_new(3);
    unsigned char *out = NULL;
    size_t len = 0, off = 0;
    uint32_t index = 1;

    do {
        const unsigned char *f;
        size_t fl, take = n - off < step ? n - off : step;
        frame_enc_begin(e, index++, off);
        frame_enc_feed(e, raw + off, take);
        off += take;
        frame_enc_end(e, key, &f, &fl);
        out = realloc(out, len + fl);
        memcpy(out + len, f, fl);
        len += fl;
    } while (off < n);
    frame_enc_free(e);
    *ret_len = len;
    return out;
}

/* Decodes buf fed in pieces of piece bytes; returns the feed/finish result. */
static int
decode(const unsigned char *buf, size_t len, size_t piece, const struct frame_key *key,
       struct sink *s)
{
    struct frame_dec *d = frame_dec_new(key, sink_write, s);
    int r = 0;

    for (size_t off = 0; r == 0 && off < len; off += piece)
        r = frame_dec_feed(d, buf + off, len - off < piece ? len - off : piece);
    if (r == 0)
        r = frame_dec_finish(d, NULL);
    frame_dec_free(d);
    return r;
}

static void
test_frames(void)
{
    size_t n = 3 * 1024 * 1024 + 17, len = 0;
    unsigned char *raw = malloc(n), *enc;
    struct frame_key key, other;
    struct sink s = {0};

    for (size_t i = 0; i < n; i++)
        raw[i] = (unsigned char)(i < n / 2 ? 'a' + (i % 7) : (i * 2654435761u) >> 13);
    memset(key.key, 7, sizeof(key.key));
    frame_key_set_id(&key);
    memset(other.key, 8, sizeof(other.key));
    frame_key_set_id(&other);
    ok(strlen(key.id) == 64 && strcmp(key.id, other.id) != 0, "key ids");

    enc = encode(raw, n, 1024 * 1024, NULL, &len);
    ok(len < n && memcmp(enc, "VVOF", 4) == 0, "plain frames: compressed (%zu of %zu)", len, n);
    ok(decode(enc, len, 4096, NULL, &s) == 0 && s.len == n && memcmp(s.data, raw, n) == 0,
       "plain frames: decoded in pieces");
    free(s.data);
    s = (struct sink){0};
    ok(decode(enc, len, 1, &key, &s) == -EBADMSG, "plain frames refused where a key is due");
    free(s.data);
    s = (struct sink){0};
    ok(decode(enc, len - 1, 65536, NULL, &s) == -EBADMSG, "a cut object is refused");
    free(s.data);
    free(enc);

    enc = encode(raw, n, 1024 * 1024, &key, &len);
    s = (struct sink){0};
    ok(decode(enc, len, 100000, &key, &s) == 0 && s.len == n && memcmp(s.data, raw, n) == 0,
       "sealed frames: opened");
    free(s.data);
    s = (struct sink){0};
    ok(decode(enc, len, 100000, &other, &s) == -EBADMSG && s.len == 0,
       "sealed frames: another key opens nothing");
    free(s.data);
    s = (struct sink){0};
    ok(decode(enc, len, 100000, NULL, &s) == -EBADMSG, "sealed frames: no key, refused");
    free(s.data);
    enc[FRAME_HEADER_LEN + 10] ^= 1;
    s = (struct sink){0};
    ok(decode(enc, len, 100000, &key, &s) == -EBADMSG && s.len == 0, "a changed byte is refused");
    free(s.data);
    enc[FRAME_HEADER_LEN + 10] ^= 1;
    enc[11] ^= 1; /* the frame's index, authenticated as additional data */
    s = (struct sink){0};
    ok(decode(enc, len, 100000, &key, &s) == -EBADMSG, "a frame out of order is refused");
    free(s.data);
    free(enc);

    enc = encode(raw, 0, 1024, &key, &len);
    s = (struct sink){0};
    ok(decode(enc, len, 7, &key, &s) == 0 && s.len == 0, "an empty image is one frame");
    free(s.data);
    free(enc);
    s = (struct sink){0};
    ok(decode((const unsigned char *)"", 0, 1, NULL, &s) == -EBADMSG, "no frame at all");
    free(raw);
}

static void
test_manifest(void)
{
    /* Strings the records borrow (they are never freed here: the records are on the stack). */
    static char target[] = "vda", file[] = "0f8e5a39-0000-4000-8000-000000000001/c1/b2.vda.qcow2",
                backing[] = "b1.vda.qcow2",
                sha[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                id[] = "b2", uuid[] = "0f8e5a39-0000-4000-8000-000000000001", name[] = "vm1",
                chain[] = "c1", parent[] = "b1", cp[] = "cp2", xml[] = "<domain/>",
                object[] = "p/x/vda.qcow2.zst.enc", host[] = "host1", zstd[] = "zstd",
                gcm[] = "aes-256-gcm", pieces[] = "sha256-pieces-8MiB",
                key_id[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    struct conf_backup_disk disk = {.target = target,
                                    .file = file,
                                    .backing = backing,
                                    .size = 1 << 30,
                                    .stored_bytes = 5000,
                                    .sha256 = sha,
                                    .checksum_algorithm = pieces};
    struct conf_backup b = {.id = id,
                            .domain_uuid = uuid,
                            .domain_name = name,
                            .type = CONF_BACKUP_TYPE_INCREMENTAL,
                            .chain_id = chain,
                            .parent_id = parent,
                            .checkpoint = cp,
                            .domain_xml = xml,
                            .n_disks = 1,
                            .disks = &disk};
    char *objects[] = {object};
    uint64_t obytes[] = {4096};
    struct conf_manifest m = {&b, host, NULL, zstd, gcm, key_id, objects, obytes, 1234, 99};
    struct conf_manifest *back = NULL;
    static const char *const bad[] = {
        "[]",
        "{\"format\": \"other\"}",
        "not json",
    };
    char *text = NULL;

    ok(conf_manifest_format(&m, &text) == 0 && text, "manifest formatted");
    ok(conf_manifest_parse(text, strlen(text), &back) == 0, "manifest parsed back");
    ok(back && strcmp(back->b->id, "b2") == 0 && strcmp(back->b->parent_id, "b1") == 0 &&
           back->b->type == CONF_BACKUP_TYPE_INCREMENTAL && !back->b->base_checkpoint &&
           back->b->n_disks == 1 && strcmp(back->b->disks[0].backing, "b1.vda.qcow2") == 0 &&
           back->b->disks[0].checksum_algorithm &&
           strcmp(back->b->disks[0].checksum_algorithm, "sha256-pieces-8MiB") == 0 &&
           back->object_bytes[0] == 4096 && strcmp(back->host, "host1") == 0 &&
           !back->checkpoint_xml && back->retain_until_ms == 99,
       "manifest round trip");
    conf_manifest_free(back);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        back = NULL;
        ok(conf_manifest_parse(bad[i], strlen(bad[i]), &back) == -EBADMSG && !back,
           "bad manifest %zu refused", i);
    }
    /* A path that climbs out, and a key id that is not one: refused. */
    {
        char *evil = NULL, *p = strstr(text, "b2.vda.qcow2");
        /* "<uuid>/c1/b2.vda.qcow2" -> "<uuid>/../b2.vda.qcow2" (same length as "c1" + '/') */
        evil = strdup(text);
        memcpy(evil + (p - text) - 3, "..", 2);
        back = NULL;
        ok(conf_manifest_parse(evil, strlen(evil), &back) == -EBADMSG,
           "a disk file outside the chain's folder is refused");
        free(evil);
        evil = strdup(text);
        p = strstr(evil, "bbbb");
        p[0] = 'X';
        ok(conf_manifest_parse(evil, strlen(evil), &back) == -EBADMSG, "a bad key id is refused");
        free(evil);
    }
    free(text);
}

int
main(void)
{
    test_encode();
    test_url();
    test_xml();
    test_frames();
    test_manifest();
    return tap_done();
}
