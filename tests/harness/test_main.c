/* test_main.c - the CUnit runner every test binary shares. */
#include "tests/harness/harness.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

const char *ehr_test_env(const char *name)
{
	const char *v = getenv(name);
	return (v && *v) ? v : NULL;
}

static unsigned late_failures;

void ehr_test_fail_late(const char *what)
{
	fprintf(stderr, "\n  FAILED outside a test: %s\n", what);
	late_failures++;
}

void ehr_test_check_log(const char *path)
{
	static const char *const marks[] = { "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
		                             "runtime error:", "ThreadSanitizer" };
	char line[1024];
	FILE *f = path && *path ? fopen(path, "r") : NULL;

	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f)) {
		for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
			if (strstr(line, marks[i]) == NULL)
				continue;
			fprintf(stderr, "\n  %s: %s", path, line);
			ehr_test_fail_late("a sanitizer reported in a gateway's log");
			fclose(f);
			return;
		}
	}
	fclose(f);
}

int ehr_test_add_suite(const char *name, int (*init)(void), int (*clean)(void),
                       const struct ehr_test_case *cases, size_t n)
{
	CU_pSuite s = CU_add_suite(name, init, clean);

	if (s == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (CU_add_test(s, cases[i].name, cases[i].fn) == NULL)
			return -1;
	return 0;
}

int ehr_test_main(int argc, char **argv, void (*register_suites)(void))
{
	unsigned run, failed, suites_failed;
	const char *filter = argc > 1 ? argv[1] : NULL;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	register_suites();
	if (CU_get_error() != CUE_SUCCESS) {
		fprintf(stderr, "test registration failed: %s\n", CU_get_error_msg());
		return 2;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	if (filter) {
		CU_pSuite s = CU_get_suite(filter);
		if (s == NULL) {
			fprintf(stderr, "no suite named %s\n", filter);
			return 2;
		}
		CU_basic_run_suite(s);
	} else {
		CU_basic_run_tests();
	}
	run = CU_get_number_of_tests_run();
	failed = CU_get_number_of_tests_failed();
	suites_failed = CU_get_number_of_suites_failed();
	/* A suite whose init failed ran none of its tests: count them as failed. */
	failed += suites_failed + late_failures;
	printf("\nehrgate-totals: %s %u passed, %u failed\n", basename(argv[0]),
	       run >= CU_get_number_of_tests_failed() ? run - CU_get_number_of_tests_failed() : 0, failed);
	CU_cleanup_registry();
	return failed != 0 ? 1 : 0;
}
