/* log.c - structured JSON log lines on stderr. */
#include "common/common.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static enum ehr_log_level log_level = EHR_LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *level_names[] = { "debug", "info", "warn", "error" };

void ehr_log_set_level(enum ehr_log_level lvl)
{
	log_level = lvl;
}

int ehr_log_parse_level(enum ehr_log_level *out, const char *s)
{
	for (size_t i = 0; i < EHR_ARRAY_LEN(level_names); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum ehr_log_level)i;
			return 0;
		}
	}
	return ehr_error_set(EHR_ERR_CONFIG, "log level must be one of debug, info, warn, error");
}

void ehr_log_json(enum ehr_log_level lvl, const char *event, json_t *fields)
{
	char ts[32];
	json_t *line;
	char *text;

	if (lvl < log_level || lvl > EHR_LOG_ERROR) {
		json_decref(fields);
		return;
	}
	ehr_time_rfc3339(ts, ehr_now_ms());
	line = json_pack("{s:s, s:s, s:s}", "ts", ts, "level", level_names[lvl], "event", event);
	if (line == NULL) {
		json_decref(fields);
		return;
	}
	if (fields && json_is_object(fields))
		json_object_update_missing(line, fields);
	json_decref(fields);
	text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
	json_decref(line);
	if (text == NULL)
		return;
	pthread_mutex_lock(&log_lock);
	fputs(text, stderr);
	fputc('\n', stderr);
	fflush(stderr);
	pthread_mutex_unlock(&log_lock);
	free(text);
}

void ehr_log_write_lines(const char *text, size_t len)
{
	pthread_mutex_lock(&log_lock);
	fflush(stderr);
	while (len > 0) {
		ssize_t n = write(2, text, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		text += n;
		len -= (size_t)n;
	}
	pthread_mutex_unlock(&log_lock);
}

enum ehr_log_level ehr_log_get_level(void)
{
	return log_level;
}

void ehr_logf(enum ehr_log_level lvl, const char *event, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int n;

	if (lvl < log_level)
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap); /* bounded: checked */
	va_end(ap);
	if (n < 0)
		msg[0] = '\0';
	else if ((size_t)n >= sizeof(msg)) /* cut visibly, never silently */
		memcpy(msg + sizeof(msg) - 4, "...", 4);
	ehr_log_json(lvl, event, json_pack("{s:s}", "msg", msg));
}
