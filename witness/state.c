/*
 * state.c - the witness's durable state: for each configured origin the
 * latest cosigned checkpoint note, in <state_dir>/logs/<hex SHA-256 of the
 * origin>.note. A file is replaced whole (write temp, fsync, rename, fsync
 * the directory: ehr_file_write_atomic), so after a crash it holds either
 * the old or the new checkpoint, never a torn one. <state_dir>/lock is
 * flock()ed: one ehrwitness per state directory.
 */
#include "witness/witness_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <openssl/sha.h>

#define STATE_NOTE_MAX (LEDGER_NOTE_MAX + 1024)

static int take_lock(struct witness *w)
{
	char path[WITNESS_PATH + 16];

	GUARD(ehr_fmt(path, sizeof(path), "%s/lock", w->cfg.state_dir));
	w->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (w->lock_fd < 0)
		return ehr_error_set_detail(EHR_ERR_IO, "cannot open the state directory's lock", "%s: %s",
		                            path, strerror(errno));
	if (flock(w->lock_fd, LOCK_EX | LOCK_NB) != 0)
		return ehr_error_set_detail(EHR_ERR_EXISTS, "another ehrwitness uses this state directory",
		                            "%s: %s", path, strerror(errno));
	return 0;
}

/* Read one origin's file, if any: it must parse and name its origin. */
static int load_origin(struct witness_origin *o)
{
	char origin[256];
	size_t text_len;
	int err;

	err = ehr_file_read(&o->note, o->path, STATE_NOTE_MAX);
	if (err == EHR_ERR_NOT_FOUND) {
		ehr_buf_reset(&o->note);
		o->size = 0;
		return 0;
	}
	if (err < 0)
		return ehr_error_wrap(err, "witness state for %s", o->log->origin);
	err = ledger_checkpoint_parse((const char *)o->note.data, o->note.len, origin, sizeof(origin),
	                              &o->size, o->root, &text_len);
	if (err < 0 || strcmp(origin, o->log->origin) != 0)
		return ehr_error_set_detail(EHR_ERR_TAMPER, "witness state file is corrupt", "%s (origin %s)",
		                            o->path, o->log->origin);
	return 0;
}

int witness__state_open(struct witness *w)
{
	char dir[WITNESS_PATH + 16];

	w->lock_fd = -1;
	GUARD(ehr_mkdir_p(w->cfg.state_dir, 0700));
	GUARD(take_lock(w));
	GUARD(ehr_fmt(dir, sizeof(dir), "%s/logs", w->cfg.state_dir));
	GUARD(ehr_mkdir_p(dir, 0700));
	w->origins = calloc(w->cfg.nlogs, sizeof(*w->origins));
	ENSURE(w->origins != NULL, EHR_ERR_NOMEM);
	for (size_t i = 0; i < w->cfg.nlogs; i++) {
		struct witness_origin *o = &w->origins[i];
		uint8_t h[SHA256_DIGEST_LENGTH];

		o->log = &w->cfg.logs[i];
		ehr_buf_init(&o->note, STATE_NOTE_MAX);
		pthread_mutex_init(&o->lock, NULL);
		w->norigins++;
		SHA256((const uint8_t *)o->log->origin, strlen(o->log->origin), h);
		GUARD(ehr_hex_encode_fixed(o->hash_hex, sizeof(o->hash_hex), h, sizeof(h)));
		GUARD(ehr_fmt(o->path, sizeof(o->path), "%s/%s.note", dir, o->hash_hex));
		GUARD(load_origin(o));
		ehr_log_json(EHR_LOG_INFO, "witness.state",
		             json_pack("{s:s, s:I}", "origin", o->log->origin, "size", (json_int_t)o->size));
	}
	return 0;
}

void witness__state_close(struct witness *w)
{
	for (size_t i = 0; i < w->norigins; i++) {
		pthread_mutex_destroy(&w->origins[i].lock);
		ehr_buf_free(&w->origins[i].note);
	}
	free(w->origins);
	w->origins = NULL;
	w->norigins = 0;
	if (w->lock_fd >= 0)
		close(w->lock_fd);
	w->lock_fd = -1;
}

struct witness_origin *witness__origin_find(struct witness *w, const char *origin)
{
	for (size_t i = 0; i < w->norigins; i++)
		if (strcmp(w->origins[i].log->origin, origin) == 0)
			return &w->origins[i];
	return NULL;
}

/* Caller holds o->lock. The file first, then memory: a failed write leaves
 * both at the old checkpoint. */
int witness__state_persist(struct witness_origin *o, uint64_t size, const uint8_t root[LEDGER_HASH_LEN],
                           const struct ehr_buf *note)
{
	ehr_failpoint("witness.persist.before");
	GUARD(ehr_file_write_atomic(o->path, note->data, note->len, 0600, false));
	ehr_failpoint("witness.persist.after");
	ehr_buf_reset(&o->note);
	GUARD(ehr_buf_append(&o->note, note->data, note->len));
	o->size = size;
	memcpy(o->root, root, LEDGER_HASH_LEN);
	return 0;
}
