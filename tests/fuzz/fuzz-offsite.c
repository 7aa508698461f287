/*
 * Fuzzes what offsite copies read from a bucket (outside input): the
 * first byte picks the reader, the rest is its input. 0: a manifest
 * (conf/remote.h); 1, 2, 3: S3's listing, unfinished-uploads and error
 * XML (net/s3.h); 4, 5: an object's frames without and with a key
 * (net/frame.h). Whatever the bytes: a clean refusal, never a crash, a
 * leak, or a write the frame's header did not announce.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/remote.h"
#include "err.h"
#include "net/frame.h"
#include "net/s3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct count {
    uint64_t next;
};

static int
check_write(void *opaque, uint64_t off, const void *buf, size_t len)
{
    struct count *c = opaque;

    (void)buf;
    if (off != c->next)
        abort(); /* the decoder hands bytes over in order, without gaps */
    c->next += len;
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data + 1;
    struct s3_list l = {0};
    struct s3_result res = {0};

    if (size < 1)
        return 0;
    size--;
    switch (data[0] % 6) {
    case 0: {
        struct conf_manifest *m = NULL;
        if (conf_manifest_parse(text, size, &m) == 0) {
            char *again = NULL;
            struct conf_manifest *m2 = NULL;
            /* What parses formats, and parses back the same. */
            if (conf_manifest_format(m, &again) != 0 ||
                conf_manifest_parse(again, strlen(again), &m2) != 0 ||
                strcmp(m->b->id, m2->b->id) != 0 || m->b->n_disks != m2->b->n_disks)
                abort();
            free(again);
            conf_manifest_free(m2);
        }
        conf_manifest_free(m);
        break;
    }
    case 1:
        if (s3_list_objects_parse(text, size, &l) == 0)
            s3_list_clear(&l);
        break;
    case 2:
        if (s3_list_uploads_parse(text, size, &l) == 0)
            s3_list_clear(&l);
        break;
    case 3:
        s3_error_parse(text, size, &res);
        break;
    default: {
        struct frame_key key;
        struct count c = {0};
        struct frame_dec *d;
        memset(key.key, 0x42, sizeof(key.key));
        frame_key_set_id(&key);
        d = frame_dec_new(data[0] % 6 == 5 ? &key : NULL, check_write, &c);
        if (d && frame_dec_feed(d, text, size) == 0)
            (void)frame_dec_finish(d, NULL);
        frame_dec_free(d);
        break;
    }
    }
    err_clear();
    return 0;
}
