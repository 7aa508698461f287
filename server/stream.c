#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "range.h"
#include "stream.h"
#include "text.h"

#define BLOCK_SIZE (256 * 1024)

/*
 * The body as a sequence of segments: literal text (multipart headers) or
 * a range of the stream. pos in the response maps to one segment.
 */
struct segment {
    uint64_t start; /* offset of this segment in the response body */
    uint64_t len;
    char *text;    /* literal bytes, or NULL for stream bytes */
    uint64_t from; /* stream offset for stream segments */
};

struct body {
    struct api_stream *stream;
    struct segment seg[2 * RANGE_MAX + 1];
    size_t n;
    uint64_t total;
};

void
stream_free(struct api_stream *stream)
{
    if (!stream)
        return;
    if (stream->free)
        stream->free(stream->opaque);
    free(stream);
}

static void
body_free(void *cls)
{
    struct body *b = cls;

    for (size_t i = 0; i < b->n; i++)
        free(b->seg[i].text);
    stream_free(b->stream);
    free(b);
}

static ssize_t
body_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct body *b = cls;

    for (size_t i = 0; i < b->n; i++) {
        struct segment *s = &b->seg[i];
        uint64_t off, want;

        if (pos < s->start || pos >= s->start + s->len)
            continue;
        off = pos - s->start;
        want = s->len - off < max ? s->len - off : max;
        if (s->text) {
            memcpy(buf, s->text + off, want);
            return (ssize_t)want;
        }
        if (off == 0 && b->stream->prepare)
            b->stream->prepare(b->stream->opaque, s->from, s->len);
        ssize_t n = b->stream->read(b->stream->opaque, s->from + off, buf, want);
        return n > 0 ? n : MHD_CONTENT_READER_END_WITH_ERROR;
    }
    return MHD_CONTENT_READER_END_OF_STREAM;
}

static int
add_text(struct body *b, char *text)
{
    if (!text)
        return -ENOMEM;
    b->seg[b->n] = (struct segment){.start = b->total, .len = strlen(text), .text = text};
    b->total += b->seg[b->n].len;
    b->n++;
    return 0;
}

static void
add_range(struct body *b, const struct range *r)
{
    b->seg[b->n] =
        (struct segment){.start = b->total, .len = r->last - r->first + 1, .from = r->first};
    b->total += b->seg[b->n].len;
    b->n++;
}

int
stream_response_new(struct api_stream *stream, const char *range_header, struct MHD_Response **ret,
                    int *ret_status)
{
    _cleanup_free_ struct body *b = calloc(1, sizeof(*b));
    struct range ranges[RANGE_MAX];
    size_t n_ranges = 0;
    char boundary[33], content_range[96];
    struct MHD_Response *resp;
    int status = 200, r;

    if (!b)
        return -ENOMEM;
    if (range_header && stream->ranges) {
        r = range_parse(range_header, stream->size, ranges, &n_ranges);
        if (r < 0)
            return r;
    }

    if (n_ranges == 0) {
        struct range all = {0, stream->size ? stream->size - 1 : 0};
        if (stream->size)
            add_range(b, &all);
    } else if (n_ranges == 1) {
        add_range(b, &ranges[0]);
        snprintf(content_range, sizeof(content_range), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64,
                 ranges[0].first, ranges[0].last, stream->size);
        status = 206;
    } else {
        if (text_random_hex(boundary, sizeof(boundary), 16) < 0)
            return -EIO;
        for (size_t i = 0; i < n_ranges; i++) {
            char *head = NULL;
            if (asprintf(&head,
                         "%s--%s\r\nContent-Type: %s\r\nContent-Range: bytes %" PRIu64 "-%" PRIu64
                         "/%" PRIu64 "\r\n\r\n",
                         i ? "\r\n" : "", boundary, stream->content_type, ranges[i].first,
                         ranges[i].last, stream->size) < 0)
                head = NULL;
            r = add_text(b, head);
            if (r < 0) {
                for (size_t k = 0; k < b->n; k++)
                    free(b->seg[k].text);
                return r;
            }
            add_range(b, &ranges[i]);
        }
        char *tail = NULL;
        if (asprintf(&tail, "\r\n--%s--\r\n", boundary) < 0)
            tail = NULL;
        r = add_text(b, tail);
        if (r < 0) {
            for (size_t k = 0; k < b->n; k++)
                free(b->seg[k].text);
            return r;
        }
        status = 206;
    }

    b->stream = stream;
    resp = MHD_create_response_from_callback(b->total, BLOCK_SIZE, body_read, b, body_free);
    if (!resp) {
        b->stream = NULL;
        for (size_t k = 0; k < b->n; k++)
            free(b->seg[k].text);
        return -ENOMEM;
    }
    TAKE_PTR(b);
    if (stream->ranges)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    if (n_ranges > 1) {
        char type[80];
        snprintf(type, sizeof(type), "multipart/byteranges; boundary=%s", boundary);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    } else {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, stream->content_type);
    }
    if (n_ranges == 1)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, content_range);
    if (stream->disposition[0])
        MHD_add_response_header(resp, "Content-Disposition", stream->disposition);
    *ret = resp;
    *ret_status = status;
    return 0;
}
