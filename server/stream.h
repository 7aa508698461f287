/*
 * stream.h - turns an api_stream into a libmicrohttpd response, honouring
 * the Range header: 200 for the whole body, 206 with Content-Range for one
 * range, 206 multipart/byteranges for several. Memory stays bounded: bytes
 * are read from the stream as the client takes them.
 */
#ifndef VV_STREAM_H
#define VV_STREAM_H

#include <microhttpd.h>

#include "api/api.h"

/*
 * Builds the response for stream (range_header may be NULL). On success
 * takes ownership of stream, sets *ret and *ret_status and returns 0.
 * Returns -EINVAL for a malformed Range, -E2BIG for too many ranges,
 * -ERANGE when no range is satisfiable (416), -ENOMEM; the caller keeps
 * (and frees) stream on failure.
 */
int stream_response_new(struct api_stream *stream, const char *range_header,
                        struct MHD_Response **ret, int *ret_status);

/* Frees a stream that was not handed to a response. Accepts NULL. */
void stream_free(struct api_stream *stream);

#endif
