/*
 * ctl_sse.c - the one Server-Sent Events reader of ehrctl (`audit tail`,
 * `patient watch`): the "text/event-stream" format of the WHATWG HTML
 * standard, §9.2.6 "Interpreting an event stream". Lines end in LF, CRLF
 * or CR; a line starting with ':' is a comment (the gateway's heartbeats);
 * "field: value" with one optional space after the colon; `data` lines are
 * joined with LF; a blank line dispatches the event when it has data.
 * Everything is bounded: a line or data past `max` bytes stops the
 * transfer (the caller reconnects).
 */
#include <string.h>

#include "client/ctl/ctl_commands.h"

void ctl_sse_init(struct ctl_sse *s, size_t max, ctl_sse_event_fn fn, void *ud)
{
	memset(s, 0, sizeof(*s));
	ehr_buf_init(&s->line, max);
	ehr_buf_init(&s->data, max);
	s->on_event = fn;
	s->ud = ud;
}

void ctl_sse_reset(struct ctl_sse *s)
{
	ehr_buf_reset(&s->line);
	ehr_buf_reset(&s->data);
	s->id[0] = s->event[0] = '\0';
	s->has_data = s->after_cr = false;
}

void ctl_sse_free(struct ctl_sse *s)
{
	ehr_buf_free(&s->line);
	ehr_buf_free(&s->data);
}

/* A value too long for its field leaves the field "": the event is then
 * one the callers do not know, and ignore. */
static void set_field(char *dst, size_t cap, const char *v)
{
	if (ehr_str_copy(dst, cap, v) < 0)
		dst[0] = '\0';
}

/* One complete line (without its end). False stops the transfer. */
static bool sse_line(struct ctl_sse *s)
{
	const char *l = ehr_buf_cstr(&s->line), *colon, *v;
	size_t nlen;
	bool go = true;

	if (s->line.len == 0) { /* dispatch */
		if (s->data.len > 0)
			go = s->on_event(s, s->ud);
		ehr_buf_reset(&s->data);
		s->id[0] = s->event[0] = '\0';
		s->has_data = false;
		return go;
	}
	if (l[0] == ':')
		return true; /* comment */
	colon = memchr(l, ':', s->line.len);
	nlen = colon ? (size_t)(colon - l) : s->line.len;
	v = colon ? colon + 1 : "";
	if (*v == ' ')
		v++;
	if (nlen == 4 && memcmp(l, "data", 4) == 0) { /* not secret */
		if ((s->has_data && ehr_buf_append_u8(&s->data, '\n') < 0) ||
		    ehr_buf_append(&s->data, v, strlen(v)) < 0)
			return false;
		s->has_data = true;
	} else if (nlen == 5 && memcmp(l, "event", 5) == 0) { /* not secret */
		set_field(s->event, sizeof(s->event), v);
	} else if (nlen == 2 && memcmp(l, "id", 2) == 0) { /* not secret */
		set_field(s->id, sizeof(s->id), v);
	}
	return true; /* retry and unknown fields: ignored */
}

bool ctl_sse_feed(const void *p, size_t n, void *ud)
{
	struct ctl_sse *s = ud;
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++) {
		bool lf_after_cr = s->after_cr && c[i] == '\n';

		s->after_cr = c[i] == '\r';
		if (lf_after_cr)
			continue; /* the LF of a CRLF: the CR ended the line */
		if (c[i] != '\n' && c[i] != '\r') {
			/* a NUL would cut the C-string view of the line short: refuse it */
			if (c[i] == '\0' || ehr_buf_append_u8(&s->line, c[i]) < 0)
				return false;
			continue;
		}
		if (!sse_line(s))
			return false;
		ehr_buf_reset(&s->line);
	}
	return true;
}
