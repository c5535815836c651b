/*
 * test_atna_unit.c - the ATNA feed's wire format without a network:
 * atna_repos_parse (good lists and every refusal), atna_render (RFC 5424
 * header, facility 10, severity by outcome, structured-data escaping, the
 * BOM, RFC 6587 octet count), and audit/dicom.c (the XML escaper on hostile
 * bytes, and whole AuditMessages judged well-formed by libxml2's xmllint).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atna/atna.h"
#include "audit/audit.h"
#include "ledger/ledger.h"
#include "tests/harness/harness.h"

/* ------------------------------------------------------------ repositories */

static void test_repos_good(void)
{
	struct atna_repo r[ATNA_MAX_REPOS];
	size_t n = 99;

	CU_ASSERT_EQUAL(atna_repos_parse(r, ATNA_MAX_REPOS, &n, ""), 0);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_EQUAL(atna_repos_parse(r, ATNA_MAX_REPOS, &n, " , "), 0);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_EQUAL(atna_repos_parse(r, ATNA_MAX_REPOS, &n,
	                                 "arr1=audit.example.org:6514, arr_2=10.0.0.7:1514 dr.3=[::1]:6514"),
	                0);
	CU_ASSERT_EQUAL_FATAL(n, 3);
	CU_ASSERT_STRING_EQUAL(r[0].name, "arr1");
	CU_ASSERT_STRING_EQUAL(r[0].host, "audit.example.org");
	CU_ASSERT_EQUAL(r[0].port, 6514);
	CU_ASSERT_STRING_EQUAL(r[1].host, "10.0.0.7");
	CU_ASSERT_EQUAL(r[1].port, 1514);
	CU_ASSERT_STRING_EQUAL(r[2].name, "dr.3");
	CU_ASSERT_STRING_EQUAL(r[2].host, "::1");
}

static void test_repos_bad(void)
{
	static const char *bad[] = {
		"arr1",           /* no = */
		"=host:6514",     /* empty name */
		"a b=host:6514",  /* split at the blank: "a" has no = */
		"a/b=host:6514",  /* name character */
		"arr=host",       /* no port */
		"arr=host:",      /* empty port */
		"arr=host:0",     /* port 0 */
		"arr=host:65536", /* port too large */
		"arr=host:65x",   /* not a number */
		"arr=:6514",      /* no host */
		"arr=ho;st:6514", /* host character */
		"arr=::1:6514",   /* IPv6 without brackets */
		"arr=[::1:6514",  /* unclosed bracket */
		"a=h:1,a=h:2",    /* name twice */
		"a=h:1,b=h:1,c=h:1,d=h:1,e=h:1,f=h:1,g=h:1,h=h:1,i=h:1",                 /* too many */
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=h:1", /* 65-byte name */
	};
	struct atna_repo r[ATNA_MAX_REPOS];
	size_t n;

	for (size_t i = 0; i < EHR_ARRAY_LEN(bad); i++) {
		int rc = atna_repos_parse(r, ATNA_MAX_REPOS, &n, bad[i]);
		if (rc != EHR_ERR_CONFIG)
			fprintf(stderr, "\n  accepted or wrong error for %s: %d\n", bad[i], rc);
		CU_ASSERT_EQUAL(rc, EHR_ERR_CONFIG);
	}
}

/* ------------------------------------------------------------- rendering */

/* A decoded entry of the given type, actor, subject and payload at seq. */
static struct ehr_buf entry_bytes;
static int make_entry(struct ledger_entry *e, uint64_t seq, const char *type, const char *actor,
                      const char *subject, const char *payload)
{
	json_t *pl = json_loads(payload, 0, NULL);
	struct ledger_entry_in in = { .type = type, .actor = actor, .subject = subject, .payload = pl };
	int err;

	ehr_buf_free(&entry_bytes);
	ehr_buf_init(&entry_bytes, 1 << 20);
	err = pl ? ledger_entry_encode(&entry_bytes, seq, 1765000000123, &in) : EHR_ERR_PARSE;
	if (err == 0)
		err = ledger_entry_decode(e, entry_bytes.data, entry_bytes.len, true);
	json_decref(pl);
	return err;
}

static bool starts_with(const char *s, const char *prefix)
{
	if (strncmp(s, prefix, strlen(prefix)) == 0)
		return true;
	fprintf(stderr, "\n  got  %.*s\n  want %s\n", (int)strlen(prefix), s, prefix);
	return false;
}

static void test_severity(void)
{
	CU_ASSERT_EQUAL(atna_severity(0), 5);
	CU_ASSERT_EQUAL(atna_severity(4), 4);
	CU_ASSERT_EQUAL(atna_severity(8), 4);
	CU_ASSERT_EQUAL(atna_severity(12), 4);
}

static void test_render_frame(void)
{
	struct atna_msg_ctx ctx = { .hostname = "gw-1.example",
		                    .source_id = "ehrgate.local/ledger",
		                    .origin = "ex\"am]p\\le",
		                    .pen = 32473,
		                    .procid = 4242 };
	struct ehr_buf out = EHR_BUF_INIT(1 << 20);
	struct ledger_entry e;
	const char *s, *sp;
	size_t len;
	uint64_t n;
	char num[24];

	EHR_ASSERT_OK(make_entry(&e, 17, "auth.register", "anonymous", "",
	                         "{\"outcome\":\"failure\",\"reason\":\"bad_token\"}"));
	EHR_ASSERT_OK(atna_render(&out, &e, &ctx));
	s = ehr_buf_cstr(&out);
	/* MSG-LEN SP SYSLOG-MSG, MSG-LEN the exact octet count */
	sp = strchr(s, ' ');
	CU_ASSERT_FATAL(sp != NULL && (size_t)(sp - s) < sizeof(num));
	memcpy(num, s, (size_t)(sp - s));
	num[sp - s] = '\0';
	CU_ASSERT_EQUAL(ehr_parse_u64(&n, num, UINT64_MAX), 0);
	len = out.len - (size_t)(sp - s) - 1;
	CU_ASSERT_EQUAL(n, len);
	/* <PRI>: facility 10 * 8 + severity 4 (a failure) */
	CU_ASSERT(starts_with(sp + 1,
	                      "<84>1 2025-12-06T05:46:40.123Z gw-1.example ehrgate 4242 IHE+RFC-3881 "));
	CU_ASSERT(
	        strstr(s, " [ehrgate@32473 index=\"17\" origin=\"ex\\\"am\\]p\\\\le\"] \xEF\xBB\xBF<?xml ") !=
	        NULL);
	CU_ASSERT(strstr(s, "EventOutcomeIndicator=\"4\"") != NULL);
	CU_ASSERT(strstr(s, "\n") == NULL); /* one line: repositories that split on LF keep it whole */
	ehr_buf_free(&out);

	/* success: severity 5; a hostname that is not PRINTUSASCII is the NILVALUE */
	ctx.hostname = "bad host";
	ctx.pen = 1;
	EHR_ASSERT_OK(make_entry(&e, 0, "auth.register", "srv-1", "srv-1", "{\"outcome\":\"success\"}"));
	EHR_ASSERT_OK(atna_render(&out, &e, &ctx));
	s = strchr(ehr_buf_cstr(&out), ' ') + 1;
	CU_ASSERT(starts_with(
	        s, "<85>1 2025-12-06T05:46:40.123Z - ehrgate 4242 IHE+RFC-3881 [ehrgate@1 index=\"0\""));
	ehr_buf_free(&out);
}

/* --------------------------------------------------------------- the XML */

static void expect_escape(const char *in, size_t n, const char *want)
{
	struct ehr_buf out = EHR_BUF_INIT(4096);

	EHR_ASSERT_OK(audit_xml_escape(&out, in, n));
	if (strcmp(ehr_buf_cstr(&out), want) != 0)
		fprintf(stderr, "\n  escape: got %s want %s\n", ehr_buf_cstr(&out), want);
	CU_ASSERT_STRING_EQUAL(ehr_buf_cstr(&out), want);
	ehr_buf_free(&out);
}

#define ESC(lit, want) expect_escape(lit, sizeof(lit) - 1, want)
#define FFFD "\xEF\xBF\xBD"

static void test_xml_escape(void)
{
	ESC("a&b<c>d\"e'f", "a&amp;b&lt;c&gt;d&quot;e&apos;f");
	ESC("t\tn\nr\r", "t&#9;n&#10;r&#13;");
	ESC("\x01\x1f\x7f", FFFD FFFD "\x7f"); /* C0 controls are not XML 1.0 characters */
	ESC("nul\0x", "nul" FFFD "x");         /* an embedded NUL */
	ESC("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
	ESC("\xFF\xFE", FFFD FFFD);                   /* not UTF-8 */
	ESC("\xC0\xAF", FFFD FFFD);                   /* overlong '/' */
	ESC("\xED\xA0\x80", FFFD FFFD FFFD);          /* a surrogate */
	ESC("\xEF\xBF\xBE", FFFD);                    /* U+FFFE */
	ESC("\xF4\x90\x80\x80", FFFD FFFD FFFD FFFD); /* past U+10FFFF */
	ESC("\xE2\x82", FFFD FFFD);                   /* truncated */
	ESC("]]>", "]]&gt;");
}

/* xmllint --noout on the text: 0 when well-formed. */
static int xmllint(const char *xml, size_t len)
{
	char path[] = "/tmp/ehr-atna-xml-XXXXXX";
	int fd = mkstemp(path), rc = -1;
	const char *argv[] = { "/usr/bin/xmllint", "--noout", path, NULL };

	if (fd < 0)
		return -1;
	if (write(fd, xml, len) == (ssize_t)len)
		rc = ehr_test_run(NULL, 0, argv);
	close(fd);
	unlink(path);
	return rc;
}

static void check_event_xml(const char *type, const char *actor, const char *subject, const char *payload,
                            const char *must1, const char *must2)
{
	struct ledger_entry e;
	struct audit_event ev;
	struct ehr_buf out = EHR_BUF_INIT(1 << 20);

	EHR_ASSERT_OK(make_entry(&e, 3, type, actor, subject, payload));
	EHR_ASSERT_OK(audit_event_from_entry(&ev, &e, "ehrgate.local/ledger"));
	EHR_ASSERT_OK(audit_dicom_xml(&out, &ev));
	CU_ASSERT_EQUAL(xmllint((const char *)out.data, out.len), 0);
	CU_ASSERT(
	        starts_with(ehr_buf_cstr(&out), "<?xml version=\"1.0\" encoding=\"UTF-8\"?><AuditMessage>"));
	CU_ASSERT(strstr(ehr_buf_cstr(&out),
	                 "<AuditSourceIdentification AuditSourceID=\"ehrgate.local/ledger\">") != NULL);
	if (must1 && strstr(ehr_buf_cstr(&out), must1) == NULL) {
		fprintf(stderr, "\n  %s: no %s in %s\n", type, must1, ehr_buf_cstr(&out));
		CU_FAIL("missing XML");
	}
	if (must2 && strstr(ehr_buf_cstr(&out), must2) == NULL) {
		fprintf(stderr, "\n  %s: no %s in %s\n", type, must2, ehr_buf_cstr(&out));
		CU_FAIL("missing XML");
	}
	CU_ASSERT(strstr(ehr_buf_cstr(&out), "=\"\"") == NULL); /* no empty attribute */
	audit_event_clear(&ev);
	ehr_buf_free(&out);
}

static void test_dicom_xml(void)
{
	check_event_xml(
	        "auth.register", "anonymous", "",
	        "{\"outcome\":\"failure\",\"reason\":\"bad <token> & \\\"x\\\"\"}",
	        "EventOutcomeIndicator=\"4\"",
	        "<EventOutcomeDescription>bad &lt;token&gt; &amp; &quot;x&quot;</EventOutcomeDescription>");
	check_event_xml("auth.register", "srv-<1>", "srv-<1>", "{\"outcome\":\"success\"}",
	                "<ActiveParticipant UserID=\"srv-&lt;1&gt;\"",
	                "ParticipantObjectID=\"srv-&lt;1&gt;\"");
	check_event_xml(
	        "ehr.read", "srv-1", "p-abc", "{\"record_id\":\"r-1\",\"outcome\":\"success\"}",
	        "<EventID csd-code=\"110110\" codeSystemName=\"DCM\" originalText=\"Patient Record\"/>",
	        "EventActionCode=\"R\"");
	check_event_xml("audit.query", "aud-1", "", "{\"query\":\"type=ehr.read&limit=5\"}",
	                "EventActionCode=\"E\"", "csd-code=\"110112\"");
	check_event_xml("some.future.type", "x&y", "\xC3\xA9t\xC3\xA9", "{\"note\":\"\\u0001\"}", "<EventID",
	                "UserID=\"x&amp;y\"");
}

static void test_dicom_xml_bounded(void)
{
	struct ledger_entry e;
	struct audit_event ev;
	struct ehr_buf out = EHR_BUF_INIT(64);

	EHR_ASSERT_OK(make_entry(&e, 3, "ehr.read", "srv-1", "p-abc", "{}"));
	EHR_ASSERT_OK(audit_event_from_entry(&ev, &e, "ehrgate.local/ledger"));
	CU_ASSERT_EQUAL(audit_dicom_xml(&out, &ev), EHR_ERR_TOO_LARGE);
	ev.observer = NULL;
	ehr_buf_free(&out);
	ehr_buf_init(&out, 1 << 20);
	CU_ASSERT_EQUAL(audit_dicom_xml(&out, &ev), EHR_ERR_INVAL);
	audit_event_clear(&ev);
	ehr_buf_free(&out);
	ehr_buf_free(&entry_bytes);
}

static void register_suites(void)
{
	EHR_ADD_SUITE("atna_repos", NULL, NULL, { "good", test_repos_good }, { "bad", test_repos_bad });
	EHR_ADD_SUITE("atna_render", NULL, NULL, { "severity", test_severity },
	              { "frame", test_render_frame });
	EHR_ADD_SUITE("dicom_xml", NULL, NULL, { "escape", test_xml_escape }, { "events", test_dicom_xml },
	              { "bounded", test_dicom_xml_bounded });
}

EHR_TEST_MAIN(register_suites)
