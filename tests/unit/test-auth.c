/* Unit tests: token file parsing and token checks. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hash.h"
#include "server/auth.h"
#include "tap.h"

#define H_ALPHA "a5c1b5fa9b0e2bb6d0ab18a4b3b1a1f7d8e9c3b6a1f0e7d4c3b2a1908f7e6d5c"

static const struct {
    const char *text;
    int ok;
    size_t n;
    const char *err_part;
} files[] = {
    {"sha256:" H_ALPHA " viewer\n", 1, 1, NULL},
    {"# tokens\n\nsha256:" H_ALPHA " admin name=ci expires=2030-01-01T00:00:00Z  # ci\n", 1, 1,
     NULL},
    {"sha256:" H_ALPHA " operator\r\nsha256:" H_ALPHA " viewer\r\n", 1, 2, NULL},
    {"", 0, 0, "no token"},
    {"# only a comment\n", 0, 0, "no token"},
    {"sha256:" H_ALPHA "\n", 0, 0, "line 1"},
    {"sha256:" H_ALPHA " root\n", 0, 0, "role must be"},
    {"\nsha256:ABC viewer\n", 0, 0, "line 2"},
    {"md5:" H_ALPHA " viewer\n", 0, 0, "sha256:"},
    {"sha256:" H_ALPHA " viewer expires=tomorrow\n", 0, 0, "RFC 3339"},
    {"sha256:" H_ALPHA " viewer colour=blue\n", 0, 0, "unknown field"},
    {"sha256:" H_ALPHA " viewer name=\n", 0, 0, "name must be"},
    {"plaintext-token admin\n", 0, 0, "sha256:"},
};

/*
 * File digests: known answers through the file reader, over sizes around
 * its 4 MiB read block, each against the one-shot digest of the same bytes.
 */
static void
hash_file_cases(void)
{
    static const size_t sizes[] = {0, 1, 1000000, 4u << 20, (4u << 20) + 1, 9u << 20};
    char dir[] = "/tmp/vv-hash-XXXXXX", path[64], hf[65], hm[65];

    if (!mkdtemp(dir)) {
        ok(0, "mkdtemp: %s", strerror(errno));
        return;
    }
    snprintf(path, sizeof(path), "%s/f", dir);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i];
        unsigned char *buf = malloc(n ? n : 1);
        FILE *f = fopen(path, "w");

        for (size_t j = 0; j < n; j++)
            buf[j] = n == 1000000 ? 'a' : (unsigned char)(j * 2654435761u >> 13);
        ok(f && fwrite(buf, 1, n, f) == n && fclose(f) == 0, "write %zu bytes", n);
        ok(hash_sha256_file(path, hf) == 0, "hash a file of %zu bytes", n);
        hash_sha256_hex(buf, n, hm);
        ok(strcmp(hf, hm) == 0, "file and memory digests agree at %zu bytes", n);
        if (n == 0)
            ok(strcmp(hf, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0,
               "sha256 of an empty file");
        if (n == 1000000)
            ok(strcmp(hf, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0,
               "sha256 of a million 'a'");
        free(buf);
    }
    ok(hash_sha256_file("/nonexistent/vv", hf) == -ENOENT, "a missing file is -ENOENT");
    unlink(path);
    rmdir(dir);
}

int
main(void)
{
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        struct auth a = {0};
        char err[256] = "";
        int r = auth_parse(files[i].text, strlen(files[i].text), &a, err, sizeof(err));
        if (files[i].ok)
            ok(r == 0 && a.n == files[i].n, "file %zu parses (%zu tokens) %s", i, a.n, err);
        else
            ok(r == -EINVAL && strstr(err, files[i].err_part), "file %zu refused: %s", i, err);
        auth_clear(&a);
    }

    {
        const char nul[] = "sha256:" H_ALPHA " viewer\n\0x";
        struct auth a = {0};
        char err[256] = "";
        ok(auth_parse(nul, sizeof(nul) - 1, &a, err, sizeof(err)) == -EINVAL,
           "a NUL byte is refused");
    }

    /* Real hashes: tokens "view-secret" (viewer) and "old-secret" (expired admin). */
    char hv[65], ho[65], text[512];
    hash_sha256_hex("view-secret", 11, hv);
    hash_sha256_hex("old-secret", 10, ho);
    snprintf(text, sizeof(text),
             "sha256:%s viewer name=v\nsha256:%s admin expires=2020-01-01T00:00:00Z\n", hv, ho);
    struct auth a = {0};
    char err[256] = "";
    ok(auth_parse(text, strlen(text), &a, err, sizeof(err)) == 0, "real file parses");

    const struct auth_token *t = NULL;
    time_t now = 1795690585;
    ok(auth_check(&a, "Bearer view-secret", now, &t) == AUTH_OK && t && t->role == ROLE_VIEWER,
       "viewer token accepted");
    ok(auth_check(&a, "bearer view-secret", now, &t) == AUTH_OK, "scheme is case-insensitive");
    ok(auth_check(&a, "Bearer view-secreT", now, &t) == AUTH_INVALID, "wrong token refused");
    ok(auth_check(&a, "Bearer old-secret", now, &t) == AUTH_EXPIRED, "expired token refused");
    ok(auth_check(&a, NULL, now, &t) == AUTH_MISSING, "no header");
    ok(auth_check(&a, "Basic dXNlcjpwYXNz", now, &t) == AUTH_MISSING, "basic auth is no bearer");
    ok(auth_check(&a, "Bearer ", now, &t) == AUTH_MISSING, "empty bearer");
    ok(auth_check(&a,
                  "Bearer "
                  "a5c1b5fa9b0e2bb6d0ab18a4b3b1a1f7d8e9c3b6a1f0e7d4c3b2a1908f7e6d5c",
                  now, &t) == AUTH_INVALID,
       "presenting the hash itself is refused");
    auth_clear(&a);

    /* SHA-256 known answer. */
    char h[65];
    hash_sha256_hex("abc", 3, h);
    ok(strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0,
       "sha256('abc')");
    hash_file_cases();
    return tap_done();
}
