/*
 * faultproxy.h - a real HTTP/1.1 proxy on loopback, between a client and the
 * S3 front, that can make chosen requests fail with a 500 (or a dropped
 * connection) while everything else reaches the real S3 server. Each
 * request is forwarded with "Connection: close", so request boundaries are
 * plain to see. It records what passed, so a test can prove that an
 * AbortMultipartUpload reached S3 and was accepted.
 */
#ifndef EHR_TEST_FAULTPROXY_H
#define EHR_TEST_FAULTPROXY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct fault_proxy {
	int lfd;
	uint16_t port;
	uint16_t upstream_port;
	pthread_t th;
	pthread_mutex_t lock;
	volatile bool stop;
	/* faults: fail every UploadPart with partNumber >= fail_part_from (0 = never);
	 * fail_all: answer every request with 500 */
	unsigned fail_part_from;
	bool fail_all;
	/* observations */
	unsigned requests;
	unsigned parts_ok;
	unsigned parts_failed;
	unsigned aborts_ok;   /* DELETE ?uploadId=... answered 204 by S3 */
	unsigned aborts_seen; /* DELETE ?uploadId=... forwarded */
	int abort_status;     /* S3's answer to the last one */
	unsigned completes_ok;
	/* hold: keep every UploadPart with partNumber == hold_part (0 = none)
	 * unanswered for hold_ms before failing or forwarding it, so a test can
	 * act while that part is in flight; holding is true meanwhile */
	unsigned hold_part;
	unsigned hold_ms;
	bool holding;
	unsigned part_max_seen; /* highest partNumber of any UploadPart that arrived */
	/* plain object requests (no partNumber / uploadId / uploads) */
	unsigned puts;       /* PUT of a whole object (PutObject) that arrived */
	unsigned puts_ok;    /* ... answered 200 by S3 */
	unsigned creates;    /* POST ?uploads (CreateMultipartUpload) that arrived */
	unsigned deletes;    /* DELETE of an object (DeleteObject) that arrived */
	unsigned deletes_ok; /* ... answered 204 by S3 */
	/* cut_put_after: forward only this many body bytes of every PutObject
	 * to S3, then close both connections (0 = never) */
	uint64_t cut_put_after;
	unsigned puts_cut;
	/* the request targets of the first FAULT_PROXY_PUT_LOG PutObjects, in
	 * arrival order (truncated): fault_proxy_puts_to counts them by key */
	char put_log[32][256];
	unsigned put_logged;
};
#define FAULT_PROXY_PUT_LOG 32

int fault_proxy_start(struct fault_proxy *fp, uint16_t upstream_port);
void fault_proxy_stop(struct fault_proxy *fp);
/* The observations above, read under the proxy's lock (for another thread
 * that waits on them while the proxy works). */
unsigned fault_proxy_part_max_seen(struct fault_proxy *fp);
unsigned fault_proxy_parts_failed(struct fault_proxy *fp);
unsigned fault_proxy_parts_ok(struct fault_proxy *fp);
bool fault_proxy_holding(struct fault_proxy *fp);
/* PutObjects that arrived for a key (its target path ends in "/key"),
 * once no request has arrived for settle_ms (at most 5 s): a request the
 * client gave up on may reach the proxy after the client has moved on, so
 * a count taken at once could charge it to the next one. -1 when more PUTs
 * arrived than the log keeps. */
int fault_proxy_puts_to(struct fault_proxy *fp, const char *key, unsigned settle_ms);
/* Port of an http://127.0.0.1:PORT URL. */
uint16_t fault_proxy_url_port(const char *url);

#endif
