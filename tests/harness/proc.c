/* proc.c - child processes and temporary directories for tests (see harness.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

/* The first cap - 1 bytes of a small file into buf (NUL-terminated); the length or -1. */
static ssize_t read_head(const char *path, char *buf, size_t cap)
{
	size_t got = 0;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	while (got < cap - 1 && (n = read(fd, buf + got, cap - 1 - got)) > 0)
		got += (size_t)n;
	close(fd);
	buf[got] = '\0';
	return (ssize_t)got;
}

/* The text of a small /proc/<pid> file into buf (NUL-terminated); its length or -1. */
static ssize_t proc_read(int pid, const char *name, char *buf, size_t cap)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/%s", pid, name);
	return read_head(path, buf, cap);
}

int ehr_test_devservices(const char *cmd)
{
	const char *script = ehr_test_env("EHRGATE_DEVSERVICES");
	const char *state = ehr_test_env("EHRGATE_TEST_STATE");
	char line[2048];
	int n;

	if (state == NULL)
		return -1;
	if (script == NULL)
		script = EHR_SOURCE_DIR "/deploy/devservices.sh";
	n = snprintf(line, sizeof(line), "'%s' %s '%s' >/dev/null 2>&1", script, cmd, state);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -1;
	return system(line);
}

long ehr_test_proc_kib(int pid, const char *field)
{
	char buf[8192];
	size_t flen = strlen(field);

	if (proc_read(pid, "status", buf, sizeof(buf)) < 0)
		return -1;
	for (const char *line = buf; *line != '\0';) {
		const char *nl = strchr(line, '\n');

		if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
			const char *p = line + flen + 1;
			long v = 0;

			while (*p == ' ' || *p == '\t')
				p++;
			if (*p < '0' || *p > '9')
				return -1;
			while (*p >= '0' && *p <= '9')
				v = v * 10 + (*p++ - '0');
			return v;
		}
		if (nl == NULL)
			break;
		line = nl + 1;
	}
	return -1;
}

/* Fields 4 (ppid) and 14 + 15 (utime + stime, clock ticks) of
 * /proc/<pid>/stat. Field 2, the command name, is in parentheses and may
 * hold spaces and ')': fields are counted from the last ')'. */
static int proc_stat(int pid, long *ppid, unsigned long long *ticks)
{
	char buf[4096];
	const char *p;
	unsigned long long v[16] = { 0 };
	int field = 2; /* the field after "(comm)" is the 3rd: state */

	if (proc_read(pid, "stat", buf, sizeof(buf)) < 0 || (p = strrchr(buf, ')')) == NULL)
		return -1;
	for (p++; *p != '\0' && field < 15; p++) {
		if (*p != ' ')
			continue;
		field++;
		for (const char *q = p + 1; *q >= '0' && *q <= '9'; q++)
			v[field] = v[field] * 10 + (unsigned long long)(*q - '0');
	}
	if (field != 15)
		return -1;
	*ppid = (long)v[4];
	*ticks = v[14] + v[15];
	return 0;
}

double ehr_test_proc_cpu_s(int pid)
{
	unsigned long long ticks;
	long ppid;

	if (proc_stat(pid, &ppid, &ticks) < 0)
		return -1;
	return (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

/* A /proc entry's name as a pid, or 0 when it is not one ("self", "stat"...). */
static int pid_of_name(const char *name)
{
	int pid = 0;

	for (const char *p = name; *p != '\0'; p++) {
		if (*p < '0' || *p > '9' || pid > 99999999)
			return 0;
		pid = pid * 10 + (*p - '0');
	}
	return pid;
}

double ehr_test_proc_family_cpu_s(int pid)
{
	unsigned long long sum, ticks;
	struct dirent *de;
	long ppid;
	DIR *d;

	if (proc_stat(pid, &ppid, &sum) < 0 || (d = opendir("/proc")) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		int child = pid_of_name(de->d_name);

		if (child > 0 && child != pid && proc_stat(child, &ppid, &ticks) == 0 && ppid == pid)
			sum += ticks;
	}
	closedir(d);
	return (double)sum / (double)sysconf(_SC_CLK_TCK);
}

int ehr_test_cpu_ticks(unsigned long long *idle, unsigned long long *total)
{
	unsigned long long v[8];
	char buf[512];
	const char *p = buf + 4;

	if (read_head("/proc/stat", buf, sizeof(buf)) < 0 || strncmp(buf, "cpu ", 4) != 0)
		return -1;
	/* user nice system idle iowait irq softirq steal; guest and guest_nice
	 * follow but are already counted in user and nice */
	for (int i = 0; i < 8; i++) {
		char *end;

		while (*p == ' ')
			p++;
		if (*p < '0' || *p > '9')
			return -1;
		v[i] = strtoull(p, &end, 10);
		p = end;
	}
	*idle = v[3] + v[4];
	*total = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
	return 0;
}
