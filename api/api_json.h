/* api_json.h - JSON renderings that more than one resource file uses. */
#ifndef VV_API_JSON_H
#define VV_API_JSON_H

#include <jansson.h>

#include "virt/virt.h"

/* The JSON form of a domain. Returns a new reference or NULL. */
json_t *api_domain_json(const struct virt_domain *d);

#endif
