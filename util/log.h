/*
 * log.h - the daemon's one log: lines on stderr, as text for people or as
 * JSON lines (--log-format json). Messages below the configured level are
 * dropped. Never pass a secret (a token) to these functions.
 */
#ifndef VV_LOG_H
#define VV_LOG_H

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

void log_setup(enum log_level level, enum log_format format);

/* Parses "debug", "info", "warn"/"warning" or "error"; returns -EINVAL otherwise. */
int log_level_from_string(const char *s, enum log_level *ret);
int log_format_from_string(const char *s, enum log_format *ret);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
