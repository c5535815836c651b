/*
 * s3_xml.c - a small scanner for the few S3 response documents we read
 * (InitiateMultipartUploadResult, ListBucketResult, Error). It looks for
 * <name>text</name> and decodes entities; it is not a general XML parser
 * and never needs to be: the documents are flat where we read them.
 * Untrusted input: fuzzed by tests/fuzz/s3_xml.
 */
#include "cloud/cloud_internal.h"

#include <string.h>

void s3_xml_iter_init(struct s3_xml_iter *it, const char *doc, size_t len)
{
	it->doc = doc;
	it->len = len;
	it->off = 0;
}

static const char *find_bytes(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
	return nlen <= hlen ? memmem(hay, hlen, needle, nlen) : NULL;
}

static int put_utf8(struct ehr_buf *out, uint32_t cp)
{
	if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return ehr_error_set(EHR_ERR_PARSE, "xml: bad character reference");
	if (cp < 0x80)
		return ehr_buf_append_u8(out, (uint8_t)cp);
	if (cp < 0x800) {
		GUARD(ehr_buf_append_u8(out, (uint8_t)(0xC0 | (cp >> 6))));
		return ehr_buf_append_u8(out, (uint8_t)(0x80 | (cp & 0x3F)));
	}
	if (cp < 0x10000) {
		GUARD(ehr_buf_append_u8(out, (uint8_t)(0xE0 | (cp >> 12))));
		GUARD(ehr_buf_append_u8(out, (uint8_t)(0x80 | ((cp >> 6) & 0x3F))));
		return ehr_buf_append_u8(out, (uint8_t)(0x80 | (cp & 0x3F)));
	}
	GUARD(ehr_buf_append_u8(out, (uint8_t)(0xF0 | (cp >> 18))));
	GUARD(ehr_buf_append_u8(out, (uint8_t)(0x80 | ((cp >> 12) & 0x3F))));
	GUARD(ehr_buf_append_u8(out, (uint8_t)(0x80 | ((cp >> 6) & 0x3F))));
	return ehr_buf_append_u8(out, (uint8_t)(0x80 | (cp & 0x3F)));
}

static int decode_text(struct ehr_buf *out, const char *p, size_t n)
{
	static const struct {
		const char *ent;
		char ch;
	} ents[] = { { "amp;", '&' }, { "lt;", '<' }, { "gt;", '>' }, { "quot;", '"' }, { "apos;", '\'' } };
	size_t i = 0;

	ehr_buf_reset(out);
	while (i < n) {
		if (p[i] == '<')
			return ehr_error_set(EHR_ERR_PARSE, "xml: markup inside a text element");
		if (p[i] != '&') {
			GUARD(ehr_buf_append_u8(out, (uint8_t)p[i]));
			i++;
			continue;
		}
		i++;
		bool done = false;
		for (size_t e = 0; e < EHR_ARRAY_LEN(ents) && !done; e++) {
			size_t el = strlen(ents[e].ent);
			if (n - i >= el && memcmp(p + i, ents[e].ent, el) == 0) { /* not secret */
				GUARD(ehr_buf_append_u8(out, (uint8_t)ents[e].ch));
				i += el;
				done = true;
			}
		}
		if (done)
			continue;
		if (i < n && p[i] == '#') {
			uint32_t cp = 0;
			bool hex = false;
			size_t digits = 0;
			i++;
			if (i < n && (p[i] == 'x' || p[i] == 'X')) {
				hex = true;
				i++;
			}
			while (i < n && p[i] != ';') {
				char c = p[i];
				uint32_t d;
				if (c >= '0' && c <= '9')
					d = (uint32_t)(c - '0');
				else if (hex && c >= 'a' && c <= 'f')
					d = (uint32_t)(c - 'a' + 10);
				else if (hex && c >= 'A' && c <= 'F')
					d = (uint32_t)(c - 'A' + 10);
				else
					return ehr_error_set(EHR_ERR_PARSE, "xml: bad character reference");
				if (++digits > 8)
					return ehr_error_set(EHR_ERR_PARSE,
					                     "xml: character reference too long");
				cp = cp * (hex ? 16 : 10) + d;
				i++;
			}
			if (i >= n || digits == 0)
				return ehr_error_set(EHR_ERR_PARSE, "xml: unterminated character reference");
			i++;
			GUARD(put_utf8(out, cp));
			continue;
		}
		return ehr_error_set(EHR_ERR_PARSE, "xml: unknown entity");
	}
	return 0;
}

static int next_span(struct s3_xml_iter *it, const char *name, const char **sp, size_t *sl)
{
	char open[80], close[80];
	size_t nl = strlen(name);
	const char *start, *end;

	if (nl == 0 || nl > 64)
		return ehr_error_set(EHR_ERR_INVAL, "xml: bad element name");
	open[0] = '<';
	memcpy(open + 1, name, nl);
	open[nl + 1] = '>';
	close[0] = '<';
	close[1] = '/';
	memcpy(close + 2, name, nl);
	close[nl + 2] = '>';
	if (it->off > it->len)
		return 0;
	start = find_bytes(it->doc + it->off, it->len - it->off, open, nl + 2);
	if (start == NULL) {
		it->off = it->len;
		return 0;
	}
	start += nl + 2;
	end = find_bytes(start, (size_t)(it->doc + it->len - start), close, nl + 3);
	if (end == NULL)
		return ehr_error_set(EHR_ERR_PARSE, "xml: unterminated <%s>", name);
	*sp = start;
	*sl = (size_t)(end - start);
	it->off = (size_t)(end - it->doc) + nl + 3;
	return 1;
}

int s3_xml_next_raw(struct s3_xml_iter *it, const char *name, const char **p, size_t *n)
{
	return next_span(it, name, p, n);
}

int s3_xml_next(struct s3_xml_iter *it, const char *name, struct ehr_buf *out)
{
	const char *p;
	size_t n;
	int rc = next_span(it, name, &p, &n);

	if (rc <= 0)
		return rc;
	GUARD(decode_text(out, p, n));
	return 1;
}

int s3_xml_find(const char *doc, size_t len, const char *name, struct ehr_buf *out)
{
	struct s3_xml_iter it;
	s3_xml_iter_init(&it, doc, len);
	return s3_xml_next(&it, name, out);
}
