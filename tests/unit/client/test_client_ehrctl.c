/* test_client_ehrctl.c - ehrctl, as built, needs no libpq: `readelf -d` lists
 * no NEEDED libpq (scripts/check-layers.sh keeps libpq out of its link
 * closure; this checks the binary itself), and it runs. */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

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

/* `ehrctl ARGS` with no profile (EHRCTL_DIR names a directory that does
 * not exist): its exit status, stdout and stderr in out. */
static int run_ctl(const char *args, char *out, size_t cap)
{
	struct ehr_buf cmd = EHR_BUF_INIT(4096);
	int st;

	EHR_ASSERT_OK(
	        ehr_buf_printf(&cmd, "EHRCTL_DIR=/nonexistent/ehrctl-test '%s' %s 2>&1", ctl_bin(), args));
	st = run(ehr_buf_cstr(&cmd), out, cap);
	ehr_buf_free(&cmd);
	return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* --help works on every command and subcommand without a profile (it
 * failed for `audit query --help`, `contract create --help`, ...). */
static void test_help_everywhere_without_profile(void)
{
	static const char *const cmds[] = {
		"--help",
		"register --help",
		"renew --help",
		"whoami --help",
		"patient --help",
		"patient create --help",
		"patient enroll --help",
		"patient login --help",
		"record --help",
		"record put --help",
		"record get --help",
		"record list --help",
		"contract --help",
		"contract create --help",
		"contract list --help",
		"contract revoke --help",
		"audit --help",
		"audit query --help",
		"audit tail --help",
		"audit verify --help",
		"audit query -h",
	};
	static char out[1 << 16];

	for (size_t i = 0; i < EHR_ARRAY_LEN(cmds); i++) {
		int st = run_ctl(cmds[i], out, sizeof(out));
		if (st != 0 || strstr(out, "usage: ehrctl") == NULL)
			fprintf(stderr, "\n  ehrctl %s: exit %d: %.200s\n", cmds[i], st, out);
		CU_ASSERT_EQUAL(st, 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "usage: ehrctl"));
		CU_ASSERT_PTR_NULL(strstr(out, "cannot open the profile"));
	}
}

/* Exit statuses: 2 usage; 3 no gateway reached or no profile; (1, a
 * refusal by the gateway, is tested against a real gateway in
 * tests/integration/auth). */
static void test_exit_status(void)
{
	static char out[1 << 16];

	CU_ASSERT_EQUAL(run_ctl("frobnicate", out, sizeof(out)), 2);
	CU_ASSERT_EQUAL(run_ctl("audit no-such-command", out, sizeof(out)), 2);
	CU_ASSERT_EQUAL(run_ctl("whoami", out, sizeof(out)), 3);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "profile"));
	/* nothing listens on port 1: a transport failure, not a refusal */
	CU_ASSERT_EQUAL(run_ctl("register --url https://127.0.0.1:1 --token x --out /nonexistent/ehrctl-test",
	                        out, sizeof(out)),
	                3);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "ehrctl register: "));
}

static void register_suites(void)
{
	EHR_ADD_SUITE("ehrctl link", NULL, NULL, { "no NEEDED libpq", test_no_libpq_needed },
	              { "runs --help", test_runs_help },
	              { "--help everywhere, no profile needed", test_help_everywhere_without_profile },
	              { "exit status: usage 2, unreachable 3", test_exit_status });
}

EHR_TEST_MAIN(register_suites)
