/*
 * h1.c - the HTTP/1.1 request parser (RFC 9112): a request head, and the
 * chunked transfer coding of a request body.
 *
 * Pure functions over bytes, no I/O, so the connection code (conn.c), the
 * unit tests and the fuzz target (tests/fuzz/h1) drive the same code. The
 * parser is strict where leniency would let two parsers disagree about
 * where a message ends: obsolete line folding, whitespace before a colon,
 * control characters, several Content-Length or Transfer-Encoding fields,
 * and Content-Length together with Transfer-Encoding are all refused.
 * Every line of the head ends in CRLF: a bare LF (which RFC 9112 §2.2
 * lets a recipient accept) and a bare CR are refused with 400 and the
 * connection closes, so no proxy in front that splits lines differently
 * can disagree with us about where a request ends (docs/OPERATIONS.md §3).
 */
#include "gateway/http/http_internal.h"

#include <string.h>
#include <strings.h>

static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_ows(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* field-value octets: VCHAR, obs-text, SP, HTAB */
static bool is_vchar(unsigned char c)
{
	return (c >= 0x21 && c != 0x7f) || is_ows(c);
}

/* Cut the next line out of [*p, end): NUL-terminate it (dropping CR LF or
 * LF) and return it; NULL if no LF is left or a CR stands alone. */
static char *next_line(char **p, char *end, size_t *len)
{
	char *s = *p, *lf = memchr(s, '\n', (size_t)(end - s));
	char *e;

	if (lf == NULL)
		return NULL;
	e = lf;
	if (e > s && e[-1] == '\r')
		e--;
	if (memchr(s, '\r', (size_t)(e - s)) != NULL)
		return NULL;
	*e = '\0';
	*len = (size_t)(e - s);
	*p = lf + 1;
	return s;
}

/* Does the comma-separated list `v` hold `token` (case-insensitive)? */
static bool list_has(const char *v, const char *token)
{
	size_t n = strlen(token);

	while (*v) {
		const char *s, *e;
		while (*v == ',' || is_ows((unsigned char)*v))
			v++;
		s = v;
		while (*v && *v != ',')
			v++;
		e = v;
		while (e > s && is_ows((unsigned char)e[-1]))
			e--;
		if ((size_t)(e - s) == n && strncasecmp(s, token, n) == 0)
			return true;
	}
	return false;
}

static const char *const methods[] = { "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS" };

static int request_line(struct gw_h1_req *q, char *line, const char **why)
{
	char *sp1 = strchr(line, ' '), *sp2;
	const char *v;
	bool known = false;

	if (sp1 == NULL || sp1 == line)
		return *why = "malformed request line", 400;
	*sp1 = '\0';
	sp2 = strchr(sp1 + 1, ' ');
	if (sp2 == NULL)
		return *why = "malformed request line", 400;
	*sp2 = '\0';
	q->method = line;
	q->target = sp1 + 1;
	v = sp2 + 1;
	for (const char *p = q->method; *p; p++)
		if (!is_tchar((unsigned char)*p))
			return *why = "malformed method", 400;
	for (const unsigned char *p = (const unsigned char *)q->target; *p; p++)
		if (*p < 0x21 || *p > 0x7e)
			return *why = "malformed request target", 400;
	if (q->target[0] != '/')
		return *why = "the request target must be an absolute path", 400;
	if (strncmp(v, "HTTP/", 5) != 0 || !(v[5] >= '0' && v[5] <= '9') || v[6] != '.' ||
	    !(v[7] >= '0' && v[7] <= '9') || v[8] != '\0')
		return *why = "malformed HTTP version", 400;
	if (v[5] != '1' || v[7] > '1')
		return *why = "only HTTP/1.0 and HTTP/1.1 are served", 505;
	q->minor = v[7] - '0';
	for (size_t i = 0; i < EHR_ARRAY_LEN(methods); i++)
		known = known || strcmp(q->method, methods[i]) == 0;
	if (!known)
		return *why = "method not implemented", 501;
	return 0;
}

static int field_line(struct gw_h1_req *q, char *line, size_t len, size_t max_fields, const char **why)
{
	char *colon, *v, *e;

	if (len == 0 || is_ows((unsigned char)line[0]))
		return *why = "obsolete line folding or a malformed field", 400;
	colon = strchr(line, ':');
	if (colon == NULL || colon == line)
		return *why = "malformed header field", 400;
	for (char *p = line; p < colon; p++)
		if (!is_tchar((unsigned char)*p))
			return *why = "malformed header field name", 400;
	*colon = '\0';
	v = colon + 1;
	e = line + len;
	while (is_ows((unsigned char)*v))
		v++;
	while (e > v && is_ows((unsigned char)e[-1]))
		e--;
	*e = '\0';
	for (char *p = v; p < e; p++)
		if (!is_vchar((unsigned char)*p))
			return *why = "control character in a header field", 400;
	if (q->nfields >= max_fields || q->nfields >= GW_H1_MAX_FIELDS)
		return *why = "too many header fields", 431;
	q->fields[q->nfields].name = line;
	q->fields[q->nfields].value = v;
	q->nfields++;
	return 0;
}

/* Framing and connection semantics of the parsed fields. */
static int semantics(struct gw_h1_req *q, const char **why)
{
	const char *cl = NULL, *te = NULL, *conn = NULL, *expect = NULL;
	unsigned ncl = 0, nte = 0, nhost = 0;

	for (size_t i = 0; i < q->nfields; i++) {
		const char *n = q->fields[i].name, *v = q->fields[i].value;
		if (strcasecmp(n, "Content-Length") == 0) {
			cl = v;
			ncl++;
		} else if (strcasecmp(n, "Transfer-Encoding") == 0) {
			te = v;
			nte++;
		} else if (strcasecmp(n, "Host") == 0) {
			nhost++;
		} else if (strcasecmp(n, "Connection") == 0) {
			conn = v; /* the last one wins; only "close" matters */
			if (list_has(v, "close"))
				q->close = true;
		} else if (strcasecmp(n, "Expect") == 0) {
			if (expect == NULL || strcasecmp(v, "100-continue") != 0)
				expect = v; /* any other expectation wins: 417 */
		}
	}
	if (nhost > 1 || (q->minor >= 1 && nhost == 0))
		return *why = "a request has at most one Host field, and an HTTP/1.1 one exactly one", 400;
	if (ncl > 1 || nte > 1)
		return *why = "repeated Content-Length or Transfer-Encoding", 400;
	if (cl && te)
		return *why = "Content-Length together with Transfer-Encoding", 400;
	q->content_length = -1;
	if (te) {
		if (q->minor == 0)
			return *why = "Transfer-Encoding in an HTTP/1.0 request", 400;
		if (strcasecmp(te, "chunked") != 0)
			return *why = "only the chunked transfer coding is supported", 501;
		q->chunked = true;
	}
	if (cl) {
		uint64_t n = 0;
		size_t len = strlen(cl);
		if (len == 0 || len > 18)
			return *why = "malformed Content-Length", 400;
		for (size_t i = 0; i < len; i++) {
			if (cl[i] < '0' || cl[i] > '9')
				return *why = "malformed Content-Length", 400;
			n = n * 10 + (uint64_t)(cl[i] - '0');
		}
		q->content_length = (int64_t)n;
	}
	if (q->minor == 0 && !(conn && list_has(conn, "keep-alive")))
		q->close = true;
	if (expect) {
		if (strcasecmp(expect, "100-continue") != 0)
			return *why = "unsupported expectation", 417;
		q->expect_continue = q->minor >= 1;
	}
	return 0;
}

int gw_h1_parse(struct gw_h1_req *q, char *head, size_t len, struct gw_h1_field *fields, size_t max_fields,
                const char **why)
{
	char *p = head, *end = head + len, *line;
	size_t n = 0;
	int st;

	memset(q, 0, sizeof(*q));
	q->fields = fields;
	q->content_length = -1;
	*why = "";
	for (size_t i = 0; i < len; i++)
		if (head[i] == '\n' && (i == 0 || head[i - 1] != '\r'))
			return *why = "a bare LF in the request head (lines end in CRLF)", 400;
	/* RFC 9112 §2.2: ignore at least one empty line before the request line. */
	while (p < end && *p == '\r') {
		if (p + 1 >= end || p[1] != '\n')
			return *why = "stray CR", 400;
		p += 2;
	}
	if ((line = next_line(&p, end, &n)) == NULL || n == 0)
		return *why = "malformed request line", 400;
	if (memchr(line, '\0', n) != NULL)
		return *why = "NUL in the request line", 400;
	if ((st = request_line(q, line, why)) != 0)
		return st;
	for (;;) {
		if ((line = next_line(&p, end, &n)) == NULL)
			return *why = "malformed header section", 400;
		if (n == 0)
			break;
		if (memchr(line, '\0', n) != NULL)
			return *why = "NUL in a header field", 400;
		if ((st = field_line(q, line, n, max_fields, why)) != 0)
			return st;
	}
	if (p != end)
		return *why = "bytes after the header section", 400;
	return semantics(q, why);
}

bool gw_h1_has_body(const struct gw_h1_req *q)
{
	return q->chunked || q->content_length > 0;
}

const char *gw_h1_field(const struct gw_h1_req *q, const char *name)
{
	for (size_t i = 0; i < q->nfields; i++)
		if (strcasecmp(q->fields[i].name, name) == 0)
			return q->fields[i].value;
	return NULL;
}

/*
 * The end of the head in `buf`: the offset just past the empty line that
 * ends it, or 0 when it has not arrived. Scanning resumes at *scanned, so a
 * head that trickles in is not rescanned from the start each time.
 */
size_t gw_h1_head_end(const uint8_t *buf, size_t len, size_t *scanned)
{
	size_t i = *scanned, lead = 0;

	/* Empty lines (CRLF) before the request line are skipped by the
	 * parser (RFC 9112 §2.2), so they cannot end the head here. */
	while (lead + 1 < len && buf[lead] == '\r' && buf[lead + 1] == '\n')
		lead += 2;
	if (i < lead)
		i = lead;
	for (; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		/* A bare LF ends the head at once: gw_h1_parse refuses it (400,
		 * and the connection closes), so bytes after it are never taken
		 * for a request of their own. */
		if (i == 0 || buf[i - 1] != '\r')
			return i + 1;
		if (i >= lead + 3 && buf[i - 2] == '\n' && buf[i - 3] == '\r')
			return i + 1; /* CRLF CRLF */
	}
	*scanned = i;
	return 0;
}

/* ---------------------------------------------------------------- chunked */

enum {
	CK_SIZE = 0, /* hex digits */
	CK_SIZE_WS,  /* whitespace after the size: only ';' or CR may follow */
	CK_EXT,      /* chunk extensions, ignored, up to CR LF */
	CK_SIZE_LF,  /* CR seen, LF due */
	CK_DATA,     /* `left` payload bytes */
	CK_DATA_CR,  /* CR LF after the payload */
	CK_DATA_LF,
	CK_TRAILER,    /* at the start of a trailer line (or of the final CRLF) */
	CK_TRAILER_IN, /* inside a trailer line */
	CK_TRAILER_LF,
	CK_END_LF, /* the final CR seen, LF due */
	CK_DONE,
};

#define CK_MAX_LINE 1024
#define CK_MAX_TRAILERS 8192

/* One byte of a chunk-size line (CK_SIZE, CK_SIZE_WS, CK_EXT): the size in
 * hex, optional whitespace, extensions (ignored) up to CR. */
static int ck_size_line(struct gw_h1_chunked *c, uint8_t b)
{
	switch (c->state) {
	case CK_SIZE:
		if ((b >= '0' && b <= '9') || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F')) {
			unsigned d = b <= '9' ? b - '0' : (b | 0x20) - 'a' + 10;
			if (c->left >> 58)
				return ehr_error_set(EHR_ERR_PARSE, "chunk size too large");
			c->left = c->left * 16 + d;
			c->digits++;
		} else if (c->digits == 0) {
			return ehr_error_set(EHR_ERR_PARSE, "malformed chunk size");
		} else if (b == '\r') {
			c->state = CK_SIZE_LF;
		} else if (b == ';') {
			c->state = CK_EXT;
		} else if (b == ' ' || b == '\t') {
			c->state = CK_SIZE_WS;
		} else {
			return ehr_error_set(EHR_ERR_PARSE, "malformed chunk size");
		}
		break;
	case CK_SIZE_WS:
		if (b == ';')
			c->state = CK_EXT;
		else if (b == '\r')
			c->state = CK_SIZE_LF;
		else if (b != ' ' && b != '\t')
			return ehr_error_set(EHR_ERR_PARSE, "malformed chunk size");
		break;
	case CK_EXT:
		if (b == '\r')
			c->state = CK_SIZE_LF;
		else if (b < 0x20 && b != '\t')
			return ehr_error_set(EHR_ERR_PARSE, "malformed chunk extension");
		break;
	default: break; /* not a size-line state: the caller's business */
	}
	return 0;
}

/* One byte of the trailer section (CK_TRAILER, CK_TRAILER_IN,
 * CK_TRAILER_LF): trailer lines are skipped, within CK_MAX_TRAILERS bytes;
 * a CR at the start of a line is the final CRLF's. */
static int ck_trailer(struct gw_h1_chunked *c, uint8_t b)
{
	switch (c->state) {
	case CK_TRAILER:
		if (b == '\r') {
			c->state = CK_END_LF;
			break;
		}
		c->state = CK_TRAILER_IN;
		/* fall through */
	case CK_TRAILER_IN:
		if (b == '\r')
			c->state = CK_TRAILER_LF;
		else if (b < 0x20 && b != '\t')
			return ehr_error_set(EHR_ERR_PARSE, "malformed trailer");
		if (++c->trailers > CK_MAX_TRAILERS)
			return ehr_error_set(EHR_ERR_PARSE, "trailer section too large");
		break;
	case CK_TRAILER_LF:
		if (b != '\n')
			return ehr_error_set(EHR_ERR_PARSE, "trailer without CRLF");
		c->state = CK_TRAILER;
		break;
	default: break; /* not a trailer state: the caller's business */
	}
	return 0;
}

/* Payload bytes from in[i]: as many of the chunk's `left` as the n bytes
 * hold. The step ends here, so the caller takes them out. */
static int ck_data(struct gw_h1_chunked *c, size_t i, size_t n, size_t *framing, size_t *payload)
{
	*framing = i;
	*payload = n - i < c->left ? n - i : (size_t)c->left;
	c->left -= *payload;
	if (c->left == 0)
		c->state = CK_DATA_CR;
	return 0;
}

int gw_h1_chunked_step(struct gw_h1_chunked *c, const uint8_t *in, size_t n, size_t *framing, size_t *payload)
{
	size_t i = 0;
	int rc;

	*framing = 0;
	*payload = 0;
	while (i < n) {
		uint8_t b = in[i];
		switch (c->state) {
		case CK_SIZE:
		case CK_SIZE_WS:
		case CK_EXT:
			if ((rc = ck_size_line(c, b)) < 0)
				return rc;
			break;
		case CK_SIZE_LF:
			if (b != '\n')
				return ehr_error_set(EHR_ERR_PARSE, "chunk size line without CRLF");
			c->line = 0;
			c->digits = 0;
			c->state = c->left ? CK_DATA : CK_TRAILER;
			i++;
			if (c->state == CK_DATA)
				return ck_data(c, i, n, framing, payload);
			continue;
		case CK_DATA:
			/* resumed in the middle of a payload */
			return ck_data(c, i, n, framing, payload);
		case CK_DATA_CR:
			if (b != '\r')
				return ehr_error_set(EHR_ERR_PARSE, "chunk data without CRLF");
			c->state = CK_DATA_LF;
			break;
		case CK_DATA_LF:
			if (b != '\n')
				return ehr_error_set(EHR_ERR_PARSE, "chunk data without CRLF");
			c->state = CK_SIZE;
			c->line = 0;
			break;
		case CK_TRAILER:
		case CK_TRAILER_IN:
		case CK_TRAILER_LF:
			if ((rc = ck_trailer(c, b)) < 0)
				return rc;
			break;
		case CK_END_LF:
			if (b != '\n')
				return ehr_error_set(EHR_ERR_PARSE, "last chunk without CRLF");
			c->state = CK_DONE;
			*framing = i + 1;
			return 1;
		default: return ehr_error_set(EHR_ERR_PARSE, "chunked body already ended");
		}
		if (c->state <= CK_SIZE_LF && ++c->line > CK_MAX_LINE)
			return ehr_error_set(EHR_ERR_PARSE, "chunk size line too long");
		i++;
	}
	*framing = i;
	return 0;
}
