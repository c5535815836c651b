/*
 * fuzz_h1.c - the HTTP/1.1 request parser (gateway/h1.c) on untrusted bytes.
 *
 * The first byte picks the mode; the rest is the input.
 *   even: a request head. gw_h1_head_end finds its end (whole, and again as
 *     if the bytes trickled in one at a time: both must agree), then
 *     gw_h1_parse (64 fields at most) parses it, or the whole input when no
 *     end was found. A refusal must be one of the documented statuses with a
 *     reason; an acceptance must hold the invariants conn_read.c relies on.
 *   odd: a chunked body, fed (byte0 >> 1) bytes at a time (0: all at once)
 *     as conn_read.c would, checking the step contract on every call, and again
 *     fed whole: the outcome, the bytes consumed and the payload must not
 *     depend on how the input was split.
 * A broken property aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/http/http_internal.h"

#define MAX_FIELDS 64

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static void check_head(const uint8_t *data, size_t size)
{
	static struct gw_h1_req q;
	static struct gw_h1_field fields[MAX_FIELDS];
	size_t scanned = 0, end, len;
	const char *why = NULL;
	char *head;
	int st;

	end = gw_h1_head_end(data, size, &scanned);
	if (end > size || scanned > size)
		abort();
	/* the same search, resumed as the bytes arrive one by one */
	scanned = 0;
	for (size_t have = 0; have <= size; have++) {
		size_t before = scanned, e = gw_h1_head_end(data, have, &scanned);
		if (scanned < before || scanned > have)
			abort();
		if (e != 0) {
			if (e != end || have != end)
				abort(); /* found late, early, or elsewhere */
			break;
		}
		if (have == size && end != 0)
			abort();
	}

	len = end ? end : size;
	head = malloc(len + 1);
	if (head == NULL)
		return;
	memcpy(head, data, len);
	head[len] = '\0';
	st = gw_h1_parse(&q, head, len, fields, MAX_FIELDS, &why);
	if (why == NULL)
		abort();
	switch (st) {
	case 0: break;
	case 400:
	case 417:
	case 431:
	case 501:
	case 505:
		if (why[0] == '\0')
			abort();
		free(head);
		return;
	default: abort();
	}
	if (q.method == NULL || q.target == NULL || q.target[0] != '/')
		abort();
	if (q.nfields > MAX_FIELDS || q.content_length < -1 || (q.chunked && q.content_length >= 0))
		abort();
	/* only HTTP/1.0 and 1.1 are served (anything else is 505) */
	if (q.minor < 0 || q.minor > 1 || (q.minor == 0 && (q.chunked || q.expect_continue)))
		abort();
	/* every LF of an accepted head ends a CRLF: a bare one is refused */
	for (size_t i = 0; i < len; i++)
		if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
			abort();
	if (q.minor >= 1 && gw_h1_field(&q, "Host") == NULL)
		abort();
	for (const char *p = q.target; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			abort();
	for (size_t i = 0; i < q.nfields; i++) {
		const char *n = q.fields[i].name, *v = q.fields[i].value;
		size_t vl;
		if (n == NULL || v == NULL || n[0] == '\0' || strpbrk(n, " \t:\r\n") != NULL)
			abort();
		if (strpbrk(v, "\r\n") != NULL)
			abort();
		vl = strlen(v);
		if (vl > 0 && (is_ows(v[0]) || is_ows(v[vl - 1])))
			abort();
		/* name and value lie inside the head */
		if (n < head || n >= head + len || v < head || v > head + len)
			abort();
	}
	free(head);
}

struct outcome {
	int rc;
	size_t used, plen;
	uint64_t hash; /* FNV-1a of the payload */
};

/* Drive the decoder over in[0..n), `feed` bytes arriving at a time (0: all
 * at once), each call from an exact-size copy of what arrived and was not
 * consumed. */
static struct outcome run_chunked(const uint8_t *in, size_t n, size_t feed)
{
	struct outcome o = { 0, 0, 0, 1469598103934665603ULL };
	struct gw_h1_chunked c;
	size_t have = feed == 0 || feed > n ? n : feed, calls = 0;

	memset(&c, 0, sizeof(c));
	for (;;) {
		size_t avail = have - o.used, framing = (size_t)-1, payload = (size_t)-1;
		uint8_t *b = malloc(avail ? avail : 1);
		if (b == NULL)
			abort();
		memcpy(b, in + o.used, avail);
		o.rc = gw_h1_chunked_step(&c, b, avail, &framing, &payload);
		free(b);
		if (++calls > 2 * n + 4)
			abort(); /* no progress and no request for more */
		if (o.rc < 0) {
			if (o.rc != EHR_ERR_PARSE)
				abort();
			return o;
		}
		if (o.rc > 1 || framing > avail || payload > avail - framing)
			abort();
		for (size_t i = 0; i < payload; i++)
			o.hash = (o.hash ^ in[o.used + framing + i]) * 1099511628211ULL;
		o.plen += payload;
		o.used += framing + payload;
		if (o.rc == 1) {
			size_t f, p;
			if (framing == 0 || payload != 0)
				abort();
			/* after the end, anything more is refused */
			if (o.used < n &&
			    gw_h1_chunked_step(&c, in + o.used, n - o.used, &f, &p) != EHR_ERR_PARSE)
				abort();
			return o;
		}
		if (framing + payload == 0) {
			if (avail != 0)
				abort(); /* offered bytes, took none, did not fail */
			if (have == n)
				return o;
			have = have + feed < n ? have + feed : n;
		}
	}
}

static void check_chunked(size_t feed, const uint8_t *data, size_t size)
{
	struct outcome a = run_chunked(data, size, feed), b = run_chunked(data, size, 0);

	if (a.rc != b.rc || a.plen != b.plen || a.hash != b.hash)
		abort();
	if (a.rc >= 0 && a.used != b.used)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if ((data[0] & 1) == 0)
		check_head(data + 1, size - 1);
	else
		check_chunked(data[0] >> 1, data + 1, size - 1);
	return 0;
}
