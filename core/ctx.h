/*
 * core/ctx.h - what the core's modules read of the service they run in: the
 * open database and the vault folder, set by core_start() and cleared by
 * core_stop() (core.c). ctx.c is a leaf that calls nothing, so a module
 * that reads the context (core_db(), core_vault_dir() in core.h) is not
 * tied back to core.c, which starts the modules.
 */
#ifndef VV_CORE_CTX_H
#define VV_CORE_CTX_H

struct db;

struct core_ctx {
    struct db *db;
    char *vault_dir;
};

extern struct core_ctx core_ctx;

#endif
