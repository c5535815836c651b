/*
 * replies.c - record the gateway's replies for the OpenAPI check.
 *
 * When EHRGATE_TEST_REPLIES names a file (tests/run.sh sets it), every reply
 * gwp_request receives, and every one a test hands to gwp_record_reply, is
 * appended to it as one JSON line {"method","path","status","content_type",
 * "body"|"body_b64"|"truncated"}; tests/openapi/validate_replies.js then
 * validates each against schemas/openapi.yaml. One write(2) per line on an
 * O_APPEND descriptor, so test binaries running at once do not interleave.
 */
#include "tests/harness/gwproc.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"

#define GWP_RECORD_MAX_BODY (4u << 20)

void gwp_record_reply(const char *method, const char *path, long status, const char *content_type,
                      const void *body, size_t len)
{
	const char *file = getenv("EHRGATE_TEST_REPLIES");
	const char *p = path;
	json_t *j, *b = NULL;
	char *line;
	int fd;

	if (file == NULL || *file == '\0' || status <= 0)
		return;
	if (strncmp(p, "https://", 8) == 0 || strncmp(p, "http://", 7) == 0) {
		p = strchr(strstr(p, "//") + 2, '/');
		if (p == NULL)
			p = "/";
	}
	j = json_pack("{s:s, s:s, s:i, s:s}", "method", method, "path", p, "status", (int)status,
	              "content_type", content_type ? content_type : "");
	if (j == NULL)
		return;
	if (len > GWP_RECORD_MAX_BODY) {
		json_object_set_new(j, "truncated", json_true());
	} else if ((b = json_stringn(body ? body : "", len)) != NULL) {
		json_object_set_new(j, "body", b);
	} else {
		struct ehr_buf enc = EHR_BUF_INIT(2 * GWP_RECORD_MAX_BODY);
		if (ehr_b64_encode(&enc, body, len) == 0)
			json_object_set_new(j, "body_b64", json_string(ehr_buf_cstr(&enc)));
		ehr_buf_free(&enc);
	}
	line = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (line == NULL)
		return;
	fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0) {
		size_t n = strlen(line);
		line[n] = '\n'; /* replaces the NUL: write n + 1 bytes, free still works */
		if (write(fd, line, n + 1) != (ssize_t)(n + 1))
			fprintf(stderr, "gwp_record_reply: short write to %s\n", file);
		close(fd);
	}
	free(line);
}
