/*
 * test_h1.c - the HTTP/1.1 request parser (gateway/h1.c, RFC 9112): request
 * heads and their framing semantics, the search for the end of a head as it
 * trickles in, and the chunked transfer coding fed whole and in small pieces.
 *
 * Every refusal is checked by its status code, and every acceptance by the
 * fields it yields. Heads are parsed from an exact-size heap copy, so an
 * over-read shows under ASan.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "gateway/http/http_internal.h"
#include "tests/harness/harness.h"

/* ---------------------------------------------------------------- heads */

#define H_CRLF "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
#define H_LF "GET / HTTP/1.1\nHost: a\n\n"

static struct gw_h1_req req;
static char *head; /* the current head, parsed in place */
static const char *why;
static struct gw_h1_field fields[GW_H1_MAX_FIELDS];

/* Parse text[0..len) from a fresh heap copy of exactly len bytes. */
static int parse_n(const char *text, size_t len, size_t max_fields)
{
	free(head);
	head = malloc(len ? len : 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(head);
	memcpy(head, text, len);
	why = NULL;
	return gw_h1_parse(&req, head, len, fields, max_fields, &why);
}

static int status_at(int line, const char *text, size_t len, int want)
{
	int st = parse_n(text, len, 64);

	if (st != want)
		fprintf(stderr, "\n  line %d: status %d (%s), wanted %d", line, st, why ? why : "?", want);
	CU_ASSERT_EQUAL(st, want);
	CU_ASSERT_PTR_NOT_NULL(why);
	if (st != 0 && why)
		CU_ASSERT(why[0] != '\0'); /* a refusal says why */
	return st;
}

/* EXPECT(literal, status): the literal may hold NUL bytes. */
#define EXPECT(text, status) status_at(__LINE__, (text), sizeof(text) - 1, (status))
#define OK(text) (EXPECT(text, 0) == 0)

#define STR_EQ(got, want)                                                                                 \
	do {                                                                                              \
		const char *g__ = (got);                                                                  \
		if (g__ == NULL || strcmp(g__, (want)) != 0)                                              \
			fprintf(stderr, "\n  line %d: '%s', wanted '%s'", __LINE__, g__ ? g__ : "(null)", \
			        (want));                                                                  \
		CU_ASSERT_PTR_NOT_NULL(g__);                                                              \
		if (g__)                                                                                  \
			CU_ASSERT_STRING_EQUAL(g__, (want));                                              \
	} while (0)

static void test_get_crlf(void)
{
	if (!OK("GET /v1/patients/p1/records?limit=5 HTTP/1.1\r\nHost: ehr.example\r\n"
	        "User-Agent: t/1\r\nAccept: */*\r\n\r\n"))
		return;
	STR_EQ(req.method, "GET");
	STR_EQ(req.target, "/v1/patients/p1/records?limit=5");
	CU_ASSERT_EQUAL(req.minor, 1);
	CU_ASSERT_EQUAL(req.nfields, 3);
	STR_EQ(req.fields[0].name, "Host");
	STR_EQ(req.fields[0].value, "ehr.example");
	STR_EQ(req.fields[2].name, "Accept");
	STR_EQ(req.fields[2].value, "*/*");
	STR_EQ(gw_h1_field(&req, "User-Agent"), "t/1");
	CU_ASSERT_PTR_NULL(gw_h1_field(&req, "Cookie"));
	CU_ASSERT_EQUAL(req.content_length, -1);
	CU_ASSERT_FALSE(req.chunked);
	CU_ASSERT_FALSE(req.close);
	CU_ASSERT_FALSE(req.expect_continue);

	/* every method the gateway implements */
	static const char *const methods[] = { "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS" };
	for (size_t i = 0; i < EHR_ARRAY_LEN(methods); i++) {
		char text[128];
		int n = snprintf(text, sizeof(text), "%s /x HTTP/1.1\r\nHost: a\r\n\r\n", methods[i]);
		if (status_at(__LINE__, text, (size_t)n, 0) == 0)
			STR_EQ(req.method, methods[i]);
	}
}

/* A bare LF anywhere in the head is refused (400; conn.c closes), so no
 * proxy that splits lines differently can disagree about framing
 * (docs/OPERATIONS.md §3). Before the fix these heads were accepted. */
static void test_bare_lf_refused(void)
{
	EXPECT("POST /v1/records HTTP/1.1\nHost: a\nContent-Length: 12\nContent-Type: "
	       "application/json\n\n",
	       400);
	/* CRLF and LF mixed, and the empty line either way */
	EXPECT("POST /r HTTP/1.1\r\nHost: a\nContent-Length: 3\r\n\n", 400);
	EXPECT("PUT /r HTTP/1.1\nHost: a\r\n\r\n", 400);
	EXPECT("GET / HTTP/1.1\r\nHost: a\r\nX-A: a\nContent-Length: 37\r\n\r\n", 400);
	EXPECT("GET / HTTP/1.1\r\nHost: a\r\n\n", 400);
	EXPECT("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	if (OK("POST /r HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n"))
		CU_ASSERT_EQUAL(req.content_length, 3);
	/* a head that is not complete */
	EXPECT("GET / HTTP/1.1\r\nHost: a\r\n", 400);
	EXPECT("GET / HTTP/1.1\r\n", 400);
	EXPECT("GET / HTTP/1.1", 400);
	EXPECT("", 400);
	EXPECT("\r\n", 400);
	EXPECT("\n\n", 400);
}

static void test_leading_empty_lines(void)
{
	/* RFC 9112 §2.2: empty lines before the request line are ignored */
	if (OK("\r\nGET /a HTTP/1.1\r\nHost: a\r\n\r\n"))
		STR_EQ(req.target, "/a");
	EXPECT("\n\r\n\nGET /b HTTP/1.1\nHost: a\n\n", 400); /* bare LF */
	if (OK("\r\n\r\n\r\nPOST /c HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n")) {
		STR_EQ(req.method, "POST");
		CU_ASSERT_EQUAL(req.content_length, 1);
	}
	EXPECT("\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	EXPECT("\r\n\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	EXPECT(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

static void test_field_names_and_ows(void)
{
	if (OK("GET / HTTP/1.1\r\nhOsT:   a.example \t\r\nX-Empty:\r\nX-Blank: \t \r\n"
	       "X-Inner:  a  b\tc  \r\nX-Tab:\tv\r\n\r\n")) {
		CU_ASSERT_EQUAL(req.nfields, 5);
		STR_EQ(gw_h1_field(&req, "HOST"), "a.example");
		STR_EQ(gw_h1_field(&req, "host"), "a.example");
		STR_EQ(req.fields[0].name, "hOsT"); /* the name as sent */
		STR_EQ(gw_h1_field(&req, "x-empty"), "");
		STR_EQ(gw_h1_field(&req, "X-BLANK"), "");
		STR_EQ(gw_h1_field(&req, "x-inner"), "a  b\tc"); /* inner whitespace kept */
		STR_EQ(gw_h1_field(&req, "x-tab"), "v");
		CU_ASSERT_PTR_NULL(gw_h1_field(&req, "X-Inne"));
		CU_ASSERT_PTR_NULL(gw_h1_field(&req, "X-Inner2"));
	}
	/* the framing fields are found whatever their case */
	if (OK("POST / HTTP/1.1\r\nHOST: a\r\ncontent-LENGTH: 7\r\n\r\n"))
		CU_ASSERT_EQUAL(req.content_length, 7);
	if (OK("POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: CHUNKED\r\n\r\n"))
		CU_ASSERT_TRUE(req.chunked);
	if (OK("GET / HTTP/1.1\r\nHost: a\r\nCONNECTION: CLOSE\r\n\r\n"))
		CU_ASSERT_TRUE(req.close);
	/* gw_h1_field returns the first of several */
	if (OK("GET / HTTP/1.1\r\nHost: a\r\nX-D: one\r\nx-d: two\r\n\r\n"))
		STR_EQ(gw_h1_field(&req, "X-D"), "one");
	/* every tchar is allowed in a name, obs-text and HTAB in a value */
	if (OK("GET / HTTP/1.1\r\nHost: a\r\n!#$%&'*+-.^_`|~09azAZ: caf\xc3\xa9\t\xff\r\n\r\n"))
		STR_EQ(gw_h1_field(&req, "!#$%&'*+-.^_`|~09AZaz"), "caf\xc3\xa9\t\xff");
}

static void test_host(void)
{
	/* RFC 9112 §3.2 */
	EXPECT("GET / HTTP/1.1\r\n\r\n", 400);
	EXPECT("GET / HTTP/1.1\r\nX-Host: a\r\n\r\n", 400);
	EXPECT("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400);
	EXPECT("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400);
	if (OK("GET / HTTP/1.1\r\nHost:\r\n\r\n")) /* empty, but there */
		STR_EQ(gw_h1_field(&req, "Host"), "");
	/* HTTP/1.0 need not send one */
	if (OK("GET / HTTP/1.0\r\n\r\n"))
		CU_ASSERT_EQUAL(req.minor, 0);
	if (OK("GET / HTTP/1.0\r\nHost: a\r\n\r\n"))
		STR_EQ(gw_h1_field(&req, "Host"), "a");
}

/* RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code
 * to ... any request message that contains more than one Host header field
 * line" - any request, HTTP/1.0 included. */
static void test_host_repeated_http10(void)
{
	EXPECT("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400);
}

static void test_http10_keep_alive(void)
{
	if (OK("GET / HTTP/1.0\r\n\r\n"))
		CU_ASSERT_TRUE(req.close);
	if (OK("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
		CU_ASSERT_FALSE(req.close);
	if (OK("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"))
		CU_ASSERT_FALSE(req.close);
	if (OK("GET / HTTP/1.0\r\nConnection: foo, keep-alive \r\n\r\n"))
		CU_ASSERT_FALSE(req.close);
	if (OK("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"))
		CU_ASSERT_TRUE(req.close);
	if (OK("GET / HTTP/1.0\r\nConnection: keep-alivex\r\n\r\n"))
		CU_ASSERT_TRUE(req.close);
	if (OK("GET / HTTP/1.0\r\nConnection: foo\r\n\r\n"))
		CU_ASSERT_TRUE(req.close);
	if (OK("GET / HTTP/1.0\r\nKeep-Alive: timeout=5\r\n\r\n"))
		CU_ASSERT_TRUE(req.close);
	/* HTTP/1.1 is persistent by default */
	if (OK("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
		CU_ASSERT_FALSE(req.close);
	/* HTTP/1.x other than 1.0 and 1.1 is 505 (it was served as 1.1) */
	EXPECT("GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505);
	EXPECT("GET / HTTP/1.9\r\nHost: a\r\n\r\n", 505);
	EXPECT("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505);
	EXPECT("GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505);
	/* a parse starts from a clean slate */
	if (OK("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nExpect: 100-continue\r\n"
	       "Transfer-Encoding: chunked\r\n\r\n"))
		CU_ASSERT_TRUE(req.close && req.expect_continue && req.chunked);
	if (OK("GET / HTTP/1.1\r\nHost: a\r\n\r\n")) {
		CU_ASSERT_FALSE(req.close);
		CU_ASSERT_FALSE(req.expect_continue);
		CU_ASSERT_FALSE(req.chunked);
		CU_ASSERT_EQUAL(req.content_length, -1);
	}
}

static void test_connection_close(void)
{
	static const struct {
		const char *value;
		bool close;
	} cases[] = {
		{ "close", true },          { "Close", true },          { "CLOSE", true },
		{ "Upgrade, close", true }, { "close, Upgrade", true }, { ",, close ,,", true },
		{ "a,\tclose\t,b", true },  { "keep-alive", false },    { "closed", false },
		{ "x-close", false },       { "clo se", false },        { "", false },
		{ "Upgrade", false },
	};

	for (size_t i = 0; i < EHR_ARRAY_LEN(cases); i++) {
		char text[256];
		int n = snprintf(text, sizeof(text), "GET / HTTP/1.1\r\nHost: a\r\nConnection: %s\r\n\r\n",
		                 cases[i].value);
		if (status_at(__LINE__, text, (size_t)n, 0) != 0)
			continue;
		if (req.close != cases[i].close)
			fprintf(stderr, "\n  Connection: '%s': close=%d", cases[i].value, req.close);
		CU_ASSERT_EQUAL(req.close, cases[i].close);
	}
	/* close in any of several Connection fields */
	if (OK("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"))
		CU_ASSERT_TRUE(req.close);
	if (OK("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n"))
		CU_ASSERT_TRUE(req.close);
}

static void test_content_length(void)
{
	static const struct {
		const char *value;
		int status;
		int64_t length;
	} cases[] = {
		{ "0", 0, 0 },
		{ "42", 0, 42 },
		{ "00042", 0, 42 },
		{ "000000000000000000", 0, 0 },                  /* 18 digits */
		{ "999999999999999999", 0, 999999999999999999 }, /* the longest accepted */
		{ "1000000000000000000", 400, 0 },               /* 19 digits */
		{ "0000000000000000001", 400, 0 },               /* too long, even if small */
		{ "99999999999999999999999", 400, 0 },
		{ "", 400, 0 },
		{ "12a", 400, 0 },
		{ "a", 400, 0 },
		{ "0x10", 400, 0 },
		{ "-1", 400, 0 },
		{ "+1", 400, 0 },
		{ "1 2", 400, 0 },
		{ "1,1", 400, 0 },
		{ "1, 1", 400, 0 },
		{ "1.0", 400, 0 },
	};

	for (size_t i = 0; i < EHR_ARRAY_LEN(cases); i++) {
		char text[256];
		int n = snprintf(text, sizeof(text),
		                 "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %s\r\n\r\n", cases[i].value);
		int st = parse_n(text, (size_t)n, 64);
		if (st != cases[i].status)
			fprintf(stderr, "\n  Content-Length: '%s': %d (%s)", cases[i].value, st, why);
		CU_ASSERT_EQUAL(st, cases[i].status);
		if (st == 0 && cases[i].status == 0)
			CU_ASSERT_EQUAL(req.content_length, cases[i].length);
	}
	/* OWS around the value is not part of it */
	if (OK("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \t 5 \t\r\n\r\n"))
		CU_ASSERT_EQUAL(req.content_length, 5);
	/* repeated, equal or not */
	EXPECT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400);
	EXPECT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n", 400);
	EXPECT("POST / HTTP/1.0\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400);
	if (OK("POST / HTTP/1.0\r\nContent-Length: 5\r\n\r\n"))
		CU_ASSERT_EQUAL(req.content_length, 5);
}

static void test_transfer_encoding(void)
{
	if (OK("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")) {
		CU_ASSERT_TRUE(req.chunked);
		CU_ASSERT_EQUAL(req.content_length, -1);
	}
	if (OK("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  Chunked \r\n\r\n"))
		CU_ASSERT_TRUE(req.chunked);
	/* codings other than chunked: not implemented */
	EXPECT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501);
	EXPECT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501);
	EXPECT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 501);
	/* with Content-Length, in either order (RFC 9112 §6.3): a smuggling shape */
	EXPECT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400);
	EXPECT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
	EXPECT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: gzip\r\n\r\n", 400);
	/* twice */
	EXPECT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
	       "chunked\r\n\r\n",
	       400);
	/* in HTTP/1.0 the framing is faulty (RFC 9112 §6.1) */
	EXPECT("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
	EXPECT("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400);
}

static void test_expect(void)
{
	if (OK("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"))
		CU_ASSERT_TRUE(req.expect_continue);
	if (OK("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nexpect:  100-Continue \r\n\r\n"))
		CU_ASSERT_TRUE(req.expect_continue);
	/* an HTTP/1.0 client cannot be sent 100 (RFC 9110 §10.1.1) */
	if (OK("PUT / HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"))
		CU_ASSERT_FALSE(req.expect_continue);
	EXPECT("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417);
	EXPECT("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue, foo\r\n\r\n", 417);
	EXPECT("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continuex\r\n\r\n", 417);
	EXPECT("PUT / HTTP/1.1\r\nHost: a\r\nExpect:\r\n\r\n", 417);
	EXPECT("PUT / HTTP/1.0\r\nExpect: foo\r\n\r\n", 417);
}

static void test_malformed_fields(void)
{
	/* obsolete line folding (RFC 9112 §5.2) */
	EXPECT("GET / HTTP/1.1\r\nHost: a\r\nX-A: a\r\n b\r\n\r\n", 400);
	EXPECT("GET / HTTP/1.1\r\nHost: a\r\nX-A: a\r\n\tb\r\n\r\n", 400);
	EXPECT("GET / HTTP/1.1\n Host: a\n\n", 400); /* whitespace before the first field */
	/* whitespace between name and colon (RFC 9112 §5.1) */
	EXPECT("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400);
	EXPECT("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400);
	EXPECT("GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n", 400);
	/* no name, no colon, bad name characters */
	EXPECT("GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", 400);
	EXPECT("GET / HTTP/1.1\r\nHost: a\r\nX-A v\r\n\r\n", 400);
	EXPECT("GET / HTTP/1.1\r\nHost: a\r\nX(A): v\r\n\r\n", 400);
	EXPECT("GET / HTTP/1.1\r\nHost: a\r\nX\xc3\xa9: v\r\n\r\n", 400);
	/* control characters and NUL in a value, a name, the request line */
	EXPECT("GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x01z\r\n\r\n", 400);
	EXPECT("GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x1fz\r\n\r\n", 400);
	EXPECT("GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x7fz\r\n\r\n", 400);
	EXPECT("GET / HTTP/1.1\r\nHost: a\r\nX-A: \x0b\r\n\r\n", 400);
	EXPECT("GET / HTTP/1.1\r\nHost: a\r\nX-A: a\0z\r\n\r\n", 400);
	EXPECT("GET / HTTP/1.1\r\nHost: a\0.evil\r\n\r\n", 400);
	EXPECT("GET / HTTP/1.1\r\nHo\0st: a\r\n\r\n", 400);
	EXPECT("GET / HTTP/1.1\r\nHost: a\r\n\0\r\n\r\n", 400);
	EXPECT("GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	EXPECT("GET / HTTP/1.1\0\r\nHost: a\r\n\r\n", 400);
	EXPECT("\0GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	/* bare CR anywhere (RFC 9112 §2.2) */
	EXPECT("GET / HTTP/1.1\rHost: a\r\n\r\n", 400);
	EXPECT("GET / HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n", 400);
	EXPECT("GET / HTTP/1.1\r\nHost: a\r\r\n\r\n", 400);
	EXPECT("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", 400);
	EXPECT("GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	/* bytes after the empty line do not belong to the head */
	EXPECT("GET / HTTP/1.1\r\nHost: a\r\n\r\nX", 400);
	EXPECT("GET / HTTP/1.1\r\nHost: a\r\n\r\n\r\n", 400);
	EXPECT("GET / HTTP/1.1\nHost: a\n\nGET / HTTP/1.1\nHost: a\n\n", 400);
}

static void test_request_line(void)
{
	/* an unknown but well-formed method token: 501; a malformed one: 400 */
	EXPECT("FOO / HTTP/1.1\r\nHost: a\r\n\r\n", 501);
	EXPECT("BREW / HTTP/1.1\r\nHost: a\r\n\r\n", 501);
	EXPECT("get / HTTP/1.1\r\nHost: a\r\n\r\n", 501); /* methods are case-sensitive */
	EXPECT("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", 501);
	EXPECT("TRACE / HTTP/1.1\r\nHost: a\r\n\r\n", 501);
	EXPECT("GETX / HTTP/1.1\r\nHost: a\r\n\r\n", 501);
	EXPECT("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	EXPECT("GE\x7fT / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	EXPECT("G\xc3\x89T / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	EXPECT("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	/* a syntax error is 400 before an unknown method would be 501 */
	EXPECT("FOO / HTTP/1.1x\r\nHost: a\r\n\r\n", 400);
	/* only origin-form targets */
	EXPECT("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	EXPECT("GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	EXPECT("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	EXPECT("GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	EXPECT("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	EXPECT("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	EXPECT("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	/* spaces: exactly one between the three parts */
	EXPECT("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	EXPECT("GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	EXPECT("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	EXPECT("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400);
	EXPECT("GET /\r\nHost: a\r\n\r\n", 400);
	EXPECT("GET\r\nHost: a\r\n\r\n", 400);
	EXPECT(" / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	/* versions */
	EXPECT("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505);
	EXPECT("GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505);
	EXPECT("GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505);
	EXPECT("GET / HTTP/1.1x\r\nHost: a\r\n\r\n", 400);
	EXPECT("GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400);
	EXPECT("GET / HTTP/11.1\r\nHost: a\r\n\r\n", 400);
	EXPECT("GET / HTTP/1\r\nHost: a\r\n\r\n", 400);
	EXPECT("GET / HTTP/1.\r\nHost: a\r\n\r\n", 400);
	EXPECT("GET / HTTP/\r\nHost: a\r\n\r\n", 400);
	EXPECT("GET / HTTP/2\r\nHost: a\r\n\r\n", 400);
	EXPECT("GET / http/1.1\r\nHost: a\r\n\r\n", 400);
	EXPECT("GET / HTTPS/1.1\r\nHost: a\r\n\r\n", 400);
	EXPECT("GET / HTTP/1.a\r\nHost: a\r\n\r\n", 400);
}

static void test_field_limit(void)
{
	static char text[GW_H1_MAX_FIELDS * 16 + 256];
	size_t len;

	/* max_fields = 4: four fields pass, a fifth is 431 */
	static const char four[] = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
	static const char five[] = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
	CU_ASSERT_EQUAL(parse_n(four, sizeof(four) - 1, 4), 0);
	CU_ASSERT_EQUAL(req.nfields, 4);
	CU_ASSERT_EQUAL(parse_n(five, sizeof(five) - 1, 4), 431);
	CU_ASSERT_EQUAL(parse_n(five, sizeof(five) - 1, 5), 0);
	CU_ASSERT_EQUAL(parse_n(H_CRLF, sizeof(H_CRLF) - 1, 0), 431);

	/* the compiled-in ceiling holds whatever the caller asks for */
	for (size_t want = GW_H1_MAX_FIELDS; want <= GW_H1_MAX_FIELDS + 1; want++) {
		len = (size_t)snprintf(text, sizeof(text), "GET / HTTP/1.1\r\nHost: a\r\n");
		for (size_t i = 1; i < want; i++)
			len += (size_t)snprintf(text + len, sizeof(text) - len, "X-%zu: v\r\n", i);
		len += (size_t)snprintf(text + len, sizeof(text) - len, "\r\n");
		CU_ASSERT_FATAL(len < sizeof(text) - 1);
		int st = parse_n(text, len, (size_t)-1);
		CU_ASSERT_EQUAL(st, want <= GW_H1_MAX_FIELDS ? 0 : 431);
		if (st == 0) {
			CU_ASSERT_EQUAL(req.nfields, GW_H1_MAX_FIELDS);
			STR_EQ(gw_h1_field(&req, "X-1023"), "v");
		}
	}
}

/* ---------------------------------------------------------------- head end */

/* The end of the head in text[0..len) found in one call, on an exact-size copy. */
static size_t head_end_whole(const char *text, size_t len)
{
	uint8_t *b = malloc(len ? len : 1);
	size_t scanned = 0, end;

	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	memcpy(b, text, len);
	end = gw_h1_head_end(b, len, &scanned);
	CU_ASSERT(scanned <= len);
	free(b);
	return end;
}

/* The same head arriving `step` bytes at a time, the scan resuming at
 * *scanned as conn_read.c does: 0 until the first length that holds the whole
 * head, then its end. Returns that end, 0 if it never came. */
static size_t head_end_trickle(const char *text, size_t len, size_t step)
{
	size_t scanned = 0, have = 0;

	for (;;) {
		size_t end;
		/* a fresh exact-size copy each time: bytes past `have` are unreadable */
		uint8_t *b = malloc(have ? have : 1);
		CU_ASSERT_PTR_NOT_NULL_FATAL(b);
		memcpy(b, text, have);
		end = gw_h1_head_end(b, have, &scanned);
		free(b);
		CU_ASSERT(scanned <= have);
		if (end != 0) {
			CU_ASSERT(end <= have);
			CU_ASSERT(end + step > have); /* not found late */
			return end;
		}
		if (have == len)
			return 0;
		have = have + step < len ? have + step : len;
	}
}

#define HEAD_END(text, want)                                                                                 \
	do {                                                                                                 \
		size_t w__ = (want), g__ = head_end_whole((text), sizeof(text) - 1);                         \
		if (g__ != w__)                                                                              \
			fprintf(stderr, "\n  line %d: head end %zu, wanted %zu", __LINE__, g__, w__);        \
		CU_ASSERT_EQUAL(g__, w__);                                                                   \
		for (size_t s__ = 1; s__ <= 7; s__++) {                                                      \
			g__ = head_end_trickle((text), sizeof(text) - 1, s__);                               \
			if (g__ != w__)                                                                      \
				fprintf(stderr, "\n  line %d: step %zu: head end %zu, wanted %zu", __LINE__, \
				        s__, g__, w__);                                                      \
			CU_ASSERT_EQUAL(g__, w__);                                                           \
		}                                                                                            \
	} while (0)

/* The head `head` followed by `rest`: the end is found after `head`. */
#define HEAD_END_AT(head, rest) HEAD_END(head rest, sizeof(head) - 1)

static void test_head_end_found(void)
{
	HEAD_END_AT(H_CRLF, "");
	/* what follows the head (a body, the next request) is not part of it */
	HEAD_END_AT(H_CRLF, "hello");
	HEAD_END_AT(H_CRLF, H_CRLF);
	HEAD_END_AT(H_CRLF, "\r\n");
	/* a bare LF ends the head where it stands (the parser refuses it),
	 * so what follows is never read as a request of its own */
	HEAD_END_AT("GET / HTTP/1.1\n", "Host: a\n\n");
	HEAD_END_AT("GET / HTTP/1.1\r\nHost: a\n", "\r\nxyz");
	HEAD_END_AT("GET / HTTP/1.1\r\nX-A: a\n", "Content-Length: 37\r\n\r\nGET / HTTP/1.1\r\n\r\n");
	HEAD_END_AT("GET / HTTP/1.1\r\nHost: a\r\n\n", "xyz");
	/* no header fields (an HTTP/1.0 head) */
	HEAD_END("GET / HTTP/1.0\r\n\r\n", 18);
	/* a CR that does not end a line does not end the head */
	HEAD_END("GET / HTTP/1.1\r\n\rX\r\n\r\n", 22);
	HEAD_END("a\n\r\n", 2);
	HEAD_END("\n", 1);
}

static void test_head_end_incomplete(void)
{
	HEAD_END("", 0);
	HEAD_END("G", 0);
	HEAD_END("GET / HTTP/1.1", 0);
	HEAD_END("GET / HTTP/1.1\r\n", 0);
	HEAD_END("GET / HTTP/1.1\r\nHost: a", 0);
	HEAD_END("GET / HTTP/1.1\r\nHost: a\r\n", 0);
	HEAD_END("GET / HTTP/1.1\r\nHost: a\r\n\r", 0);
	HEAD_END("GET / HTTP/1.1\r\nHost: a\r\n\rX", 0);
	HEAD_END("GET / HTTP/1.1\r\nHost: a\r\r\r\n", 0);

	/* The scan resumes where it stopped: each call is told how far the
	 * last got, so a head fed one byte at a time is found exactly once,
	 * at the byte that completes it. */
	static const char text[] = "GET /x HTTP/1.1\r\nHost: a\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaa\r\n\r\nBODY";
	const size_t want = sizeof(text) - 1 - 4;
	size_t scanned = 0;
	for (size_t have = 0; have <= sizeof(text) - 1; have++) {
		size_t before = scanned, end = gw_h1_head_end((const uint8_t *)text, have, &scanned);
		CU_ASSERT(scanned >= before); /* never goes back */
		CU_ASSERT(scanned <= have);
		if (have < want) {
			CU_ASSERT_EQUAL(end, 0);
		} else {
			CU_ASSERT_EQUAL(end, want);
			break;
		}
	}
	/* and the scan position makes the work linear: it keeps up with the data */
	CU_ASSERT(scanned + 3 >= want);
}

/* The parser skips empty lines before the request line (RFC 9112 §2.2),
 * and gw_h1_head_end promises not to take them for the end of the head.
 * Before a fix, "\r\n\r\nGET ..." ended the head after 4 bytes, and
 * conn.c answered 400 to the request that followed. */
static void test_head_end_leading_empty_lines(void)
{
	static const char two_crlf[] = "\r\n\r\n" H_CRLF;

	HEAD_END_AT("\r\n" H_CRLF, "");
	HEAD_END_AT("\r\n\r\n" H_CRLF, "");
	HEAD_END("\n\n" H_LF, 1);         /* a bare LF: the parser refuses it */
	HEAD_END("\r\n\n\r\n" H_CRLF, 3); /* likewise after an empty line */
	/* what head_end cuts, the parser accepts */
	size_t end = head_end_whole(two_crlf, sizeof(two_crlf) - 1);
	CU_ASSERT_EQUAL(status_at(__LINE__, two_crlf, end, 0), 0);
}

/* ---------------------------------------------------------------- chunked */

struct decoded {
	int rc;        /* the last return: 1 ended, 0 wants more, < 0 refused */
	size_t used;   /* input bytes consumed (framing and payload) */
	size_t len;    /* payload bytes collected */
	size_t calls;  /* gw_h1_chunked_step calls */
	uint8_t *data; /* the payload */
};

static void decoded_free(struct decoded *d)
{
	free(d->data);
	memset(d, 0, sizeof(*d));
}

/*
 * Decode in[0..n) as a connection would receive it: `feed` more bytes arrive
 * at a time (0: all at once). Each call sees the bytes that arrived and were
 * not yet consumed, from an exact-size heap copy; the caller consumes
 * *framing bytes, takes the next *payload as body, and calls again past
 * them, asking for more input only when a call made no progress. Checks the
 * contract on every call: framing + payload never exceed what was offered,
 * and a call offered bytes always makes progress, ends or fails.
 */
static struct decoded decode(const void *in, size_t n, size_t feed)
{
	const uint8_t *src = in;
	struct decoded d = { 0, 0, 0, 0, malloc(n ? n : 1) };
	struct gw_h1_chunked c;
	size_t have = feed == 0 || feed > n ? n : feed;

	memset(&c, 0, sizeof(c));
	CU_ASSERT_PTR_NOT_NULL_FATAL(d.data);
	for (;;) {
		size_t avail = have - d.used, framing = 99, payload = 99;
		uint8_t *b = malloc(avail ? avail : 1);
		CU_ASSERT_PTR_NOT_NULL_FATAL(b);
		memcpy(b, src + d.used, avail);
		d.rc = gw_h1_chunked_step(&c, b, avail, &framing, &payload);
		free(b);
		d.calls++;
		CU_ASSERT_FATAL(d.calls <= 4 * n + 8); /* no endless loop */
		if (d.rc < 0)
			return d;
		CU_ASSERT_FATAL(d.rc == 0 || d.rc == 1);
		CU_ASSERT_FATAL(framing <= avail && payload <= avail - framing);
		memcpy(d.data + d.len, src + d.used + framing, payload);
		d.len += payload;
		d.used += framing + payload;
		if (d.rc == 1) {
			CU_ASSERT(framing > 0);  /* at least the final LF */
			CU_ASSERT(payload == 0); /* no body in the last step */
			return d;
		}
		if (framing + payload == 0) {
			CU_ASSERT_FATAL(avail == 0); /* offered bytes and made no progress */
			if (have == n)
				return d; /* incomplete: wants more than there is */
			have = have + feed < n ? have + feed : n;
		}
	}
}

static const size_t feeds[] = { 1, 2, 3, 7, 0 };

/* in decodes to body, ending exactly `tail` bytes before the end of in,
 * whatever the feed size. */
static void expect_body_at(int line, const void *in, size_t n, const void *body, size_t blen, size_t tail)
{
	for (size_t i = 0; i < EHR_ARRAY_LEN(feeds); i++) {
		struct decoded d = decode(in, n, feeds[i]);
		bool ok = d.rc == 1 && d.used == n - tail && d.len == blen &&
		          memcmp(d.data, body, blen) == 0; /* not secret */
		if (!ok)
			fprintf(stderr, "\n  line %d, feed %zu: rc %d (%s), used %zu of %zu, body %zu of %zu",
			        line, feeds[i], d.rc, d.rc < 0 ? ehr_error_msg() : "", d.used, n - tail,
			        d.len, blen);
		CU_ASSERT(ok);
		decoded_free(&d);
	}
}

#define EXPECT_BODY(in, body) expect_body_at(__LINE__, (in), sizeof(in) - 1, (body), sizeof(body) - 1, 0)

/* in is refused, whatever the feed size. */
static void expect_refused_at(int line, const void *in, size_t n)
{
	for (size_t i = 0; i < EHR_ARRAY_LEN(feeds); i++) {
		struct decoded d = decode(in, n, feeds[i]);
		if (d.rc != EHR_ERR_PARSE)
			fprintf(stderr, "\n  line %d, feed %zu: rc %d (used %zu of %zu), wanted a refusal",
			        line, feeds[i], d.rc, d.used, n);
		CU_ASSERT_EQUAL(d.rc, EHR_ERR_PARSE);
		decoded_free(&d);
	}
}

#define EXPECT_REFUSED(in) expect_refused_at(__LINE__, (in), sizeof(in) - 1)

/* Every proper prefix of a valid body wants more: never ends, never fails,
 * and what it yields is a prefix of the body. */
static void expect_prefixes_incomplete(const uint8_t *in, size_t n, const uint8_t *body, size_t blen)
{
	for (size_t k = 0; k < n; k++) {
		struct decoded d = decode(in, k, 0);
		CU_ASSERT_EQUAL(d.rc, 0);
		CU_ASSERT(d.len <= blen && memcmp(d.data, body, d.len) == 0); /* not secret */
		if (d.rc != 0)
			fprintf(stderr, "\n  prefix %zu of %zu: rc %d", k, n, d.rc);
		decoded_free(&d);
	}
}

static void test_chunked_valid(void)
{
	EXPECT_BODY("0\r\n\r\n", "");
	EXPECT_BODY("5\r\nhello\r\n0\r\n\r\n", "hello");
	EXPECT_BODY("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world");
	EXPECT_BODY("1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n", "abc");
	/* the payload is opaque: CR, LF, NUL and digits in it are data */
	EXPECT_BODY("8\r\n\r\n0\r\n\r\n\0\r\n0\r\n\r\n", "\r\n0\r\n\r\n\0");
	/* hex in either case, with leading zeros */
	EXPECT_BODY("A\r\n0123456789\r\n0\r\n\r\n", "0123456789");
	EXPECT_BODY("a\r\n0123456789\r\n0\r\n\r\n", "0123456789");
	EXPECT_BODY("0000b\r\nhello world\r\n000\r\n\r\n", "hello world");
	EXPECT_BODY("1B\r\nabcdefghijklmnopqrstuvwxyz!\r\n0\r\n\r\n", "abcdefghijklmnopqrstuvwxyz!");
	/* the decoder stops at the end: the next request is not its business */
	static const char pipelined[] = "5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
	expect_body_at(__LINE__, pipelined, sizeof(pipelined) - 1, "hello", 5, 16);
}

static void test_chunked_big(void)
{
	/* chunks of 1, 0xff, 0x1000 and 0x2A5 bytes of every byte value */
	static const size_t sizes[] = { 1, 0xff, 0x1000, 0x2a5 };
	static uint8_t body[0x1000 + 0x2a5 + 0x100], in[sizeof(body) + 256];
	size_t blen = 0, n = 0;
	uint32_t x = 12345;

	for (size_t i = 0; i < EHR_ARRAY_LEN(sizes); i++) {
		n += (size_t)snprintf((char *)in + n, sizeof(in) - n, i % 2 ? "%zX\r\n" : "%zx\r\n",
		                      sizes[i]);
		for (size_t j = 0; j < sizes[i]; j++) {
			x = x * 1103515245u + 12345u;
			body[blen] = (uint8_t)(x >> 16);
			in[n++] = body[blen++];
		}
		in[n++] = '\r';
		in[n++] = '\n';
	}
	memcpy(in + n, "0\r\n\r\n", 5);
	n += 5;
	CU_ASSERT_FATAL(n <= sizeof(in) && blen <= sizeof(body));
	expect_body_at(__LINE__, in, n, body, blen, 0);
	/* a sample of feed sizes that straddle the framing in other places */
	for (size_t feed = 4; feed < 300; feed += 37) {
		struct decoded d = decode(in, n, feed);
		CU_ASSERT(d.rc == 1 && d.used == n && d.len == blen &&
		          memcmp(d.data, body, blen) == 0); /* not secret */
		decoded_free(&d);
	}
}

static void test_chunked_incomplete(void)
{
	static const char in[] = "5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n";

	expect_prefixes_incomplete((const uint8_t *)in, sizeof(in) - 1, (const uint8_t *)"hello world", 11);
	/* a size announced but not sent: wants more */
	struct decoded d = decode("10\r\nshort", 9, 1);
	CU_ASSERT_EQUAL(d.rc, 0);
	CU_ASSERT_EQUAL(d.len, 5);
	CU_ASSERT_EQUAL(d.used, 9);
	decoded_free(&d);
}

static void test_chunked_extensions(void)
{
	EXPECT_BODY("5;name=value\r\nhello\r\n0\r\n\r\n", "hello");
	EXPECT_BODY("5;a;b=\"q s\";c=1\r\nhello\r\n0;last\r\n\r\n", "hello");
	EXPECT_BODY("5 ;a=1\r\nhello\r\n0\t;z\r\n\r\n", "hello"); /* BWS before ';' */
	EXPECT_BODY("5;a=\xc3\xa9\r\nhello\r\n0\r\n\r\n", "hello");
	/* a line ending inside an extension must be CR LF */
	EXPECT_REFUSED("5;a\nhello\r\n0\r\n\r\n");
	EXPECT_REFUSED("5;a\rb\r\nhello\r\n0\r\n\r\n");
	EXPECT_REFUSED("5;a\x01\r\nhello\r\n0\r\n\r\n");
	EXPECT_REFUSED("5;a\0\r\nhello\r\n0\r\n\r\n");
}

static void test_chunked_trailers(void)
{
	EXPECT_BODY("5\r\nhello\r\n0\r\nX-Sum: abc\r\n\r\n", "hello");
	EXPECT_BODY("5\r\nhello\r\n0\r\nX-Sum: abc\r\nX-Two:\td\r\n\r\n", "hello");
	EXPECT_BODY("0\r\nX-Only: 1\r\n\r\n", "");
	static const char next[] = "5\r\nhello\r\n0\r\nX: y\r\n\r\nGET";
	expect_body_at(__LINE__, next, sizeof(next) - 1, "hello", 5, 3);
	/* trailer lines end in CR LF; no control characters */
	EXPECT_REFUSED("5\r\nhello\r\n0\r\nX: a\n\r\n");
	EXPECT_REFUSED("5\r\nhello\r\n0\r\nX: a\rb\r\n\r\n");
	EXPECT_REFUSED("5\r\nhello\r\n0\r\nX: \x01\r\n\r\n");
	EXPECT_REFUSED("5\r\nhello\r\n0\r\nX: \0\r\n\r\n");
	/* the last CRLF must be one */
	EXPECT_REFUSED("0\r\n\rX");
	EXPECT_REFUSED("0\r\n\n");
	EXPECT_REFUSED("0\r\n\r\r\n");
}

static void test_chunked_bad_framing(void)
{
	/* missing or malformed CRLF after the data */
	EXPECT_REFUSED("5\r\nhelloX\r\n0\r\n\r\n");
	EXPECT_REFUSED("5\r\nhello\n0\r\n\r\n");
	EXPECT_REFUSED("5\r\nhello\r0\r\n\r\n");
	EXPECT_REFUSED("5\r\nhello0\r\n\r\n");
	EXPECT_REFUSED("4\r\nhello\r\n0\r\n\r\n"); /* the size undercounts */
	EXPECT_REFUSED("6\r\nhello\r\n0\r\n\r\n"); /* overcounts: the CR is data, then LF */
	/* garbage where a size belongs */
	EXPECT_REFUSED("x\r\nhello\r\n0\r\n\r\n");
	EXPECT_REFUSED("\r\nhello\r\n0\r\n\r\n");
	EXPECT_REFUSED(";a\r\nhello\r\n0\r\n\r\n");
	EXPECT_REFUSED(" 5\r\nhello\r\n0\r\n\r\n");
	EXPECT_REFUSED("-5\r\nhello\r\n0\r\n\r\n");
	EXPECT_REFUSED("+5\r\nhello\r\n0\r\n\r\n");
	EXPECT_REFUSED("0x5\r\nhello\r\n0\r\n\r\n");
	EXPECT_REFUSED("5g\r\nhello\r\n0\r\n\r\n");
	EXPECT_REFUSED("5\0\r\nhello\r\n0\r\n\r\n");
	EXPECT_REFUSED("5\r\nhello\r\nzz\r\n\r\n");
	EXPECT_REFUSED("5\r\nhello\r\n\r\n");
	/* the size line ends in CR LF, never a bare LF or CR */
	EXPECT_REFUSED("5\nhello\r\n0\r\n\r\n");
	EXPECT_REFUSED("5\rhello\r\n0\r\n\r\n");
	EXPECT_REFUSED("5\r\r\nhello\r\n0\r\n\r\n");
	EXPECT_REFUSED("5\r\nhello\r\n0\n\r\n");
}

/* chunk = chunk-size [ chunk-ext ] CRLF, chunk-ext = *( BWS ";" ... )
 * (RFC 9112 §7.1.1): after the size and optional whitespace comes ';' or
 * CRLF. "5 6" is not a size; reading it as 5 is a guess another parser
 * need not share. */
static void test_chunked_size_junk_after_space(void)
{
	EXPECT_REFUSED("5 6\r\nhello\r\n0\r\n\r\n");
	EXPECT_REFUSED("5 x\r\nhello\r\n0\r\n\r\n");
	EXPECT_REFUSED("5\tzz\r\nhello\r\n0\r\n\r\n");
}

static void test_chunked_size_limits(void)
{
	static char in[4096];
	size_t n;

	/* the largest size taken: 2^62 - 1; the data then simply wants more */
	struct decoded d = decode("3FFFFFFFFFFFFFFF\r\nabc", 21, 0);
	CU_ASSERT_EQUAL(d.rc, 0);
	CU_ASSERT_EQUAL(d.len, 3);
	decoded_free(&d);
	/* sizes that do not fit: refused, not wrapped */
	EXPECT_REFUSED("4000000000000000\r\nabc");
	EXPECT_REFUSED("FFFFFFFFFFFFFFFF\r\nabc");
	EXPECT_REFUSED("10000000000000000\r\nabc"); /* 2^64 wraps to 0: a classic */
	EXPECT_REFUSED("100000000000000005\r\nhello\r\n0\r\n\r\n");
	EXPECT_REFUSED("fffffffffffffffffffffffffffffffff\r\n");

	/* a size line of up to 1 KiB (extensions included) is fine, longer is refused */
	n = (size_t)snprintf(in, sizeof(in), "5;%0*d\r\nhello\r\n0\r\n\r\n", 1000, 0);
	expect_body_at(__LINE__, in, n, "hello", 5, 0);
	n = (size_t)snprintf(in, sizeof(in), "5;%0*d\r\nhello\r\n0\r\n\r\n", 2000, 0);
	expect_refused_at(__LINE__, in, n);
	/* leading zeros count against the line */
	n = (size_t)snprintf(in, sizeof(in), "%0*d5\r\nhello\r\n0\r\n\r\n", 2000, 0);
	expect_refused_at(__LINE__, in, n);
	n = (size_t)snprintf(in, sizeof(in), "%0*d5\r\nhello\r\n0\r\n\r\n", 100, 0);
	expect_body_at(__LINE__, in, n, "hello", 5, 0);
	/* an extension that never ends is refused, not buffered */
	memset(in, 'a', sizeof(in));
	in[0] = '5';
	in[1] = ';';
	expect_refused_at(__LINE__, in, sizeof(in));
}

static void test_chunked_trailer_limit(void)
{
	static char in[32768];
	size_t n;

	/* 8000 bytes of trailers: fine */
	n = (size_t)snprintf(in, sizeof(in), "5\r\nhello\r\n0\r\nX-T: %0*d\r\n\r\n", 8000 - 5, 0);
	expect_body_at(__LINE__, in, n, "hello", 5, 0);
	/* one trailer line over 8 KiB */
	n = (size_t)snprintf(in, sizeof(in), "5\r\nhello\r\n0\r\nX-T: %0*d\r\n\r\n", 9000, 0);
	expect_refused_at(__LINE__, in, n);
	/* many short ones adding up */
	n = (size_t)snprintf(in, sizeof(in), "0\r\n");
	for (int i = 0; i < 2100; i++) /* 4 bytes each, 8400 in all */
		n += (size_t)snprintf(in + n, sizeof(in) - n, "X: %d\r\n", i % 10);
	n += (size_t)snprintf(in + n, sizeof(in) - n, "\r\n");
	CU_ASSERT_FATAL(n < sizeof(in) - 1);
	expect_refused_at(__LINE__, in, n);
	/* a trailer that never ends is refused, not buffered */
	memcpy(in, "0\r\nX: ", 6);
	memset(in + 6, 'a', sizeof(in) - 6);
	expect_refused_at(__LINE__, in, sizeof(in));
}

static void test_chunked_after_done(void)
{
	static const char in[] = "5\r\nhello\r\n0\r\n\r\n0\r\n\r\n";
	struct gw_h1_chunked c;
	size_t f, p, pos = 0;
	int rc;

	memset(&c, 0, sizeof(c));
	do {
		rc = gw_h1_chunked_step(&c, (const uint8_t *)in + pos, 15 - pos, &f, &p);
		CU_ASSERT_FATAL(rc >= 0);
		pos += f + p;
	} while (rc == 0 && f + p > 0);
	CU_ASSERT_EQUAL(rc, 1);
	CU_ASSERT_EQUAL(pos, 15);
	/* a second body on the same state is a caller bug: refused, not decoded */
	EHR_ASSERT_ERR(gw_h1_chunked_step(&c, (const uint8_t *)in + pos, sizeof(in) - 1 - pos, &f, &p),
	               EHR_ERR_PARSE);
	EHR_ASSERT_ERR(gw_h1_chunked_step(&c, (const uint8_t *)"X", 1, &f, &p), EHR_ERR_PARSE);
	/* a refused state stays refused... */
	memset(&c, 0, sizeof(c));
	EHR_ASSERT_ERR(gw_h1_chunked_step(&c, (const uint8_t *)"x", 1, &f, &p), EHR_ERR_PARSE);
	/* ...and a zeroed one starts over */
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(gw_h1_chunked_step(&c, (const uint8_t *)"0\r\n\r\n", 5, &f, &p), 1);
	CU_ASSERT_EQUAL(f, 5);
	CU_ASSERT_EQUAL(p, 0);
}

static int clean_head(void)
{
	free(head);
	head = NULL;
	return 0;
}

static void register_suites(void)
{
	EHR_ADD_SUITE("h1 head", NULL, clean_head, { "GET with CRLF", test_get_crlf },
	              { "a bare LF in the head: 400", test_bare_lf_refused },
	              { "empty lines before the request line", test_leading_empty_lines },
	              { "field names case-insensitive, OWS trimmed", test_field_names_and_ows },
	              { "Host: one in HTTP/1.1, optional in 1.0", test_host },
	              { "Host repeated in HTTP/1.0: 400 (RFC 9112 3.2)", test_host_repeated_http10 },
	              { "HTTP/1.0 closes unless keep-alive", test_http10_keep_alive },
	              { "Connection: close in a token list", test_connection_close },
	              { "Content-Length", test_content_length },
	              { "Transfer-Encoding", test_transfer_encoding }, { "Expect", test_expect },
	              { "malformed fields, control chars, bare CR", test_malformed_fields },
	              { "request line: method, target, version", test_request_line },
	              { "field count limit: 431", test_field_limit });
	EHR_ADD_SUITE("h1 head end", NULL, NULL, { "found: CRLF, LF, mixed", test_head_end_found },
	              { "incomplete, resumed byte by byte", test_head_end_incomplete },
	              { "empty lines before the request line", test_head_end_leading_empty_lines });
	EHR_ADD_SUITE(
	        "h1 chunked", NULL, NULL, { "valid bodies, feeds 1 2 3 7 whole", test_chunked_valid },
	        { "4 KiB chunks, every byte value", test_chunked_big },
	        { "every prefix wants more", test_chunked_incomplete },
	        { "extensions", test_chunked_extensions }, { "trailers", test_chunked_trailers },
	        { "bad framing, garbage sizes", test_chunked_bad_framing },
	        { "junk after the size and a space (RFC 9112 7.1.1)", test_chunked_size_junk_after_space },
	        { "size overflow, size line too long", test_chunked_size_limits },
	        { "trailer section too large", test_chunked_trailer_limit },
	        { "calling after the end", test_chunked_after_done });
}

EHR_TEST_MAIN(register_suites)
