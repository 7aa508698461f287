/* Unit tests: vault paths, images, qcow2 headers, restore folders, helper programs. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "tap.h"
#include "text.h"
#include "vault/vault.h"

static const struct {
    const char *uuid, *chain, *id, *disk;
    int want;
} paths[] = {
    {"u", "c", "b", "vda", 0},         {"u", "c", "b", "../vda", -EINVAL},
    {"u", "c/x", "b", "vda", -EINVAL}, {"u", ".c", "b", "vda", -EINVAL},
    {"", "c", "b", "vda", -EINVAL},
};

int
main(void)
{
    char dir[] = "/tmp/vv-vault-test-XXXXXX";
    char path[512], sub[512], outside[512];
    char *rel = NULL, *backing = NULL, *out = NULL;
    char hex[65];
    uint64_t stored = 0;
    int status = 0;

    if (!mkdtemp(dir))
        return 1;

    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        int r = vault_image_path(paths[i].uuid, paths[i].chain, paths[i].id, paths[i].disk, &rel);
        ok(r == paths[i].want, "image path %s/%s/%s.%s -> %d", paths[i].uuid, paths[i].chain,
           paths[i].id, paths[i].disk, r);
        free(rel);
        rel = NULL;
    }

    /* A full image and one backed by it, sealed: the backing name is in the header. */
    ok(vault_image_create(dir, "u/c/b1.vda.qcow2", 1 << 20, NULL) == 0, "create a full image");
    snprintf(path, sizeof(path), "%s/u/c/b1.vda.qcow2.part", dir);
    ok(access(path, F_OK) == 0, "it is written under .part");
    ok(vault_image_seal(dir, "u/c/b1.vda.qcow2", &stored, hex) == 0 && stored > 0 &&
           strlen(hex) == 64,
       "sealed: stored bytes and a checksum");
    ok(access(path, F_OK) < 0, ".part is gone after sealing");
    ok(vault_image_create(dir, "u/c/b2.vda.qcow2", 1 << 20, "b1.vda.qcow2") == 0 &&
           vault_image_seal(dir, "u/c/b2.vda.qcow2", NULL, NULL) == 0,
       "create and seal an image backed by it");
    snprintf(path, sizeof(path), "%s/u/c/b2.vda.qcow2", dir);
    ok(vault_qcow2_backing(path, &backing) == 0 && backing && strcmp(backing, "b1.vda.qcow2") == 0,
       "its header names the backing file relatively: %s", backing ? backing : "(none)");
    free(backing);
    backing = NULL;
    snprintf(path, sizeof(path), "%s/u/c/b1.vda.qcow2", dir);
    ok(vault_qcow2_backing(path, &backing) == 0 && backing == NULL, "a full image has none");
    ok(vault_image_check(path, NULL) == 0, "qemu-img check finds it sound");
    ok(vault_image_create(dir, "u/c/b3.vda.qcow2", 1 << 20, "../b1.vda.qcow2") == -EINVAL,
       "a backing file outside the folder is refused");

    /* Flatten through the chain; never over an existing file. */
    snprintf(path, sizeof(path), "%s/u/c/b2.vda.qcow2", dir);
    snprintf(sub, sizeof(sub), "%s/flat.img", dir);
    ok(vault_image_flatten(path, sub, "raw", NULL) == 0, "flatten to raw");
    struct stat st;
    ok(stat(sub, &st) == 0 && st.st_size == 1 << 20, "the raw image has the disk's size");
    ok(vault_image_flatten(path, sub, "raw", NULL) == -EEXIST, "an existing file is kept");
    ok(vault_image_flatten(path, sub, "vmdk", NULL) == -EINVAL, "only qcow2 and raw");

    /* A corrupt header is no qcow2 image. */
    snprintf(path, sizeof(path), "%s/u/c/b1.vda.qcow2", dir);
    int fd = open(path, O_WRONLY);
    ok(fd >= 0 && pwrite(fd, "XXXX", 4, 0) == 4, "break the magic");
    close(fd);
    ok(vault_qcow2_backing(path, &backing) == -EINVAL, "not a qcow2 image any more");
    ok(vault_image_check(path, NULL) < 0, "qemu-img check fails on it");

    ok(vault_image_remove(dir, "u/c/b1.vda.qcow2") == 0 &&
           vault_image_remove(dir, "u/c/b1.vda.qcow2") == 0,
       "remove, twice");

    /* Restore folders: inside a root only, no dot segments, symlinks do not lead out. */
    char root[256];
    char *roots[] = {root};
    snprintf(root, sizeof(root), "%s/root", dir);
    mkdir(root, 0750);
    snprintf(sub, sizeof(sub), "%s/a/b", root);
    ok(vault_dir_inside(sub, roots, 1) == 0, "a new folder inside the root is made");
    ok(stat(sub, &st) == 0 && S_ISDIR(st.st_mode), "and exists");
    ok(vault_dir_inside(root, roots, 1) == 0, "the root itself");
    snprintf(sub, sizeof(sub), "%s/../x", root);
    ok(vault_dir_inside(sub, roots, 1) == -EINVAL, "'..' is refused");
    ok(vault_dir_inside("relative", roots, 1) == -EINVAL, "a relative folder is refused");
    snprintf(outside, sizeof(outside), "%s/rootless", dir);
    ok(vault_dir_inside(outside, roots, 1) == -EINVAL, "a sibling with the root as prefix");
    snprintf(sub, sizeof(sub), "%s/link", root);
    ok(symlink("/tmp", sub) == 0, "a symlink out of the root");
    snprintf(sub, sizeof(sub), "%s/link/x", root);
    ok(vault_dir_inside(sub, roots, 1) == -EACCES, "does not lead out");

    /* Helper programs: output, exit status, no shell. */
    char *echo[] = {(char *)"echo", (char *)"a;b", NULL};
    ok(vault_run(echo, NULL, &out, &status) == 0 && strcmp(out, "a;b\n") == 0,
       "argv is passed as is");
    free(out);
    out = NULL;
    char *f[] = {(char *)"false", NULL};
    ok(vault_run(f, NULL, NULL, &status) == -EIO && status == 1, "a failing program");
    char *none[] = {(char *)"no-such-program-vv", NULL};
    ok(vault_run(none, NULL, NULL, NULL) == -ENOENT, "a missing program");
    struct vault_cancel cancel;
    atomic_init(&cancel.cancelled, true);
    char *sl[] = {(char *)"sleep", (char *)"10", NULL};
    ok(vault_run(sl, &cancel, NULL, NULL) == -ECANCELED, "a cancelled program is stopped");

    char *q = text_json_quote("a\"b\\c\nd");
    ok(q && strcmp(q, "\"a\\\"b\\\\c\\u000ad\"") == 0, "JSON quoting: %s", q ? q : "");
    free(q);

    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return tap_done();
}
