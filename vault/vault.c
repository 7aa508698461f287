#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "vault.h"

int
vault_prepare(const char *dir)
{
    struct stat st;

    if (mkdir(dir, 0750) < 0 && errno != EEXIST)
        return err_set(-errno, "cannot create vault folder %s: %s", dir, strerror(errno));
    if (stat(dir, &st) < 0)
        return err_set(-errno, "cannot use vault folder %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return err_set(-ENOTDIR, "vault %s is not a folder", dir);
    if (access(dir, W_OK | X_OK) < 0)
        return err_set(-errno, "vault folder %s is not writable: %s", dir, strerror(errno));
    return 0;
}
