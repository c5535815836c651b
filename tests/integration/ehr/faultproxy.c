/* faultproxy.c - see faultproxy.h. */
#include "faultproxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/common.h"

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static uint64_t content_length(const char *head)
{
	const char *p = head;
	while ((p = strchr(p, '\n')) != NULL) {
		p++;
		if (strncasecmp(p, "content-length:", 15) == 0) {
			uint64_t v = 0;
			p += 15;
			while (*p == ' ')
				p++;
			while (*p >= '0' && *p <= '9')
				v = v * 10 + (uint64_t)(*p++ - '0');
			return v;
		}
	}
	return 0;
}

static void handle(struct fault_proxy *fp, int cfd)
{
	char *head = malloc(65536), *buf = malloc(65536);
	size_t hl = 0, extra = 0;
	char *end = NULL, method[16] = "", target[2048] = "";
	uint64_t clen, sent;
	int ufd = -1;
	bool fail = false, is_part = false, is_abort = false, is_complete = false;
	bool is_put = false, is_create = false, is_delete = false;
	uint64_t cut = 0;
	unsigned part = 0, hold;

	/* request head */
	while (hl < 65535) {
		ssize_t n = recv(cfd, head + hl, 65535 - hl, 0);
		if (n <= 0)
			goto out;
		hl += (size_t)n;
		head[hl] = '\0';
		if ((end = strstr(head, "\r\n\r\n")) != NULL)
			break;
	}
	if (end == NULL)
		goto out;
	{
		const char *sp1 = strchr(head, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
		if (!sp1 || !sp2 || (size_t)(sp1 - head) >= sizeof(method) ||
		    (size_t)(sp2 - sp1 - 1) >= sizeof(target))
			goto out;
		memcpy(method, head, (size_t)(sp1 - head));
		memcpy(target, sp1 + 1, (size_t)(sp2 - sp1 - 1));
	}
	{
		const char *q = strstr(target, "partNumber=");
		if (q && strcmp(method, "PUT") == 0) {
			is_part = true;
			for (q += 11; *q >= '0' && *q <= '9'; q++)
				part = part * 10 + (unsigned)(*q - '0');
		}
		is_abort = strcmp(method, "DELETE") == 0 && strstr(target, "uploadId=") != NULL;
		is_complete = strcmp(method, "POST") == 0 && strstr(target, "uploadId=") != NULL;
		is_put = strcmp(method, "PUT") == 0 && !is_part;
		is_create = strcmp(method, "POST") == 0 && strstr(target, "?uploads") != NULL;
		is_delete = strcmp(method, "DELETE") == 0 && strchr(target, '?') == NULL;
	}
	clen = content_length(head);
	extra = hl - (size_t)(end + 4 - head);
	pthread_mutex_lock(&fp->lock);
	fp->requests++;
	fp->puts += is_put;
	if (is_put && fp->put_logged < FAULT_PROXY_PUT_LOG)
		snprintf(fp->put_log[fp->put_logged], sizeof(fp->put_log[0]), "%.255s", target);
	fp->put_logged += is_put;
	fp->creates += is_create;
	fp->deletes += is_delete;
	cut = is_put ? fp->cut_put_after : 0;
	if (is_part && part > fp->part_max_seen)
		fp->part_max_seen = part;
	hold = is_part && fp->hold_part && part == fp->hold_part ? fp->hold_ms : 0;
	fp->holding = hold > 0;
	pthread_mutex_unlock(&fp->lock);
	/* the part stays in flight: its body unread, no answer */
	for (unsigned waited = 0; waited < hold && !fp->stop; waited += 5)
		usleep(5 * 1000);
	pthread_mutex_lock(&fp->lock);
	fp->holding = false;
	fail = fp->fail_all || (is_part && fp->fail_part_from && part >= fp->fail_part_from);
	if (is_part && fail)
		fp->parts_failed++;
	pthread_mutex_unlock(&fp->lock);

	if (fail) {
		static const char resp[] =
		        "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\n"
		        "Content-Length: 59\r\nConnection: close\r\n\r\n"
		        "<Error><Code>InternalError</Code><Message>x</Message></Error>";
		sent = extra;
		while (sent < clen) {
			ssize_t n = recv(cfd, buf, 65536, 0);
			if (n <= 0)
				break;
			sent += (uint64_t)n;
		}
		write_all(cfd, resp, sizeof(resp) - 1);
		goto out;
	}

	/* forward with Connection: close inserted after the request line */
	{
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(fp->upstream_port) };
		char *eol = strstr(head, "\r\n");
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		ufd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (ufd < 0 || connect(ufd, (struct sockaddr *)&a, sizeof(a)) != 0)
			goto out;
		if (write_all(ufd, head, (size_t)(eol + 2 - head)) < 0 ||
		    write_all(ufd, "Connection: close\r\n", 19) < 0 ||
		    write_all(ufd, eol + 2, hl - (size_t)(eol + 2 - head)) < 0)
			goto out;
		sent = extra;
		if (cut && sent >= cut) /* the head's read took the body's start: keep it short */
			goto cut_now;
		while (sent < clen) {
			size_t want = 65536;
			ssize_t n;
			if (cut && cut - sent < want)
				want = (size_t)(cut - sent);
			n = recv(cfd, buf, want, 0);
			if (n <= 0)
				goto out;
			if (write_all(ufd, buf, (size_t)n) < 0)
				goto out;
			sent += (uint64_t)n;
			if (cut && sent >= cut) {
cut_now:
				pthread_mutex_lock(&fp->lock);
				fp->puts_cut++;
				pthread_mutex_unlock(&fp->lock);
				goto out;
			}
		}
		/* response back until upstream closes */
		bool first = true;
		for (;;) {
			ssize_t n = recv(ufd, buf, 65535, 0);
			if (n <= 0)
				break;
			if (first && n > 12) {
				int status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
				if (getenv("FAULTPROXY_DEBUG"))
					fprintf(stderr, "faultproxy: %s %s -> %d\n", method, target, status);
				pthread_mutex_lock(&fp->lock);
				if (is_part && status == 200)
					fp->parts_ok++;
				if (is_abort) {
					fp->aborts_seen++;
					fp->abort_status = status;
				}
				if (is_abort && status == 204)
					fp->aborts_ok++;
				if (is_complete && status == 200)
					fp->completes_ok++;
				if (is_put && status == 200)
					fp->puts_ok++;
				if (is_delete && status == 204)
					fp->deletes_ok++;
				pthread_mutex_unlock(&fp->lock);
			}
			first = false;
			if (write_all(cfd, buf, (size_t)n) < 0)
				break;
		}
	}
out:
	if (ufd >= 0)
		close(ufd);
	close(cfd);
	free(head);
	free(buf);
}

static void *loop(void *arg)
{
	struct fault_proxy *fp = arg;
	while (!fp->stop) {
		struct pollfd p = { .fd = fp->lfd, .events = POLLIN };
		if (poll(&p, 1, 100) <= 0)
			continue;
		int cfd = accept4(fp->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (cfd >= 0)
			handle(fp, cfd);
	}
	return NULL;
}

int fault_proxy_start(struct fault_proxy *fp, uint16_t upstream_port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	int one = 1;

	memset(fp, 0, sizeof(*fp));
	pthread_mutex_init(&fp->lock, NULL);
	fp->upstream_port = upstream_port;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fp->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fp->lfd < 0)
		return -1;
	setsockopt(fp->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fp->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fp->lfd, 64) != 0 ||
	    getsockname(fp->lfd, (struct sockaddr *)&a, &al) != 0) {
		close(fp->lfd);
		return -1;
	}
	fp->port = ntohs(a.sin_port);
	if (pthread_create(&fp->th, NULL, loop, fp) != 0) {
		close(fp->lfd);
		return -1;
	}
	return 0;
}

void fault_proxy_stop(struct fault_proxy *fp)
{
	fp->stop = true;
	pthread_join(fp->th, NULL);
	close(fp->lfd);
	pthread_mutex_destroy(&fp->lock);
}

/* A counter the proxy thread updates, read under its lock. */
static unsigned read_locked(struct fault_proxy *fp, const unsigned *counter)
{
	unsigned v;
	pthread_mutex_lock(&fp->lock);
	v = *counter;
	pthread_mutex_unlock(&fp->lock);
	return v;
}

unsigned fault_proxy_part_max_seen(struct fault_proxy *fp)
{
	return read_locked(fp, &fp->part_max_seen);
}

unsigned fault_proxy_parts_failed(struct fault_proxy *fp)
{
	return read_locked(fp, &fp->parts_failed);
}

unsigned fault_proxy_parts_ok(struct fault_proxy *fp)
{
	return read_locked(fp, &fp->parts_ok);
}

bool fault_proxy_holding(struct fault_proxy *fp)
{
	bool v;
	pthread_mutex_lock(&fp->lock);
	v = fp->holding;
	pthread_mutex_unlock(&fp->lock);
	return v;
}

uint16_t fault_proxy_url_port(const char *url)
{
	const char *c = strrchr(url, ':');
	uint64_t v = 0;
	if (c == NULL || ehr_parse_u64(&v, c + 1, 65535) < 0) {
		/* allow a trailing slash */
		char tmp[16];
		size_t n = c ? strcspn(c + 1, "/") : 0;
		if (c == NULL || n == 0 || n >= sizeof(tmp))
			return 0;
		memcpy(tmp, c + 1, n);
		tmp[n] = '\0';
		if (ehr_parse_u64(&v, tmp, 65535) < 0)
			return 0;
	}
	return (uint16_t)v;
}

int fault_proxy_puts_to(struct fault_proxy *fp, const char *key, unsigned settle_ms)
{
	unsigned last = ~0u, quiet = 0, n = 0;
	size_t kl = strlen(key);
	int count = 0;

	for (unsigned waited = 0; quiet < settle_ms && waited < 5000; waited += 10) {
		pthread_mutex_lock(&fp->lock);
		n = fp->requests;
		pthread_mutex_unlock(&fp->lock);
		quiet = n == last ? quiet + 10 : 0;
		last = n;
		usleep(10 * 1000);
	}
	pthread_mutex_lock(&fp->lock);
	if (fp->put_logged > FAULT_PROXY_PUT_LOG)
		count = -1;
	for (unsigned i = 0; count >= 0 && i < fp->put_logged; i++) {
		const char *t = fp->put_log[i], *q = strchr(t, '?');
		size_t tl = q ? (size_t)(q - t) : strlen(t);

		if (tl > kl && t[tl - kl - 1] == '/' && strncmp(t + tl - kl, key, kl) == 0)
			count++;
	}
	pthread_mutex_unlock(&fp->lock);
	return count;
}
