/* Kept answers of requests with an Idempotency-Key (see idempotency.h). */
#include <stdlib.h>
#include <string.h>

#include "idempotency.h"

void
conf_idem_answer_clear(struct conf_idem_answer *a)
{
    if (!a)
        return;
    free(a->content_type);
    free(a->location);
    free(a->body);
    memset(a, 0, sizeof(*a));
}
