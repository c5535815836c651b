/* test_client_ehrctl.c - ehrctl, as built, needs no libpq: `readelf -d` lists
 * no NEEDED libpq (scripts/check-layers.sh keeps libpq out of its link
 * closure; this checks the binary itself), and it runs. */
#include <stdio.h>
#include <string.h>

#include "common/common.h"
#include "tests/harness/harness.h"

static const char *ctl_bin(void)
{
	const char *bin = ehr_test_env("EHRGATE_CTL");

	return bin != NULL ? bin : EHRCTL_BUILD_BIN;
}

/* Runs `cmd` and returns its exit status; stdout (and stderr) in out. */
static int run(const char *cmd, char *out, size_t cap)
{
	FILE *f = popen(cmd, "r");
	size_t n;

	if (f == NULL)
		return -1;
	n = fread(out, 1, cap - 1, f);
	out[n] = '\0';
	return pclose(f);
}

static void test_no_libpq_needed(void)
{
	static char out[1 << 16];
	struct ehr_buf cmd = EHR_BUF_INIT(4096);
	unsigned needed = 0;

	EHR_ASSERT_OK(ehr_buf_printf(&cmd, "readelf -d '%s' 2>&1", ctl_bin()));
	CU_ASSERT_EQUAL_FATAL(run(ehr_buf_cstr(&cmd), out, sizeof(out)), 0);
	for (const char *p = out; (p = strstr(p, "(NEEDED)")) != NULL; p++) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		needed++;
		if (memmem(p, len, "libpq", 5) != NULL)
			fprintf(stderr, "\n  %s needs %.*s\n", ctl_bin(), (int)len, p);
		CU_ASSERT_PTR_NULL(memmem(p, len, "libpq", 5));
	}
	CU_ASSERT(needed > 0); /* readelf did read a dynamic section */
	ehr_buf_free(&cmd);
}

static void test_runs_help(void)
{
	static char out[1 << 16];
	struct ehr_buf cmd = EHR_BUF_INIT(4096);

	EHR_ASSERT_OK(ehr_buf_printf(&cmd, "'%s' --help 2>&1", ctl_bin()));
	CU_ASSERT_EQUAL(run(ehr_buf_cstr(&cmd), out, sizeof(out)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "ehrctl"));
	ehr_buf_free(&cmd);
}

static void register_suites(void)
{
	EHR_ADD_SUITE("ehrctl link", NULL, NULL, { "no NEEDED libpq", test_no_libpq_needed },
	              { "runs --help", test_runs_help });
}

EHR_TEST_MAIN(register_suites)
