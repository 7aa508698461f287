/*
 * tls.h - loading and vetting the HTTPS certificate and key.
 *
 * The service refuses to start with a setup that would give a false sense of
 * safety: a key file others may read, a key that does not belong to the
 * certificate, an RSA key under 2048 bits, or a certificate that has expired
 * or is not valid yet. The protocol floor (TLS 1.2) is the transport's
 * priority string, TLS_PRIORITIES.
 */
#ifndef VV_TLS_H
#define VV_TLS_H

#include <time.h>

#define TLS_PRIORITIES   "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SERVER_PRECEDENCE"
#define TLS_MIN_RSA_BITS 2048

/*
 * Reads the PEM certificate (chain) at cert_path and the PEM private key at
 * key_path and checks them as above, against the time now. On success
 * *ret_cert_pem and *ret_key_pem are new strings the caller frees. Returns
 * 0, or a negative errno with a one-line reason in err_detail().
 */
int tls_load(const char *cert_path, const char *key_path, time_t now, char **ret_cert_pem,
             char **ret_key_pem);

#endif
