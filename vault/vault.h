/*
 * vault.h - backup files on disk. A vault is one folder; each domain has a
 * folder named by its UUID below it.
 */
#ifndef VV_VAULT_H
#define VV_VAULT_H

/*
 * Makes sure dir exists and is a writable folder, creating it (mode 0750)
 * when missing. Returns 0 or a negative errno with a detail.
 */
int vault_prepare(const char *dir);

#endif
