/*
 * harness.h - shared test scaffolding.
 *
 * Every test binary's main() is EHR_TEST_MAIN(register_fn): it initialises
 * CUnit, lets register_fn add suites, runs them with the standard summary,
 * prints "ehrgate-totals: <binary> N passed, N failed" for tests/run.sh,
 * and exits non-zero on any failure (CU_basic_run_tests alone would not).
 *
 * Integration tests read the dev services' settings from the environment
 * that tests/run.sh exports (see deploy/devservices.sh):
 *   EHRGATE_TEST_PG        libpq conninfo of the superuser connection
 *   EHRGATE_TEST_S3        S3 endpoint URL through the SigV4-verifying front
 *   EHRGATE_TEST_S3_DIRECT s3rver itself (no signature checks)
 *   EHRGATE_TEST_STATE     state directory of the dev services
 * ehr_test_env() returns NULL when unset; such tests then fail, not skip.
 */
#ifndef EHR_TEST_HARNESS_H
#define EHR_TEST_HARNESS_H

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <stddef.h>

int ehr_test_main(int argc, char **argv, void (*register_suites)(void));
/* A failure found outside any test (e.g. a sanitizer report in a gateway's
 * log at teardown): printed now, counted in the totals and the exit code. */
void ehr_test_fail_late(const char *what);
/* Fail late if the file (a gateway's stderr) holds a sanitizer report:
 * ASan/UBSan errors, or LeakSanitizer's report at exit. */
void ehr_test_check_log(const char *path);
const char *ehr_test_env(const char *name);

/* ---- processes and temporary directories (proc.c) */
/* Run argv (argv[0] is a path) and wait: its stdout into out (NUL-terminated,
 * truncated to cap - 1; out may be NULL), its stderr passed through. Returns
 * the exit code, 128 + the signal number if a signal ended it, or -1. */
int ehr_test_run(char *out, size_t cap, const char *const *argv);
/* A fresh private directory /tmp/ehr-<tag>-XXXXXX (mode 0700) into out. */
int ehr_test_tmpdir(char *out, size_t cap, const char *tag);
/* Remove a tree made by ehr_test_tmpdir (anything outside /tmp/ is refused);
 * kept when EHRGATE_TEST_KEEP is set. */
void ehr_test_rmrf(const char *dir);
/* deploy/devservices.sh CMD on this test's own services ($EHRGATE_TEST_STATE;
 * the script from $EHRGATE_DEVSERVICES, else this tree's), its output
 * dropped: system()'s status (0: it succeeded), -1 without a state dir. */
int ehr_test_devservices(const char *cmd);
/* A value of /proc/<pid>/status in KiB (field "VmRSS", "VmHWM", ...), or -1. */
long ehr_test_proc_kib(int pid, const char *field);
/* CPU seconds (user + system, all threads) of a process, from
 * /proc/<pid>/stat, or -1. */
double ehr_test_proc_cpu_s(int pid);
/* CPU seconds of a process plus those of its children running now (every
 * /proc/<n>/stat whose ppid is pid: a postmaster and its backends), or -1
 * when pid is not running. A child that exited is no longer counted. */
double ehr_test_proc_family_cpu_s(int pid);
/* The machine's CPU time so far, in clock ticks, from /proc/stat's first
 * line: *idle = idle + iowait, *total = user..steal. 0, or -1. */
int ehr_test_cpu_ticks(unsigned long long *idle, unsigned long long *total);

/* Add a suite with its tests: ADD_SUITE("name", init, clean, {"t1", fn1}, ...) */
struct ehr_test_case {
	const char *name;
	void (*fn)(void);
};
int ehr_test_add_suite(const char *name, int (*init)(void), int (*clean)(void),
                       const struct ehr_test_case *cases, size_t n);
#define EHR_ADD_SUITE(name, init, clean, ...)                                                               \
	do {                                                                                                \
		static const struct ehr_test_case cases__[] = { __VA_ARGS__ };                              \
		ehr_test_add_suite((name), (init), (clean), cases__, sizeof(cases__) / sizeof(cases__[0])); \
	} while (0)

#define EHR_TEST_MAIN(register_fn)                               \
	int main(int argc, char **argv)                          \
	{                                                        \
		return ehr_test_main(argc, argv, (register_fn)); \
	}

/* Assert a negative-code result equals an expected code, printing the detail. */
#define EHR_ASSERT_ERR(expr, code)                                                                          \
	do {                                                                                                \
		int rc__ = (expr);                                                                          \
		if (rc__ != (code))                                                                         \
			fprintf(stderr, "\n  %s:%d: %s -> %d (%s), wanted %d\n", __FILE__, __LINE__, #expr, \
			        rc__, ehr_error_msg(), (int)(code));                                        \
		CU_ASSERT_EQUAL(rc__, (code));                                                              \
	} while (0)
#define EHR_ASSERT_OK(expr) EHR_ASSERT_ERR(expr, 0)

#endif
