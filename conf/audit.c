/* Audit records (see audit.h). */
#include <stdlib.h>
#include <string.h>

#include "audit.h"

void
conf_audit_clear(struct conf_audit *r)
{
    if (!r)
        return;
    free(r->who);
    free(r->remote);
    free(r->method);
    free(r->path);
    free(r->job_id);
    free(r->domain);
    memset(r, 0, sizeof(*r));
}

void
conf_audit_list_free(struct conf_audit *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        conf_audit_clear(&list[i]);
    free(list);
}
