/*
 * test_ledger_pure.c - the ledger's database-free parts: RFC 9162 hashing,
 * proofs and their verification, entry encoding, canonical JSON, block
 * headers, C2SP signed notes and checkpoints.
 *
 * Known-answer vectors (copied, not computed by this code):
 *  - Merkle leaves, leaf/node hashes and roots: transparency-dev/merkle,
 *    testonly/constants.go (LeafInputs, NodeHashes, RootHashes),
 *    https://github.com/transparency-dev/merkle/blob/582a6ad190b6848f1d26f8bf08ddef29955d9db1/testonly/constants.go
 *    (the same 8-leaf RFC 6962 vectors as certificate-transparency-go).
 *  - Inclusion and consistency proofs: transparency-dev/merkle,
 *    proof/verify_test.go (inclusionProofs, consistencyProofs; its leaf
 *    numbers are 1-based, ours 0-based),
 *    https://github.com/transparency-dev/merkle/blob/02194e9afb6c1d95b5381350007963aa70fff472/proof/verify_test.go
 *  - Signed note, vkey and key id: golang.org/x/mod/sumdb/note note_test.go
 *    (the PeterNeumann key pair and note), the reference implementation of
 *    C2SP signed-note.
 *  - Key ordering: RFC 8785 §3.2.3 (sorting example).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "ledger/ledger.h"
#include "ledger/ledger_internal.h"
#include "tests/harness/harness.h"

static void hexd(uint8_t *out, const char *hex)
{
	size_t n = strlen(hex);

	CU_ASSERT_FATAL(ehr_hex_decode(out, n / 2, hex, n) == 0);
}

static const char *leaf_hex[8] = {
	"", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f",
};
static const char *leaf_hash_hex[8] = {
	"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
	"0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
	"07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
	"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
	"4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
	"b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
	"46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
};
static const char *root_hex[9] = {
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
	"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
	"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
	"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};
/* level-1 nodes from NodeHashes() */
static const char *level1_hex[4] = {
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
	"ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
};

struct proof_vec {
	uint64_t a, size; /* leaf index (0-based) or first size */
	int n;
	const char *h[3];
};

static const struct proof_vec incl_vecs[] = {
	{ 0,
	  8,
	  3,
	  { "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
	    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4" } },
	{ 5,
	  8,
	  3,
	  { "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
	    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
	    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7" } },
	{ 2, 3, 1, { "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125" } },
	{ 1,
	  5,
	  3,
	  { "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b" } },
};

static const struct proof_vec cons_vecs[] = {
	{ 1,
	  8,
	  3,
	  { "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
	    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4" } },
	{ 6,
	  8,
	  3,
	  { "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
	    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
	    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7" } },
	{ 2,
	  5,
	  2,
	  { "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b" } },
	{ 6,
	  7,
	  3,
	  { "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
	    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
	    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7" } },
};

static uint8_t kat_leaves[8][LEDGER_HASH_LEN];

static void load_kat_leaves(void)
{
	for (int i = 0; i < 8; i++) {
		uint8_t in[16];
		size_t n = strlen(leaf_hex[i]) / 2;

		if (n)
			hexd(in, leaf_hex[i]);
		merkle_leaf_hash(kat_leaves[i], in, n);
	}
}

static void test_kat_leaves_and_roots(void)
{
	uint8_t want[LEDGER_HASH_LEN], got[LEDGER_HASH_LEN];

	load_kat_leaves();
	for (int i = 0; i < 8; i++) {
		hexd(want, leaf_hash_hex[i]);
		CU_ASSERT(memcmp(kat_leaves[i], want, 32) == 0); /* not secret */
	}
	for (int i = 0; i < 4; i++) {
		hexd(want, level1_hex[i]);
		merkle_node_hash(got, kat_leaves[2 * i], kat_leaves[2 * i + 1]);
		CU_ASSERT(memcmp(got, want, 32) == 0); /* not secret */
	}
	for (int n = 0; n <= 8; n++) {
		struct merkle_frontier f;

		hexd(want, root_hex[n]);
		EHR_ASSERT_OK(merkle_root(got, (const uint8_t(*)[32])kat_leaves, (uint64_t)n));
		CU_ASSERT(memcmp(got, want, 32) == 0); /* not secret */
		merkle__frontier_init(&f);
		for (int i = 0; i < n; i++)
			merkle__frontier_push(&f, kat_leaves[i], NULL, NULL);
		merkle__frontier_root(&f, got);
		CU_ASSERT(memcmp(got, want, 32) == 0); /* not secret */
	}
}

static void test_kat_inclusion(void)
{
	load_kat_leaves();
	for (size_t v = 0; v < EHR_ARRAY_LEN(incl_vecs); v++) {
		const struct proof_vec *pv = &incl_vecs[v];
		uint8_t want[3][32], got[LEDGER_MAX_PROOF][32], root[32];
		size_t n = 0;

		for (int i = 0; i < pv->n; i++)
			hexd(want[i], pv->h[i]);
		hexd(root, root_hex[pv->size]);
		EHR_ASSERT_OK(merkle_prove_inclusion_mem(got, &n, (const uint8_t(*)[32])kat_leaves, pv->a,
		                                         pv->size));
		CU_ASSERT_EQUAL(n, (size_t)pv->n);
		CU_ASSERT(memcmp(got, want, (size_t)pv->n * 32) == 0); /* not secret */
		EHR_ASSERT_OK(merkle_verify_inclusion(kat_leaves[pv->a], pv->a, pv->size,
		                                      (const uint8_t(*)[32])want, (size_t)pv->n, root));
		/* the published probes: wrong index, size, leaf, root, garbage */
		EHR_ASSERT_ERR(merkle_verify_inclusion(kat_leaves[pv->a], pv->a + 1, pv->size,
		                                       (const uint8_t(*)[32])want, (size_t)pv->n, root),
		               EHR_ERR_TAMPER);
		EHR_ASSERT_ERR(merkle_verify_inclusion(kat_leaves[pv->a], pv->a, pv->size * 2,
		                                       (const uint8_t(*)[32])want, (size_t)pv->n, root),
		               EHR_ERR_TAMPER);
		EHR_ASSERT_ERR(merkle_verify_inclusion(kat_leaves[(pv->a + 1) % 8], pv->a, pv->size,
		                                       (const uint8_t(*)[32])want, (size_t)pv->n, root),
		               EHR_ERR_TAMPER);
		EHR_ASSERT_ERR(merkle_verify_inclusion(kat_leaves[pv->a], pv->a, pv->size,
		                                       (const uint8_t(*)[32])want, (size_t)pv->n - 1, root),
		               EHR_ERR_TAMPER);
		memcpy(got[0], want, sizeof(want));
		memcpy(got[pv->n], root, 32);
		EHR_ASSERT_ERR(merkle_verify_inclusion(kat_leaves[pv->a], pv->a, pv->size,
		                                       (const uint8_t(*)[32])got, (size_t)pv->n + 1, root),
		               EHR_ERR_TAMPER);
		for (int i = 0; i < pv->n; i++) {
			memcpy(got, want, sizeof(want));
			got[i][0] ^= 8;
			EHR_ASSERT_ERR(merkle_verify_inclusion(kat_leaves[pv->a], pv->a, pv->size,
			                                       (const uint8_t(*)[32])got, (size_t)pv->n,
			                                       root),
			               EHR_ERR_TAMPER);
		}
	}
}

static void test_kat_consistency(void)
{
	load_kat_leaves();
	for (size_t v = 0; v < EHR_ARRAY_LEN(cons_vecs); v++) {
		const struct proof_vec *pv = &cons_vecs[v];
		uint8_t want[3][32], got[LEDGER_MAX_PROOF][32], r1[32], r2[32];
		size_t n = 0;

		for (int i = 0; i < pv->n; i++)
			hexd(want[i], pv->h[i]);
		hexd(r1, root_hex[pv->a]);
		hexd(r2, root_hex[pv->size]);
		EHR_ASSERT_OK(merkle_prove_consistency_mem(got, &n, (const uint8_t(*)[32])kat_leaves, pv->a,
		                                           pv->size));
		CU_ASSERT_EQUAL(n, (size_t)pv->n);
		CU_ASSERT(memcmp(got, want, (size_t)pv->n * 32) == 0); /* not secret */
		EHR_ASSERT_OK(merkle_verify_consistency(pv->a, pv->size, r1, r2, (const uint8_t(*)[32])want,
		                                        (size_t)pv->n));
		EHR_ASSERT_ERR(merkle_verify_consistency(pv->a, pv->size, r2, r1, (const uint8_t(*)[32])want,
		                                         (size_t)pv->n),
		               EHR_ERR_TAMPER);
		EHR_ASSERT_ERR(merkle_verify_consistency(pv->a + 1, pv->size, r1, r2,
		                                         (const uint8_t(*)[32])want, (size_t)pv->n),
		               EHR_ERR_TAMPER);
		EHR_ASSERT_ERR(merkle_verify_consistency(pv->a, pv->size, r1, r2, (const uint8_t(*)[32])want,
		                                         (size_t)pv->n - 1),
		               EHR_ERR_TAMPER);
		EHR_ASSERT_ERR(
		        merkle_verify_consistency(pv->a, pv->size, r1, r2, (const uint8_t(*)[32])want, 0),
		        EHR_ERR_TAMPER);
		for (int i = 0; i < pv->n; i++) {
			memcpy(got, want, sizeof(want));
			got[i][0] ^= 16;
			EHR_ASSERT_ERR(merkle_verify_consistency(pv->a, pv->size, r1, r2,
			                                         (const uint8_t(*)[32])got, (size_t)pv->n),
			               EHR_ERR_TAMPER);
		}
		/* rollback: an older head after a newer one */
		EHR_ASSERT_ERR(merkle_check_advance(pv->size, r2, pv->a, r1, NULL, 0), EHR_ERR_TAMPER);
		CU_ASSERT(strstr(ehr_error_msg(), "rollback") != NULL);
		EHR_ASSERT_OK(merkle_check_advance(pv->a, r1, pv->size, r2, (const uint8_t(*)[32])want,
		                                   (size_t)pv->n));
	}
}

/* Every proof of every tree up to 70 leaves verifies; a flipped bit never does;
 * the frontier's completed nodes are the trees' perfect subtrees. */
static void test_proofs_exhaustive(void)
{
	enum { N = 70 };
	static uint8_t leaves[N][32];
	uint8_t proof[LEDGER_MAX_PROOF][32], roots[N + 1][32];
	struct merkle_frontier f;

	merkle__frontier_init(&f);
	for (int i = 0; i < N; i++) {
		uint8_t in[4] = { (uint8_t)i, 1, 2, 3 };
		uint8_t done[64][32], want[32];
		unsigned nd;

		merkle_leaf_hash(leaves[i], in, sizeof(in));
		merkle__frontier_push(&f, leaves[i], done, &nd);
		CU_ASSERT_EQUAL(nd, (unsigned)__builtin_ctzll((unsigned long long)i + 1));
		for (unsigned k = 1; k <= nd; k++) {
			uint64_t start = (uint64_t)i + 1 - (UINT64_C(1) << k);

			merkle_root(want, (const uint8_t(*)[32])leaves + start, UINT64_C(1) << k);
			CU_ASSERT(memcmp(done[k - 1], want, 32) == 0); /* not secret */
		}
	}
	for (int n = 0; n <= N; n++)
		merkle_root(roots[n], (const uint8_t(*)[32])leaves, (uint64_t)n);
	for (uint64_t n = 1; n <= N; n++) {
		for (uint64_t i = 0; i < n; i++) {
			size_t len;

			EHR_ASSERT_OK(
			        merkle_prove_inclusion_mem(proof, &len, (const uint8_t(*)[32])leaves, i, n));
			CU_ASSERT_EQUAL(merkle_verify_inclusion(leaves[i], i, n, (const uint8_t(*)[32])proof,
			                                        len, roots[n]),
			                0);
			if (len > 0) {
				proof[len - 1][31] ^= 1;
				CU_ASSERT_EQUAL(merkle_verify_inclusion(leaves[i], i, n,
				                                        (const uint8_t(*)[32])proof, len,
				                                        roots[n]),
				                EHR_ERR_TAMPER);
			}
			CU_ASSERT_EQUAL(merkle_verify_inclusion(leaves[(i + 1) % n], i, n,
			                                        (const uint8_t(*)[32])proof, len,
			                                        roots[n]) == 0,
			                n == 1);
		}
		for (uint64_t m = 1; m <= n; m++) {
			size_t len;

			EHR_ASSERT_OK(merkle_prove_consistency_mem(proof, &len, (const uint8_t(*)[32])leaves,
			                                           m, n));
			CU_ASSERT_EQUAL(merkle_verify_consistency(m, n, roots[m], roots[n],
			                                          (const uint8_t(*)[32])proof, len),
			                0);
			if (m < n) {
				CU_ASSERT_EQUAL(merkle_verify_consistency(m, n, roots[m - 1], roots[n],
				                                          (const uint8_t(*)[32])proof, len),
				                EHR_ERR_TAMPER);
				proof[0][0] ^= 1;
				CU_ASSERT_EQUAL(merkle_verify_consistency(m, n, roots[m], roots[n],
				                                          (const uint8_t(*)[32])proof, len),
				                EHR_ERR_TAMPER);
			}
		}
	}
}

/* ------------------------------------------------------- canonical JSON */

static void canon_is(const char *in, const char *want)
{
	struct ehr_buf b = EHR_BUF_INIT(4096);
	json_t *j = NULL;

	EHR_ASSERT_OK(ehr_json_parse(&j, in, strlen(in), 4096, 16));
	EHR_ASSERT_OK(ledger_canonical_json(&b, j));
	CU_ASSERT_STRING_EQUAL(ehr_buf_cstr(&b), want);
	if (strcmp(ehr_buf_cstr(&b), want) != 0)
		fprintf(stderr, "\n  got  %s\n  want %s\n", ehr_buf_cstr(&b), want);
	json_decref(j);
	ehr_buf_free(&b);
}

static void test_canonical_json(void)
{
	struct ehr_buf b = EHR_BUF_INIT(4096);
	json_t *j;

	canon_is("{ \"b\" : 1, \"a\" : [true, false, null, -0, 12] }",
	         "{\"a\":[true,false,null,0,12],\"b\":1}");
	canon_is("{\"s\":\"q\\\"b\\\\s\\/\\b\\f\\n\\r\\t\\u0001\\u001f\\u007f\\u00e9\"}",
	         "{\"s\":\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\xc3\xa9\"}");
	/* RFC 8785 §3.2.3: keys sorted by UTF-16 code units, so U+1F600
	 * (a surrogate pair, 0xD83D...) sorts before U+FB33. */
	canon_is("{\"\\u20ac\":1,\"\\r\":2,\"\\ufb33\":3,\"1\":4,\"\\ud83d\\ude00\":5,\"\\u0080\":6,"
	         "\"\\u00f6\":7}",
	         "{\"\\r\":2,\"1\":4,\"\xc2\x80\":6,\"\xc3\xb6\":7,\"\xe2\x82\xac\":1,\"\xf0\x9f\x98\x80\":5,"
	         "\"\xef\xac\xb3\":3}");
	canon_is("{\"n\":{\"z\":[],\"y\":{}},\"max\":9007199254740991,\"min\":-9007199254740991}",
	         "{\"max\":9007199254740991,\"min\":-9007199254740991,\"n\":{\"y\":{},\"z\":[]}}");
	/* refused: floats and integers beyond 2^53-1 */
	j = json_pack("{s:f}", "x", 1.5);
	EHR_ASSERT_ERR(ledger_canonical_json(&b, j), EHR_ERR_INVAL);
	CU_ASSERT_EQUAL(b.len, 0);
	json_decref(j);
	j = json_pack("{s:I}", "x", (json_int_t)9007199254740992LL);
	EHR_ASSERT_ERR(ledger_canonical_json(&b, j), EHR_ERR_INVAL);
	json_decref(j);
	ehr_buf_free(&b);
}

/* ------------------------------------------------------------- entries */

static void test_entry_encoding(void)
{
	struct ehr_buf b = EHR_BUF_INIT(4096);
	json_t *p = json_pack("{s:s,s:i}", "z", "\xc3\xa9", "a", 7);
	struct ledger_entry_in in = { "ehr.read", "act0r", "subj", p };
	struct ledger_entry e;
	/* docs/LEDGER.md §1, worked by hand */
	static const uint8_t want[] = {
		0x01,                                                /* version */
		0,    0,    0,    0,    0,    0,    0x01, 0x02,      /* seq 258 */
		0,    0,    0x01, 0x8c, 0x00, 0x00, 0x00, 0x05,      /* ts 1700807000069 */
		0x08, 'e',  'h',  'r',  '.',  'r',  'e',  'a',  'd', /* type */
		0x00, 0x05, 'a',  'c',  't',  '0',  'r',             /* actor */
		0x00, 0x04, 's',  'u',  'b',  'j',                   /* subject */
		0x00, 0x00, 0x00, 0x10,                              /* payload length 16 */
		'{',  '"',  'a',  '"',  ':',  '7',  ',',  '"',  'z', '"', ':', '"', 0xc3, 0xa9, '"', '}',
	};
	uint8_t leaf[32];

	EHR_ASSERT_OK(ledger_entry_encode(&b, 258, 0x018c00000005LL, &in));
	CU_ASSERT_EQUAL(b.len, sizeof(want));
	CU_ASSERT(b.len == sizeof(want) && memcmp(b.data, want, sizeof(want)) == 0); /* not secret */
	EHR_ASSERT_OK(ledger_entry_decode(&e, b.data, b.len, true));
	CU_ASSERT_EQUAL(e.seq, 258);
	CU_ASSERT_EQUAL(e.ts_ms, 0x018c00000005LL);
	CU_ASSERT_STRING_EQUAL(e.type, "ehr.read");
	CU_ASSERT_STRING_EQUAL(e.actor, "act0r");
	CU_ASSERT_STRING_EQUAL(e.subject, "subj");
	CU_ASSERT_EQUAL(e.payload_len, 16);
	merkle_leaf_hash(leaf, want, sizeof(want));
	CU_ASSERT(memcmp(leaf, e.leaf_hash, 32) == 0); /* not secret */

	/* strict decoding */
	EHR_ASSERT_ERR(ledger_entry_decode(&e, b.data, b.len - 1, false), EHR_ERR_PARSE);
	EHR_ASSERT_OK(ehr_buf_append_u8(&b, 0));
	EHR_ASSERT_ERR(ledger_entry_decode(&e, b.data, b.len, false), EHR_ERR_PARSE);
	b.len--;
	b.data[0] = 2;
	EHR_ASSERT_ERR(ledger_entry_decode(&e, b.data, b.len, false), EHR_ERR_PARSE);
	b.data[0] = 1;
	b.data[b.len - 3] = ' '; /* payload no longer canonical: "{"a":7,"z":" " } */
	EHR_ASSERT_OK(ledger_entry_decode(&e, b.data, b.len, false));
	b.data[b.len - 2] = ' ';
	EHR_ASSERT_ERR(ledger_entry_decode(&e, b.data, b.len, true), EHR_ERR_PARSE);

	/* bad fields are refused at encoding time */
	ehr_buf_reset(&b);
	in.type = "EHR.read";
	EHR_ASSERT_ERR(ledger_entry_encode(&b, 0, 0, &in), EHR_ERR_INVAL);
	in.type = "ehr.read";
	in.actor = "";
	EHR_ASSERT_ERR(ledger_entry_encode(&b, 0, 0, &in), EHR_ERR_INVAL);
	in.actor = "a\nb";
	EHR_ASSERT_ERR(ledger_entry_encode(&b, 0, 0, &in), EHR_ERR_INVAL);
	in.actor = "a\xc3";
	EHR_ASSERT_ERR(ledger_entry_encode(&b, 0, 0, &in), EHR_ERR_INVAL);
	in.actor = "a";
	in.subject = NULL;
	in.payload = NULL;
	EHR_ASSERT_OK(ledger_entry_encode(&b, 0, 0, &in));
	EHR_ASSERT_OK(ledger_entry_decode(&e, b.data, b.len, true));
	CU_ASSERT_STRING_EQUAL(e.subject, "");
	CU_ASSERT_EQUAL(e.payload_len, 2);
	json_decref(p);
	ehr_buf_free(&b);
}

/* --------------------------------------------------- notes and checkpoints */

static const char peter_vkey[] = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
static const char peter_skey_b64[] = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
static const char peter_text[] = "If you think cryptography is the answer to your problem,\n"
                                 "then you don't know what your problem is.\n";
static const char peter_sig[] =
        "\xe2\x80\x94 PeterNeumann "
        "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

static void test_signed_note_kat(void)
{
	struct ehr_buf note = EHR_BUF_INIT(4096), vk = EHR_BUF_INIT(256), sk = EHR_BUF_INIT(64),
	               sigb = EHR_BUF_INIT(128);
	uint8_t pub[32], sig[64], id[4];
	char name[64];
	size_t tl;
	EVP_PKEY *key;

	EHR_ASSERT_OK(ledger_vkey_parse(peter_vkey, strlen(peter_vkey), name, sizeof(name), pub));
	CU_ASSERT_STRING_EQUAL(name, "PeterNeumann");
	ledger_note_key_id(id, "PeterNeumann", pub);
	CU_ASSERT(id[0] == 0xc7 && id[1] == 0x4f && id[2] == 0x20 && id[3] == 0xa3);
	EHR_ASSERT_OK(ledger_vkey_format(&vk, "PeterNeumann", pub));
	CU_ASSERT_STRING_EQUAL(ehr_buf_cstr(&vk), peter_vkey);

	EHR_ASSERT_OK(ehr_buf_printf(&note, "%s\n%s", peter_text, peter_sig));
	EHR_ASSERT_OK(ledger_note_verify((const char *)note.data, note.len, "PeterNeumann", pub, &tl));
	CU_ASSERT_EQUAL(tl, strlen(peter_text));
	/* Ed25519 is deterministic: our signer reproduces the published note. */
	EHR_ASSERT_OK(ehr_b64_decode(&sk, peter_skey_b64, strlen(peter_skey_b64)));
	CU_ASSERT_FATAL(sk.len == 33 && sk.data[0] == 0x01);
	key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, sk.data + 1, 32);
	CU_ASSERT_FATAL(key != NULL);
	EHR_ASSERT_OK(ledger_ed25519_sign(sig, key, peter_text, strlen(peter_text)));
	EHR_ASSERT_OK(ehr_b64_decode(&sigb, peter_sig + 17, strlen(peter_sig + 17) - 1));
	CU_ASSERT(sigb.len == 68 && memcmp(sigb.data + 4, sig, 64) == 0); /* not secret */

	/* tampered text, unknown key name, wrong dash */
	note.data[10] ^= 0x20;
	EHR_ASSERT_ERR(ledger_note_verify((const char *)note.data, note.len, "PeterNeumann", pub, &tl),
	               EHR_ERR_TAMPER);
	note.data[10] ^= 0x20;
	EHR_ASSERT_ERR(ledger_note_verify((const char *)note.data, note.len, "Peter", pub, &tl),
	               EHR_ERR_TAMPER);
	note.data[tl + 1] = '-';
	EHR_ASSERT_ERR(ledger_note_verify((const char *)note.data, note.len, "PeterNeumann", pub, &tl),
	               EHR_ERR_PARSE);
	EVP_PKEY_free(key);
	ehr_buf_free(&note);
	ehr_buf_free(&vk);
	ehr_buf_free(&sk);
	ehr_buf_free(&sigb);
}

static EVP_PKEY *new_key(void)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
	EVP_PKEY *k = NULL;

	CU_ASSERT_FATAL(c != NULL && EVP_PKEY_keygen_init(c) == 1 && EVP_PKEY_keygen(c, &k) == 1);
	EVP_PKEY_CTX_free(c);
	return k;
}

static void test_checkpoint_notes(void)
{
	EVP_PKEY *k = new_key(), *k2 = new_key();
	uint8_t pub[32], pub2[32], root[32], got[32], sig[64], sig2[64], id2[4];
	struct ehr_buf body = EHR_BUF_INIT(1024), note = EHR_BUF_INIT(4096), cos = EHR_BUF_INIT(4096);
	const char *origin = "ehrgate.test/ledger";
	uint64_t size = 0;

	memset(root, 0xab, 32);
	EHR_ASSERT_OK(ledger_key_raw_public(pub, k));
	EHR_ASSERT_OK(ledger_key_raw_public(pub2, k2));
	EHR_ASSERT_OK(ledger_checkpoint_body(&body, origin, 12345, root));
	CU_ASSERT_STRING_EQUAL(ehr_buf_cstr(&body),
	                       "ehrgate.test/ledger\n12345\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n");
	EHR_ASSERT_OK(ledger_ed25519_sign(sig, k, body.data, body.len));
	EHR_ASSERT_OK(ledger_checkpoint_note(&note, origin, 12345, root, pub, sig));
	EHR_ASSERT_OK(ledger_checkpoint_verify((const char *)note.data, note.len, pub, origin, &size, got));
	CU_ASSERT_EQUAL(size, 12345);
	CU_ASSERT(memcmp(got, root, 32) == 0); /* not secret */
	/* a witness cosignature by another key is ignored */
	EHR_ASSERT_OK(ehr_buf_append(&cos, note.data, note.len));
	EHR_ASSERT_OK(ledger_ed25519_sign(sig2, k2, body.data, body.len));
	ledger_note_key_id(id2, "witness.example", pub2);
	{
		uint8_t blob[68];

		memcpy(blob, id2, 4);
		memcpy(blob + 4, sig2, 64);
		EHR_ASSERT_OK(ehr_buf_append_str(&cos, "\xe2\x80\x94 witness.example "));
		EHR_ASSERT_OK(ehr_b64_encode(&cos, blob, 68));
		EHR_ASSERT_OK(ehr_buf_append_u8(&cos, '\n'));
	}
	EHR_ASSERT_OK(ledger_checkpoint_verify((const char *)cos.data, cos.len, pub, origin, &size, got));
	/* wrong key, wrong origin, altered size, altered root, truncated */
	EHR_ASSERT_ERR(ledger_checkpoint_verify((const char *)note.data, note.len, pub2, origin, &size, got),
	               EHR_ERR_TAMPER);
	EHR_ASSERT_ERR(
	        ledger_checkpoint_verify((const char *)note.data, note.len, pub, "other.origin", &size, got),
	        EHR_ERR_TAMPER);
	note.data[strlen(origin) + 1] = '2';
	EHR_ASSERT_ERR(ledger_checkpoint_verify((const char *)note.data, note.len, pub, origin, &size, got),
	               EHR_ERR_TAMPER);
	note.data[strlen(origin) + 1] = '1';
	note.data[strlen(origin) + 8] ^= 1;
	EHR_ASSERT_ERR(ledger_checkpoint_verify((const char *)note.data, note.len, pub, origin, &size, got),
	               EHR_ERR_TAMPER);
	note.data[strlen(origin) + 8] ^= 1;
	EHR_ASSERT_ERR(ledger_checkpoint_verify((const char *)note.data, body.len, pub, origin, &size, got),
	               EHR_ERR_PARSE);
	EHR_ASSERT_ERR(
	        ledger_checkpoint_verify((const char *)note.data, note.len - 1, pub, origin, &size, got),
	        EHR_ERR_PARSE);
	EHR_ASSERT_OK(ledger_checkpoint_verify((const char *)note.data, note.len, pub, origin, &size, got));
	EVP_PKEY_free(k);
	EVP_PKEY_free(k2);
	ehr_buf_free(&body);
	ehr_buf_free(&note);
	ehr_buf_free(&cos);
}

static void test_block_header(void)
{
	struct ledger_block b;
	uint8_t h[LEDGER_BLOCK_HEADER_LEN];
	EVP_PKEY *k = new_key();
	uint8_t pub[32];

	memset(&b, 0, sizeof(b));
	b.height = 3;
	memset(b.prev_hash, 0x11, 32);
	b.tree_size = 0x0102;
	memset(b.root, 0x22, 32);
	b.ts_ms = 1700000000000LL;
	ledger_block_header(h, &b);
	CU_ASSERT(memcmp(h, "EHRGATE-BLOCK-V1", 16) == 0); /* not secret */
	CU_ASSERT(h[23] == 3 && h[24] == 0x11 && h[55] == 0x11);
	CU_ASSERT(h[62] == 0x01 && h[63] == 0x02 && h[64] == 0x22 && h[95] == 0x22);
	CU_ASSERT(h[96] == 0x00 && h[97] == 0x00 && h[98] == 0x01 && h[99] == 0x8b && h[103] == 0x00);
	EHR_ASSERT_OK(ledger_key_raw_public(pub, k));
	EHR_ASSERT_OK(ledger_ed25519_sign(b.sig, k, h, sizeof(h)));
	EHR_ASSERT_OK(ledger__block_verify(&b, pub));
	b.tree_size++;
	EHR_ASSERT_ERR(ledger__block_verify(&b, pub), EHR_ERR_TAMPER);
	EVP_PKEY_free(k);
}

static void test_proof_json(void)
{
	uint8_t leaves[13][32], proof[LEDGER_MAX_PROOF][32], got[LEDGER_MAX_PROOF][32];
	struct ehr_buf s = EHR_BUF_INIT(65536);
	uint64_t size, idx;
	size_t n, m;
	json_t *j;

	for (int i = 0; i < 13; i++) {
		uint8_t x = (uint8_t)i;

		merkle_leaf_hash(leaves[i], &x, 1);
	}
	EHR_ASSERT_OK(merkle_prove_inclusion_mem(proof, &n, (const uint8_t(*)[32])leaves, 5, 13));
	j = ledger_proof_json(13, 5, false, (const uint8_t(*)[32])proof, n);
	CU_ASSERT_FATAL(j != NULL);
	EHR_ASSERT_OK(ehr_json_dump(&s, j));
	json_decref(j);
	EHR_ASSERT_OK(ledger_proof_from_json(s.data, s.len, false, &size, &idx, got, &m));
	CU_ASSERT(size == 13 && idx == 5 && m == n && memcmp(got, proof, n * 32) == 0); /* not secret */
	/* it is not a consistency proof; malformed variants are refused */
	EHR_ASSERT_ERR(ledger_proof_from_json(s.data, s.len, true, &size, &idx, got, &m), EHR_ERR_PARSE);
	{
		const char *neg = "{\"tree_size\":-1,\"leaf_index\":0,\"hashes\":[]}";

		EHR_ASSERT_ERR(ledger_proof_from_json(neg, strlen(neg), false, &size, &idx, got, &m),
		               EHR_ERR_PARSE);
	}
	{
		const char *bad = "{\"tree_size\":2,\"leaf_index\":0,\"hashes\":[\"AAAA\"]}";

		EHR_ASSERT_ERR(ledger_proof_from_json(bad, strlen(bad), false, &size, &idx, got, &m),
		               EHR_ERR_PARSE);
	}
	ehr_buf_free(&s);
}

static void register_suites(void)
{
	EHR_ADD_SUITE("merkle", NULL, NULL, { "kat_leaves_and_roots", test_kat_leaves_and_roots },
	              { "kat_inclusion", test_kat_inclusion }, { "kat_consistency", test_kat_consistency },
	              { "proofs_exhaustive", test_proofs_exhaustive });
	EHR_ADD_SUITE("encoding", NULL, NULL, { "canonical_json", test_canonical_json },
	              { "entry_encoding", test_entry_encoding }, { "block_header", test_block_header },
	              { "proof_json", test_proof_json });
	EHR_ADD_SUITE("notes", NULL, NULL, { "signed_note_kat", test_signed_note_kat },
	              { "checkpoint_notes", test_checkpoint_notes });
}

EHR_TEST_MAIN(register_suites)
