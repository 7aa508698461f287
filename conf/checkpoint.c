/* The checkpoint record (see checkpoint.h). */
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"

CONF_ENUM_IMPL(conf_checkpoint_state, enum conf_checkpoint_state, CONF_CHECKPOINT_STATE_LAST, "ok",
               "redefined", "broken", "orphaned");

bool
conf_checkpoint_state_healthy(enum conf_checkpoint_state s)
{
    return s == CONF_CHECKPOINT_OK || s == CONF_CHECKPOINT_REDEFINED;
}

void
conf_checkpoint_disk_clear(struct conf_checkpoint_disk *d)
{
    free(d->target);
    free(d->bitmap_name);
}

void
conf_checkpoint_def_clear(struct conf_checkpoint_def *c)
{
    free(c->name);
    free(c->parent);
    free(c->description);
    for (size_t i = 0; i < c->n_disks; i++)
        conf_checkpoint_disk_clear(&c->disks[i]);
    free(c->disks);
    free(c->xml);
    memset(c, 0, sizeof(*c));
}

void
conf_checkpoint_def_free(struct conf_checkpoint_def *c)
{
    if (!c)
        return;
    conf_checkpoint_def_clear(c);
    free(c);
}

void
conf_checkpoint_def_list_free(struct conf_checkpoint_def *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        conf_checkpoint_def_clear(&list[i]);
    free(list);
}
