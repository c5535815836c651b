/*
 * test_jcs.c - RFC 8785 canonicalisation against published vectors.
 *
 * Sources:
 *  - RFC 8785 Appendix B (number serialisation samples, IEEE-754 hex ->
 *    expected string), also listed in the RFC's reference test data,
 *    https://github.com/cyberphone/json-canonicalization/tree/master/testdata
 *    (README "Sample lines").
 *  - The same repository's testdata/input/NAME.json -> testdata/output/NAME.json
 *    (values.json, weird.json, structures.json, french.json): RFC 8785
 *    §3.2.2 (string escaping and numbers) and §3.2.3 (sorting by UTF-16).
 *  - es6_numbers.txt: 2500 doubles with the string Node's
 *    Number.prototype.toString gives (gen_es6_numbers.js).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "tests/harness/harness.h"

#ifndef POLICY_TEST_DIR
#error "POLICY_TEST_DIR must be defined"
#endif

static double hex_double(const char *hex)
{
	uint8_t b[8];
	uint64_t u = 0;
	double d;

	CU_ASSERT_FATAL(ehr_hex_decode(b, 8, hex, 16) == 0);
	for (int i = 0; i < 8; i++)
		u = (u << 8) | b[i];
	memcpy(&d, &u, sizeof(d));
	return d;
}

/* RFC 8785 Appendix B. */
static void test_rfc8785_appendix_b(void)
{
	static const struct {
		const char *hex, *want;
	} v[] = {
		{ "0000000000000000", "0" },
		{ "8000000000000000", "0" },
		{ "0000000000000001", "5e-324" },
		{ "8000000000000001", "-5e-324" },
		{ "7fefffffffffffff", "1.7976931348623157e+308" },
		{ "ffefffffffffffff", "-1.7976931348623157e+308" },
		{ "4340000000000000", "9007199254740992" },
		{ "c340000000000000", "-9007199254740992" },
		{ "4430000000000000", "295147905179352830000" },
		{ "44b52d02c7e14af5", "9.999999999999997e+22" },
		{ "44b52d02c7e14af6", "1e+23" },
		{ "44b52d02c7e14af7", "1.0000000000000001e+23" },
		{ "444b1ae4d6e2ef4e", "999999999999999700000" },
		{ "444b1ae4d6e2ef4f", "999999999999999900000" },
		{ "444b1ae4d6e2ef50", "1e+21" },
		{ "3eb0c6f7a0b5ed8c", "9.999999999999997e-7" },
		{ "3eb0c6f7a0b5ed8d", "0.000001" },
		{ "41b3de4355555553", "333333333.3333332" },
		{ "41b3de4355555554", "333333333.33333325" },
		{ "41b3de4355555555", "333333333.3333333" },
		{ "41b3de4355555556", "333333333.3333334" },
		{ "41b3de4355555557", "333333333.33333343" },
		{ "becbf647612f3696", "-0.0000033333333333333333" },
		{ "43143ff3c1cb0959", "1424953923781206.2" },
		{ "4340000000000001", "9007199254740994" },
		{ "4340000000000002", "9007199254740996" },
	};
	char out[JCS_NUMBER_MAX];

	for (size_t i = 0; i < EHR_ARRAY_LEN(v); i++) {
		EHR_ASSERT_OK(jcs_number(out, hex_double(v[i].hex)));
		if (strcmp(out, v[i].want) != 0)
			fprintf(stderr, "\n  %s: got %s want %s\n", v[i].hex, out, v[i].want);
		CU_ASSERT_STRING_EQUAL(out, v[i].want);
	}
	/* NaN and Infinity have no JSON form (RFC 8785 §3.2.2.3). */
	EHR_ASSERT_ERR(jcs_number(out, hex_double("7fffffffffffffff")), EHR_ERR_INVAL);
	EHR_ASSERT_ERR(jcs_number(out, hex_double("7ff0000000000000")), EHR_ERR_INVAL);
	EHR_ASSERT_ERR(jcs_number(out, -INFINITY), EHR_ERR_INVAL);
}

static void test_es6_number_file(void)
{
	char path[512], line[128], out[JCS_NUMBER_MAX];
	FILE *f;
	unsigned n = 0, bad = 0;

	snprintf(path, sizeof(path), "%s/es6_numbers.txt", POLICY_TEST_DIR);
	f = fopen(path, "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	while (fgets(line, sizeof(line), f)) {
		char *comma = strchr(line, ',');
		size_t l;
		if (line[0] == '#' || comma == NULL || comma - line != 16)
			continue;
		*comma = '\0';
		l = strlen(comma + 1);
		while (l > 0 && (comma[l] == '\n' || comma[l] == '\r'))
			comma[l--] = '\0';
		if (jcs_number(out, hex_double(line)) != 0 || strcmp(out, comma + 1) != 0) {
			if (bad++ < 5)
				fprintf(stderr, "\n  %s: got %s want %s\n", line, out, comma + 1);
		}
		n++;
	}
	fclose(f);
	CU_ASSERT(n >= 2500);
	CU_ASSERT_EQUAL(bad, 0);
}

static void check_canon(const char *in, const char *want)
{
	json_t *v = NULL;
	struct ehr_buf out = EHR_BUF_INIT(1 << 16);

	EHR_ASSERT_OK(ehr_json_parse(&v, in, strlen(in), 1 << 16, EHR_JSON_MAX_DEPTH));
	CU_ASSERT_PTR_NOT_NULL_FATAL(v);
	EHR_ASSERT_OK(jcs_canonicalize(&out, v));
	if (strcmp(ehr_buf_cstr(&out), want) != 0)
		fprintf(stderr, "\n  got  %s\n  want %s\n", ehr_buf_cstr(&out), want);
	CU_ASSERT_STRING_EQUAL(ehr_buf_cstr(&out), want);
	json_decref(v);
	ehr_buf_free(&out);
}

/* cyberphone/json-canonicalization testdata/{input,output}/values.json */
static void test_values(void)
{
	check_canon(
	        "{\n  \"numbers\": [1E30, 4.50, 333333333.33333329, 2e-3, 0.000000000000000000000000001],\n"
	        "  \"escaping\": \"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\",\n"
	        "  \"literals\": [null, true, false]\n}",
	        "{\"escaping\":\"\xe2\x82\xac$\\u000f\\nA'B\\\"\\\\\\\\\\\"/"
	        "\",\"literals\":[null,true,false],"
	        "\"numbers\":[1e+30,4.5,333333333.3333333,0.002,1e-27]}");
}

/* testdata weird.json: sorting by UTF-16 code units puts U+1F602 (a
 * surrogate pair, 0xD83D...) before U+FB33, unlike code-point order. */
static void test_weird(void)
{
	check_canon(
	        "{\n  \"\\u20ac\": \"Euro Sign\",\n  \"1\": \"One\",\n  \"\\u0080\": \"Control\\u007f\",\n"
	        "  \"\\ud83d\\ude02\": \"Smiley\",\n  \"\\u00f6\": \"Latin Small Letter O With Diaeresis\",\n"
	        "  \"\\ufb33\": \"Hebrew Letter Dalet With Dagesh\",\n  \"</script>\": \"Browser "
	        "Challenge\"\n}\n",
	        "{\"1\":\"One\",\"</script>\":\"Browser Challenge\",\"\xc2\x80\":\"Control\x7f\","
	        "\"\xc3\xb6\":\"Latin Small Letter O With Diaeresis\",\"\xe2\x82\xac\":\"Euro Sign\","
	        "\"\xf0\x9f\x98\x82\":\"Smiley\",\"\xef\xac\xb3\":\"Hebrew Letter Dalet With Dagesh\"}");
}

/* testdata structures.json: recursion, empty key, 56.0 -> 56. */
static void test_structures(void)
{
	check_canon("{\n  \"1\": {\"f\": {\"f\": \"hi\",\"F\": 5} ,\"\\n\": 56.0},\n  \"10\": { },\n  \"\": "
	            "\"empty\",\n"
	            "  \"a\": { },\n  \"111\": [ { } ],\n  \"A\": { }\n}",
	            "{\"\":\"empty\",\"1\":{\"\\n\":56,\"f\":{\"F\":5,\"f\":\"hi\"}},\"10\":{},\"111\":[{}],"
	            "\"A\":{},\"a\":{}}");
}

/* testdata french.json: no locale collation. */
static void test_french(void)
{
	check_canon(
	        "{\n  \"peach\": \"This sorting order\",\n  \"p\xc3\xa9\x63h\xc3\xa9\": \"is wrong according "
	        "to French\",\n"
	        "  \"p\xc3\xaa\x63he\": \"but canonicalization MUST\",\n  \"sin\":   \"ingnore locale\"\n}\n",
	        "{\"peach\":\"This sorting order\",\"p\xc3\xa9\x63h\xc3\xa9\":\"is wrong according to "
	        "French\","
	        "\"p\xc3\xaa\x63he\":\"but canonicalization MUST\",\"sin\":\"ingnore locale\"}");
}

/* Our own edge cases: control escapes, U+E000 vs U+10000, integers. */
static void test_edges(void)
{
	json_t *v;
	struct ehr_buf out = EHR_BUF_INIT(256);

	check_canon("[\"\\b\\t\\n\\f\\r\\u0001\\u001f\\u007f\"]", "[\"\\b\\t\\n\\f\\r\\u0001\\u001f\x7f\"]");
	check_canon("{\"\\ue000\":1,\"\\ud800\\udc00\":2}", "{\"\xf0\x90\x80\x80\":2,\"\xee\x80\x80\":1}");
	check_canon("{\"b\":[3,{\"z\":-0.0,\"a\":-1}],\"a\":9007199254740991}",
	            "{\"a\":9007199254740991,\"b\":[3,{\"a\":-1,\"z\":0}]}");
	check_canon("{\"\":\"\"}", "{\"\":\"\"}");
	/* 2^53 as a JSON integer is outside the I-JSON-safe range: refused. */
	v = json_integer(9007199254740992LL);
	EHR_ASSERT_ERR(jcs_canonicalize(&out, v), EHR_ERR_INVAL);
	CU_ASSERT_EQUAL(out.len, 0);
	json_decref(v);
	v = json_real(NAN);
	EHR_ASSERT_ERR(jcs_canonicalize(&out, v), EHR_ERR_INVAL);
	json_decref(v);
	/* A member name with a NUL cannot be sorted as a C string: refused. */
	v = json_object();
	json_object_setn_new(v, "a\0b", 3, json_true());
	EHR_ASSERT_ERR(jcs_canonicalize(&out, v), EHR_ERR_INVAL);
	json_decref(v);
	ehr_buf_free(&out);
}

static void register_suites(void)
{
	EHR_ADD_SUITE("jcs", NULL, NULL, { "rfc8785_appendix_b", test_rfc8785_appendix_b },
	              { "es6_number_file", test_es6_number_file }, { "values", test_values },
	              { "weird_utf16_sort", test_weird }, { "structures", test_structures },
	              { "french", test_french }, { "edges", test_edges });
}

EHR_TEST_MAIN(register_suites)
