/*
 * fuzz_sse.c - libFuzzer target for ehrctl's Server-Sent Events reader
 * (client/ctl/ctl_sse.c), which parses what a gateway (or anyone between)
 * sends to `ehrctl audit tail` and `ehrctl patient watch`.
 *
 * Beyond "does not crash", it checks properties and aborts when one breaks:
 *   - every event's id and event name are NUL-terminated inside their
 *     fields, and its data fits the reader's bound;
 *   - chunking does not matter: the input fed in one piece and fed one
 *     byte at a time give the same events (the network splits a stream
 *     anywhere), unless the reader stopped on its bound both ways.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/ctl/ctl_commands.h"

#define FUZZ_SSE_MAX 4096

/* Every event, serialised: id NUL event NUL data-length data. */
static bool record(struct ctl_sse *s, void *ud)
{
	struct ehr_buf *log = ud;
	uint32_t n = (uint32_t)s->data.len;

	if (memchr(s->id, '\0', sizeof(s->id)) == NULL || memchr(s->event, '\0', sizeof(s->event)) == NULL ||
	    s->data.len > FUZZ_SSE_MAX)
		abort();
	return ehr_buf_append(log, s->id, strlen(s->id) + 1) == 0 &&
	       ehr_buf_append(log, s->event, strlen(s->event) + 1) == 0 &&
	       ehr_buf_append(log, &n, sizeof(n)) == 0 && ehr_buf_append(log, s->data.data, s->data.len) == 0;
}

/* Feed data in chunks of `step` bytes (0: all at once); false when the
 * reader stopped the transfer. */
static bool feed(struct ehr_buf *log, const uint8_t *data, size_t size, size_t step)
{
	struct ctl_sse s;
	bool ok = true;

	ctl_sse_init(&s, FUZZ_SSE_MAX, record, log);
	if (step == 0) {
		ok = ctl_sse_feed(data, size, &s);
	} else {
		for (size_t i = 0; ok && i < size; i += step)
			ok = ctl_sse_feed(data + i, size - i < step ? size - i : step, &s);
	}
	ctl_sse_free(&s);
	return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ehr_buf whole = EHR_BUF_INIT(1u << 24), bytes = EHR_BUF_INIT(1u << 24);
	bool a = feed(&whole, data, size, 0), b = feed(&bytes, data, size, 1);

	/* a stop ends the transfer at the same event either way */
	if (a != b || whole.len != bytes.len ||
	    (whole.len && memcmp(whole.data, bytes.data, whole.len) != 0)) /* not secret */
		abort();
	ehr_buf_free(&whole);
	ehr_buf_free(&bytes);
	return 0;
}
