/* ctl_util.c - helpers shared by the ehrctl subcommands (ctl_commands.h). */
#include <stdio.h>
#include <string.h>

#include "client/ctl/ctl_commands.h"

int ctl_open(struct ehr_client **out)
{
	const char *dir = ehr_client_default_dir();

	if (ehr_client_open_profile(out, dir) < 0) {
		fprintf(stderr, "ehrctl: cannot open the profile in %s: %s\n", dir, ehr_error_detail());
		return 1;
	}
	return 0;
}

void ctl_print_json(const json_t *j)
{
	if (j == NULL)
		return;
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
	fputc('\n', stdout);
}

int ctl_finish(struct ehr_client *c, long status, const json_t *resp)
{
	struct ehr_client_refusal r = { 0 };
	const json_t *e = json_object_get(resp, "error");
	const char *code, *msg;

	(void)c;
	if (status >= 200 && status < 300) {
		ctl_print_json(resp);
		return 0;
	}
	/* The body the caller parsed (a streamed reply is not kept by the
	 * client), else the client's record of the refusal. */
	ehr_client_last_refusal(&r);
	code = json_string_value(json_object_get(e, "code"));
	msg = json_string_value(json_object_get(e, "message"));
	if (code == NULL)
		code = r.code[0] ? r.code : "(no error code)";
	if (msg == NULL)
		msg = r.message[0] ? r.message : "(no error message)";
	fprintf(stderr, "ehrctl: %ld %s: %s\n", status, code, msg);
	return 1;
}

int ctl_fail(const char *what)
{
	struct ehr_client_refusal r;

	if (ehr_client_last_refusal(&r))
		fprintf(stderr, "ehrctl %s: %ld %s: %s\n", what, r.status,
		        r.code[0] ? r.code : "(no error code)",
		        r.message[0] ? r.message : "(no error message)");
	else
		fprintf(stderr, "ehrctl %s: %s\n", what, ehr_error_detail());
	return 1;
}

int ctl_exit(int rc)
{
	if (rc == CTL_RC_CHECK_FAILED)
		return 1;
	if (rc != 1)
		return rc;
	return ehr_client_last_refusal(NULL) ? CTL_EXIT_REFUSED : CTL_EXIT_FAILED;
}

bool ctl_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	return false;
}
