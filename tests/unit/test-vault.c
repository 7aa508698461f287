/* Unit tests: vault paths, images, qcow2 headers, restore folders, helper programs. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
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
    struct vault_checksum sum = {0};
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
    ok(vault_image_seal(dir, "u/c/b1.vda.qcow2", NULL, &stored, &sum) == 0 && stored > 0 &&
           strlen(sum.digest) == 64 && sum.n_pieces == 1 && sum.pieces,
       "sealed: stored bytes and a checksum of one piece");
    vault_checksum_clear(&sum);
    ok(access(path, F_OK) < 0, ".part is gone after sealing");
    ok(vault_image_create(dir, "u/c/b2.vda.qcow2", 1 << 20, "b1.vda.qcow2") == 0 &&
           vault_image_seal(dir, "u/c/b2.vda.qcow2", NULL, NULL, NULL) == 0,
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

    /* .part files are made under descriptors of the vault's folders: no link is followed. */
    {
        char elsewhere[256], link_path[512], victim[512];
        snprintf(elsewhere, sizeof(elsewhere), "%s/elsewhere", dir);
        snprintf(link_path, sizeof(link_path), "%s/u2", dir);
        ok(mkdir(elsewhere, 0700) == 0 && symlink(elsewhere, link_path) == 0,
           "a domain folder that is a link out of the vault");
        ok(vault_image_create(dir, "u2/c/b1.vda.qcow2", 1 << 20, NULL) == -EACCES,
           "an image under it is refused");
        snprintf(victim, sizeof(victim), "%s/c", elsewhere);
        ok(access(victim, F_OK) < 0, "and nothing is made where the link points");
        snprintf(link_path, sizeof(link_path), "%s/u/c/b4.vda.qcow2.part", dir);
        snprintf(victim, sizeof(victim), "%s/victim", dir);
        int vfd = open(victim, O_WRONLY | O_CREAT | O_EXCL, 0600);
        ok(vfd >= 0 && write(vfd, "keep", 4) == 4 && close(vfd) == 0 &&
               symlink(victim, link_path) == 0,
           "a .part planted as a link to a file");
        ok(vault_image_create(dir, "u/c/b4.vda.qcow2", 1 << 20, "b1.vda.qcow2") == 0,
           "an image backed by b1 is made in its place");
        struct stat lst;
        ok(lstat(link_path, &lst) == 0 && S_ISREG(lst.st_mode) && (lst.st_mode & 0777) == 0640,
           "as a file of its own, mode 0640");
        ok(stat(victim, &lst) == 0 && lst.st_size == 4, "the linked file is untouched");
        ok(vault_qcow2_backing(link_path, &backing) == 0 && backing &&
               strcmp(backing, "b1.vda.qcow2") == 0,
           "its header names the backing file relatively");
        free(backing);
        backing = NULL;
    }

    /* Flatten through the chain; never over an existing file. */
    snprintf(path, sizeof(path), "%s/u/c/b2.vda.qcow2", dir);
    snprintf(sub, sizeof(sub), "%s/flat.img", dir);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    ok(vault_image_flatten_at(dfd, "flat.img", path, "raw", 0, NULL) == 0, "flatten to raw");
    struct stat st;
    ok(stat(sub, &st) == 0 && st.st_size == 1 << 20, "the raw image has the disk's size");
    ok(vault_image_flatten_at(dfd, "flat.img", path, "raw", 0, NULL) == -EEXIST,
       "an existing file is kept");
    ok(vault_image_flatten_at(dfd, "flat.vmdk", path, "vmdk", 0, NULL) == -EINVAL,
       "only qcow2 and raw");
    ok(vault_image_flatten_at(dfd, "../flat.img", path, "raw", 0, NULL) == -EINVAL,
       "only a plain name in the folder");

    /* A .part planted as a link to another file is not written through. */
    snprintf(outside, sizeof(outside), "%s/precious", dir);
    int fd = open(outside, O_WRONLY | O_CREAT, 0600);
    ok(fd >= 0 && write(fd, "keep", 4) == 4, "a file elsewhere");
    close(fd);
    snprintf(sub, sizeof(sub), "%s/flat.qcow2.part", dir);
    ok(symlink(outside, sub) == 0, "and a .part link to it");
    ok(vault_image_flatten_at(dfd, "flat.qcow2", path, "qcow2", 1 << 30, NULL) == 0,
       "flatten to qcow2 (with a rate)");
    ok(stat(outside, &st) == 0 && st.st_size == 4, "the linked file is untouched");
    ok(lstat(sub, &st) < 0 && errno == ENOENT, "no .part is left");
    snprintf(sub, sizeof(sub), "%s/flat.qcow2", dir);
    ok(vault_qcow2_backing(sub, &backing) == 0 && backing == NULL, "a qcow2 without backing");

    /* Cancelled: neither the image nor its .part stays. */
    struct conf_cancel stop;
    atomic_init(&stop.cancelled, true);
    ok(vault_image_flatten_at(dfd, "gone.img", path, "raw", 4096, &stop) == -ECANCELED,
       "a cancelled flatten");
    snprintf(sub, sizeof(sub), "%s/gone.img.part", dir);
    ok(access(sub, F_OK) < 0, "leaves no .part");
    snprintf(sub, sizeof(sub), "%s/gone.img", dir);
    ok(access(sub, F_OK) < 0, "and no image");
    close(dfd);

    /* On a file system without O_DIRECT (tmpfs) the flatten writes through the cache. */
    char shm[] = "/dev/shm/vv-vault-test-XXXXXX";
    if (mkdtemp(shm)) {
        int sfd = open(shm, O_RDONLY | O_DIRECTORY);
        char flat[600], cmd[1400];

        snprintf(flat, sizeof(flat), "%s/flat.img", dir);
        ok(vault_image_flatten_at(sfd, "flat.img", path, "raw", 0, NULL) == 0,
           "flatten to raw on tmpfs");
        snprintf(cmd, sizeof(cmd), "qemu-img compare -q -f raw -F raw %s %s/flat.img", flat, shm);
        ok(system(cmd) == 0, "the same bytes as on a disk written past the cache");
        close(sfd);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", shm);
        ok(system(cmd) == 0, "tmpfs folder removed");
    }

    /* A corrupt header is no qcow2 image. */
    snprintf(path, sizeof(path), "%s/u/c/b1.vda.qcow2", dir);
    fd = open(path, O_WRONLY);
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
    snprintf(sub, sizeof(sub), "%s/a/b", root);
    int rfd = -1;
    ok(vault_dir_open(sub, roots, 1, &rfd) == 0 && rfd >= 0, "a folder inside opens");
    close(rfd);
    snprintf(sub, sizeof(sub), "%s/link", root);
    ok(vault_dir_open(sub, roots, 1, &rfd) == -EACCES, "a link out of the root does not");

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
    struct conf_cancel cancel;
    atomic_init(&cancel.cancelled, true);
    char *sl[] = {(char *)"sleep", (char *)"10", NULL};
    ok(vault_run(sl, &cancel, NULL, NULL) == -ECANCELED, "a cancelled program is stopped");

    /*
     * Children start clean whatever this thread blocks or ignores (the daemon blocks
     * SIGTERM and SIGINT in every thread): nothing blocked, nothing ignored.
     */
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigaddset(&term, SIGINT);
    pthread_sigmask(SIG_BLOCK, &term, NULL);
    signal(SIGHUP, SIG_IGN);
    char *masks[] = {(char *)"grep", (char *)"-E", (char *)"^Sig(Blk|Ign)",
                     (char *)"/proc/self/status", NULL};
    int mr = vault_run(masks, NULL, &out, &status);
    unsigned long long blk = ~0ull, ign = ~0ull;
    ok(mr == 0 && out && sscanf(out, "SigBlk: %llx SigIgn: %llx", &blk, &ign) == 2 && blk == 0,
       "a child has an empty signal mask: %llx", blk);
    /* Bit n-1 stands for signal n; the realtime signals libc keeps for itself are not ours. */
    ok((ign & 0x7fffffffull) == 0, "and ignores no standard signal: %llx", ign);
    free(out);
    out = NULL;

    /* A child that ignores SIGTERM is killed after the grace period. */
    char *stubborn[] = {(char *)"sh", (char *)"-c", (char *)"trap '' TERM; exec sleep 20", NULL};
    uint64_t t0 = text_mono_ns();
    ok(vault_run(stubborn, &cancel, NULL, NULL) == -ECANCELED, "a child that ignores SIGTERM");
    uint64_t took = (text_mono_ns() - t0) / 1000000u;
    ok(took >= VAULT_KILL_GRACE_MS && took < VAULT_KILL_GRACE_MS + 2000,
       "is killed after the grace period: %" PRIu64 " ms", took);

    char *q = text_json_quote("a\"b\\c\nd");
    ok(q && strcmp(q, "\"a\\\"b\\\\c\\u000ad\"") == 0, "JSON quoting: %s", q ? q : "");
    free(q);

    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return tap_done();
}
