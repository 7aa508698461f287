/*
 * text.h - small pure string functions shared by every layer: the one name
 * rule, the one XML escape, times in RFC 3339, percent-decoding, ids.
 * None of them allocate unless they say so; none log.
 */
#ifndef VV_TEXT_H
#define VV_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define NAME_MAX_LEN 64

/*
 * The one rule for names the service creates (snapshots, checkpoints,
 * restored domains): 1 to 64 characters from [A-Za-z0-9._-], not starting
 * with '.'. Returns true when s follows it.
 */
bool text_name_valid(const char *s);

/*
 * Escapes s for use in XML text or in an attribute value (& < > " ').
 * Returns a new string the caller frees, or NULL when out of memory.
 * Every value that goes into libvirt XML passes through here.
 */
char *text_xml_escape(const char *s);

/*
 * Decodes %XX escapes of a URL path segment into a new string. Returns
 * -EINVAL for a malformed escape or an encoded NUL, -ENOMEM when out of
 * memory; fills *ret only on success.
 */
int text_url_decode(const char *s, size_t len, char **ret);

/* Formats t as RFC 3339 UTC ("2026-11-26T10:56:25Z", or with milliseconds). */
void text_time_rfc3339(char *buf, size_t size, time_t t);
void text_time_now_rfc3339(char *buf, size_t size, bool millis);

/* Parses an RFC 3339 UTC time ending in Z ("...T..Z", optional fraction); -EINVAL if not. */
int text_time_parse(const char *s, time_t *ret);

/* Wall clock in milliseconds and a monotonic clock in nanoseconds. */
int64_t text_now_ms(void);
uint64_t text_mono_ns(void);

/*
 * Writes a random identifier of 2*nbytes lowercase hex characters plus NUL
 * into buf (size must be at least 2*nbytes+1). Returns 0 or -errno.
 */
int text_random_hex(char *buf, size_t size, size_t nbytes);

/* Value 0-15 of one hex digit (either case), or -1 if c is not one. */
int text_hex_value(char c);

/*
 * Quotes s as a JSON string (with the quotes), escaping what JSON requires.
 * Returns a new string the caller frees, or NULL when out of memory. For
 * the few JSON texts that layers without a JSON library hand upwards (job
 * results); s must be valid UTF-8.
 */
char *text_json_quote(const char *s);

/*
 * Copies s into buf (size > 0), cut short where it does not fit, but never
 * in the middle of a UTF-8 sequence. Always NUL-terminates.
 */
void text_copy_utf8(char *buf, size_t size, const char *s);

/* A hash of s for in-memory tables (FNV-1a; not for anything an attacker must not collide). */
uint32_t text_hash(const char *s);

/*
 * Writes a name for something the service creates unnamed: prefix, the UTC
 * time and 4 random hex digits ("cp-20261126-110537-3fa2"); it follows the
 * name rule for a short prefix. Returns 0 or -errno.
 */
int text_generated_name(char *buf, size_t size, const char *prefix);

/* True when s starts with prefix. */
bool text_startswith(const char *s, const char *prefix);

/* Room for a JSON pointer into a request body, with its NUL. */
#define TEXT_POINTER_MAX 256

/*
 * Writes the JSON pointer (RFC 6901) of member `key` (escaped: '~' as "~0",
 * '/' as "~1") or, with key NULL, of array element `index`, below the
 * pointer base, into buf. Returns true, or false when it does not fit (buf
 * then holds base).
 */
bool text_pointer_join(char *buf, size_t size, const char *base, const char *key, size_t index);

/* True when s is a valid UUID string in its 36-character form. */
bool text_is_uuid(const char *s);

/*
 * Encodes len bytes of data as base64url (RFC 4648 section 5) without
 * padding into a new string. Returns NULL when out of memory.
 */
char *text_base64url_encode(const void *data, size_t len);

/*
 * Decodes base64url without padding, as text_base64url_encode() writes it,
 * into a new NUL-terminated buffer *ret of *ret_len bytes (ret_len may be
 * NULL). Returns -EINVAL for a character outside the alphabet, a length no
 * encoding has, or unused bits that are not zero (so that each value has one
 * spelling); -ENOMEM when out of memory. Fills *ret only on success.
 */
int text_base64url_decode(const char *s, char **ret, size_t *ret_len);

#endif
