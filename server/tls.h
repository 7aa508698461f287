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

/*
 * TLS 1.2 and 1.3 only; AEAD ciphers only (no CBC, so no SHA-1 MACs);
 * forward-secret ECDHE key exchange only (no RSA key transport); no SHA-1
 * signatures.
 */
#define TLS_PRIORITIES                                                                             \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:"            \
    "+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:-SIGN-RSA-SHA1:"            \
    "-SIGN-ECDSA-SHA1:-SIGN-DSA-SHA1:%SERVER_PRECEDENCE"
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
