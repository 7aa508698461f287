/*
 * net/curl_priv.h - cleanup helpers for libcurl handles, shared by the
 * net/ sources (the only code that includes curl/curl.h).
 */
#ifndef VV_NET_CURL_PRIV_H
#define VV_NET_CURL_PRIV_H

#include <curl/curl.h>

static inline void
slist_freep(struct curl_slist **p)
{
    curl_slist_free_all(*p);
}

static inline void
easy_freep(CURL **p)
{
    if (*p)
        curl_easy_cleanup(*p);
}

#endif
