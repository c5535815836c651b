/*
 * replay_main.c - runs a libFuzzer target's corpus as a regression test.
 *
 * Without libFuzzer (gcc, or the ASan build) every file of the target's
 * corpus/ directory is fed to LLVMFuzzerTestOneInput from a heap copy of
 * exactly its size (so ASan sees any over-read), and so is every proper
 * prefix of it (evenly spaced ones for inputs over 4 KiB) (truncated inputs are the classic parser bug). A target
 * signals a broken property by aborting; a crash ends the binary before its
 * totals line, which tests/run.sh counts as a failure.
 * EHR_FUZZ_CORPUS and EHR_FUZZ_NAME come from ehr_add_fuzzer() (fuzz.cmake).
 */
#include "tests/harness/harness.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

#define REPLAY_MAX_INPUT (1024 * 1024)

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_one(const uint8_t *p, size_t n)
{
	uint8_t *copy = malloc(n ? n : 1);
	int rc;

	if (copy == NULL)
		return -1;
	if (n)
		memcpy(copy, p, n);
	rc = LLVMFuzzerTestOneInput(copy, n);
	free(copy);
	return rc;
}

static void test_replay_corpus(void)
{
	DIR *d = opendir(EHR_FUZZ_CORPUS);
	struct dirent *e;
	char **names = NULL;
	size_t count = 0, cap = 0, inputs = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (count == cap) {
			char **nn = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof(*names));
			CU_ASSERT_PTR_NOT_NULL_FATAL(nn);
			names = nn;
		}
		names[count] = strdup(e->d_name);
		CU_ASSERT_PTR_NOT_NULL_FATAL(names[count]);
		count++;
	}
	closedir(d);
	CU_ASSERT(count > 0); /* an empty corpus tests nothing */
	if (count > 1)
		qsort(names, count, sizeof(*names), name_cmp);

	for (size_t i = 0; i < count; i++) {
		struct ehr_buf path, data;

		ehr_buf_init(&path, 4096);
		ehr_buf_init(&data, REPLAY_MAX_INPUT);
		CU_ASSERT_EQUAL(ehr_buf_printf(&path, "%s/%s", EHR_FUZZ_CORPUS, names[i]), 0);
		if (ehr_file_read(&data, ehr_buf_cstr(&path), REPLAY_MAX_INPUT) != 0) {
			fprintf(stderr, "\n  cannot read %s: %s\n", ehr_buf_cstr(&path), ehr_error_msg());
			CU_FAIL("unreadable corpus file");
		} else {
			/* name the input first: a target that aborts ends the binary */
			fprintf(stderr, "\n  replaying %s (%zu bytes)", names[i], data.len);
			fflush(stderr);
			/* proper prefixes (all of them up to 4096 lengths, else evenly
			 * spaced), then the whole input */
			size_t step = data.len / 4096 + 1;
			for (size_t n = 0; n <= data.len;
			     n = (n < data.len && n + step > data.len) ? data.len : n + step) {
				if (run_one(data.data, n) != 0) {
					fprintf(stderr, "\n  %s: target returned non-zero at length %zu\n",
					        names[i], n);
					CU_FAIL("target returned non-zero");
					break;
				}
				inputs++;
			}
		}
		ehr_buf_free(&path);
		ehr_buf_free(&data);
		free(names[i]);
	}
	free(names);
	printf("\n  %s: replayed %zu corpus files (%zu inputs with prefixes)\n", EHR_FUZZ_NAME, count,
	       inputs);
}

static void register_suites(void)
{
	if (LLVMFuzzerInitialize) {
		int argc = 0;
		char **argv = NULL;
		LLVMFuzzerInitialize(&argc, &argv);
	}
	EHR_ADD_SUITE("fuzz-replay-" EHR_FUZZ_NAME, NULL, NULL,
	              { "replay corpus " EHR_FUZZ_NAME, test_replay_corpus });
}

EHR_TEST_MAIN(register_suites)
