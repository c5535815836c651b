/* proc.c - child processes and temporary directories for tests (see harness.h). */
#include <errno.h>
#include <ftw.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/harness/harness.h"

extern char **environ;

int ehr_test_run(char *out, size_t cap, const char *const *argv)
{
	posix_spawn_file_actions_t fa;
	int pfd[2], status = 0;
	size_t got = 0;
	pid_t pid;

	if (pipe(pfd) != 0)
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_addclose(&fa, pfd[0]);
	if (posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	for (;;) {
		char buf[4096];
		ssize_t n = read(pfd[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (out && got + 1 < cap) {
			size_t take = (size_t)n < cap - 1 - got ? (size_t)n : cap - 1 - got;
			memcpy(out + got, buf, take);
			got += take;
		}
	}
	if (out && cap)
		out[got] = '\0';
	close(pfd[0]);
	while (waitpid(pid, &status, 0) != pid)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

int ehr_test_tmpdir(char *out, size_t cap, const char *tag)
{
	snprintf(out, cap, "/tmp/ehr-%.40s-XXXXXX", tag ? tag : "test");
	return mkdtemp(out) != NULL ? 0 : -1;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void ehr_test_rmrf(const char *dir)
{
	if (dir == NULL || strncmp(dir, "/tmp/", 5) != 0 || strstr(dir, "..") != NULL)
		return;
	if (ehr_test_env("EHRGATE_TEST_KEEP") == NULL)
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}
