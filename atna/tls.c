/*
 * tls.c - the feed's TLS client (RFC 5425 §5): mutual authentication with
 * certificates, the repository's chain checked against the configured CA and
 * its name (DNS or IP subjectAltName) against the configured host. The
 * socket is non-blocking; every wait is a poll() bounded by a timeout, so a
 * silent repository never holds a sender forever.
 */
#include "atna/atna_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

int atna__tls_ctx(SSL_CTX **out, const char *ca_file, const char *cert_file, const char *key_file)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	int err = 0;

	if (ctx == NULL)
		return ehr_error_ossl(EHR_ERR_CRYPTO, "SSL_CTX_new");
	GUARD_OSSL_GOTO(SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION));
	GUARD_OSSL_GOTO(SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20"));
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
		err = ehr_error_ossl(EHR_ERR_CONFIG, "[atna] ca_file does not load");
		goto out;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		err = ehr_error_ossl(EHR_ERR_CONFIG, "[atna] cert/key do not load or do not match");
		goto out;
	}
	*out = ctx;
	return 0;
out:
	SSL_CTX_free(ctx);
	return err;
}

static int wait_fd(int fd, short events, int64_t deadline)
{
	int64_t left = deadline - ehr_monotonic_ms();
	struct pollfd p = { .fd = fd, .events = events };
	int rc;

	if (left <= 0)
		return ehr_error_set(EHR_ERR_TIMEOUT, "ATNA repository timed out");
	do
		rc = poll(&p, 1, (int)left);
	while (rc < 0 && errno == EINTR);
	if (rc == 0)
		return ehr_error_set(EHR_ERR_TIMEOUT, "ATNA repository timed out");
	if (rc < 0)
		return ehr_error_set(EHR_ERR_IO, "poll: errno %d", errno);
	return 0;
}

/* A non-blocking TCP connection to host:port, connected within the deadline. */
static int tcp_connect(int *out, const char *host, uint16_t port, int64_t deadline)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV }, *ai = NULL;
	char portstr[8];
	int fd = -1, err = EHR_ERR_IO, soerr = 0;
	socklen_t sl = sizeof(soerr);

	GUARD(ehr_fmt(portstr, sizeof(portstr), "%u", (unsigned)port));
	if (getaddrinfo(host, portstr, &hints, &ai) != 0 || ai == NULL)
		return ehr_error_set(EHR_ERR_IO, "ATNA repository host does not resolve");
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0) {
		err = ehr_error_set(EHR_ERR_IO, "socket: errno %d", errno);
		goto out;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS) {
			err = ehr_error_set(EHR_ERR_IO, "connect: errno %d", errno);
			goto out;
		}
		GUARD_GOTO(wait_fd(fd, POLLOUT, deadline));
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr != 0) {
			err = ehr_error_set(EHR_ERR_IO, "connect: errno %d", soerr);
			goto out;
		}
	}
	*out = fd;
	fd = -1;
	err = 0;
out:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return err;
}

/* Wait for what SSL_get_error asks for; any other error is the end. */
static int ssl_wait(struct atna_conn *c, int rc, int64_t deadline, const char *what)
{
	switch (SSL_get_error(c->ssl, rc)) {
	case SSL_ERROR_WANT_READ: return wait_fd(c->fd, POLLIN, deadline);
	case SSL_ERROR_WANT_WRITE: return wait_fd(c->fd, POLLOUT, deadline);
	default: return ehr_error_ossl(EHR_ERR_IO, what);
	}
}

/* RFC 5425 §5.2: the repository is known by its certificate's name. */
static int set_peer_name(SSL *ssl, const char *host)
{
	unsigned char addr[16];

	if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1) {
		GUARD_OSSL(X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host));
		return 0;
	}
	GUARD_OSSL(SSL_set1_host(ssl, host));
	GUARD_OSSL(SSL_set_tlsext_host_name(ssl, host));
	return 0;
}

int atna__tls_connect(struct atna_conn *c, SSL_CTX *ctx, const char *host, uint16_t port, unsigned timeout_ms)
{
	int64_t deadline = ehr_monotonic_ms() + timeout_ms;
	int rc, err;

	c->ssl = NULL;
	c->fd = -1;
	GUARD(tcp_connect(&c->fd, host, port, deadline));
	ENSURE_GOTO((c->ssl = SSL_new(ctx)) != NULL, EHR_ERR_NOMEM);
	GUARD_GOTO(set_peer_name(c->ssl, host));
	GUARD_OSSL_GOTO(SSL_set_fd(c->ssl, c->fd));
	ERR_clear_error();
	while ((rc = SSL_connect(c->ssl)) != 1)
		GUARD_GOTO(ssl_wait(c, rc, deadline, "ATNA TLS handshake"));
	return 0;
out:
	atna__tls_close(c);
	return err;
}

int atna__tls_write(struct atna_conn *c, const void *p, size_t n, unsigned timeout_ms)
{
	int64_t deadline = ehr_monotonic_ms() + timeout_ms;
	size_t done = 0;

	ERR_clear_error();
	while (done < n) {
		size_t w = 0;
		int rc = SSL_write_ex(c->ssl, (const uint8_t *)p + done, n - done, &w);
		if (rc == 1) {
			done += w;
			continue;
		}
		GUARD(ssl_wait(c, rc, deadline, "ATNA TLS write"));
	}
	return 0;
}

bool atna__tls_alive(struct atna_conn *c)
{
	uint8_t buf[256];
	size_t got;
	char peek;
	ssize_t r;

	if (c->ssl == NULL)
		return false;
	r = recv(c->fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT);
	if (r == 0)
		return false; /* FIN */
	if (r < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
	/* Bytes from a repository: TLS 1.3 session tickets, an alert or close_notify. */
	ERR_clear_error();
	for (;;) {
		int rc = SSL_read_ex(c->ssl, buf, sizeof(buf), &got);
		if (rc == 1)
			continue; /* application data is not expected; drop it */
		return SSL_get_error(c->ssl, rc) == SSL_ERROR_WANT_READ;
	}
}

void atna__tls_close(struct atna_conn *c)
{
	if (c->ssl) {
		(void)SSL_shutdown(c->ssl); /* best effort, non-blocking */
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
}
