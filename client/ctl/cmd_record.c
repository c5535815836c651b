/*
 * cmd_record.c - `ehrctl record put|get|list` (docs/STORAGE.md §5).
 *
 *   ehrctl record put PATIENT_ID FILE [--type CONTENT_TYPE] [--category CAT]
 *          a medical server stores FILE ("-" = stdin) for the patient
 *   ehrctl record get RECORD_ID [-o FILE]
 *          the patient or an allowed server fetches the plaintext
 *   ehrctl record list PATIENT_ID
 *          record metadata (JSON)
 *   ehrctl record erase RECORD_ID --basis CODE
 *          the patient erases one of their records (docs/ERASURE.md)
 *
 * On a terminal (stderr isatty) put and get draw a progress bar.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "client/ctl/ctl_commands.h"

static void usage_to(FILE *f)
{
	fprintf(f,
	        "usage: ehrctl record put PATIENT_ID FILE|- [--type CONTENT_TYPE] [--category CATEGORY]\n"
	        "                         [--receipt RFILE]\n"
	        "       ehrctl record get RECORD_ID [-o FILE] [--purpose P] [--break-glass JUSTIFICATION]\n"
	        "                         [--receipt RFILE]\n"
	        "           --receipt: save the ledger entry's receipt (C2SP tlog-proof) to RFILE,\n"
	        "           waiting up to 30 s for its publication; check it with `ehrctl receipt verify`;\n"
	        "           --break-glass: a medical server's emergency read without a contract;\n"
	        "           always logged and flagged for auditors and the patient (docs/CONTRACTS.md)\n"
	        "       ehrctl record list PATIENT_ID\n"
	        "       ehrctl record erase RECORD_ID --basis CODE\n"
	        "           the patient erases one of their records for good (docs/ERASURE.md);\n"
	        "           CODE: gdpr-17-1-a .. gdpr-17-1-f, patient-request, court-order\n");
}

static int usage(void)
{
	usage_to(stderr);
	return 2;
}

/* ---------------------------------------------------------- progress bar */

struct bar {
	struct ehr_client *c;
	uint64_t size_hint; /* X-EHR-Size of a chunked download */
	const char *what;
	int64_t start_ms, last_ms;
	uint64_t sent; /* upload bytes so far */
	bool drawn;
};

/* A size for the progress bar. The callers' 32 bytes hold any of these
 * (2^64 bytes is "17179869184.0 GiB"); were it not to fit, out is "" and the
 * bar shows no number rather than a cut one. */
static void human(char *out, size_t cap, double b)
{
	int err;

	if (b >= 1 << 30)
		err = ehr_fmt(out, cap, "%.1f GiB", b / (1 << 30));
	else if (b >= 1 << 20)
		err = ehr_fmt(out, cap, "%.1f MiB", b / (1 << 20));
	else if (b >= 1 << 10)
		err = ehr_fmt(out, cap, "%.1f KiB", b / (1 << 10));
	else
		err = ehr_fmt(out, cap, "%.0f B", b);
	if (err < 0)
		out[0] = '\0';
}

static void bar_draw(struct bar *b, uint64_t now, uint64_t total, bool final)
{
	char cur[32], tot[32], rate[32], line[160];
	int64_t t = ehr_monotonic_ms(), el = t - b->start_ms;
	int width = 30, fill = 0, n;

	if (!final && t - b->last_ms < 100)
		return;
	b->last_ms = t;
	human(cur, sizeof(cur), (double)now);
	human(tot, sizeof(tot), (double)total);
	human(rate, sizeof(rate), el > 0 ? (double)now * 1000.0 / (double)el : 0);
	if (total > 0)
		fill = (int)((double)now / (double)total * width);
	if (fill > width)
		fill = width;
	/* b->what is one of our short labels; a longer one is drawn without it */
	if (ehr_fmt(line, sizeof(line), "\r%s [", b->what) < 0)
		memcpy(line, "\r[", sizeof("\r["));
	n = (int)strlen(line);
	for (int i = 0; i < width && n < (int)sizeof(line) - 1; i++)
		line[n++] = i < fill ? '#' : (total ? '.' : ' ');
	line[n] = '\0';
	if (total > 0)
		fprintf(stderr, "%s] %3d%% %s / %s  %s/s ", line, (int)((double)now * 100.0 / (double)total),
		        cur, tot, rate);
	else
		fprintf(stderr, "%s] %s  %s/s ", line, cur, rate);
	if (final)
		fputc('\n', stderr);
	fflush(stderr);
	b->drawn = true;
}

static void on_progress(uint64_t dl_total, uint64_t dl_now, uint64_t ul_total, uint64_t ul_now, void *ud)
{
	struct bar *b = ud;

	b->sent = ul_now;
	if (ul_total > 0 && ul_now < ul_total)
		bar_draw(b, ul_now, ul_total, false);
	else if (dl_now > 0 || dl_total > 0) {
		if (dl_total == 0 && b->size_hint == 0) {
			char v[32];
			uint64_t n = 0;
			if (ehr_client_response_header(b->c, "X-EHR-Size", v, sizeof(v)) == 0 &&
			    ehr_parse_u64(&n, v, UINT64_MAX) == 0)
				b->size_hint = n;
		}
		bar_draw(b, dl_now, dl_total ? dl_total : b->size_hint, false);
	} else if (ul_total > 0)
		bar_draw(b, ul_now, ul_total, false);
}

static void bar_start(struct ehr_client *c, struct bar *b, const char *what)
{
	memset(b, 0, sizeof(*b));
	b->c = c;
	b->what = what;
	b->start_ms = ehr_monotonic_ms();
	if (isatty(2))
		ehr_client_set_progress(c, on_progress, b);
}

/* ------------------------------------------------------------------- put */

/* --receipt FILE: the acknowledged reply named the receipt's URL. */
static int save_receipt(struct ehr_client *c, const char *url, const char *file)
{
	if (url == NULL || strncmp(url, "/v1/receipts/", 13) != 0) {
		fprintf(stderr, "ehrctl record: the gateway's reply names no receipt\n");
		return 1;
	}
	return ctl_receipt_save(c, url, "30", file);
}

static int cmd_put(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "type", required_argument, NULL, 't' },
		{ "category", required_argument, NULL, 'k' },
		{ "receipt", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *type = "application/octet-stream", *cat = NULL, *pid, *file, *receipt = NULL;
	struct ehr_buf resp = EHR_BUF_INIT(1 << 20), h = EHR_BUF_INIT(512), h2 = EHR_BUF_INIT(256),
	               path = EHR_BUF_INIT(512);
	int fd = -1;
	int64_t size = -1;
	struct stat sb;
	struct ehr_client *c = NULL;
	const char *hdrs[3] = { NULL, NULL, NULL };
	struct bar b;
	json_t *j = NULL;
	long status = 0;
	int ch, rc = 1;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 't': type = optarg; break;
		case 'k': cat = optarg; break;
		case 'r': receipt = optarg; break;
		case 'h': usage(); return 0;
		default: return usage();
		}
	}
	if (argc - optind != 2)
		return usage();
	pid = argv[optind];
	file = argv[optind + 1];
	/* The file streams from disk: its size never costs memory. A pipe
	 * ("-" or a FIFO) is sent chunked. */
	fd = strcmp(file, "-") == 0 ? 0 : open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb) != 0) {
		fprintf(stderr, "ehrctl record put: open %s: %s\n", file, strerror(errno));
		goto out;
	}
	if (S_ISREG(sb.st_mode))
		size = (int64_t)sb.st_size;
	if (ctl_open(&c) != 0)
		goto out;
	if (ehr_buf_printf(&h, "Content-Type: %s", type) < 0 ||
	    ehr_buf_printf(&path, "/v1/patients/%s/records", pid) < 0)
		goto out;
	hdrs[0] = ehr_buf_cstr(&h);
	if (cat) {
		if (ehr_buf_printf(&h2, "X-EHR-Category: %s", cat) < 0)
			goto out;
		hdrs[1] = ehr_buf_cstr(&h2);
	}
	bar_start(c, &b, "upload  ");
	if (ehr_client_upload(c, &status, &resp, "POST", ehr_buf_cstr(&path), hdrs, fd, size) < 0) {
		if (b.drawn)
			fputc('\n', stderr);
		fprintf(stderr, "ehrctl record put: %s\n", ehr_client_last_error(c));
		goto out;
	}
	if (b.drawn)
		bar_draw(&b, b.sent, size >= 0 ? (uint64_t)size : b.sent, true);
	if (resp.len > 0)
		ehr_json_parse(&j, resp.data, resp.len, 1 << 20, 16);
	rc = ctl_finish(c, status, j);
	if (rc == 0 && receipt)
		rc = save_receipt(c, json_string_value(json_object_get(json_object_get(j, "receipt"), "url")),
		                  receipt);
out:
	json_decref(j);
	if (fd > 0)
		close(fd);
	ehr_buf_free(&resp);
	ehr_buf_free(&h);
	ehr_buf_free(&h2);
	ehr_buf_free(&path);
	ehr_client_free(c);
	return rc;
}

/* ------------------------------------------------------------------- get */

static bool header_value_ok(const char *v)
{
	if (*v == '\0')
		return false;
	for (; *v; v++)
		if ((unsigned char)*v < 0x20 || *v == 0x7f)
			return false;
	return true;
}

struct sink {
	int fd;
	uint64_t n;
	int err;
};

static bool on_data(const void *data, size_t len, void *ud)
{
	struct sink *s = ud;
	const uint8_t *p = data;

	while (len > 0) {
		ssize_t w = write(s->fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			s->err = errno;
			return false;
		}
		p += w;
		len -= (size_t)w;
		s->n += (uint64_t)w;
	}
	return true;
}

/* To stdout: the reply is buffered whole, so an error body never reaches
 * stdout as if it were the record. Returns the exit status. */
static int get_to_stdout(struct ehr_client *c, const char *path, const char *const *hdrs, struct bar *b,
                         struct sink *s)
{
	struct ehr_buf all = EHR_BUF_INIT(EHR_CLIENT_MAX_RESPONSE);
	long status = 0;
	int rc;

	if (ehr_client_request(c, &status, &all, "GET", path, hdrs, NULL, 0, NULL, NULL) < 0) {
		ehr_buf_free_secure(&all);
		if (b->drawn)
			fputc('\n', stderr);
		fprintf(stderr, "ehrctl record get: %s\n", ehr_client_last_error(c));
		return 1;
	}
	if (b->drawn)
		bar_draw(b, all.len, all.len, true);
	if (status == 200) {
		on_data(all.data, all.len, s);
		rc = s->err ? 1 : 0;
	} else {
		json_t *j = NULL;
		ehr_json_parse(&j, all.data, all.len, 1 << 20, 16);
		rc = ctl_finish(c, status, j);
		json_decref(j);
	}
	ehr_buf_free_secure(&all);
	return rc;
}

/* To a file: the body is streamed to FILE.part (tmp, open as s->fd) and
 * renamed to FILE only after a 200 with the whole record. s->fd is closed
 * here once the file is complete (then -1). Returns the exit status. */
static int get_to_file(struct ehr_client *c, const char *path, const char *const *hdrs, const char *tmp,
                       const char *out, struct bar *b, struct sink *s)
{
	struct ehr_buf errbody = EHR_BUF_INIT(1 << 20);
	long status = 0;
	int rc = 1;

	if (ehr_client_request(c, &status, NULL, "GET", path, hdrs, NULL, 0, on_data, s) < 0) {
		if (b->drawn)
			fputc('\n', stderr);
		fprintf(stderr, "ehrctl record get: %s\n",
		        s->err ? strerror(s->err) : ehr_client_last_error(c));
		unlink(tmp);
		goto out;
	}
	if (b->drawn)
		bar_draw(b, s->n, s->n, true);
	if (status != 200) {
		json_t *j = NULL;
		ehr_file_read(&errbody, tmp, 1 << 20);
		unlink(tmp);
		ehr_json_parse(&j, errbody.data, errbody.len, 1 << 20, 16);
		rc = ctl_finish(c, status, j);
		json_decref(j);
		goto out;
	}
	{
		/* A streamed reply has no Content-Length: the gateway's X-EHR-Size
		 * tells a complete record from a cut one. */
		char v[32];
		uint64_t want = 0;
		if (ehr_client_response_header(c, "X-EHR-Size", v, sizeof(v)) == 0 &&
		    (ehr_parse_u64(&want, v, UINT64_MAX) < 0 || want != s->n)) {
			fprintf(stderr,
			        "ehrctl record get: received %llu bytes, the record has %s: discarded\n",
			        (unsigned long long)s->n, v);
			unlink(tmp);
			goto out;
		}
	}
	if (fsync(s->fd) != 0 || close(s->fd) != 0 || rename(tmp, out) != 0) {
		fprintf(stderr, "ehrctl record get: writing %s: %s\n", out, strerror(errno));
		s->fd = -1;
		unlink(tmp);
		goto out;
	}
	s->fd = -1;
	fprintf(stderr, "ehrctl record get: %llu bytes written to %s\n", (unsigned long long)s->n, out);
	rc = 0;
out:
	ehr_buf_free(&errbody);
	return rc;
}

static int cmd_get(int argc, char **argv)
{
	const char *out = NULL, *rid;
	struct ehr_client *c = NULL;
	struct ehr_buf path = EHR_BUF_INIT(256), tmp = EHR_BUF_INIT(4096);
	struct ehr_buf hbg = EHR_BUF_INIT(1024), hpurpose = EHR_BUF_INIT(256);
	static const struct option opts[] = {
		{ "break-glass", required_argument, NULL, 'B' },
		{ "purpose", required_argument, NULL, 'P' },
		{ "receipt", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *receipt = NULL;
	char rurl[64];
	const char *hdrs[3] = { NULL, NULL, NULL };
	size_t nhdrs = 0;
	struct sink s = { .fd = -1 };
	struct bar b;
	int ch, rc = 1;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'o': out = optarg; break;
		case 'B':
			/* A header value: no control characters (no header injection). */
			if (!header_value_ok(optarg) ||
			    ehr_buf_printf(&hbg, "X-EHR-Break-Glass: %s", optarg) < 0) {
				fprintf(stderr, "ehrctl record get: --break-glass must be 1 to 900 printable "
				                "characters\n");
				return 2;
			}
			hdrs[nhdrs++] = ehr_buf_cstr(&hbg);
			break;
		case 'P':
			if (!header_value_ok(optarg) ||
			    ehr_buf_printf(&hpurpose, "X-EHR-Purpose: %s", optarg) < 0) {
				fprintf(stderr,
				        "ehrctl record get: --purpose must be printable characters\n");
				return 2;
			}
			hdrs[nhdrs++] = ehr_buf_cstr(&hpurpose);
			break;
		case 'r': receipt = optarg; break;
		case 'h': usage(); return 0;
		default: return usage();
		}
	}
	if (argc - optind != 1)
		return usage();
	rid = argv[optind];
	if (ctl_open(&c) != 0)
		return 1;
	if (ehr_buf_printf(&path, "/v1/records/%s", rid) < 0)
		goto out;
	/* The body goes to FILE.part, renamed only after a 200: a refused or
	 * failed read never leaves a file that looks like the record. */
	if (out && strcmp(out, "-") != 0) {
		if (ehr_buf_printf(&tmp, "%s.part", out) < 0)
			goto out;
		s.fd = open(ehr_buf_cstr(&tmp), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (s.fd < 0) {
			fprintf(stderr, "ehrctl record get: %s: %s\n", ehr_buf_cstr(&tmp), strerror(errno));
			goto out;
		}
	} else {
		s.fd = 1;
	}
	bar_start(c, &b, "download");
	if (s.fd == 1)
		rc = get_to_stdout(c, ehr_buf_cstr(&path), nhdrs ? hdrs : NULL, &b, &s);
	else
		rc = get_to_file(c, ehr_buf_cstr(&path), nhdrs ? hdrs : NULL, ehr_buf_cstr(&tmp), out, &b,
		                 &s);
	/* the ehr.read entry's receipt, named by the reply's X-EHR-Receipt */
	if (rc == 0 && receipt)
		rc = save_receipt(
		        c,
		        ehr_client_response_header(c, "X-EHR-Receipt", rurl, sizeof(rurl)) == 0 ? rurl : NULL,
		        receipt);
out:
	if (s.fd > 2)
		close(s.fd);
	ehr_buf_free(&path);
	ehr_buf_free(&tmp);
	ehr_buf_free(&hbg);
	ehr_buf_free(&hpurpose);
	ehr_client_free(c);
	return rc;
}

/* ------------------------------------------------------------------ list */

static int cmd_list(int argc, char **argv)
{
	struct ehr_client *c = NULL;
	struct ehr_buf path = EHR_BUF_INIT(256);
	json_t *j = NULL;
	long status = 0;
	int rc = 1;

	if (argc != 2 || argv[1][0] == '-')
		return usage();
	if (ctl_open(&c) != 0)
		return 1;
	if (ehr_buf_printf(&path, "/v1/patients/%s/records", argv[1]) == 0 &&
	    ehr_client_json(c, &status, &j, "GET", ehr_buf_cstr(&path), NULL) == 0)
		rc = ctl_finish(c, status, j);
	else
		fprintf(stderr, "ehrctl record list: %s\n", ehr_client_last_error(c));
	json_decref(j);
	ehr_buf_free(&path);
	ehr_client_free(c);
	return rc;
}

/* ----------------------------------------------------------------- erase */

static int cmd_erase(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "basis", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ehr_client *c = NULL;
	struct ehr_buf path = EHR_BUF_INIT(256);
	const char *basis = NULL;
	json_t *j = NULL, *body = NULL;
	long status = 0;
	int ch, rc = 1;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'b': basis = optarg; break;
		case 'h': usage(); return 0;
		default: return usage();
		}
	}
	if (basis == NULL || optind != argc - 1 || argv[optind][0] == '-')
		return usage();
	if (ctl_open(&c) != 0)
		return 1;
	body = json_pack("{s:s}", "basis", basis);
	if (body != NULL && ehr_buf_printf(&path, "/v1/records/%s/erase", argv[optind]) == 0 &&
	    ehr_client_json(c, &status, &j, "POST", ehr_buf_cstr(&path), body) == 0)
		rc = ctl_finish(c, status, j);
	else
		fprintf(stderr, "ehrctl record erase: %s\n", ehr_client_last_error(c));
	json_decref(body);
	json_decref(j);
	ehr_buf_free(&path);
	ehr_client_free(c);
	return rc;
}

int ctl_cmd_record(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	if (ctl_wants_help(argc, argv)) { /* before the profile: help needs none */
		usage_to(stdout);
		return 0;
	}
	if (strcmp(argv[1], "put") == 0)
		return cmd_put(argc - 1, argv + 1);
	if (strcmp(argv[1], "get") == 0)
		return cmd_get(argc - 1, argv + 1);
	if (strcmp(argv[1], "list") == 0)
		return cmd_list(argc - 1, argv + 1);
	if (strcmp(argv[1], "erase") == 0)
		return cmd_erase(argc - 1, argv + 1);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage();
		return 0;
	}
	return usage();
}
