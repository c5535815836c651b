/* test_witness_config.c - [witness]: the witness list, the quorum and the
 * TLS keys are checked when the configuration is finished, with messages
 * that name what is wrong. */
#include <string.h>

#include <openssl/evp.h>

#include "common/common.h"
#include "gateway/gateway.h"
#include "ledger/ledger.h"
#include "publish/publish.h"
#include "tests/harness/harness.h"

#define ASSERT_MSG_HAS(s) CU_ASSERT_PTR_NOT_NULL(strstr(ehr_error_msg(), (s)))

/* A fresh cosignature/v1 vkey named `name` into out. */
static void vkey(char *out, size_t cap, const char *name, uint8_t pub[32])
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	struct ehr_buf b = EHR_BUF_INIT(512);

	CU_ASSERT_PTR_NOT_NULL_FATAL(k);
	EHR_ASSERT_OK(ledger_key_raw_public(pub, k));
	EHR_ASSERT_OK(ledger_cosig_vkey_format(&b, name, pub));
	EHR_ASSERT_OK(ehr_str_copy(out, cap, ehr_buf_cstr(&b)));
	ehr_buf_free(&b);
	EVP_PKEY_free(k);
}

/* Finish a config with [witness] witnesses = list and quorum = k. */
static int finish(const char *list, const char *k, const char *cert, const char *key)
{
	struct gw_config *c = NULL;
	int err;

	EHR_ASSERT_OK(gw_config_new(&c));
	EHR_ASSERT_OK(gw_config_set(c, "witness", "witnesses", list, "test"));
	EHR_ASSERT_OK(gw_config_set(c, "witness", "quorum", k, "test"));
	EHR_ASSERT_OK(gw_config_set(c, "witness", "cert", cert, "test"));
	EHR_ASSERT_OK(gw_config_set(c, "witness", "key", key, "test"));
	err = gw_config_finish(c);
	gw_config_free(c);
	return err;
}

static void test_witness_list(void)
{
	char v1[256], v2[256], v3[256], list[1024], logkey[256];
	uint8_t p1[32], p2[32], p3[32];
	struct publish_witness w[PUBLISH_MAX_WITNESSES];
	struct ehr_buf lk = EHR_BUF_INIT(256);
	size_t n = 0;

	vkey(v1, sizeof(v1), "w1.example/witness", p1);
	vkey(v2, sizeof(v2), "w2.example/witness", p2);
	vkey(v3, sizeof(v3), "w3.example/witness", p3);
	EHR_ASSERT_OK(ehr_fmt(list, sizeof(list),
	                      " https://127.0.0.1:7001 %s,https://w2.example/tlog  %s , http://[::1]:9 %s ,",
	                      v1, v2, v3));
	EHR_ASSERT_OK(publish_witnesses_parse(w, PUBLISH_MAX_WITNESSES, &n, list));
	CU_ASSERT_EQUAL(n, 3);
	CU_ASSERT_STRING_EQUAL(w[0].name, "w1.example/witness");
	CU_ASSERT_STRING_EQUAL(w[0].url, "https://127.0.0.1:7001");
	CU_ASSERT_STRING_EQUAL(w[1].url, "https://w2.example/tlog");
	CU_ASSERT_EQUAL(memcmp(w[2].pub, p3, 32), 0); /* not secret */
	EHR_ASSERT_OK(finish(list, "2", "", ""));
	EHR_ASSERT_OK(finish(list, "3", "/c.pem", "/k.pem"));
	EHR_ASSERT_OK(finish("", "0", "", "")); /* off */

	/* the quorum: 1..n with witnesses, 0 without */
	EHR_ASSERT_ERR(finish(list, "0", "", ""), EHR_ERR_CONFIG);
	ASSERT_MSG_HAS("[witness] quorum must be 1..3");
	EHR_ASSERT_ERR(finish(list, "4", "", ""), EHR_ERR_CONFIG);
	ASSERT_MSG_HAS("[witness] quorum must be 1..3");
	EHR_ASSERT_ERR(finish("", "1", "", ""), EHR_ERR_CONFIG);
	ASSERT_MSG_HAS("[witness] witnesses is empty");
	EHR_ASSERT_ERR(finish(list, "2", "/c.pem", ""), EHR_ERR_CONFIG);
	ASSERT_MSG_HAS("cert and key go together");

	/* malformed items name the item */
	EHR_ASSERT_OK(ehr_fmt(list, sizeof(list), "https://a %s, ftp://b %s", v1, v2));
	EHR_ASSERT_ERR(finish(list, "1", "", ""), EHR_ERR_CONFIG);
	ASSERT_MSG_HAS("witness 2: the URL");
	EHR_ASSERT_OK(ehr_fmt(list, sizeof(list), "https://a/ %s", v1));
	EHR_ASSERT_ERR(finish(list, "1", "", ""), EHR_ERR_CONFIG);
	ASSERT_MSG_HAS("without a trailing '/'");
	EHR_ASSERT_ERR(finish("https://a", "1", "", ""), EHR_ERR_CONFIG);
	ASSERT_MSG_HAS("witness 1: expected \"<url> <vkey>\"");
	EHR_ASSERT_OK(ehr_fmt(list, sizeof(list), "https://a %s extra", v1));
	EHR_ASSERT_ERR(finish(list, "1", "", ""), EHR_ERR_CONFIG);
	ASSERT_MSG_HAS("expected \"<url> <vkey>\"");
	/* a log (Ed25519 note) vkey is not a cosignature key */
	EHR_ASSERT_OK(ledger_vkey_format(&lk, "log.example", p1));
	EHR_ASSERT_OK(ehr_str_copy(logkey, sizeof(logkey), ehr_buf_cstr(&lk)));
	EHR_ASSERT_OK(ehr_fmt(list, sizeof(list), "https://a %s", logkey));
	EHR_ASSERT_ERR(finish(list, "1", "", ""), EHR_ERR_CONFIG);
	ASSERT_MSG_HAS("not a cosignature/v1 vkey");
	/* one name or one key twice */
	EHR_ASSERT_OK(ehr_fmt(list, sizeof(list), "https://a %s, https://b %s", v1, v1));
	EHR_ASSERT_ERR(finish(list, "1", "", ""), EHR_ERR_CONFIG);
	ASSERT_MSG_HAS("used twice");
	ehr_buf_free(&lk);
}

static void register_suites(void)
{
	EHR_ADD_SUITE("witness config", NULL, NULL, { "[witness] witnesses and quorum", test_witness_list });
}

EHR_TEST_MAIN(register_suites)
