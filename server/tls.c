#include <errno.h>
#include <fcntl.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "err.h"
#include "tls.h"

#define PEM_MAX   (1u << 20)
#define MAX_CHAIN 16

static inline void
crt_freep(gnutls_x509_crt_t *c)
{
    if (*c)
        gnutls_x509_crt_deinit(*c);
}

static inline void
privkey_freep(gnutls_x509_privkey_t *k)
{
    if (*k)
        gnutls_x509_privkey_deinit(*k);
}

/* Reads a whole PEM file of at most PEM_MAX bytes; st receives its status. */
static int
read_pem(const char *what, const char *path, struct stat *st, char **ret)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;

    if (fd < 0)
        return err_set(-errno, "%s %s: cannot read: %s", what, path, strerror(errno));
    if (fstat(fd, st) < 0)
        return err_set(-errno, "%s %s: %s", what, path, strerror(errno));
    if (!S_ISREG(st->st_mode))
        return err_set(-EINVAL, "%s %s: not a regular file", what, path);
    buf = malloc(PEM_MAX + 1);
    if (!buf)
        return -ENOMEM;
    for (;;) {
        ssize_t n = read(fd, buf + len, PEM_MAX - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return err_set(-errno, "%s %s: cannot read: %s", what, path, strerror(errno));
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == PEM_MAX)
            return err_set(-EFBIG, "%s %s: larger than %u bytes", what, path, PEM_MAX);
    }
    buf[len] = '\0';
    *ret = TAKE_PTR(buf);
    return 0;
}

static void
format_time(time_t t, char *buf, size_t size)
{
    struct tm tm;

    if (!gmtime_r(&t, &tm) || !strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, size, "%lld", (long long)t);
}

int
tls_load(const char *cert_path, const char *key_path, time_t now, char **ret_cert_pem,
         char **ret_key_pem)
{
    _cleanup_free_ char *cert_pem = NULL;
    _cleanup_free_ char *key_pem = NULL;
    _cleanup_(crt_freep) gnutls_x509_crt_t crt = NULL;
    _cleanup_(privkey_freep) gnutls_x509_privkey_t key = NULL;
    unsigned char crt_id[64], key_id[64];
    size_t crt_id_len = sizeof(crt_id), key_id_len = sizeof(key_id);
    struct stat st;
    unsigned bits = 0;
    char when[32];
    int r, algo;

    r = read_pem("--tls-key", key_path, &st, &key_pem);
    if (r < 0)
        return r;
    if (st.st_mode & 077)
        return err_set(-EPERM,
                       "--tls-key %s: the key file may be read by others (mode %03o); "
                       "chmod 600 it",
                       key_path, (unsigned)(st.st_mode & 0777));
    r = read_pem("--tls-cert", cert_path, &st, &cert_pem);
    if (r < 0)
        return r;

    gnutls_datum_t cdat = {(unsigned char *)cert_pem, (unsigned)strlen(cert_pem)};
    gnutls_datum_t kdat = {(unsigned char *)key_pem, (unsigned)strlen(key_pem)};

    /* The first certificate of the file is the server's own; the rest is its chain. */
    if (gnutls_x509_crt_init(&crt) < 0)
        return -ENOMEM;
    r = gnutls_x509_crt_import(crt, &cdat, GNUTLS_X509_FMT_PEM);
    if (r < 0)
        return err_set(-EINVAL, "--tls-cert %s: not a PEM certificate: %s", cert_path,
                       gnutls_strerror(r));
    if (gnutls_x509_privkey_init(&key) < 0)
        return -ENOMEM;
    r = gnutls_x509_privkey_import2(key, &kdat, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN);
    if (r < 0)
        return err_set(-EINVAL, "--tls-key %s: not an unencrypted PEM private key: %s", key_path,
                       gnutls_strerror(r));

    algo = gnutls_x509_privkey_get_pk_algorithm2(key, &bits);
    if (algo < 0)
        return err_set(-EINVAL, "--tls-key %s: unknown key algorithm", key_path);
    if ((algo == GNUTLS_PK_RSA || algo == GNUTLS_PK_RSA_PSS) && bits < TLS_MIN_RSA_BITS)
        return err_set(-EINVAL, "--tls-key %s: RSA key of %u bits; at least %u are needed",
                       key_path, bits, TLS_MIN_RSA_BITS);
    if (algo == GNUTLS_PK_DSA)
        return err_set(-EINVAL, "--tls-key %s: DSA keys are not accepted", key_path);

    r = gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, crt_id, &crt_id_len);
    if (r < 0)
        return err_set(-EINVAL, "--tls-cert %s: cannot read its public key: %s", cert_path,
                       gnutls_strerror(r));
    r = gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, key_id, &key_id_len);
    if (r < 0)
        return err_set(-EINVAL, "--tls-key %s: cannot read its public part: %s", key_path,
                       gnutls_strerror(r));
    if (crt_id_len != key_id_len || memcmp(crt_id, key_id, crt_id_len) != 0)
        return err_set(-EINVAL, "--tls-key %s does not belong to the certificate in %s", key_path,
                       cert_path);

    time_t not_after = gnutls_x509_crt_get_expiration_time(crt);
    time_t not_before = gnutls_x509_crt_get_activation_time(crt);
    if (not_after != (time_t)-1 && not_after < now) {
        format_time(not_after, when, sizeof(when));
        return err_set(-EINVAL, "--tls-cert %s: the certificate expired at %s", cert_path, when);
    }
    if (not_before != (time_t)-1 && not_before > now) {
        format_time(not_before, when, sizeof(when));
        return err_set(-EINVAL, "--tls-cert %s: the certificate is not valid before %s", cert_path,
                       when);
    }
    *ret_cert_pem = TAKE_PTR(cert_pem);
    *ret_key_pem = TAKE_PTR(key_pem);
    return 0;
}
