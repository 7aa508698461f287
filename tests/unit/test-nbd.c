/*
 * Tests virt/nbd.c against a real export: qemu-nbd serving a qcow2 image
 * with data at known places and a dirty bitmap that saw only some writes.
 */
#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"
#include "virt/nbd.h"

#define MiB (1024u * 1024u)

__attribute__((format(printf, 1, 2))) static int
sh(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    return system(cmd);
}

int
main(void)
{
    char dir[] = "/tmp/vv-nbd-test-XXXXXX";
    char uri[256], sock[200];
    struct virt_nbd *n = NULL;
    struct conf_extent *ext = NULL;
    size_t n_ext = 0;

    if (!mkdtemp(dir))
        return 1;
    snprintf(sock, sizeof(sock), "%s/nbd.sock", dir);
    snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s", sock);

    /* 64 MiB image: 0xaa at 1 MiB (before the bitmap), 0xbb at 8 MiB and 0xcc at 40 MiB after. */
    ok(sh("qemu-img create -q -f qcow2 %s/d.qcow2 64M && "
          "qemu-io -f qcow2 -c 'write -P 0xaa 1M 1M' %s/d.qcow2 >/dev/null && "
          "qemu-img bitmap --add %s/d.qcow2 b1 && "
          "qemu-io -f qcow2 -c 'write -P 0xbb 8M 2M' -c 'write -P 0xcc 40M 64k' %s/d.qcow2 "
          ">/dev/null",
          dir, dir, dir, dir) == 0,
       "image made");

    pid_t pid = fork();
    if (pid == 0) {
        char img[256];
        snprintf(img, sizeof(img), "%s/d.qcow2", dir);
        execlp("qemu-nbd", "qemu-nbd", "-k", sock, "-f", "qcow2", "-r", "-B", "b1", "-t", img,
               (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100 && access(sock, F_OK) != 0; i++)
        usleep(50 * 1000);

    ok(virt_nbd_open(uri, "qemu:dirty-bitmap:b1", &n) == 0, "connect");
    if (!n)
        return tap_done();
    ok(virt_nbd_size(n) == 64 * MiB, "size is 64 MiB");

    ok(virt_nbd_extents(n, "qemu:dirty-bitmap:b1", 0, 64 * MiB, 1000, &ext, &n_ext, NULL) == 0,
       "dirty extents");
    size_t dirty = 0;
    uint64_t dirty_bytes = 0;
    for (size_t i = 0; i < n_ext; i++)
        if (ext[i].flags & 1) {
            dirty++;
            dirty_bytes += ext[i].length;
        }
    ok(dirty == 2 && dirty_bytes == 2 * MiB + 64 * 1024,
       "two dirty ranges, 2 MiB + 64 KiB (%zu, %llu)", dirty, (unsigned long long)dirty_bytes);
    uint64_t covered = 0;
    for (size_t i = 0; i < n_ext; i++)
        covered += ext[i].length;
    ok(covered == 64 * MiB, "extents cover the disk");
    free(ext);

    /* Paged: one extent at a time, each page starting where the last ended. */
    uint64_t at = 0, next = 0, paged = 0;
    size_t pages = 0, whole = n_ext;
    int paged_ok = 1;
    while (at < 64 * MiB && pages < 100) {
        paged_ok &= virt_nbd_extents(n, "qemu:dirty-bitmap:b1", at, 64 * MiB - at, 1, &ext, &n_ext,
                                     &next) == 0 &&
                    n_ext == 1 && ext[0].start == at && next == at + ext[0].length;
        if (paged_ok && (ext[0].flags & 1))
            paged += ext[0].length;
        free(ext);
        ext = NULL;
        if (!paged_ok)
            break;
        at = next;
        pages++;
    }
    ok(paged_ok && at == 64 * MiB && paged == dirty_bytes && pages == whole,
       "paged one extent at a time: %zu pages, the same dirty bytes", pages);
    ok(virt_nbd_extents(n, "qemu:dirty-bitmap:b1", 0, 64 * MiB, 0, &ext, &n_ext, NULL) == -EINVAL,
       "a page of no extents is refused");

    ok(virt_nbd_extents(n, VIRT_NBD_CONTEXT_ALLOCATION, 0, 64 * MiB, 1000, &ext, &n_ext, NULL) == 0,
       "allocation extents");
    uint64_t data = 0;
    for (size_t i = 0; i < n_ext; i++)
        if (!(ext[i].flags & 1))
            data += ext[i].length;
    ok(data == 3 * MiB + 64 * 1024, "3 MiB + 64 KiB allocated (%llu)", (unsigned long long)data);
    free(ext);
    ok(virt_nbd_extents(n, "qemu:dirty-bitmap:none", 0, MiB, 1, &ext, &n_ext, NULL) == -EOPNOTSUPP,
       "unknown context refused");

    /* Sequential read of the whole disk through the read-ahead window. */
    char *buf = malloc(64 * MiB);
    uint64_t pos = 0;
    int bad = 0;
    virt_nbd_prepare(n, 0, 64 * MiB);
    while (pos < 64 * MiB) {
        ssize_t got = virt_nbd_read(n, pos, buf + pos, 300 * 1024);
        if (got <= 0) {
            bad = 1;
            break;
        }
        pos += (uint64_t)got;
    }
    ok(!bad && pos == 64 * MiB, "whole disk read");
    ok(buf[1 * MiB] == (char)0xaa && buf[2 * MiB - 1] == (char)0xaa && buf[8 * MiB] == (char)0xbb &&
           buf[10 * MiB - 1] == (char)0xbb && buf[40 * MiB] == (char)0xcc && buf[0] == 0 &&
           buf[10 * MiB] == 0,
       "bytes are where they were written");
    /* Random access: jumps reset the window. */
    char small[16];
    ok(virt_nbd_read(n, 40 * MiB + 10, small, sizeof(small)) == sizeof(small) &&
           small[0] == (char)0xcc,
       "read at a jump");
    ok(virt_nbd_read(n, 1 * MiB, small, 1) == 1 && small[0] == (char)0xaa, "read backwards");
    ok(virt_nbd_read(n, 64 * MiB, small, 1) == -EINVAL, "read past the end refused");
    free(buf);
    virt_nbd_close(n);

    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);

    /*
     * A 200 GiB sparse image with 64 KiB of data at 0, 100 GiB and its last
     * 64 KiB: block status is asked in many windows, several at a time.
     */
    ok(sh("qemu-img create -q -f qcow2 %s/big.qcow2 200G && "
          "qemu-io -f qcow2 -c 'write -P 0x11 0 64k' -c 'write -P 0x22 100G 64k' "
          "-c 'write -P 0x33 209715136k 64k' %s/big.qcow2 >/dev/null",
          dir, dir) == 0,
       "200 GiB sparse image made");
    snprintf(sock, sizeof(sock), "%s/big.qcow2", dir);
    n = NULL;
    ok(virt_nbd_open_image(sock, NULL, false, &n) == 0, "200 GiB image served");
    if (n) {
        const uint64_t big = 200ull << 30, k64 = 64 << 10;
        const struct conf_extent want[] = {
            {0, k64, 0},
            {k64, (100ull << 30) - k64, 3},
            {100ull << 30, k64, 0},
            {(100ull << 30) + k64, big - (100ull << 30) - 2 * k64, 3},
            {big - k64, k64, 0}};
        uint64_t bnext = 0;
        int same = 0;

        ok(virt_nbd_extents(n, VIRT_NBD_CONTEXT_ALLOCATION, 0, big, 1000, &ext, &n_ext, &bnext) ==
                   0 &&
               n_ext == 5 && bnext == big,
           "200 GiB: five extents in one page (%zu)", n_ext);
        for (size_t i = 0; ext && i < n_ext && i < 5; i++)
            same += ext[i].start == want[i].start && ext[i].length == want[i].length &&
                    ext[i].flags == want[i].flags;
        ok(same == 5, "200 GiB: data at 0, 100 GiB and the end, holes between");
        free(ext);
        ext = NULL;

        /* Pages of two extents, then one: each starts where the last ended. */
        for (size_t max = 1; max <= 2; max++) {
            uint64_t bat = 0;
            size_t got = 0, bpages = 0;
            int good = 1;

            while (good && bat < big && bpages < 10) {
                good = virt_nbd_extents(n, VIRT_NBD_CONTEXT_ALLOCATION, bat, big - bat, max, &ext,
                                        &n_ext, &bnext) == 0 &&
                       n_ext >= 1 && n_ext <= max && ext[0].start == bat;
                for (size_t i = 0; good && i < n_ext; i++, got++)
                    good = got < 5 && ext[i].start == want[got].start &&
                           ext[i].length == want[got].length && ext[i].flags == want[got].flags;
                free(ext);
                ext = NULL;
                bat = bnext;
                bpages++;
            }
            ok(good && bat == big && got == 5, "200 GiB paged %zu extent(s) at a time: %zu pages",
               max, bpages);
        }
        /* A window that starts and ends inside holes. */
        ok(virt_nbd_extents(n, VIRT_NBD_CONTEXT_ALLOCATION, 50ull << 30, 100ull << 30, 1000, &ext,
                            &n_ext, &bnext) == 0 &&
               n_ext == 3 && ext[0].start == 50ull << 30 && ext[1].start == 100ull << 30 &&
               ext[2].start + ext[2].length == 150ull << 30 && bnext == 150ull << 30,
           "200 GiB: a window from 50 to 150 GiB");
        free(ext);
        ext = NULL;
        virt_nbd_close(n);
    }
    sh("rm -rf %s", dir);
    return tap_done();
}
