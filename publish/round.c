/*
 * round.c - one publication round: the ledger's newest checkpoint goes to
 * every witness at once as a C2SP tlog-witness add-checkpoint request
 * (libcurl multi, keep-alive connections kept across rounds), each with a
 * consistency proof from the size that witness last cosigned. A 409 names
 * the witness's size in a text/x.tlog.size body; the request is retried
 * once from there. Every 200 answer's lines are checked with the witness's
 * cosignature/v1 key (ledger_cosig_verify) before they count; unknown or
 * bad lines are dropped, as the spec says a client must.
 */
#include "publish/publish_internal.h"

#include <poll.h>
#include <pthread.h>
#include <string.h>

#define RESP_MAX 65536
#define CTYPE_SIZE "text/x.tlog.size"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct pub_witness *w = ud;
	size_t n = size * nmemb;

	if (ehr_buf_append(&w->resp, ptr, n) < 0)
		return 0; /* too large: curl aborts the transfer */
	return n;
}

static int witness_handle(struct publisher *p, struct pub_witness *w)
{
	struct ehr_buf url = EHR_BUF_INIT(PUBLISH_URL_MAX + 32);
	int err = 0;

	w->easy = curl_easy_init();
	ENSURE(w->easy != NULL, EHR_ERR_NOMEM);
	GUARD_GOTO(ehr_buf_printf(&url, "%s/add-checkpoint", w->cfg.url));
	ENSURE_GOTO(curl_easy_setopt(w->easy, CURLOPT_URL, ehr_buf_cstr(&url)) == CURLE_OK, EHR_ERR_CONFIG);
	curl_easy_setopt(w->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(w->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(w->easy, CURLOPT_POST, 1L);
	curl_easy_setopt(w->easy, CURLOPT_TIMEOUT_MS, (long)p->cfg.timeout_ms);
	curl_easy_setopt(w->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)p->cfg.timeout_ms);
	curl_easy_setopt(w->easy, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(w->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(w->easy, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(w->easy, CURLOPT_PRIVATE, w);
	if (*p->ca_file)
		curl_easy_setopt(w->easy, CURLOPT_CAINFO, p->ca_file);
	if (*p->cert_file) {
		curl_easy_setopt(w->easy, CURLOPT_SSLCERT, p->cert_file);
		curl_easy_setopt(w->easy, CURLOPT_SSLKEY, p->key_file);
	}
out:
	ehr_buf_free(&url);
	return err;
}

int pub__curl_init(struct publisher *p)
{
	static const char *const hdrs[] = { "Content-Type: text/plain; charset=utf-8", "Expect:" };

	pthread_once(&curl_once, curl_init_once);
	p->multi = curl_multi_init();
	ENSURE(p->multi != NULL, EHR_ERR_NOMEM);
	for (size_t i = 0; i < EHR_ARRAY_LEN(hdrs); i++) {
		struct curl_slist *h = curl_slist_append(p->headers, hdrs[i]);
		ENSURE(h != NULL, EHR_ERR_NOMEM);
		p->headers = h;
	}
	for (size_t i = 0; i < p->n; i++) {
		GUARD(witness_handle(p, &p->w[i]));
		curl_easy_setopt(p->w[i].easy, CURLOPT_HTTPHEADER, p->headers);
	}
	return 0;
}

void pub__curl_free(struct publisher *p)
{
	for (size_t i = 0; i < p->n; i++) {
		struct pub_witness *w = &p->w[i];
		if (w->easy && w->in_round)
			curl_multi_remove_handle(p->multi, w->easy);
		if (w->easy)
			curl_easy_cleanup(w->easy);
		w->easy = NULL;
	}
	if (p->multi)
		curl_multi_cleanup(p->multi);
	p->multi = NULL;
	curl_slist_free_all(p->headers);
	p->headers = NULL;
}

/* The request to w: old size, the consistency proof from it, the note. */
static int prepare(struct publisher *p, struct pub_round *rd, struct pub_witness *w, uint64_t old)
{
	uint8_t proof[LEDGER_MAX_PROOF][LEDGER_HASH_LEN];
	size_t n = 0;

	ehr_buf_reset(&w->req);
	ehr_buf_reset(&w->resp);
	if (old > 0 && old < rd->size)
		GUARD(ledger_prove_consistency(p->ledger, old, rd->size, proof, &n));
	GUARD(ledger_add_checkpoint_format(&w->req, old, (const uint8_t(*)[LEDGER_HASH_LEN])proof, n,
	                                   ehr_buf_cstr(&rd->note), rd->note.len));
	curl_easy_setopt(w->easy, CURLOPT_POSTFIELDS, (const char *)w->req.data);
	curl_easy_setopt(w->easy, CURLOPT_POSTFIELDSIZE, (long)w->req.len);
	ENSURE(curl_multi_add_handle(p->multi, w->easy) == CURLM_OK, EHR_ERR_INTERNAL);
	w->old_sent = old;
	w->in_round = true;
	return 0;
}

/* A 200: keep the first line that verifies as w's cosignature on the note. */
static void accept_cosignature(struct pub_round *rd, struct pub_witness *w)
{
	struct ehr_buf one = EHR_BUF_INIT(LEDGER_NOTE_MAX + 4096);
	const char *s = ehr_buf_cstr(&w->resp), *end = s + w->resp.len;

	w->cosigned = rd->size; /* the witness took it, whatever its lines say */
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t len = nl ? (size_t)(nl - s) + 1 : (size_t)(end - s);
		uint64_t ts = 0;

		ehr_buf_reset(&one);
		if (nl && ehr_buf_append(&one, rd->note.data, rd->note.len) == 0 &&
		    ehr_buf_append(&one, s, len) == 0 &&
		    ledger_cosig_verify(ehr_buf_cstr(&one), one.len, w->cfg.name, w->cfg.pub, &ts) == 0 &&
		    ehr_buf_append(&w->line, s, len) == 0) {
			w->ok = true;
			w->cosigned_ms = ehr_now_ms();
			rd->valid++;
			pub__witness_cosigned(w);
			break;
		}
		s += len;
	}
	ehr_buf_free(&one);
	if (!w->ok) {
		pub__count_error(w);
		ehr_logf(EHR_LOG_WARN, "witness.bad_cosignature",
		         "witness %s: answered 200 without a valid cosignature for size %llu", w->cfg.name,
		         (unsigned long long)rd->size);
	}
}

/* A 409: "<size>\n" as text/x.tlog.size is the size the witness cosigned
 * last; retry once from it if our tree reaches it. */
static void conflict(struct pub_round *rd, struct pub_witness *w)
{
	char num[24];
	uint64_t size;
	const char *b = ehr_buf_cstr(&w->resp);

	if (strncmp(w->ctype, CTYPE_SIZE, sizeof(CTYPE_SIZE) - 1) != 0 || w->resp.len < 2 ||
	    w->resp.len > sizeof(num) || b[w->resp.len - 1] != '\n') {
		pub__count_error(w);
		ehr_logf(EHR_LOG_WARN, "witness.bad_reply", "witness %s: 409 without a text/x.tlog.size body",
		         w->cfg.name);
		return;
	}
	memcpy(num, b, w->resp.len - 1);
	num[w->resp.len - 1] = '\0';
	if (ehr_parse_u64(&size, num, INT64_MAX) < 0) {
		pub__count_error(w);
		return;
	}
	ehr_logf(size > rd->size ? EHR_LOG_WARN : EHR_LOG_INFO, "witness.conflict",
	         "witness %s: old size %llu is stale, it cosigned size %llu (ours: %llu)", w->cfg.name,
	         (unsigned long long)w->old_sent, (unsigned long long)size, (unsigned long long)rd->size);
	w->cosigned = size;
	if (!w->retried && size <= rd->size)
		w->retry = true;
}

static void finished(struct pub_round *rd, struct pub_witness *w, CURLcode rc)
{
	long status = 0;
	char *ct = NULL;

	w->in_round = false;
	if (rc != CURLE_OK) {
		w->last_status = 0;
		pub__count_error(w);
		ehr_logf(EHR_LOG_WARN, "witness.unreachable", "witness %s: %s", w->cfg.name,
		         curl_easy_strerror(rc));
		return;
	}
	curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(w->easy, CURLINFO_CONTENT_TYPE, &ct);
	if (ehr_str_copy(w->ctype, sizeof(w->ctype), ct ? ct : "") < 0)
		w->ctype[0] = '\0';
	w->last_status = (int)status;
	if (status == 200) {
		accept_cosignature(rd, w);
		return;
	}
	pub__count_refusal(w, status);
	if (status == 409) {
		conflict(rd, w);
		return;
	}
	/* 403/404: it does not trust our key or origin; 422: our tree does not
	 * extend what it cosigned (a fork, or a rewritten history); 400: it
	 * could not read us. Never retried: the next round tries again. */
	ehr_logf(EHR_LOG_WARN, "witness.refused", "witness %s refused size %llu from old size %llu: HTTP %ld",
	         w->cfg.name, (unsigned long long)rd->size, (unsigned long long)w->old_sent, status);
}

/* Drive the multi handle until every request of the pass is done. */
static void run(struct publisher *p, struct pub_round *rd)
{
	int running = 1;

	while (running > 0 && !atomic_load(&p->stopping)) {
		CURLMsg *m;
		int left;

		if (curl_multi_perform(p->multi, &running) != CURLM_OK)
			break;
		while ((m = curl_multi_info_read(p->multi, &left)) != NULL) {
			struct pub_witness *w = NULL;
			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&w);
			curl_multi_remove_handle(p->multi, m->easy_handle);
			if (w)
				finished(rd, w, m->data.result);
		}
		if (running > 0)
			curl_multi_poll(p->multi, NULL, 0, 50, NULL);
	}
	for (size_t i = 0; i < p->n; i++) {
		if (p->w[i].in_round) { /* stopping */
			curl_multi_remove_handle(p->multi, p->w[i].easy);
			p->w[i].in_round = false;
		}
	}
}

int pub__round(struct publisher *p, struct pub_round *rd)
{
	bool again = false;

	rd->valid = 0;
	for (size_t i = 0; i < p->n; i++) {
		struct pub_witness *w = &p->w[i];
		w->retried = w->retry = w->ok = false;
		ehr_buf_reset(&w->line);
		if (w->cosigned > rd->size)
			continue; /* it cosigned a larger tree than ours: nothing to ask */
		if (prepare(p, rd, w, w->cosigned) < 0) {
			pub__count_error(w);
			ehr_logf(EHR_LOG_WARN, "witness.request", "witness %s: cannot build the request: %s",
			         w->cfg.name, ehr_error_detail());
		}
	}
	run(p, rd);
	for (size_t i = 0; i < p->n; i++) {
		struct pub_witness *w = &p->w[i];
		if (!w->retry)
			continue;
		w->retry = false;
		w->retried = true;
		if (prepare(p, rd, w, w->cosigned) == 0)
			again = true;
		else
			pub__count_error(w);
	}
	if (again)
		run(p, rd);
	return 0;
}
