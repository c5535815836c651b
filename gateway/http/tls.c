/*
 * tls.c - the listener's TLS context.
 *
 * TLS 1.2 and 1.3 only. TLS 1.2 gets an explicit AEAD-only ECDHE list
 * (AES-GCM, ChaCha20-Poly1305); TLS 1.3 its three AEAD suites. No
 * compression, no renegotiation, no 0-RTT (RFC 8446 §8: early data is
 * replayable). A client certificate is *requested*, never required: the
 * verify callback accepts every chain and OpenSSL records the verdict,
 * which routes read through gw_req_peer_verify (policy in authn.c).
 */
#include "gateway/http/http_internal.h"

#include <stdio.h>
#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#define GW_TLS12_CIPHERS                                                                           \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:" \
	"ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
#define GW_TLS13_SUITES "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"

/* An SSL marked here fails its handshake at the ClientHello. */
static int refuse_index = -1;

int gw_tls_init(void)
{
	if (refuse_index < 0)
		refuse_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	return refuse_index < 0 ? ehr_error_ossl(EHR_ERR_CRYPTO, "SSL_get_ex_new_index") : 0;
}

int gw_tls_refuse(SSL *ssl)
{
	static char mark;

	return SSL_set_ex_data(ssl, refuse_index, &mark) == 1
	               ? 0
	               : ehr_error_ossl(EHR_ERR_CRYPTO, "SSL_set_ex_data");
}

/* Accept every chain; SSL_get_verify_result keeps the verdict. */
static int verify_accept(int preverify_ok, X509_STORE_CTX *ctx)
{
	(void)preverify_ok;
	(void)ctx;
	return 1;
}

/* Past max_connections (gw_tls_refuse) the handshake fails at once. */
static int client_hello(SSL *s, int *al, void *arg)
{
	(void)arg;
	if (SSL_get_ex_data(s, refuse_index) != NULL) {
		*al = SSL_AD_INTERNAL_ERROR;
		return SSL_CLIENT_HELLO_ERROR;
	}
	return SSL_CLIENT_HELLO_SUCCESS;
}

int gw_tls_ctx_new(SSL_CTX **out, const struct gw_http_options *o)
{
	const char *cert = o->tls_cert;
	const char *key = o->tls_key;
	const char *ca = o->tls_client_ca;
	STACK_OF(X509_NAME) *names = NULL;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	static const unsigned char sid_ctx[] = "ehrgate";
	int err = 0;

	if (ctx == NULL)
		return ehr_error_ossl(EHR_ERR_CRYPTO, "SSL_CTX_new");
	GUARD_OSSL_GOTO(SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION));
	GUARD_OSSL_GOTO(SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION));
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	                                 SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_CIPHER_SERVER_PREFERENCE);
	GUARD_OSSL_GOTO(SSL_CTX_set_cipher_list(ctx, GW_TLS12_CIPHERS));
	GUARD_OSSL_GOTO(SSL_CTX_set_ciphersuites(ctx, GW_TLS13_SUITES));
	GUARD_OSSL_GOTO(SSL_CTX_set_max_early_data(ctx, 0));
	GUARD_OSSL_GOTO(SSL_CTX_set_recv_max_early_data(ctx, 0));
	GUARD_OSSL_GOTO(SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384"));
	GUARD_OSSL_GOTO(SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1));
	/* No SSL_CTX_set_read_ahead: bufferevent_openssl only reads again when
	 * the socket is readable, so records buffered inside OpenSSL would stall
	 * (seen as intermittent hangs). */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		err = ehr_error_ossl(EHR_ERR_CONFIG, "[tls] cert: cannot load certificate chain");
		goto out;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		err = ehr_error_ossl(EHR_ERR_CONFIG, "[tls] key: cannot load private key");
		goto out;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		err = ehr_error_ossl(EHR_ERR_CONFIG, "[tls] key does not match [tls] cert");
		goto out;
	}
	if (ca == NULL || *ca == '\0') {
		/* No client CA (a server without client certificates, e.g.
		 * ehrwitness): never ask for one. */
		SSL_CTX_set_client_hello_cb(ctx, client_hello, NULL);
		*out = ctx;
		return 0;
	}
	if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		err = ehr_error_ossl(EHR_ERR_CONFIG, "[tls] client_ca: cannot load the registration CA");
		goto out;
	}
	names = SSL_load_client_CA_file(ca);
	if (names == NULL) {
		err = ehr_error_ossl(EHR_ERR_CONFIG, "[tls] client_ca: no CA names");
		goto out;
	}
	SSL_CTX_set_client_CA_list(ctx, names); /* takes ownership */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_accept);
	SSL_CTX_set_verify_depth(ctx, 4);
	SSL_CTX_set_client_hello_cb(ctx, client_hello, NULL);
	*out = ctx;
	return 0;
out:
	SSL_CTX_free(ctx);
	return err;
}
