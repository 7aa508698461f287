/* Unit tests: webhook signatures (HMAC-SHA256), the retry schedule and the events mask. */
#include <stdio.h>
#include <string.h>

#include "conf/webhook.h"
#include "hash.h"
#include "tap.h"

static const struct {
    const char *key, *data, *hex;
} hmacs[] = {
    /* RFC 4231, test case 2 */
    {"Jefe", "what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
};

static const struct {
    const char *secret, *ts, *body, *want;
} signatures[] = {
    {"k", "1700000000", "{\"a\":1}",
     "sha256=1b6ad1bc9bf48c52ce01939866d5877c6cc4e87ddad27e16673cb8c4964394a3"},
};

static const struct {
    unsigned attempt;
    int64_t base, cap, want;
} backoffs[] = {
    {1, 1000, 300000, 1000},      {2, 1000, 300000, 2000},    {3, 1000, 300000, 4000},
    {9, 1000, 300000, 256000},    {10, 1000, 300000, 300000}, {1000, 1000, 300000, 300000},
    {4, 100, 400, 400},           {1, 500, 100, 100},         {0, 1000, 300000, 1000},
    {64, 1000, INT64_MAX / 2, 0}, /* want: no overflow, checked below */
};

static const struct {
    const char *text;
    uint32_t mask;
    const char *again;
} masks[] = {
    {"*", CONF_WEBHOOK_ALL_EVENTS, "*"},
    {"job.failed,backup.completed",
     (1u << CONF_WEBHOOK_JOB_FAILED) | (1u << CONF_WEBHOOK_BACKUP_COMPLETED),
     "job.failed,backup.completed"},
    {"backup.completed,job.failed,unknown.later",
     (1u << CONF_WEBHOOK_JOB_FAILED) | (1u << CONF_WEBHOOK_BACKUP_COMPLETED),
     "job.failed,backup.completed"},
    {"", 0, ""},
};

int
main(void)
{
    char hex[HASH_SHA256_HEX_LEN + 1], sig[CONF_WEBHOOK_SIGNATURE_LEN + 1], buf[256];
    enum conf_webhook_event ev;

    for (size_t i = 0; i < sizeof(hmacs) / sizeof(hmacs[0]); i++) {
        int r = hash_hmac_sha256_hex(hmacs[i].key, strlen(hmacs[i].key), hmacs[i].data,
                                     strlen(hmacs[i].data), hex);
        ok(r == 0 && strcmp(hex, hmacs[i].hex) == 0, "HMAC-SHA256 vector %zu: %s", i, hex);
    }
    for (size_t i = 0; i < sizeof(signatures) / sizeof(signatures[0]); i++) {
        int r = conf_webhook_sign(signatures[i].secret, signatures[i].ts, signatures[i].body, sig);
        ok(r == 0 && strcmp(sig, signatures[i].want) == 0, "signature of timestamp.body %zu: %s", i,
           sig);
    }
    conf_webhook_sign("k", "1700000000", "{\"a\":2}", sig);
    ok(strcmp(sig, signatures[0].want) != 0, "another body, another signature");
    conf_webhook_sign("k", "1700000001", "{\"a\":1}", sig);
    ok(strcmp(sig, signatures[0].want) != 0, "another timestamp, another signature");

    for (size_t i = 0; i < sizeof(backoffs) / sizeof(backoffs[0]); i++) {
        int64_t got =
            conf_webhook_backoff_ms(backoffs[i].attempt, backoffs[i].base, backoffs[i].cap);
        if (backoffs[i].want)
            ok(got == backoffs[i].want, "backoff after %u failure(s), base %lld cap %lld: %lld",
               backoffs[i].attempt, (long long)backoffs[i].base, (long long)backoffs[i].cap,
               (long long)got);
        else
            ok(got > 0 && got <= backoffs[i].cap, "backoff after %u failures stays in range",
               backoffs[i].attempt);
    }

    for (size_t i = 0; i < sizeof(masks) / sizeof(masks[0]); i++) {
        uint32_t m = conf_webhook_events_parse(masks[i].text);
        conf_webhook_events_format(m, buf, sizeof(buf));
        ok(m == masks[i].mask && strcmp(buf, masks[i].again) == 0, "events '%s' -> '%s'",
           masks[i].text, buf);
    }
    ok(conf_webhook_wants(CONF_WEBHOOK_ALL_EVENTS, CONF_WEBHOOK_DOMAIN_OVERDUE),
       "\"*\" wants every event");
    ok(!conf_webhook_wants(1u << CONF_WEBHOOK_JOB_FAILED, CONF_WEBHOOK_JOB_SUCCEEDED),
       "a mask wants only its events");
    ok(!conf_webhook_wants(CONF_WEBHOOK_ALL_EVENTS, CONF_WEBHOOK_EVENT_LAST),
       "no value outside the table");
    ok(conf_webhook_event_from_string("checkpoint.broken", &ev) == 0 &&
           ev == CONF_WEBHOOK_CHECKPOINT_BROKEN,
       "event names parse");
    ok(conf_webhook_event_from_string("*", &ev) < 0, "\"*\" is no event name");
    return tap_done();
}
