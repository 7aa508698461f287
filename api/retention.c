/*
 * api/retention.c - POST /v1/retention:simulate: which of a list of backup
 * times a retention keeps, by the same rule the pruner uses
 * (conf/retention.h).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api_json.h"
#include "bodies.h"
#include "cleanup.h"
#include "conf/retention.h"
#include "err.h"
#include "text.h"

int
api_retention_simulate(const struct api_request *req, struct api_response *resp)
{
    struct conf_retention ret;
    json_t *times = NULL, *retention = NULL, *keep, *remove;
    _cleanup_free_ int64_t *t = NULL;
    _cleanup_free_ bool *kept = NULL;
    size_t n;
    int r;

    r = api_body_unpack(req,
                        (const struct api_field[]){{"retention", API_FIELD_OBJECT, true, false},
                                                   {"times", API_FIELD_ARRAY, true, false},
                                                   {NULL, API_FIELD_STRING, false, false}},
                        "{s:o, s:o}", "retention", &retention, "times", &times);
    if (r < 0)
        return r;
    r = api_retention_read(retention, "/retention", &ret);
    if (r < 0)
        return r;
    n = json_array_size(times);
    if (n > API_RETENTION_TIMES_MAX)
        return err_set_pointer(-EINVAL, "/times", "must have at most %d entries",
                               API_RETENTION_TIMES_MAX);
    t = calloc(n ? n : 1, sizeof(*t));
    kept = calloc(n ? n : 1, sizeof(*kept));
    if (!t || !kept)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(times, i));
        time_t v;
        if (!s || text_time_parse(s, &v) < 0) {
            char ptr[TEXT_POINTER_MAX];
            text_pointer_join(ptr, sizeof(ptr), "/times", NULL, i);
            return err_set_pointer(-EINVAL, ptr, "must be an RFC 3339 UTC time");
        }
        t[i] = (int64_t)v;
    }
    r = conf_retention_prune(&ret, t, NULL, n, kept);
    if (r < 0)
        return err_set(r, "times cannot be bucketed");
    keep = json_array();
    remove = json_array();
    for (size_t i = 0; keep && remove && i < n; i++)
        json_array_append(kept[i] ? keep : remove, json_array_get(times, i));
    return api_reply(resp, 200, json_pack("{s:o, s:o}", "keep", keep, "remove", remove));
}
