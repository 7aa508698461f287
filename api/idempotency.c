/*
 * The Idempotency-Key of POSTs (see api.h): which keys are accepted, what
 * makes two requests the same, and which answers are kept.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "cleanup.h"
#include "core/idempotency.h"
#include "err.h"
#include "hash.h"

/* Answers larger than this are not kept (no POST answers one). */
#define IDEM_MAX_ANSWER (1u << 20)

/*
 * The SHA-256 of method, path and the SHA-256 of body, what a retry must
 * repeat exactly, into hex. Returns 0 or -ENOMEM.
 */
static int
fingerprint(const char *method, const char *path, const char *body, size_t len,
            char hex[HASH_SHA256_HEX_LEN + 1])
{
    char body_hex[HASH_SHA256_HEX_LEN + 1];
    _cleanup_free_ char *text = NULL;
    int n;

    hash_sha256_hex(body ? body : "", body ? len : 0, body_hex);
    n = asprintf(&text, "%s\n%s\n%s", method, path, body_hex);
    if (n < 0) {
        text = NULL;
        return -ENOMEM;
    }
    hash_sha256_hex(text, (size_t)n, hex);
    return 0;
}

int
api_idem_check_key(const char *key)
{
    size_t n = key ? strlen(key) : 0;

    if (n == 0 || n > API_IDEM_KEY_MAX)
        return err_set(-EINVAL, "the Idempotency-Key header must be 1 to %d characters, not %zu",
                       API_IDEM_KEY_MAX, n);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)key[i] < 0x20 || (unsigned char)key[i] > 0x7e)
            return err_set(-EINVAL,
                           "the Idempotency-Key header must be printable ASCII characters only");
    return 0;
}

int
api_idem_begin(const char *scope, const char *key, const char *method, const char *path,
               const char *body, size_t len, enum conf_idem_claim *ret,
               struct conf_idem_answer *ret_answer)
{
    char fp[HASH_SHA256_HEX_LEN + 1];
    int r;

    r = api_idem_check_key(key);
    if (r < 0)
        return r;
    r = fingerprint(method, path, body, len, fp);
    if (r < 0)
        return r;
    return core_idem_claim(scope ? scope : "", key, fp, ret, ret_answer);
}

bool
api_idem_keeps(int status)
{
    if (status >= 200 && status < 300)
        return true;
    /* Refusals a retry may get past (a busy domain, a limit) leave the key free. */
    return status >= 400 && status < 500 && status != 408 && status != 409 && status != 425 &&
           status != 429;
}

void
api_idem_finish(const char *scope, const char *key, int status, const char *content_type,
                const char *location, const char *body, size_t len)
{
    struct conf_idem_answer a = {
        .status = status,
        .content_type = (char *)content_type,
        .location = (char *)(location && location[0] ? location : NULL),
        .body = (char *)body,
        .body_len = body ? len : 0,
    };

    if (!api_idem_keeps(status) || len > IDEM_MAX_ANSWER) {
        core_idem_release(scope ? scope : "", key);
        return;
    }
    core_idem_store(scope ? scope : "", key, &a);
}

void
api_idem_release(const char *scope, const char *key)
{
    core_idem_release(scope ? scope : "", key);
}
