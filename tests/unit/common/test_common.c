/* test_common.c - buffers, cursors, codecs, checked sizes, JSON limits. */
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/common.h"
#include "common/db.h"
#include "tests/harness/harness.h"

static void test_buf_bounds(void)
{
	struct ehr_buf b = EHR_BUF_INIT(8);

	EHR_ASSERT_OK(ehr_buf_append(&b, "12345678", 8));
	CU_ASSERT_EQUAL(b.len, 8);
	CU_ASSERT_STRING_EQUAL(ehr_buf_cstr(&b), "12345678");
	EHR_ASSERT_ERR(ehr_buf_append(&b, "9", 1), EHR_ERR_TOO_LARGE);
	CU_ASSERT_EQUAL(b.len, 8); /* a refused append changes nothing */
	EHR_ASSERT_ERR(ehr_buf_printf(&b, "%d", 1), EHR_ERR_TOO_LARGE);
	ehr_buf_reset(&b);
	EHR_ASSERT_OK(ehr_buf_printf(&b, "%s-%d", "ab", 42));
	CU_ASSERT_STRING_EQUAL(ehr_buf_cstr(&b), "ab-42");
	EHR_ASSERT_ERR(ehr_buf_reserve(&b, SIZE_MAX), EHR_ERR_OVERFLOW);
	ehr_buf_free_secure(&b);
	CU_ASSERT_PTR_NULL(b.data);
	CU_ASSERT_STRING_EQUAL(ehr_buf_cstr(&b), "");
}

static void test_buf_be(void)
{
	struct ehr_buf b = EHR_BUF_INIT(64);
	struct ehr_cursor c;
	uint64_t v64;
	uint32_t v32;
	uint16_t v16;
	uint8_t v8;

	EHR_ASSERT_OK(ehr_buf_append_u8(&b, 0xab));
	EHR_ASSERT_OK(ehr_buf_append_be16(&b, 0x1234));
	EHR_ASSERT_OK(ehr_buf_append_be32(&b, 0xdeadbeef));
	EHR_ASSERT_OK(ehr_buf_append_be64(&b, 0x0102030405060708ULL));
	CU_ASSERT_EQUAL(b.len, 15);
	CU_ASSERT_EQUAL(b.data[1], 0x12);
	ehr_cursor_init(&c, b.data, b.len);
	EHR_ASSERT_OK(ehr_cursor_read_u8(&c, &v8));
	EHR_ASSERT_OK(ehr_cursor_read_be16(&c, &v16));
	EHR_ASSERT_OK(ehr_cursor_read_be32(&c, &v32));
	EHR_ASSERT_OK(ehr_cursor_read_be64(&c, &v64));
	CU_ASSERT_EQUAL(v8, 0xab);
	CU_ASSERT_EQUAL(v16, 0x1234);
	CU_ASSERT_EQUAL(v32, 0xdeadbeef);
	CU_ASSERT_EQUAL(v64, 0x0102030405060708ULL);
	CU_ASSERT_EQUAL(ehr_cursor_remaining(&c), 0);
	EHR_ASSERT_ERR(ehr_cursor_read_u8(&c, &v8), EHR_ERR_PARSE);
	EHR_ASSERT_ERR(ehr_cursor_skip(&c, SIZE_MAX), EHR_ERR_PARSE);
	ehr_buf_free(&b);
}

static void test_sizes(void)
{
	size_t r;

	EHR_ASSERT_OK(ehr_size_add(&r, 1, 2));
	CU_ASSERT_EQUAL(r, 3);
	EHR_ASSERT_ERR(ehr_size_add(&r, SIZE_MAX, 1), EHR_ERR_OVERFLOW);
	EHR_ASSERT_OK(ehr_size_mul(&r, 1u << 20, 1u << 10));
	CU_ASSERT_EQUAL(r, (size_t)1 << 30);
	EHR_ASSERT_ERR(ehr_size_mul(&r, SIZE_MAX / 2, 3), EHR_ERR_OVERFLOW);
}

/* RFC 4648 §10 test vectors. */
static void test_base64(void)
{
	static const char *plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *std[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
	static const char *url[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy" };

	for (size_t i = 0; i < EHR_ARRAY_LEN(plain); i++) {
		struct ehr_buf e = EHR_BUF_INIT(64), d = EHR_BUF_INIT(64);
		EHR_ASSERT_OK(ehr_b64_encode(&e, plain[i], strlen(plain[i])));
		CU_ASSERT_STRING_EQUAL(ehr_buf_cstr(&e), std[i]);
		EHR_ASSERT_OK(ehr_b64_decode(&d, std[i], strlen(std[i])));
		CU_ASSERT_STRING_EQUAL(ehr_buf_cstr(&d), plain[i]);
		ehr_buf_reset(&e);
		ehr_buf_reset(&d);
		EHR_ASSERT_OK(ehr_b64url_encode(&e, plain[i], strlen(plain[i])));
		CU_ASSERT_STRING_EQUAL(ehr_buf_cstr(&e), url[i]);
		EHR_ASSERT_OK(ehr_b64url_decode(&d, url[i], strlen(url[i])));
		CU_ASSERT_STRING_EQUAL(ehr_buf_cstr(&d), plain[i]);
		ehr_buf_free(&e);
		ehr_buf_free(&d);
	}
	struct ehr_buf d = EHR_BUF_INIT(64);
	EHR_ASSERT_ERR(ehr_b64_decode(&d, "Zg=", 3), EHR_ERR_PARSE);      /* bad length */
	EHR_ASSERT_ERR(ehr_b64_decode(&d, "Zh==", 4), EHR_ERR_PARSE);     /* non-zero trailing bits */
	EHR_ASSERT_ERR(ehr_b64_decode(&d, "Z!==", 4), EHR_ERR_PARSE);     /* bad character */
	EHR_ASSERT_ERR(ehr_b64url_decode(&d, "Zm9v+", 5), EHR_ERR_PARSE); /* '+' not in url alphabet */
	EHR_ASSERT_ERR(ehr_b64url_decode(&d, "Z", 1), EHR_ERR_PARSE);     /* impossible length */
	ehr_buf_free(&d);
}

static void test_hex_and_numbers(void)
{
	struct ehr_buf e = EHR_BUF_INIT(64);
	uint8_t out[3];
	uint64_t u;
	int64_t i;

	EHR_ASSERT_OK(ehr_hex_encode(&e, "\x00\xff\x10", 3));
	CU_ASSERT_STRING_EQUAL(ehr_buf_cstr(&e), "00ff10");
	EHR_ASSERT_OK(ehr_hex_decode(out, 3, "00FF10", 6));
	CU_ASSERT_EQUAL(memcmp(out, "\x00\xff\x10", 3), 0); /* not secret */
	EHR_ASSERT_ERR(ehr_hex_decode(out, 3, "00ff1", 5), EHR_ERR_PARSE);
	EHR_ASSERT_ERR(ehr_hex_decode(out, 3, "00ff1g", 6), EHR_ERR_PARSE);
	ehr_buf_free(&e);

	EHR_ASSERT_OK(ehr_parse_u64(&u, "18446744073709551615", UINT64_MAX));
	CU_ASSERT_EQUAL(u, UINT64_MAX);
	EHR_ASSERT_ERR(ehr_parse_u64(&u, "18446744073709551616", UINT64_MAX), EHR_ERR_TOO_LARGE);
	EHR_ASSERT_ERR(ehr_parse_u64(&u, "100", 99), EHR_ERR_TOO_LARGE);
	EHR_ASSERT_ERR(ehr_parse_u64(&u, "-1", 99), EHR_ERR_PARSE);
	EHR_ASSERT_ERR(ehr_parse_u64(&u, "", 99), EHR_ERR_PARSE);
	EHR_ASSERT_ERR(ehr_parse_u64(&u, "12a", 999), EHR_ERR_PARSE);
	EHR_ASSERT_OK(ehr_parse_i64(&i, "-5", -10, 10));
	CU_ASSERT_EQUAL(i, -5);
	EHR_ASSERT_ERR(ehr_parse_i64(&i, "11", -10, 10), EHR_ERR_TOO_LARGE);
}

/* Config lists: items between separators, blanks around them dropped. */
static void test_list_next(void)
{
	const char *cur = " , https://a x y ,,\tb ,", *p;
	size_t len = 0;

	p = ehr_list_next(&cur, ",", &len);
	CU_ASSERT_FATAL(p != NULL);
	CU_ASSERT_EQUAL(len, 13);
	CU_ASSERT_EQUAL(strncmp(p, "https://a x y", len), 0);
	p = ehr_list_next(&cur, ",", &len);
	CU_ASSERT_FATAL(p != NULL);
	CU_ASSERT_EQUAL(len, 1);
	CU_ASSERT_EQUAL(*p, 'b');
	CU_ASSERT_PTR_NULL(ehr_list_next(&cur, ",", &len));
	CU_ASSERT_PTR_NULL(ehr_list_next(&cur, ",", &len)); /* stays at the end */
	cur = "a=h:1 b=h:2,c=h:3";
	CU_ASSERT_PTR_NOT_NULL(ehr_list_next(&cur, ", \t", &len));
	CU_ASSERT_EQUAL(len, 5);
	CU_ASSERT_PTR_NOT_NULL(ehr_list_next(&cur, ", \t", &len));
	CU_ASSERT_PTR_NOT_NULL(ehr_list_next(&cur, ", \t", &len));
	CU_ASSERT_PTR_NULL(ehr_list_next(&cur, ", \t", &len));
	cur = NULL;
	CU_ASSERT_PTR_NULL(ehr_list_next(&cur, ",", &len));
}

/* The one hex encoder: exact fit, one byte short, appended to a buffer at
 * its limit, and the bytea parameter form built on it. */
static void test_hex_fixed_and_bytea(void)
{
	char out[7], small[6], bytea[EHR_DB_BYTEA_HEX_LEN(3)];
	struct ehr_buf b = EHR_BUF_INIT(8);

	EHR_ASSERT_OK(ehr_hex_encode_fixed(out, sizeof(out), "\x00\xff\x10", 3));
	CU_ASSERT_STRING_EQUAL(out, "00ff10");
	EHR_ASSERT_ERR(ehr_hex_encode_fixed(small, sizeof(small), "\x00\xff\x10", 3), EHR_ERR_TOO_LARGE);
	CU_ASSERT_STRING_EQUAL(small, "");
	EHR_ASSERT_OK(ehr_hex_encode_fixed(out, 1, "", 0));
	CU_ASSERT_STRING_EQUAL(out, "");
	EHR_ASSERT_ERR(ehr_hex_encode_fixed(out, 0, "", 0), EHR_ERR_TOO_LARGE);
	EHR_ASSERT_ERR(ehr_hex_encode_fixed(out, sizeof(out), "", SIZE_MAX), EHR_ERR_TOO_LARGE);

	/* appending: "ab" + 3 bytes = 8 characters, exactly the buffer's max */
	EHR_ASSERT_OK(ehr_buf_append_str(&b, "ab"));
	EHR_ASSERT_OK(ehr_hex_encode(&b, "\x01\x23\xef", 3));
	CU_ASSERT_STRING_EQUAL(ehr_buf_cstr(&b), "ab0123ef");
	EHR_ASSERT_ERR(ehr_hex_encode(&b, "\x00", 1), EHR_ERR_TOO_LARGE);
	CU_ASSERT_EQUAL(b.len, 8);
	ehr_buf_free(&b);

	EHR_ASSERT_OK(ehr_db_bytea_param(bytea, sizeof(bytea), "\x00\xff\x10", 3));
	CU_ASSERT_STRING_EQUAL(bytea, "\\x00ff10");
	EHR_ASSERT_ERR(ehr_db_bytea_param(bytea, sizeof(bytea) - 1, "\x00\xff\x10", 3), EHR_ERR_TOO_LARGE);
	EHR_ASSERT_ERR(ehr_db_bytea_param(bytea, 2, "", 0), EHR_ERR_TOO_LARGE);
}

/* One SQLSTATE map for every caller. */
static void test_sqlstate_map(void)
{
	CU_ASSERT_EQUAL(ehr_db_sqlstate_err("23505", true), EHR_ERR_CONFLICT);
	CU_ASSERT_EQUAL(ehr_db_sqlstate_err("42501", true), EHR_ERR_FORBIDDEN);
	CU_ASSERT_EQUAL(ehr_db_sqlstate_err("P0001", true), EHR_ERR_FORBIDDEN);
	CU_ASSERT_EQUAL(ehr_db_sqlstate_err("57014", true), EHR_ERR_TIMEOUT);
	CU_ASSERT_EQUAL(ehr_db_sqlstate_err("23503", true), EHR_ERR_DB);
	CU_ASSERT_EQUAL(ehr_db_sqlstate_err(NULL, true), EHR_ERR_DB);
	CU_ASSERT_EQUAL(ehr_db_sqlstate_err("23505", false), EHR_ERR_UNAVAILABLE);
	CU_ASSERT_EQUAL(ehr_db_rows(NULL), 0);
	CU_ASSERT_TRUE(ehr_db_is_null(NULL, 0, 0));
	CU_ASSERT_STRING_EQUAL(ehr_db_value(NULL, 0, 0), "");
}

static void test_json_limits(void)
{
	json_t *v = NULL;
	const char *s;
	int64_t n;
	char deep[64];

	EHR_ASSERT_OK(ehr_json_parse(&v, "{\"a\":\"x\",\"n\":7}", 15, 1024, 4));
	EHR_ASSERT_OK(ehr_json_get_str(v, "a", &s, 10));
	CU_ASSERT_STRING_EQUAL(s, "x");
	EHR_ASSERT_ERR(ehr_json_get_str(v, "missing", &s, 10), EHR_ERR_INVAL);
	EHR_ASSERT_ERR(ehr_json_get_str(v, "n", &s, 10), EHR_ERR_INVAL);
	EHR_ASSERT_OK(ehr_json_get_int(v, "n", &n, 0, 10));
	CU_ASSERT_EQUAL(n, 7);
	EHR_ASSERT_ERR(ehr_json_get_int(v, "n", &n, 0, 5), EHR_ERR_INVAL);
	json_decref(v);

	memset(deep, '[', 20);
	memset(deep + 20, ']', 20);
	EHR_ASSERT_ERR(ehr_json_parse(&v, deep, 40, 1024, 16), EHR_ERR_TOO_LARGE);
	EHR_ASSERT_OK(ehr_json_parse(&v, deep, 40, 1024, 20));
	json_decref(v);
	/* brackets inside strings do not count as depth */
	EHR_ASSERT_OK(ehr_json_parse(&v, "[\"[[[[[[\"]", 10, 1024, 2));
	json_decref(v);
	EHR_ASSERT_ERR(ehr_json_parse(&v, "{\"a\":1,\"a\":2}", 13, 1024, 4), EHR_ERR_PARSE);
	EHR_ASSERT_ERR(ehr_json_parse(&v, "{} {}", 5, 1024, 4), EHR_ERR_PARSE);
	EHR_ASSERT_ERR(ehr_json_parse(&v, "{\"a\":1}", 7, 6, 4), EHR_ERR_TOO_LARGE);
	EHR_ASSERT_ERR(ehr_json_parse(&v, "", 0, 6, 4), EHR_ERR_PARSE);
	CU_ASSERT_PTR_NULL(v);
}

static void test_atomic_file(void)
{
	char dir[] = "/tmp/ehrtest.XXXXXX";
	struct ehr_buf path = EHR_BUF_INIT(256), got = EHR_BUF_INIT(64);

	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	EHR_ASSERT_OK(ehr_buf_printf(&path, "%s/key", dir));
	EHR_ASSERT_OK(ehr_file_write_atomic(ehr_buf_cstr(&path), "secret", 6, 0600, true));
	EHR_ASSERT_ERR(ehr_file_write_atomic(ehr_buf_cstr(&path), "other", 5, 0600, true), EHR_ERR_EXISTS);
	EHR_ASSERT_OK(ehr_file_read(&got, ehr_buf_cstr(&path), 64));
	CU_ASSERT_STRING_EQUAL(ehr_buf_cstr(&got), "secret");
	ehr_buf_reset(&got);
	EHR_ASSERT_ERR(ehr_file_read(&got, ehr_buf_cstr(&path), 3), EHR_ERR_TOO_LARGE);
	unlink(ehr_buf_cstr(&path));
	rmdir(dir);
	ehr_buf_free(&path);
	ehr_buf_free(&got);
}

/* ehr_fmt / ehr_str_copy: fits, exact fit, one byte over, NUL, cap 0. */
static void test_fmt_bounded(void)
{
	char d[6];

	EHR_ASSERT_OK(ehr_fmt(d, sizeof(d), "%s-%d", "ab", 1));
	CU_ASSERT_STRING_EQUAL(d, "ab-1");
	EHR_ASSERT_OK(ehr_fmt(d, sizeof(d), "%d", 12345)); /* exact fit: 5 + NUL */
	CU_ASSERT_STRING_EQUAL(d, "12345");
	EHR_ASSERT_ERR(ehr_fmt(d, sizeof(d), "%d", 123456), EHR_ERR_TOO_LARGE); /* one over */
	CU_ASSERT_STRING_EQUAL(d, "");                                          /* never cut */
	EHR_ASSERT_OK(ehr_fmt(d, sizeof(d), "%s", ""));
	CU_ASSERT_STRING_EQUAL(d, "");
	EHR_ASSERT_ERR(ehr_fmt(d, 0, "x"), EHR_ERR_INVAL);

	EHR_ASSERT_OK(ehr_str_copy(d, sizeof(d), "abcd"));
	CU_ASSERT_STRING_EQUAL(d, "abcd");
	EHR_ASSERT_OK(ehr_str_copy(d, sizeof(d), "abcde")); /* exact fit */
	CU_ASSERT_STRING_EQUAL(d, "abcde");
	EHR_ASSERT_ERR(ehr_str_copy(d, sizeof(d), "abcdef"), EHR_ERR_TOO_LARGE);
	CU_ASSERT_STRING_EQUAL(d, "");
	CU_ASSERT_EQUAL(d[0], '\0');
	EHR_ASSERT_OK(ehr_str_copy(d, sizeof(d), NULL));
	CU_ASSERT_STRING_EQUAL(d, "");
	EHR_ASSERT_OK(ehr_str_copy(d, sizeof(d), "a\0bcdefgh")); /* stops at the NUL */
	CU_ASSERT_STRING_EQUAL(d, "a");
	EHR_ASSERT_ERR(ehr_str_copy(d, 0, "a"), EHR_ERR_INVAL);
}

static int ensure_fails(int v)
{
	ENSURE(v > 10, EHR_ERR_INVAL);
	return 0;
}

static int ensure_goto_fails(void)
{
	int err = 0;

	ENSURE_GOTO(1 + 1 == 3, EHR_ERR_AUTH);
out:
	return err;
}

/* ENSURE: the public message is plain; file:line: expr (relative path)
 * is the log detail only. Wrapping keeps the detail. */
static void test_error_public_and_detail(void)
{
	ehr_error_clear();
	EHR_ASSERT_ERR(ensure_fails(1), EHR_ERR_INVAL);
	CU_ASSERT_STRING_EQUAL(ehr_error_msg(), "invalid request");
	CU_ASSERT_PTR_NULL(strstr(ehr_error_msg(), ".c:"));
	CU_ASSERT_PTR_NOT_NULL(strstr(ehr_error_detail(), "tests/unit/common/test_common.c:"));
	CU_ASSERT_PTR_NOT_NULL(strstr(ehr_error_detail(), "v > 10"));
	CU_ASSERT_NOT_EQUAL(ehr_error_detail()[0], '/');
	CU_ASSERT_PTR_NULL(strstr(ehr_error_detail(), "[/")); /* never an absolute path */

	EHR_ASSERT_ERR(ehr_error_wrap(EHR_ERR_AUTH, "JWS %s", "rejected"), EHR_ERR_AUTH);
	CU_ASSERT_STRING_EQUAL(ehr_error_msg(), "JWS rejected: invalid request");
	CU_ASSERT_PTR_NOT_NULL(strstr(ehr_error_detail(), "v > 10"));

	EHR_ASSERT_ERR(ensure_goto_fails(), EHR_ERR_AUTH);
	CU_ASSERT_STRING_EQUAL(ehr_error_msg(), "authentication failed");
	CU_ASSERT_PTR_NOT_NULL(strstr(ehr_error_detail(), "1 + 1 == 3"));

	/* a plain set clears the detail; set_detail keeps library text apart */
	EHR_ASSERT_ERR(ehr_error_set(EHR_ERR_NOT_FOUND, "no such patient"), EHR_ERR_NOT_FOUND);
	CU_ASSERT_STRING_EQUAL(ehr_error_detail(), "no such patient");
	EHR_ASSERT_ERR(ehr_error_set_detail(EHR_ERR_DB, "database error", "libpq: %s", "boom"), EHR_ERR_DB);
	CU_ASSERT_STRING_EQUAL(ehr_error_msg(), "database error");
	CU_ASSERT_STRING_EQUAL(ehr_error_detail(), "database error [libpq: boom]");
	{
		struct ehr_error_saved sv;
		ehr_error_save(&sv);
		ehr_error_set(EHR_ERR_INVAL, "other");
		ehr_error_restore(&sv);
		CU_ASSERT_STRING_EQUAL(ehr_error_detail(), "database error [libpq: boom]");
	}
	ehr_error_clear();
	CU_ASSERT_STRING_EQUAL(ehr_error_msg(), "");
	CU_ASSERT_STRING_EQUAL(ehr_error_detail(), "");
	CU_ASSERT_STRING_EQUAL(ehr_err_public(EHR_ERR_TOO_LARGE), "too large");
	CU_ASSERT_STRING_EQUAL(ehr_err_name(EHR_ERR_TOO_LARGE), "too_large");
}

static void register_suites(void)
{
	EHR_ADD_SUITE("common", NULL, NULL, { "buffer bounds", test_buf_bounds },
	              { "big-endian buffer and cursor", test_buf_be },
	              { "overflow-checked sizes", test_sizes }, { "base64 RFC 4648 vectors", test_base64 },
	              { "hex and decimal parsing", test_hex_and_numbers },
	              { "config list items", test_list_next },
	              { "fixed-buffer hex and bytea parameters", test_hex_fixed_and_bytea },
	              { "SQLSTATE map", test_sqlstate_map }, { "JSON limits", test_json_limits },
	              { "atomic exclusive file write", test_atomic_file },
	              { "bounded formatting refuses to truncate", test_fmt_bounded },
	              { "error: public message apart from the log detail", test_error_public_and_detail });
}

EHR_TEST_MAIN(register_suites)
