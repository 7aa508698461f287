/* api_json.h - JSON renderings that more than one resource file uses. */
#ifndef VV_API_JSON_H
#define VV_API_JSON_H

#include <jansson.h>

#include "conf/domain.h"
#include "conf/job.h"

/* The JSON form of a domain. Returns a new reference or NULL. */
json_t *api_domain_json(const struct conf_domain *d);

/* Answers 200 with the domain as it is now (by name or UUID). */
struct api_response;
int api_domain_reply(const char *domain, struct api_response *resp);

/*
 * The JSON form of a job (DESIGN.md's job object): error as a problem
 * object or null, result parsed from the job's JSON text or null. Returns a
 * new reference or NULL.
 */
json_t *api_job_json(const struct conf_job *j);

#endif
