/*
 * Answers kept for reuse: a listing that is costly to build is kept with
 * the version of what it shows and given out again while that version is
 * still current (the caller checks). A few dozen slots, placed by a hash
 * of the key; a newer answer for a slot replaces the older one.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "text.h"

#define SLOTS     64
#define TEXT_MAX  (1024 * 1024) /* larger answers are built each time: bounds the memory */
#define KEY_BYTES 96

static struct {
    pthread_mutex_t lock;
    struct {
        char key[KEY_BYTES];
        uint64_t version;
        char *text;
        size_t len;
    } slot[SLOTS];
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

char *
api_cache_get(const char *key, uint64_t version, size_t *ret_len)
{
    size_t i = text_hash(key) % SLOTS;
    char *copy = NULL;

    pthread_mutex_lock(&cache.lock);
    if (cache.slot[i].text && cache.slot[i].version == version &&
        strcmp(cache.slot[i].key, key) == 0) {
        copy = malloc(cache.slot[i].len + 1);
        if (copy) {
            memcpy(copy, cache.slot[i].text, cache.slot[i].len + 1);
            *ret_len = cache.slot[i].len;
        }
    }
    pthread_mutex_unlock(&cache.lock);
    return copy;
}

void
api_cache_put(const char *key, uint64_t version, const char *text, size_t len)
{
    size_t i = text_hash(key) % SLOTS;
    char *copy;

    if (len > TEXT_MAX || strlen(key) >= KEY_BYTES)
        return;
    copy = malloc(len + 1);
    if (!copy)
        return;
    memcpy(copy, text, len);
    copy[len] = '\0';
    pthread_mutex_lock(&cache.lock);
    if (cache.slot[i].text && strcmp(cache.slot[i].key, key) == 0 &&
        cache.slot[i].version > version) {
        pthread_mutex_unlock(&cache.lock); /* a newer answer is kept already */
        free(copy);
        return;
    }
    free(cache.slot[i].text);
    snprintf(cache.slot[i].key, sizeof(cache.slot[i].key), "%s", key);
    cache.slot[i].version = version;
    cache.slot[i].text = copy;
    cache.slot[i].len = len;
    pthread_mutex_unlock(&cache.lock);
}
