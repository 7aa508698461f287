#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "text.h"

static enum log_level min_level = LOG_LEVEL_INFO;
static enum log_format out_format = LOG_FORMAT_TEXT;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {
    [LOG_LEVEL_DEBUG] = "debug",
    [LOG_LEVEL_INFO] = "info",
    [LOG_LEVEL_WARN] = "warn",
    [LOG_LEVEL_ERROR] = "error",
};

void
log_setup(enum log_level level, enum log_format format)
{
    min_level = level;
    out_format = format;
}

int
log_level_from_string(const char *s, enum log_level *ret)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *ret = (enum log_level)i;
            return 0;
        }
    }
    if (strcmp(s, "warning") == 0) {
        *ret = LOG_LEVEL_WARN;
        return 0;
    }
    return -EINVAL;
}

int
log_format_from_string(const char *s, enum log_format *ret)
{
    if (strcmp(s, "text") == 0)
        *ret = LOG_FORMAT_TEXT;
    else if (strcmp(s, "json") == 0)
        *ret = LOG_FORMAT_JSON;
    else
        return -EINVAL;
    return 0;
}

/* Writes s as the body of a JSON string (without quotes). */
static void
put_json_string(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
    char msg[2048];
    char when[40];
    va_list ap;

    if (level < min_level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    text_time_now_rfc3339(when, sizeof(when), true);

    pthread_mutex_lock(&log_lock);
    if (out_format == LOG_FORMAT_JSON) {
        fprintf(stderr, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"", when, level_names[level]);
        put_json_string(stderr, msg);
        fputs("\"}\n", stderr);
    } else {
        fprintf(stderr, "%s %-5s %s\n", when, level_names[level], msg);
    }
    fflush(stderr);
    pthread_mutex_unlock(&log_lock);
}
