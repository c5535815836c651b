/*
 * sigv4.c - AWS Signature Version 4, computed here rather than through
 * CURLOPT_AWS_SIGV4 (curl 7.88 neither sorts nor fully encodes the query
 * string; FIELD-NOTES.md). The caller sends exactly the canonical URI and
 * canonical query this produces, so what is signed is what goes on the wire.
 *
 * Reference: "Create a canonical request for Signature Version 4" and
 * "Signature Version 4 signing process" in the AWS General Reference; the
 * S3 variant encodes each path segment once and does not normalise.
 */
#include "cloud/cloud_internal.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '.' || c == '_' || c == '~';
}

int s3_uri_encode(struct ehr_buf *out, const char *s, size_t n, bool keep_slash)
{
	static const char hx[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (unreserved(c) || (keep_slash && c == '/')) {
			GUARD(ehr_buf_append_u8(out, c));
		} else {
			char three[3] = { '%', hx[c >> 4], hx[c & 15] };
			GUARD(ehr_buf_append(out, three, 3));
		}
	}
	return 0;
}

struct enc_pair {
	struct ehr_buf k;
	struct ehr_buf v;
};

static int pair_cmp(const void *a, const void *b)
{
	const struct enc_pair *x = a, *y = b;
	int c = strcmp(ehr_buf_cstr(&x->k), ehr_buf_cstr(&y->k));
	return c != 0 ? c : strcmp(ehr_buf_cstr(&x->v), ehr_buf_cstr(&y->v));
}

struct canon_header {
	char *name;           /* lower-cased */
	struct ehr_buf value; /* trimmed, runs of spaces collapsed; duplicates joined with ',' */
};

static int header_cmp(const void *a, const void *b)
{
	const struct canon_header *x = a, *y = b;
	return strcmp(x->name, y->name);
}

/* Trim and collapse sequential whitespace (SigV4 "Trimall"). A line break
 * inside a value (obs-fold) counts as whitespace. */
static int append_trimmed(struct ehr_buf *out, const char *v)
{
	bool pending_space = false, any = false;

	for (const char *p = v; *p; p++) {
		if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
			pending_space = any;
			continue;
		}
		if (pending_space)
			GUARD(ehr_buf_append_u8(out, ' '));
		pending_space = false;
		any = true;
		GUARD(ehr_buf_append_u8(out, (uint8_t)*p));
	}
	return 0;
}

static int hmac_sha256(uint8_t out[32], const void *key, size_t klen, const void *msg, size_t mlen)
{
	unsigned int olen = 32;
	if (HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &olen) == NULL || olen != 32)
		return ehr_error_ossl(EHR_ERR_CRYPTO, "HMAC-SHA256");
	return 0;
}

void s3_sigv4_output_free(struct s3_sigv4_output *out)
{
	ehr_buf_free(&out->canonical_query);
	ehr_buf_free(&out->canonical_uri);
	ehr_buf_free(&out->canonical_request);
	ehr_buf_free(&out->string_to_sign);
	ehr_buf_free(&out->authorization);
}

/* The input's required fields, and a payload hash SigV4 accepts: 64
 * lower-case hex digits, or the literal UNSIGNED-PAYLOAD (a body streamed
 * without being hashed first). */
static int check_input(const struct s3_sigv4_input *in)
{
	ENSURE(in->method && in->path && in->payload_sha256 && in->amz_date && in->region && in->service &&
	               in->access_key && in->secret_key,
	       EHR_ERR_INVAL);
	ENSURE(strlen(in->amz_date) == 16, EHR_ERR_INVAL);
	if (strcmp(in->payload_sha256, "UNSIGNED-PAYLOAD") != 0) {
		ENSURE(strlen(in->payload_sha256) == 64, EHR_ERR_INVAL);
		for (size_t i = 0; i < 64; i++) {
			char c = in->payload_sha256[i];
			ENSURE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'), EHR_ERR_INVAL);
		}
	}
	return 0;
}

/* Canonical query: encode, then sort by encoded key, then value. */
static int canonical_query(struct ehr_buf *out, const struct s3_kv *query, size_t nquery)
{
	struct enc_pair *pairs;
	int err = 0;

	if (nquery == 0)
		return 0;
	pairs = calloc(nquery, sizeof(*pairs));
	ENSURE(pairs != NULL, EHR_ERR_NOMEM);
	for (size_t i = 0; i < nquery; i++) {
		ehr_buf_init(&pairs[i].k, 8192);
		ehr_buf_init(&pairs[i].v, 8192);
		GUARD_GOTO(s3_uri_encode(&pairs[i].k, query[i].name, strlen(query[i].name), false));
		GUARD_GOTO(s3_uri_encode(&pairs[i].v, query[i].value, strlen(query[i].value), false));
	}
	qsort(pairs, nquery, sizeof(*pairs), pair_cmp);
	for (size_t i = 0; i < nquery; i++) {
		GUARD_GOTO(ehr_buf_printf(out, "%s%s=%s", i ? "&" : "", ehr_buf_cstr(&pairs[i].k),
		                          ehr_buf_cstr(&pairs[i].v)));
	}
out:
	for (size_t i = 0; i < nquery; i++) {
		ehr_buf_free(&pairs[i].k);
		ehr_buf_free(&pairs[i].v);
	}
	free(pairs);
	return err;
}

/* The canonical request (method, URI, query, canonical headers, signed
 * headers, payload hash) and the signed-headers list. Canonical headers:
 * lower-case names, sorted, duplicates joined with ',' in input order. */
static int canonical_request(struct s3_sigv4_output *out, struct ehr_buf *signed_headers,
                             const struct s3_sigv4_input *in)
{
	struct canon_header *hdrs;
	size_t nhdrs = 0;
	int err = 0;

	hdrs = calloc(in->nheaders ? in->nheaders : 1, sizeof(*hdrs));
	ENSURE(hdrs != NULL, EHR_ERR_NOMEM);
	for (size_t i = 0; i < in->nheaders; i++) {
		size_t j, nl = strlen(in->headers[i].name);
		char *lower = malloc(nl + 1);
		ENSURE_GOTO(lower != NULL, EHR_ERR_NOMEM);
		for (size_t c = 0; c < nl; c++) {
			char ch = in->headers[i].name[c];
			lower[c] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
		}
		lower[nl] = '\0';
		for (j = 0; j < nhdrs; j++)
			if (strcmp(hdrs[j].name, lower) == 0)
				break;
		if (j == nhdrs) {
			hdrs[nhdrs].name = lower;
			ehr_buf_init(&hdrs[nhdrs].value, 16 * 1024);
			nhdrs++;
		} else {
			free(lower);
			GUARD_GOTO(ehr_buf_append_u8(&hdrs[j].value, ','));
		}
		GUARD_GOTO(append_trimmed(&hdrs[j].value, in->headers[i].value));
	}
	/* Stable order for the joined duplicates was kept above; now sort names. */
	qsort(hdrs, nhdrs, sizeof(*hdrs), header_cmp);

	GUARD_GOTO(ehr_buf_printf(&out->canonical_request, "%s\n%s\n%s\n", in->method,
	                          ehr_buf_cstr(&out->canonical_uri), ehr_buf_cstr(&out->canonical_query)));
	for (size_t i = 0; i < nhdrs; i++) {
		GUARD_GOTO(ehr_buf_printf(&out->canonical_request, "%s:%s\n", hdrs[i].name,
		                          ehr_buf_cstr(&hdrs[i].value)));
		GUARD_GOTO(ehr_buf_printf(signed_headers, "%s%s", i ? ";" : "", hdrs[i].name));
	}
	GUARD_GOTO(ehr_buf_printf(&out->canonical_request, "\n%s\n%s", ehr_buf_cstr(signed_headers),
	                          in->payload_sha256));
out:
	for (size_t i = 0; i < nhdrs; i++) {
		free(hdrs[i].name);
		ehr_buf_free(&hdrs[i].value);
	}
	free(hdrs);
	return err;
}

/* The signature in hex: the signing key is an HMAC chain over date,
 * region, service and "aws4_request" from the secret key; it signs the
 * string to sign. Every key is wiped. */
static int signature(char out[65], const struct s3_sigv4_input *in, const char *date,
                     const struct ehr_buf *string_to_sign)
{
	struct ehr_buf key = EHR_BUF_INIT(256);
	uint8_t k1[32], k2[32], k3[32], k4[32], sig[32];
	int err = 0;

	GUARD_GOTO(ehr_buf_printf(&key, "AWS4%s", in->secret_key));
	GUARD_GOTO(hmac_sha256(k1, key.data, key.len, date, strlen(date)));
	GUARD_GOTO(hmac_sha256(k2, k1, 32, in->region, strlen(in->region)));
	GUARD_GOTO(hmac_sha256(k3, k2, 32, in->service, strlen(in->service)));
	GUARD_GOTO(hmac_sha256(k4, k3, 32, "aws4_request", 12));
	GUARD_GOTO(hmac_sha256(sig, k4, 32, string_to_sign->data, string_to_sign->len));
	GUARD_GOTO(ehr_hex_encode_fixed(out, 65, sig, sizeof(sig)));
out:
	ehr_buf_free_secure(&key);
	OPENSSL_cleanse(k1, sizeof(k1));
	OPENSSL_cleanse(k2, sizeof(k2));
	OPENSSL_cleanse(k3, sizeof(k3));
	OPENSSL_cleanse(k4, sizeof(k4));
	return err;
}

int s3_sigv4_sign(struct s3_sigv4_output *out, const struct s3_sigv4_input *in)
{
	struct ehr_buf signed_headers = EHR_BUF_INIT(8192);
	uint8_t h[32];
	char hexbuf[65], date[9];
	int err = 0;

	memset(out, 0, sizeof(*out));
	ehr_buf_init(&out->canonical_query, 64 * 1024);
	ehr_buf_init(&out->canonical_uri, 16 * 1024);
	ehr_buf_init(&out->canonical_request, 256 * 1024);
	ehr_buf_init(&out->string_to_sign, 4096);
	ehr_buf_init(&out->authorization, 4096);
	GUARD_GOTO(check_input(in));
	memcpy(date, in->amz_date, 8);
	date[8] = '\0';

	/* Canonical URI: each segment encoded once, '/' kept; "" means "/". */
	if (in->path[0] == '\0')
		GUARD_GOTO(ehr_buf_append_u8(&out->canonical_uri, '/'));
	else
		GUARD_GOTO(s3_uri_encode(&out->canonical_uri, in->path, strlen(in->path), true));
	GUARD_GOTO(canonical_query(&out->canonical_query, in->query, in->nquery));
	GUARD_GOTO(canonical_request(out, &signed_headers, in));

	/* String to sign. */
	SHA256(out->canonical_request.data, out->canonical_request.len, h);
	GUARD_GOTO(ehr_hex_encode_fixed(hexbuf, sizeof(hexbuf), h, sizeof(h)));
	GUARD_GOTO(ehr_buf_printf(&out->string_to_sign, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s",
	                          in->amz_date, date, in->region, in->service, hexbuf));
	GUARD_GOTO(signature(out->signature, in, date, &out->string_to_sign));
	GUARD_GOTO(ehr_buf_printf(
	        &out->authorization,
	        "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, Signature=%s",
	        in->access_key, date, in->region, in->service, ehr_buf_cstr(&signed_headers),
	        out->signature));
out:
	ehr_buf_free(&signed_headers);
	if (err < 0)
		s3_sigv4_output_free(out);
	return err;
}
