/*
 * witnesses.c - [witness] witnesses: "<url> <vkey>, <url> <vkey>, ...".
 * The vkey is the witness's C2SP cosignature/v1 verifier key; its key name
 * is the name its cosignature lines carry, so it names the witness in
 * metrics, logs and /readyz as well.
 */
#include "publish/publish.h"

#include <string.h>

#include <openssl/crypto.h>

#include "ledger/ledger.h"

static bool url_ok(const char *u, size_t n)
{
	size_t scheme;

	if (n > 8 && strncmp(u, "https://", 8) == 0)
		scheme = 8;
	else if (n > 7 && strncmp(u, "http://", 7) == 0)
		scheme = 7;
	else
		return false;
	if (u[n - 1] == '/' || n - scheme < 1)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)u[i] <= 0x20 || u[i] == 0x7f || u[i] == ',' || u[i] == '?' || u[i] == '#')
			return false;
	return true;
}

/* One item "<url> <vkey>" of length len at s, the no-th (1-based). */
static int parse_item(struct publish_witness *w, const char *s, size_t len, size_t no)
{
	const char *sp = s, *end = s + len, *k;
	size_t ulen;

	while (sp < end && *sp != ' ' && *sp != '\t')
		sp++;
	ulen = (size_t)(sp - s);
	k = sp;
	while (k < end && (*k == ' ' || *k == '\t'))
		k++;
	if (ulen == 0 || k == end)
		return ehr_error_set(EHR_ERR_CONFIG, "witness %zu: expected \"<url> <vkey>\"", no);
	if (ulen > PUBLISH_URL_MAX || !url_ok(s, ulen))
		return ehr_error_set(EHR_ERR_CONFIG,
		                     "witness %zu: the URL must be http(s)://host[:port][/path] without a "
		                     "trailing '/', query or blanks (at most %d bytes)",
		                     no, PUBLISH_URL_MAX);
	for (const char *q = k; q < end; q++)
		if (*q == ' ' || *q == '\t')
			return ehr_error_set(EHR_ERR_CONFIG, "witness %zu: expected \"<url> <vkey>\"", no);
	memcpy(w->url, s, ulen);
	w->url[ulen] = '\0';
	if (ledger_cosig_vkey_parse(k, (size_t)(end - k), w->name, sizeof(w->name), w->pub) < 0)
		return ehr_error_set(EHR_ERR_CONFIG,
		                     "witness %zu: not a cosignature/v1 vkey (name+keyid+base64 of 0x04 "
		                     "and the Ed25519 key): %s",
		                     no, ehr_error_msg());
	return 0;
}

int publish_witnesses_parse(struct publish_witness *out, size_t cap, size_t *n, const char *text)
{
	const char *cur = text, *p;
	size_t len;

	*n = 0;
	while ((p = ehr_list_next(&cur, ",", &len)) != NULL) {
		if (*n >= cap)
			return ehr_error_set(EHR_ERR_CONFIG, "more than %zu witnesses", cap);
		GUARD(parse_item(&out[*n], p, len, *n + 1));
		for (size_t i = 0; i < *n; i++) {
			if (strcmp(out[i].name, out[*n].name) == 0)
				return ehr_error_set(EHR_ERR_CONFIG, "witness %zu: name %s used twice",
				                     *n + 1, out[*n].name);
			/* cosignature/v1 does not commit to the name: one key, one witness */
			if (CRYPTO_memcmp(out[i].pub, out[*n].pub, 32) == 0)
				return ehr_error_set(EHR_ERR_CONFIG,
				                     "witness %zu: the same key as witness %zu (%s)", *n + 1,
				                     i + 1, out[i].name);
		}
		(*n)++;
	}
	return 0;
}
