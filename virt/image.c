/*
 * The persistent dirty bitmaps of a qcow2 image, read with qemu-img.
 *
 * qemu-img speaks JSON, so this file parses it with jansson: the one place
 * below api/ that does, because the alternative is parsing qemu-img's text
 * for people. Nothing of jansson leaves this file.
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "err.h"
#include "subprocess.h"
#include "virt.h"

#define QEMU_IMG_TIMEOUT_MS 30000

void
virt_image_bitmaps_free(struct virt_image_bitmap *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        free(list[i].name);
    free(list);
}

static bool
has_flag(json_t *flags, const char *flag)
{
    for (size_t i = 0; i < json_array_size(flags); i++) {
        const char *v = json_string_value(json_array_get(flags, i));
        if (v && strcmp(v, flag) == 0)
            return true;
    }
    return false;
}

static void
subprocess_result_clearp(struct subprocess_result *r)
{
    subprocess_result_clear(r);
}

/* What a failed run said on stderr, without its final newline, or a placeholder. */
static const char *
failure_text(struct subprocess_result *res)
{
    size_t len = strlen(res->err);

    while (len > 0 && (res->err[len - 1] == '\n' || res->err[len - 1] == '\r'))
        res->err[--len] = '\0';
    return res->err[0] ? res->err : "it failed without saying why";
}

int
virt_image_bitmaps(const char *path, struct virt_image_bitmap **ret, size_t *ret_n)
{
    const char *const argv[] = {"qemu-img",      "info", "-U", "-f", "qcow2",
                                "--output=json", "--",   path, NULL};
    _cleanup_(subprocess_result_clearp) struct subprocess_result res = {0};
    json_auto_t *info = NULL;
    json_t *bitmaps;
    struct virt_image_bitmap *list;
    json_error_t jerr;
    size_t n = 0;
    int r;

    r = subprocess_capture(argv, QEMU_IMG_TIMEOUT_MS, &res);
    if (r < 0)
        return r;
    if (res.exit_code != 0)
        return err_set(-EIO, "qemu-img cannot read %s: %s", path, failure_text(&res));
    info = json_loadb(res.out, res.out_len, 0, &jerr);
    if (!info || !json_is_object(info))
        return err_set(-EIO, "qemu-img printed no JSON for %s: %s", path, jerr.text);
    bitmaps = json_object_get(json_object_get(json_object_get(info, "format-specific"), "data"),
                              "bitmaps");
    list = calloc(json_array_size(bitmaps) + 1, sizeof(*list));
    if (!list)
        return -ENOMEM;
    for (size_t i = 0; i < json_array_size(bitmaps); i++) {
        json_t *b = json_array_get(bitmaps, i);
        const char *name = json_string_value(json_object_get(b, "name"));
        json_t *flags = json_object_get(b, "flags");

        if (!name)
            continue;
        list[n].name = strdup(name);
        if (!list[n].name) {
            virt_image_bitmaps_free(list, n);
            return -ENOMEM;
        }
        list[n].recording = has_flag(flags, "auto");
        list[n].in_use = has_flag(flags, "in-use");
        list[n].granularity = (uint32_t)json_integer_value(json_object_get(b, "granularity"));
        n++;
    }
    *ret = list;
    *ret_n = n;
    return 0;
}

int
virt_image_bitmap_set(const char *path, const char *name, bool add)
{
    const char *const argv[] = {
        "qemu-img", "bitmap", add ? "--add" : "--remove", "-f", "qcow2", "--", path, name, NULL};
    _cleanup_(subprocess_result_clearp) struct subprocess_result res = {0};
    int r;

    r = subprocess_capture(argv, QEMU_IMG_TIMEOUT_MS, &res);
    if (r < 0)
        return r;
    if (res.exit_code != 0)
        return err_set(-EIO, "qemu-img cannot %s bitmap %s of %s: %s", add ? "add" : "remove", name,
                       path, failure_text(&res));
    return 0;
}
