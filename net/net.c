/* The outbound HTTP client (see net.h). */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "curl_priv.h"
#include "net.h"

int
net_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

void
net_fini(void)
{
    curl_global_cleanup();
}

/* Reads the answer's body and drops it; stops a body larger than NET_BODY_MAX. */
static size_t
drop_body(char *data, size_t size, size_t nmemb, void *opaque)
{
    size_t *seen = opaque;

    (void)data;
    *seen += size * nmemb;
    if (*seen > NET_BODY_MAX)
        return 0; /* curl: write error; the status is known by now */
    return size * nmemb;
}

int
net_post(const char *url, const char *const *headers, size_t n, const char *body, size_t len,
         struct net_result *ret)
{
    __attribute__((cleanup(easy_freep))) CURL *h = curl_easy_init();
    __attribute__((cleanup(slist_freep))) struct curl_slist *hl = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    size_t seen = 0;
    long status = 0;
    CURLcode rc;

    memset(ret, 0, sizeof(*ret));
    if (!h) {
        snprintf(ret->error, sizeof(ret->error), "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        struct curl_slist *nl = curl_slist_append(hl, headers[i]);
        if (!nl) {
            snprintf(ret->error, sizeof(ret->error), "out of memory");
            return -ENOMEM;
        }
        hl = nl;
    }
    {
        struct curl_slist *nl = curl_slist_append(hl, "Content-Type: application/json");
        if (nl)
            hl = nl;
        nl = curl_slist_append(hl, "Expect:"); /* no 100-continue round trip */
        if (nl)
            hl = nl;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)NET_CONNECT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)NET_TOTAL_MS);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "virtvault-webhook");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, drop_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &seen);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    ret->status = (int)status;
    if (status > 0)
        return 0; /* an answer came, even if its body was cut short */
    snprintf(ret->error, sizeof(ret->error), "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return -ETIMEDOUT;
    if (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT)
        return -EINVAL;
    return -EIO;
}
