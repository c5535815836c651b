/*
 * atna_internal.h - the feed's pieces shared between its files: the TLS
 * client (tls.c).
 */
#ifndef EHR_ATNA_INTERNAL_H
#define EHR_ATNA_INTERNAL_H

#include "atna/atna.h"

#include <openssl/ssl.h>

/* A client context for RFC 5425: TLS 1.2+, AEAD suites, the repository's
 * chain verified against ca_file, our certificate and key presented. */
int atna__tls_ctx(SSL_CTX **out, const char *ca_file, const char *cert_file, const char *key_file);

struct atna_conn {
	SSL *ssl;
	int fd;
};

/* Connect to host:port and complete the handshake within timeout_ms; the
 * certificate must chain to the CA and name host (DNS name or IP). */
int atna__tls_connect(struct atna_conn *c, SSL_CTX *ctx, const char *host, uint16_t port,
                      unsigned timeout_ms);
/* Write all of p[0..n) within timeout_ms (EHR_ERR_IO / EHR_ERR_TIMEOUT). */
int atna__tls_write(struct atna_conn *c, const void *p, size_t n, unsigned timeout_ms);
/* True while the peer has neither closed nor reset the connection (a
 * repository never sends application data; session tickets are consumed). */
bool atna__tls_alive(struct atna_conn *c);
void atna__tls_close(struct atna_conn *c);

#endif
