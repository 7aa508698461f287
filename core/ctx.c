/* The core's context (see ctx.h). */
#include <stddef.h>

#include "core.h"
#include "ctx.h"

struct core_ctx core_ctx;

struct db *
core_db(void)
{
    return core_ctx.db;
}

const char *
core_vault_dir(void)
{
    return core_ctx.vault_dir;
}
