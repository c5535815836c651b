/* ctl_util.c - helpers shared by the ehrctl subcommands (ctl_commands.h). */
#include <stdio.h>

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
	if (status >= 200 && status < 300) {
		ctl_print_json(resp);
		return 0;
	}
	fprintf(stderr, "ehrctl: %s\n",
	        ehr_client_last_error(c)[0] ? ehr_client_last_error(c) : "request failed");
	if (resp != NULL)
		json_dumpf(resp, stderr, JSON_COMPACT);
	fputc('\n', stderr);
	return 1;
}
