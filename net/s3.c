/* The S3 client (see s3.h). */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "curl_priv.h"
#include "cleanup.h"
#include "hash.h"
#include "s3.h"

void
s3_result_describe(const struct s3_result *res, char *buf, size_t size)
{
    if (res->status == 0)
        snprintf(buf, size, "no answer: %s", res->error[0] ? res->error : "unknown error");
    else if (res->code[0])
        snprintf(buf, size, "HTTP %d %s%s%s", res->status, res->code, res->message[0] ? ": " : "",
                 res->message);
    else
        snprintf(buf, size, "HTTP %d%s%s", res->status, res->error[0] ? ": " : "", res->error);
}

char *
s3_uri_encode(const char *s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1), *o = out;

    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~' || (keep_slash && *p == '/')) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

char *
s3_url(const struct s3_target *t, const char *key, const char *query)
{
    _cleanup_free_ char *ekey = key ? s3_uri_encode(key, true) : strdup("");
    const char *scheme_end = strstr(t->endpoint, "://");
    size_t elen = strlen(t->endpoint);
    char *out = NULL;
    int r;

    if (!ekey || !scheme_end)
        return NULL;
    while (elen > 0 && t->endpoint[elen - 1] == '/')
        elen--;
    if (t->path_style)
        r = asprintf(&out, "%.*s/%s%s%s%s%s", (int)elen, t->endpoint, t->bucket, key ? "/" : "",
                     ekey, query ? "?" : "", query ? query : "");
    else
        r = asprintf(&out, "%.*s%s.%.*s/%s%s%s", (int)(scheme_end + 3 - t->endpoint), t->endpoint,
                     t->bucket, (int)(elen - (size_t)(scheme_end + 3 - t->endpoint)),
                     scheme_end + 3, ekey, query ? "?" : "", query ? query : "");
    return r < 0 ? NULL : out;
}

/* Decodes the five XML entities and numeric ones of text[0..len) into a new string. */
static char *
xml_unescape(const char *text, size_t len)
{
    static const struct {
        const char *name;
        char c;
    } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    char *out = malloc(len + 1), *o = out;

    if (!out)
        return NULL;
    for (size_t i = 0; i < len;) {
        bool done = false;
        if (text[i] == '&') {
            for (size_t e = 0; e < sizeof(ents) / sizeof(ents[0]) && !done; e++) {
                size_t el = strlen(ents[e].name);
                if (len - i >= el && memcmp(text + i, ents[e].name, el) == 0) {
                    *o++ = ents[e].c;
                    i += el;
                    done = true;
                }
            }
            if (!done && len - i >= 4 && text[i + 1] == '#') {
                /* &#NN; or &#xHH; of an ASCII character */
                size_t j = i + 2;
                unsigned v = 0;
                bool hexa = j < len && (text[j] == 'x' || text[j] == 'X');
                if (hexa)
                    j++;
                while (j < len && j - i < 8 && text[j] != ';') {
                    char c = text[j];
                    unsigned d = c >= '0' && c <= '9'           ? (unsigned)(c - '0')
                                 : hexa && c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                                 : hexa && c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                                                : 100;
                    if (d >= (hexa ? 16u : 10u))
                        break;
                    v = v * (hexa ? 16 : 10) + d;
                    j++;
                }
                if (j < len && text[j] == ';' && v > 0 && v < 128) {
                    *o++ = (char)v;
                    i = j + 1;
                    done = true;
                }
            }
        }
        if (!done)
            *o++ = text[i++];
    }
    *o = '\0';
    return out;
}

/* memmem that the fuzzer's sanitizers see through. */
static const char *
find(const char *hay, size_t hay_len, const char *needle, size_t n)
{
    if (n == 0 || hay_len < n)
        return NULL;
    for (size_t i = 0; i + n <= hay_len; i++)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, n) == 0)
            return hay + i;
    return NULL;
}

int
s3_xml_next(const char *xml, size_t len, const char *tag, size_t *pos, char **ret)
{
    char open[80], close[80];
    const char *a, *b;
    int on, cn;

    on = snprintf(open, sizeof(open), "<%s>", tag);
    cn = snprintf(close, sizeof(close), "</%s>", tag);
    if (on < 0 || cn < 0 || (size_t)on >= sizeof(open) || (size_t)cn >= sizeof(close))
        return -EINVAL;
    if (*pos > len)
        return -ENOENT;
    a = find(xml + *pos, len - *pos, open, (size_t)on);
    if (!a)
        return -ENOENT;
    a += on;
    b = find(a, len - (size_t)(a - xml), close, (size_t)cn);
    if (!b)
        return -EINVAL;
    *ret = xml_unescape(a, (size_t)(b - a));
    if (!*ret)
        return -ENOMEM;
    *pos = (size_t)(b - xml) + (size_t)cn;
    return 0;
}

void
s3_error_parse(const char *xml, size_t len, struct s3_result *res)
{
    char *v = NULL;
    size_t pos = 0;

    if (xml && s3_xml_next(xml, len, "Code", &pos, &v) == 0) {
        snprintf(res->code, sizeof(res->code), "%s", v);
        free(v);
    }
    pos = 0;
    if (xml && s3_xml_next(xml, len, "Message", &pos, &v) == 0) {
        snprintf(res->message, sizeof(res->message), "%s", v);
        free(v);
    }
}

void
s3_list_clear(struct s3_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->keys[i]);
        if (l->upload_ids)
            free(l->upload_ids[i]);
    }
    free(l->keys);
    free(l->upload_ids);
    free(l->sizes);
    free(l->next);
    memset(l, 0, sizeof(*l));
}

/* Appends one entry to l (key, and upload id or size); takes key and id. */
static int
list_add(struct s3_list *l, char *key, char *id, uint64_t size, bool uploads)
{
    char **k = realloc(l->keys, (l->n + 1) * sizeof(*k));

    if (!k)
        return -ENOMEM;
    l->keys = k;
    if (uploads) {
        char **u = realloc(l->upload_ids, (l->n + 1) * sizeof(*u));
        if (!u)
            return -ENOMEM;
        l->upload_ids = u;
        u[l->n] = id;
    } else {
        uint64_t *s = realloc(l->sizes, (l->n + 1) * sizeof(*s));
        if (!s)
            return -ENOMEM;
        l->sizes = s;
        s[l->n] = size;
    }
    k[l->n++] = key;
    return 0;
}

/* The listing parser of both kinds: entries are <elem> blocks with Key and Size or UploadId. */
static int
list_parse(const char *xml, size_t len, bool uploads, struct s3_list *ret)
{
    const char *elem = uploads ? "Upload" : "Contents";
    struct s3_list l = {0};
    size_t pos = 0;
    char *block = NULL, *trunc = NULL;
    int r;

    while ((r = s3_xml_next(xml, len, elem, &pos, &block)) == 0) {
        size_t bp = 0, bl = strlen(block);
        char *key = NULL, *v = NULL;
        uint64_t size = 0;

        r = s3_xml_next(block, bl, "Key", &bp, &key);
        if (r == 0) {
            bp = 0;
            r = s3_xml_next(block, bl, uploads ? "UploadId" : "Size", &bp, &v);
        }
        free(block);
        if (r < 0) {
            free(key);
            s3_list_clear(&l);
            return r == -ENOENT ? -EINVAL : r;
        }
        if (!uploads) {
            char *end;
            errno = 0;
            size = strtoull(v, &end, 10);
            if (errno || *end || end == v) {
                free(v);
                free(key);
                s3_list_clear(&l);
                return -EINVAL;
            }
            free(v);
            v = NULL;
        }
        r = list_add(&l, key, v, size, uploads);
        if (r < 0) {
            free(key);
            free(v);
            s3_list_clear(&l);
            return r;
        }
    }
    if (r != -ENOENT) {
        s3_list_clear(&l);
        return r;
    }
    pos = 0;
    if (s3_xml_next(xml, len, "IsTruncated", &pos, &trunc) == 0 && strcmp(trunc, "true") == 0) {
        pos = 0;
        r = s3_xml_next(xml, len, uploads ? "NextKeyMarker" : "NextContinuationToken", &pos,
                        &l.next);
        if (r < 0 || !l.next[0]) {
            free(trunc);
            s3_list_clear(&l);
            return r == -ENOMEM ? r : -EINVAL;
        }
    }
    free(trunc);
    *ret = l;
    return 0;
}

int
s3_list_objects_parse(const char *xml, size_t len, struct s3_list *ret)
{
    return list_parse(xml, len, false, ret);
}

int
s3_list_uploads_parse(const char *xml, size_t len, struct s3_list *ret)
{
    return list_parse(xml, len, true, ret);
}

/* What one transfer collects. */
struct xfer {
    CURL *h;
    s3_sink_fn sink;
    void *opaque;
    int sink_error;
    char *buf; /* the answer's body (not for a sink on 2xx) */
    size_t len;
    bool too_big;
    struct s3_result *res;
};

static size_t
on_body(char *data, size_t size, size_t nmemb, void *opaque)
{
    struct xfer *x = opaque;
    size_t n = size * nmemb;
    long status = 0;

    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
    if (x->sink && status >= 200 && status < 300) {
        int r = x->sink(x->opaque, data, n);
        if (r < 0) {
            x->sink_error = r;
            return 0;
        }
        return n;
    }
    if (x->len + n > S3_XML_MAX) {
        x->too_big = true;
        return 0;
    }
    {
        char *nb = realloc(x->buf, x->len + n + 1);
        if (!nb)
            return 0;
        x->buf = nb;
    }
    memcpy(x->buf + x->len, data, n);
    x->len += n;
    x->buf[x->len] = '\0';
    return n;
}

static size_t
on_header(char *data, size_t size, size_t nmemb, void *opaque)
{
    struct xfer *x = opaque;
    size_t n = size * nmemb, vl;
    const char *v;

    if (n > 5 && strncasecmp(data, "ETag:", 5) == 0) {
        v = data + 5;
        while (*v == ' ' && v < data + n)
            v++;
        vl = (size_t)(data + n - v);
        while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        if (vl < sizeof(x->res->etag)) {
            memcpy(x->res->etag, v, vl);
            x->res->etag[vl] = '\0';
        }
    } else if (n > 15 && strncasecmp(data, "Content-Length:", 15) == 0) {
        x->res->length = strtoull(data + 15, NULL, 10);
    }
    return n;
}

/* Appends "Name: value" to *l; false when out of memory. */
static bool
add_header(struct curl_slist **l, const char *line)
{
    struct curl_slist *n = curl_slist_append(*l, line);

    if (!n)
        return false;
    *l = n;
    return true;
}

/* The negative errno of an answer's status. */
static int
status_errno(int status)
{
    if (status >= 200 && status < 300)
        return 0;
    if (status == 404)
        return -ENOENT;
    if (status == 401 || status == 403)
        return -EACCES;
    if (status == 409)
        return -EEXIST;
    if (status == 416)
        return -ERANGE;
    if (status >= 400 && status < 500)
        return -EINVAL;
    return -EIO;
}

int
s3_request(const struct s3_target *t, const char *method, const char *key, const char *query,
           const char *const *headers, size_t n, const void *body, size_t body_len,
           const char *range, s3_sink_fn sink, void *opaque, struct s3_result *ret, char **ret_body,
           size_t *ret_len)
{
    __attribute__((cleanup(easy_freep))) CURL *h = curl_easy_init();
    __attribute__((cleanup(slist_freep))) struct curl_slist *hl = NULL;
    _cleanup_free_ char *url = s3_url(t, key, query);
    char errbuf[CURL_ERROR_SIZE] = "", line[256], sigv4[128], hash[HASH_SHA256_HEX_LEN + 1];
    struct xfer x = {.h = h, .sink = sink, .opaque = opaque, .res = ret};
    long status = 0;
    CURLcode rc;
    int r;

    memset(ret, 0, sizeof(*ret));
    if (!h || !url) {
        snprintf(ret->error, sizeof(ret->error), "out of memory");
        return -ENOMEM;
    }
    hash_sha256_hex(body ? body : "", body ? body_len : 0, hash);
    snprintf(line, sizeof(line), "x-amz-content-sha256: %s", hash);
    if (!add_header(&hl, line))
        return -ENOMEM;
    if (range) {
        snprintf(line, sizeof(line), "Range: %s", range);
        if (!add_header(&hl, line))
            return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        if (!add_header(&hl, headers[i]))
            return -ENOMEM;
    if (body && !add_header(&hl, "Content-Type: application/octet-stream"))
        return -ENOMEM;
    snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:s3", t->region);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4);
    curl_easy_setopt(h, CURLOPT_USERNAME, t->access_key);
    curl_easy_setopt(h, CURLOPT_PASSWORD, t->secret_key);
    if (t->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, t->ca_file);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)S3_CONNECT_MS);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)S3_LOW_SPEED_S);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        if (body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
        }
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (x.sink_error && status >= 200 && status < 300) {
        free(x.buf);
        ret->status = (int)status;
        snprintf(ret->error, sizeof(ret->error), "the download was stopped");
        return x.sink_error;
    }
    if (rc != CURLE_OK && !(x.too_big && status > 0)) {
        free(x.buf);
        snprintf(ret->error, sizeof(ret->error), "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
        return rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
    }
    ret->status = (int)status;
    r = status_errno(ret->status);
    if (r < 0) {
        s3_error_parse(x.buf, x.len, ret);
        free(x.buf);
        return r;
    }
    if (x.too_big) {
        free(x.buf);
        snprintf(ret->error, sizeof(ret->error), "answer larger than %d bytes", S3_XML_MAX);
        return -EFBIG;
    }
    if (ret_body) {
        *ret_body = x.buf ? x.buf : strdup("");
        if (ret_len)
            *ret_len = x.len;
        if (!*ret_body)
            return -ENOMEM;
    } else {
        free(x.buf);
    }
    return 0;
}

int
s3_put(const struct s3_target *t, const char *key, const void *data, size_t len,
       const char *const *headers, size_t n, struct s3_result *ret)
{
    return s3_request(t, "PUT", key, NULL, headers, n, data, len, NULL, NULL, NULL, ret, NULL,
                      NULL);
}

/* A sink into a growing buffer of at most max bytes. */
struct membuf {
    char *data;
    size_t len, max;
};

static int
membuf_sink(void *opaque, const void *data, size_t len)
{
    struct membuf *m = opaque;
    char *nd;

    if (m->len + len > m->max)
        return -EFBIG;
    nd = realloc(m->data, m->len + len + 1);
    if (!nd)
        return -ENOMEM;
    m->data = nd;
    memcpy(m->data + m->len, data, len);
    m->len += len;
    m->data[m->len] = '\0';
    return 0;
}

int
s3_get(const struct s3_target *t, const char *key, size_t max, char **ret_data, size_t *ret_len,
       struct s3_result *ret)
{
    struct membuf m = {.max = max};
    int r = s3_get_stream(t, key, NULL, membuf_sink, &m, ret);

    if (r < 0) {
        free(m.data);
        return r;
    }
    if (!m.data && !(m.data = strdup("")))
        return -ENOMEM;
    *ret_data = m.data;
    *ret_len = m.len;
    return 0;
}

int
s3_get_stream(const struct s3_target *t, const char *key, const char *range, s3_sink_fn sink,
              void *opaque, struct s3_result *ret)
{
    return s3_request(t, "GET", key, NULL, NULL, 0, NULL, 0, range, sink, opaque, ret, NULL, NULL);
}

int
s3_head(const struct s3_target *t, const char *key, struct s3_result *ret)
{
    return s3_request(t, "HEAD", key, NULL, NULL, 0, NULL, 0, NULL, NULL, NULL, ret, NULL, NULL);
}

int
s3_delete(const struct s3_target *t, const char *key, struct s3_result *ret)
{
    return s3_request(t, "DELETE", key, NULL, NULL, 0, NULL, 0, NULL, NULL, NULL, ret, NULL, NULL);
}

/* GET on the bucket with query; the XML answer into *ret_body. */
static int
bucket_get(const struct s3_target *t, const char *query, char **ret_body, size_t *ret_len,
           struct s3_result *ret)
{
    return s3_request(t, "GET", NULL, query, NULL, 0, NULL, 0, NULL, NULL, NULL, ret, ret_body,
                      ret_len);
}

/* A listing of either kind: prefix and a position parameter, encoded, sorted as SigV4 wants. */
static int
list_call(const struct s3_target *t, bool uploads, const char *prefix, const char *pos_value,
          struct s3_list *ret_list, struct s3_result *ret)
{
    _cleanup_free_ char *ep = s3_uri_encode(prefix ? prefix : "", false);
    _cleanup_free_ char *epos = pos_value ? s3_uri_encode(pos_value, false) : NULL;
    _cleanup_free_ char *q = NULL, *body = NULL;
    size_t len = 0;
    int r;

    if (!ep || (pos_value && !epos))
        return -ENOMEM;
    if (uploads)
        r = asprintf(&q, "%s%s%sprefix=%s&uploads=", epos ? "key-marker=" : "", epos ? epos : "",
                     epos ? "&" : "", ep);
    else
        r = asprintf(&q, "%s%s%slist-type=2&prefix=%s", epos ? "continuation-token=" : "",
                     epos ? epos : "", epos ? "&" : "", ep);
    if (r < 0)
        return -ENOMEM;
    r = bucket_get(t, q, &body, &len, ret);
    if (r < 0)
        return r;
    r = uploads ? s3_list_uploads_parse(body, len, ret_list)
                : s3_list_objects_parse(body, len, ret_list);
    if (r < 0)
        snprintf(ret->error, sizeof(ret->error), "a listing that cannot be read");
    return r;
}

int
s3_list_objects(const struct s3_target *t, const char *prefix, const char *token,
                struct s3_list *ret_list, struct s3_result *ret)
{
    return list_call(t, false, prefix, token, ret_list, ret);
}

int
s3_list_uploads(const struct s3_target *t, const char *prefix, const char *marker,
                struct s3_list *ret_list, struct s3_result *ret)
{
    return list_call(t, true, prefix, marker, ret_list, ret);
}

int
s3_mpu_create(const struct s3_target *t, const char *key, const char *const *headers, size_t n,
              char ret_id[S3_UPLOAD_ID_MAX], struct s3_result *ret)
{
    _cleanup_free_ char *body = NULL, *id = NULL;
    size_t len = 0, pos = 0;
    int r;

    r = s3_request(t, "POST", key, "uploads=", headers, n, NULL, 0, NULL, NULL, NULL, ret, &body,
                   &len);
    if (r < 0)
        return r;
    r = s3_xml_next(body, len, "UploadId", &pos, &id);
    if (r < 0 || !id[0] || strlen(id) >= S3_UPLOAD_ID_MAX) {
        snprintf(ret->error, sizeof(ret->error), "no upload id in the answer");
        return -EIO;
    }
    memcpy(ret_id, id, strlen(id) + 1);
    return 0;
}

int
s3_mpu_part(const struct s3_target *t, const char *key, const char *upload_id, unsigned part,
            const void *data, size_t len, struct s3_result *ret)
{
    _cleanup_free_ char *eid = s3_uri_encode(upload_id, false), *q = NULL;
    int r;

    if (!eid || asprintf(&q, "partNumber=%u&uploadId=%s", part, eid) < 0)
        return -ENOMEM;
    r = s3_request(t, "PUT", key, q, NULL, 0, data, len, NULL, NULL, NULL, ret, NULL, NULL);
    if (r == 0 && !ret->etag[0]) {
        snprintf(ret->error, sizeof(ret->error), "no ETag in the answer");
        return -EIO;
    }
    return r;
}

int
s3_mpu_complete(const struct s3_target *t, const char *key, const char *upload_id,
                char *const *etags, size_t n, struct s3_result *ret)
{
    _cleanup_free_ char *eid = s3_uri_encode(upload_id, false), *q = NULL, *body = NULL,
                        *xml = NULL, *v = NULL;
    size_t len = 0, xlen = 0, pos = 0;
    FILE *f;
    int r;

    if (!eid || asprintf(&q, "uploadId=%s", eid) < 0)
        return -ENOMEM;
    f = open_memstream(&xml, &xlen);
    if (!f)
        return -ENOMEM;
    fputs("<CompleteMultipartUpload>", f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "<Part><PartNumber>%zu</PartNumber><ETag>%s</ETag></Part>", i + 1, etags[i]);
    fputs("</CompleteMultipartUpload>", f);
    if (fclose(f) != 0)
        return -ENOMEM;
    r = s3_request(t, "POST", key, q, NULL, 0, xml, xlen, NULL, NULL, NULL, ret, &body, &len);
    if (r < 0)
        return r;
    /* A 200 may still carry an <Error> (the completion failed after the answer began). */
    if (s3_xml_next(body, len, "Error", &pos, &v) == 0) {
        s3_error_parse(body, len, ret);
        return -EIO;
    }
    return 0;
}

int
s3_mpu_abort(const struct s3_target *t, const char *key, const char *upload_id,
             struct s3_result *ret)
{
    _cleanup_free_ char *eid = s3_uri_encode(upload_id, false), *q = NULL;

    if (!eid || asprintf(&q, "uploadId=%s", eid) < 0)
        return -ENOMEM;
    return s3_request(t, "DELETE", key, q, NULL, 0, NULL, 0, NULL, NULL, NULL, ret, NULL, NULL);
}

int
s3_object_retention(const struct s3_target *t, const char *key, const char *until,
                    struct s3_result *ret)
{
    char body[256], line[80];
    unsigned char md5[EVP_MAX_MD_SIZE];
    unsigned char b64[64];
    unsigned int md5_len = 0;
    const char *headers[1] = {line};
    int n;

    n = snprintf(body, sizeof(body),
                 "<Retention><Mode>COMPLIANCE</Mode><RetainUntilDate>%s</RetainUntilDate>"
                 "</Retention>",
                 until);
    if (n < 0 || (size_t)n >= sizeof(body))
        return -EINVAL;
    if (EVP_Digest(body, (size_t)n, md5, &md5_len, EVP_md5(), NULL) != 1)
        return -EIO;
    EVP_EncodeBlock(b64, md5, (int)md5_len);
    snprintf(line, sizeof(line), "Content-MD5: %s", b64);
    return s3_request(t, "PUT", key, "retention=", headers, 1, body, (size_t)n, NULL, NULL, NULL,
                      ret, NULL, NULL);
}

int
s3_bucket_versioning(const struct s3_target *t, bool *ret_enabled, struct s3_result *ret)
{
    _cleanup_free_ char *body = NULL, *v = NULL;
    size_t len = 0, pos = 0;
    int r = bucket_get(t, "versioning=", &body, &len, ret);

    if (r < 0)
        return r;
    *ret_enabled = s3_xml_next(body, len, "Status", &pos, &v) == 0 && strcmp(v, "Enabled") == 0;
    return 0;
}

int
s3_bucket_object_lock(const struct s3_target *t, bool *ret_enabled, struct s3_result *ret)
{
    _cleanup_free_ char *body = NULL, *v = NULL;
    size_t len = 0, pos = 0;
    int r = bucket_get(t, "object-lock=", &body, &len, ret);

    if (r == -ENOENT || (r < 0 && strstr(ret->code, "ObjectLockConfigurationNotFound"))) {
        *ret_enabled = false;
        return 0;
    }
    if (r < 0)
        return r;
    *ret_enabled =
        s3_xml_next(body, len, "ObjectLockEnabled", &pos, &v) == 0 && strcmp(v, "Enabled") == 0;
    return 0;
}
