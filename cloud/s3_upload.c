/*
 * s3_upload.c - putting an object into S3.
 *
 * A put of known size (up to s3_single_put_max) goes up as a single PUT
 * pulled from the caller's reader while it is sent, which cannot be hashed
 * before sending, so it is signed UNSIGNED-PAYLOAD. Its integrity rests on
 * the ledger: store.c hashes the bytes as they pass and every read checks
 * that hash (docs/STORAGE.md). A streamed PUT is retried only while no byte
 * of its body has been read; after that a failure is final and the key is
 * deleted (best effort).
 * Other objects at least one part long (size unknown, or over the maximum)
 * go up as a multipart upload that is
 * aborted (AbortMultipartUpload) on any failure. Its parts are double
 * buffered: one is PUT by an uploader thread while the caller's thread fills
 * the next from the reader (see "multipart pipeline" below).
 */
#include "cloud/cloud_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S3_MAX_PARTS 10000

/* A part buffer of s->part_size bytes: a spare one if there is one. */
static uint8_t *part_buf_get(struct s3_store *s)
{
	uint8_t *b = NULL;

	pthread_mutex_lock(&s->lock);
	if (s->nspare > 0)
		b = s->spare[--s->nspare];
	pthread_mutex_unlock(&s->lock);
	if (b == NULL)
		b = malloc(s->part_size);
	return b;
}

/* Keep up to S3_SPARE_PARTS buffers for the next uploads; free the rest. */
static void part_buf_put(struct s3_store *s, uint8_t *b)
{
	if (b == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	if (s->nspare < S3_SPARE_PARTS) {
		s->spare[s->nspare++] = b;
		b = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	free(b);
}

/* ---------------------------------------------------------------- verbs */

static int fill_part(cloud_read_fn rd, void *rctx, uint8_t *buf, size_t cap, size_t *n, bool *eof)
{
	*n = 0;
	*eof = false;
	while (*n < cap) {
		size_t got = 0;
		GUARD(rd(rctx, buf + *n, cap - *n, &got));
		if (got == 0) {
			*eof = true;
			break;
		}
		*n += got;
	}
	return 0;
}

static int s3_abort(struct s3_store *s, const char *key, const char *upload_id)
{
	const struct s3_kv q[] = { { "uploadId", upload_id } };
	struct s3_req rq = { .method = "DELETE", .key = key, .query = q, .nquery = 1 };
	struct s3_resp rs;
	int err = s3__call(s, &rq, &rs, "AbortMultipartUpload", true);

	ehr_buf_free(&rs.body);
	if (err < 0)
		ehr_logf(EHR_LOG_WARN, "s3.abort_failed",
		         "AbortMultipartUpload failed (%s); the bucket's lifecycle rule must clean the "
		         "upload up",
		         ehr_error_msg());
	else
		ehr_logf(EHR_LOG_INFO, "s3.abort", "multipart upload aborted");
	return err;
}

static int s3_put_single(struct s3_store *s, const char *key, const uint8_t *body, size_t n)
{
	struct s3_req rq = { .method = "PUT", .key = key, .body = body, .body_len = n };
	struct s3_resp rs;
	int err = s3__call(s, &rq, &rs, "PutObject", false);

	ehr_buf_free(&rs.body);
	return err;
}

/*
 * The streaming single PUT of a body of known size: pulled from the reader
 * while it is sent, on this thread, in constant memory, signed with
 * UNSIGNED-PAYLOAD (store.c hashes what passes for the ledger). Retried only
 * while no byte has been read. After a failure once the body has started,
 * the key is deleted (best effort): it is a fresh key nobody else writes, so
 * this only removes what this PUT may have left.
 */
static int s3_put_stream(struct s3_store *s, const char *key, cloud_read_fn rd, void *rctx, uint64_t size)
{
	struct s3_stream st = { .rd = rd, .rctx = rctx, .len = size };
	struct s3_req rq = { .method = "PUT", .key = key, .stream = &st };
	struct s3_resp rs;
	int err = s3__call(s, &rq, &rs, "PutObject", false);

	ehr_buf_free(&rs.body);
	if (err < 0 && st.consumed > 0) {
		struct ehr_error_saved saved;
		struct s3_req dq = { .method = "DELETE", .key = key };
		struct s3_resp ds;
		int derr;

		ehr_error_save(&saved);
		derr = s3__call(s, &dq, &ds, "DeleteObject", true);
		ehr_buf_free(&ds.body);
		if (derr < 0)
			ehr_logf(EHR_LOG_WARN, "s3.put_cleanup_failed",
			         "deleting the key of a failed PUT failed (%s); fsck lists it as an orphan",
			         ehr_error_detail());
		ehr_error_restore(&saved);
	}
	return err;
}

/* UploadPart: the part's ETag into etag on success. */
static int s3_upload_part(struct s3_store *s, const char *key, const char *upload_id, size_t number,
                          const uint8_t *body, size_t n, const atomic_bool *give_up, char etag[128])
{
	char pn[24];
	const struct s3_kv q[] = { { "partNumber", pn }, { "uploadId", upload_id } };
	struct s3_req rq = { .method = "PUT",
		             .key = key,
		             .query = q,
		             .nquery = 2,
		             .body = body,
		             .body_len = n,
		             .give_up = give_up };
	struct s3_resp rs;
	int err;

	GUARD(ehr_fmt(pn, sizeof(pn), "%zu", number));
	err = s3__call(s, &rq, &rs, "UploadPart", false);
	if (err == 0 && rs.etag[0] == '\0')
		err = ehr_error_set(EHR_ERR_UNAVAILABLE, "S3 UploadPart: no ETag");
	if (err == 0)
		memcpy(etag, rs.etag, sizeof(rs.etag));
	ehr_buf_free(&rs.body);
	return err;
}

/*
 * The multipart pipeline: while part k goes up, part k+1 is filled.
 *
 * The caller's thread fills the parts, since the reader (the HTTP body) may
 * only be read from it, and hands each one over to an uploader thread, which
 * PUTs it and records its ETag. There is one hand-over slot and two part
 * buffers: a hand-over waits until the previous part is done, so the buffer
 * filled next is always the one that is no longer on the wire. Memory per
 * upload is two parts, whatever the object's size.
 *
 * One uploader thread per multipart upload, started after
 * CreateMultipartUpload and joined before s3__put returns. A pool of threads
 * owned by the store was the alternative: it would have to be as large as
 * the number of concurrent uploads (the gateway's blocking threads) or
 * uploads would queue behind each other's parts and be serial again, and its
 * shutdown would be ordered against obj_store_free. Starting a thread costs
 * tens of microseconds, nothing next to one part of 5 MiB or more.
 *
 * The first error wins, whichever side has it (a reader error, a failed
 * part, too many parts): it is kept with its message (error details are per
 * thread), and once it is known no part is handed over and the part in
 * flight, if any, is not retried (give_up). The caller then waits for the
 * uploader to be idle before it aborts the upload, so that no part can land
 * after the abort.
 */
struct part_pipe {
	struct s3_store *s;
	const char *key;
	const char *upload_id;
	char (*etags)[128]; /* etags[i]: part i + 1 */
	atomic_bool give_up;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* under mu */
	const uint8_t *job; /* the part handed over; NULL: the uploader is idle */
	size_t job_len;
	size_t job_number;
	bool quit;
	int err;                      /* the first error, 0 if none */
	struct ehr_error_saved saved; /* its message and detail */
};

/* Record err (its detail is this thread's) unless an error is known already. */
static void pipe_fail_locked(struct part_pipe *pp, int err)
{
	if (pp->err != 0)
		return;
	pp->err = err;
	ehr_error_save(&pp->saved);
	atomic_store(&pp->give_up, true);
}

static void pipe_fail(struct part_pipe *pp, int err)
{
	pthread_mutex_lock(&pp->mu);
	pipe_fail_locked(pp, err);
	pthread_mutex_unlock(&pp->mu);
}

static void *pipe_uploader(void *arg)
{
	struct part_pipe *pp = arg;

	pthread_mutex_lock(&pp->mu);
	for (;;) {
		const uint8_t *body;
		size_t n, number;
		char etag[128];
		int err = 0;
		bool skip;

		while (pp->job == NULL && !pp->quit)
			pthread_cond_wait(&pp->cv, &pp->mu);
		if (pp->job == NULL)
			break; /* quit */
		body = pp->job;
		n = pp->job_len;
		number = pp->job_number;
		skip = pp->err != 0; /* never handed over after a failure; be sure */
		pthread_mutex_unlock(&pp->mu);
		if (!skip)
			err = s3_upload_part(pp->s, pp->key, pp->upload_id, number, body, n, &pp->give_up,
			                     etag);
		pthread_mutex_lock(&pp->mu);
		if (err < 0)
			pipe_fail_locked(pp, err);
		else if (!skip)
			memcpy(pp->etags[number - 1], etag, sizeof(etag));
		pp->job = NULL;
		pthread_cond_broadcast(&pp->cv);
	}
	pthread_mutex_unlock(&pp->mu);
	return NULL;
}

/* Hand part `number` over once the previous one is done; the upload's error
 * instead if it has failed (and then nothing is handed over). */
static int pipe_hand_over(struct part_pipe *pp, const uint8_t *body, size_t n, size_t number)
{
	int err;

	pthread_mutex_lock(&pp->mu);
	while (pp->job != NULL)
		pthread_cond_wait(&pp->cv, &pp->mu);
	err = pp->err;
	if (err == 0) {
		pp->job = body;
		pp->job_len = n;
		pp->job_number = number;
		pthread_cond_broadcast(&pp->cv);
	}
	pthread_mutex_unlock(&pp->mu);
	return err;
}

/* Wait for the part in flight, stop and join the uploader. The upload's
 * first error, with its detail in this thread's slot, or 0. */
static int pipe_finish(struct part_pipe *pp, pthread_t th)
{
	int err;

	pthread_mutex_lock(&pp->mu);
	while (pp->job != NULL)
		pthread_cond_wait(&pp->cv, &pp->mu);
	pp->quit = true;
	pthread_cond_broadcast(&pp->cv);
	pthread_mutex_unlock(&pp->mu);
	pthread_join(th, NULL);
	err = pp->err;
	if (err < 0)
		ehr_error_restore(&pp->saved);
	return err;
}

/* Fill parts from the reader and hand them to the uploader until the end of
 * the stream or the first error. part[0] holds the first part (n bytes, not
 * at the end of the stream). *nparts: parts handed over. */
static int pipe_run(struct part_pipe *pp, cloud_read_fn rd, void *rctx, uint8_t *part[2], size_t n,
                    size_t *nparts)
{
	size_t number = 1;
	unsigned cur = 0;
	bool eof = false;
	pthread_t th;
	int err;

	*nparts = 0;
	if (pthread_create(&th, NULL, pipe_uploader, pp) != 0)
		return ehr_error_set(EHR_ERR_INTERNAL, "S3: cannot start the part uploader thread");
	for (;;) {
		if (number > S3_MAX_PARTS) {
			pipe_fail(pp,
			          ehr_error_set(EHR_ERR_TOO_LARGE, "S3: more than %d parts", S3_MAX_PARTS));
			break;
		}
		if (pipe_hand_over(pp, part[cur], n, number) < 0)
			break;
		*nparts = number++;
		if (eof)
			break;
		cur ^= 1;
		if ((err = fill_part(rd, rctx, part[cur], pp->s->part_size, &n, &eof)) < 0) {
			pipe_fail(pp, err);
			break;
		}
		if (n == 0)
			break;
	}
	return pipe_finish(pp, th);
}

/* CreateMultipartUpload: the new upload's id into upload_id. */
static int mpu_create(struct s3_store *s, const char *key, struct ehr_buf *upload_id)
{
	const struct s3_kv q[] = { { "uploads", "" } };
	struct s3_req rq = { .method = "POST", .key = key, .query = q, .nquery = 1 };
	struct s3_resp rs;
	int err = s3__call(s, &rq, &rs, "CreateMultipartUpload", false);

	if (err == 0 && s3_xml_find((const char *)rs.body.data, rs.body.len, "UploadId", upload_id) != 1)
		err = ehr_error_set(EHR_ERR_UNAVAILABLE, "S3 CreateMultipartUpload: no UploadId");
	ehr_buf_free(&rs.body);
	return err;
}

/* The CompleteMultipartUpload document: parts 1..nparts with their ETags,
 * XML-escaped. */
static int mpu_complete_doc(struct ehr_buf *complete, char (*etags)[128], size_t nparts)
{
	GUARD(ehr_buf_append_str(complete, "<CompleteMultipartUpload>"));
	for (size_t i = 0; i < nparts; i++) {
		struct ehr_buf esc = EHR_BUF_INIT(512);
		int err = 0;
		for (const char *p = etags[i]; *p; p++) {
			if (*p == '"')
				err = ehr_buf_append_str(&esc, "&quot;");
			else if (*p == '&')
				err = ehr_buf_append_str(&esc, "&amp;");
			else if (*p == '<')
				err = ehr_buf_append_str(&esc, "&lt;");
			else
				err = ehr_buf_append_u8(&esc, (uint8_t)*p);
			if (err < 0)
				break;
		}
		if (err == 0)
			err = ehr_buf_printf(complete,
			                     "<Part><PartNumber>%zu</PartNumber><ETag>%s</ETag></Part>",
			                     i + 1, ehr_buf_cstr(&esc));
		ehr_buf_free(&esc);
		GUARD(err);
	}
	GUARD(ehr_buf_append_str(complete, "</CompleteMultipartUpload>"));
	return 0;
}

/* CompleteMultipartUpload; S3 may answer 200 with an <Error> body. */
static int mpu_complete(struct s3_store *s, const char *key, const char *upload_id,
                        const struct ehr_buf *complete)
{
	const struct s3_kv q[] = { { "uploadId", upload_id } };
	struct s3_req rq = { .method = "POST",
		             .key = key,
		             .query = q,
		             .nquery = 1,
		             .body = complete->data,
		             .body_len = complete->len };
	struct s3_resp rs;
	struct ehr_buf tmp = EHR_BUF_INIT(256);
	int err = s3__call(s, &rq, &rs, "CompleteMultipartUpload", false);

	if (err == 0 && s3_xml_find((const char *)rs.body.data, rs.body.len, "Code", &tmp) == 1)
		err = ehr_error_set(EHR_ERR_UNAVAILABLE, "S3 CompleteMultipartUpload: %s",
		                    ehr_buf_cstr(&tmp));
	ehr_buf_free(&tmp);
	ehr_buf_free(&rs.body);
	return err;
}

/* The multipart upload of an object whose first part (n bytes, not the end
 * of the stream) is in part[0]; part[1] is taken here and left for the
 * caller to give back. Aborted on any failure after it was created. */
static int put_multipart(struct s3_store *s, const char *key, cloud_read_fn rd, void *rctx, uint8_t *part[2],
                         size_t n)
{
	struct ehr_buf upload_id = EHR_BUF_INIT(1024), complete = EHR_BUF_INIT(1024 * 1024);
	struct part_pipe pp = { .s = s, .key = key };
	size_t nparts = 0;
	bool pipe_ready = false;
	int err;

	if ((err = mpu_create(s, key, &upload_id)) < 0)
		goto out;
	pp.upload_id = ehr_buf_cstr(&upload_id);
	pp.etags = calloc(S3_MAX_PARTS, sizeof(*pp.etags));
	part[1] = part_buf_get(s);
	if (pp.etags == NULL || part[1] == NULL) {
		err = ehr_error_set(EHR_ERR_NOMEM, "out of memory");
		goto abort;
	}
	atomic_init(&pp.give_up, false);
	pthread_mutex_init(&pp.mu, NULL);
	pthread_cond_init(&pp.cv, NULL);
	pipe_ready = true;
	if ((err = pipe_run(&pp, rd, rctx, part, n, &nparts)) < 0 ||
	    (err = mpu_complete_doc(&complete, pp.etags, nparts)) < 0 ||
	    (err = mpu_complete(s, key, ehr_buf_cstr(&upload_id), &complete)) < 0)
		goto abort;
	goto out;
abort : {
	/* Keep the first error; the abort's own outcome is only logged. The
	 * uploader has stopped: no part can land after this. */
	struct ehr_error_saved saved;
	char pub[sizeof(saved.msg) + 32];

	ehr_error_save(&saved);
	s3_abort(s, key, ehr_buf_cstr(&upload_id));
	/* pub has room for the saved message and the suffix: cannot fail */
	if (ehr_fmt(pub, sizeof(pub), "%s (multipart upload aborted)", saved.msg) < 0)
		ehr_error_restore(&saved);
	else
		ehr_error_set_detail(err, pub, "%s", saved.detail);
}
out:
	if (pipe_ready) {
		pthread_cond_destroy(&pp.cv);
		pthread_mutex_destroy(&pp.mu);
	}
	free(pp.etags);
	ehr_buf_free(&upload_id);
	ehr_buf_free(&complete);
	return err;
}

/* The backend's put: a streamed single PUT when the size is known and
 * small enough, one PUT of the buffered body when it fits in one part,
 * a multipart upload otherwise. */
int s3__put(void *impl, const char *key, cloud_read_fn rd, void *rctx, int64_t size, struct obj_info *info)
{
	struct s3_store *s = impl;
	uint8_t *part[2] = { NULL, NULL };
	size_t n = 0;
	bool eof = false;
	int err = 0;

	(void)info;
	if (size > 0 && (uint64_t)size <= s->single_put_max)
		return s3_put_stream(s, key, rd, rctx, (uint64_t)size);
	part[0] = part_buf_get(s);
	ENSURE_GOTO(part[0] != NULL, EHR_ERR_NOMEM);
	GUARD_GOTO(fill_part(rd, rctx, part[0], s->part_size, &n, &eof));
	if (eof)
		err = s3_put_single(s, key, part[0], n);
	else
		err = put_multipart(s, key, rd, rctx, part, n);
out:
	part_buf_put(s, part[0]);
	part_buf_put(s, part[1]);
	return err;
}
