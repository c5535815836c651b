/*
 * merkle.c - RFC 9162 Merkle tree: hashing, proof planning from perfect
 * subtrees, and the verification algorithms of §2.1.3.2 and §2.1.4.2.
 * Nothing here touches the database, so client/ links it as is.
 */
#include "ledger/ledger_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

/* OpenSSL 3 fetches the algorithm on every EVP_sha256() one-shot; a cached
 * EVP_MD and a per-thread context make a 65-byte node hash several times
 * cheaper, which is what lets verification stream > 1 M entries/s. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static pthread_key_t sha256_key;

static void sha256_ctx_free(void *p)
{
	EVP_MD_CTX_free(p);
}

static void sha256_init_once(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
	pthread_key_create(&sha256_key, sha256_ctx_free);
}

void ledger__sha256(uint8_t out[LEDGER_HASH_LEN], const void *p1, size_t n1, const void *p2, size_t n2)
{
	EVP_MD_CTX *ctx;
	unsigned int olen = LEDGER_HASH_LEN;

	pthread_once(&sha256_once, sha256_init_once);
	ctx = pthread_getspecific(sha256_key);
	if (ctx == NULL) {
		ctx = EVP_MD_CTX_new();
		if (ctx == NULL)
			abort(); /* out of memory with no way to report a hash */
		pthread_setspecific(sha256_key, ctx);
	}
	if (EVP_DigestInit_ex2(ctx, sha256_md, NULL) != 1 || (n1 && EVP_DigestUpdate(ctx, p1, n1) != 1) ||
	    (n2 && EVP_DigestUpdate(ctx, p2, n2) != 1) || EVP_DigestFinal_ex(ctx, out, &olen) != 1)
		abort(); /* SHA-256 cannot fail short of memory corruption */
}

void merkle_leaf_hash(uint8_t out[LEDGER_HASH_LEN], const uint8_t *entry, size_t len)
{
	static const uint8_t zero = 0x00;

	ledger__sha256(out, &zero, 1, entry, len);
}

void merkle_node_hash(uint8_t out[LEDGER_HASH_LEN], const uint8_t l[LEDGER_HASH_LEN],
                      const uint8_t r[LEDGER_HASH_LEN])
{
	uint8_t buf[1 + 2 * LEDGER_HASH_LEN];

	buf[0] = 0x01;
	memcpy(buf + 1, l, LEDGER_HASH_LEN);
	memcpy(buf + 1 + LEDGER_HASH_LEN, r, LEDGER_HASH_LEN);
	ledger__sha256(out, buf, sizeof(buf), NULL, 0);
}

/* Largest power of two strictly less than n (n >= 2). */
static uint64_t split_point(uint64_t n)
{
	uint64_t k = 1;

	while (k << 1 < n)
		k <<= 1;
	return k;
}

/* ------------------------------------------------------------ proof plans */

static int path_rec(struct merkle_range *out, size_t *n, uint64_t m, uint64_t lo, uint64_t hi)
{
	uint64_t k;

	if (hi - lo == 1)
		return 0;
	k = split_point(hi - lo);
	if (m - lo < k) {
		GUARD(path_rec(out, n, m, lo, lo + k));
		ENSURE(*n < LEDGER_MAX_PROOF, EHR_ERR_TOO_LARGE);
		out[(*n)++] = (struct merkle_range){ lo + k, hi };
	} else {
		GUARD(path_rec(out, n, m, lo + k, hi));
		ENSURE(*n < LEDGER_MAX_PROOF, EHR_ERR_TOO_LARGE);
		out[(*n)++] = (struct merkle_range){ lo, lo + k };
	}
	return 0;
}

int merkle__inclusion_ranges(struct merkle_range *out, size_t *n, uint64_t index, uint64_t size)
{
	*n = 0;
	if (index >= size)
		return ehr_error_set(EHR_ERR_INVAL, "leaf index %llu not in tree of size %llu",
		                     (unsigned long long)index, (unsigned long long)size);
	return path_rec(out, n, index, 0, size);
}

static int subproof_rec(struct merkle_range *out, size_t *n, uint64_t m, uint64_t lo, uint64_t hi, bool b)
{
	uint64_t k;

	if (m == hi - lo) {
		if (!b) {
			ENSURE(*n < LEDGER_MAX_PROOF, EHR_ERR_TOO_LARGE);
			out[(*n)++] = (struct merkle_range){ lo, hi };
		}
		return 0;
	}
	k = split_point(hi - lo);
	if (m <= k) {
		GUARD(subproof_rec(out, n, m, lo, lo + k, b));
		ENSURE(*n < LEDGER_MAX_PROOF, EHR_ERR_TOO_LARGE);
		out[(*n)++] = (struct merkle_range){ lo + k, hi };
	} else {
		GUARD(subproof_rec(out, n, m - k, lo + k, hi, false));
		ENSURE(*n < LEDGER_MAX_PROOF, EHR_ERR_TOO_LARGE);
		out[(*n)++] = (struct merkle_range){ lo, lo + k };
	}
	return 0;
}

int merkle__consistency_ranges(struct merkle_range *out, size_t *n, uint64_t size1, uint64_t size2)
{
	*n = 0;
	if (size1 > size2)
		return ehr_error_set(EHR_ERR_INVAL, "consistency from %llu to smaller %llu",
		                     (unsigned long long)size1, (unsigned long long)size2);
	if (size1 == 0 || size1 == size2)
		return 0; /* trivially consistent: the empty proof */
	return subproof_rec(out, n, size1, 0, size2, true);
}

/* Split [a, b) into maximal aligned perfect subtrees, left to right. */
static size_t decompose(struct merkle_node_ref *refs, uint64_t a, uint64_t b)
{
	size_t n = 0;

	while (a < b) {
		unsigned j = 0;

		while (j < 63 && (a & ((UINT64_C(2) << j) - 1)) == 0 && (UINT64_C(2) << j) <= b - a)
			j++;
		refs[n].level = j;
		refs[n].idx = a >> j;
		n++;
		a += UINT64_C(1) << j;
	}
	return n;
}

int merkle__ranges_hash(uint8_t (*out)[LEDGER_HASH_LEN], const struct merkle_range *ranges, size_t n,
                        merkle_fetch_fn fetch, void *ctx)
{
	struct merkle_node_ref *refs;
	size_t counts[LEDGER_MAX_PROOF], total = 0, off = 0;
	int err = 0;

	ENSURE(n <= LEDGER_MAX_PROOF, EHR_ERR_TOO_LARGE);
	refs = calloc(n ? n * 64 : 1, sizeof(*refs));
	if (refs == NULL)
		return ehr_error_set(EHR_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		ENSURE_GOTO(ranges[i].begin < ranges[i].end, EHR_ERR_INVAL);
		counts[i] = decompose(refs + total, ranges[i].begin, ranges[i].end);
		total += counts[i];
	}
	if (total > 0)
		GUARD_GOTO(fetch(ctx, refs, total));
	for (size_t i = 0; i < n; i++) {
		uint8_t h[LEDGER_HASH_LEN];

		/* MTH of a range whose start is aligned: fold right to left. */
		memcpy(h, refs[off + counts[i] - 1].hash, LEDGER_HASH_LEN);
		for (size_t j = counts[i] - 1; j-- > 0;)
			merkle_node_hash(h, refs[off + j].hash, h);
		memcpy(out[i], h, LEDGER_HASH_LEN);
		off += counts[i];
	}
out:
	free(refs);
	return err;
}

/* ----------------------------------------------------------- frontier */

void merkle__frontier_init(struct merkle_frontier *f)
{
	memset(f, 0, sizeof(*f));
}

void merkle__frontier_push(struct merkle_frontier *f, const uint8_t leaf[LEDGER_HASH_LEN],
                           uint8_t (*completed)[LEDGER_HASH_LEN], unsigned *ncompleted)
{
	uint8_t cur[LEDGER_HASH_LEN];
	uint64_t s = f->size;
	unsigned level = 0;

	memcpy(cur, leaf, LEDGER_HASH_LEN);
	while (s & 1) {
		merkle_node_hash(cur, f->h[--f->n], cur);
		level++;
		if (completed)
			memcpy(completed[level - 1], cur, LEDGER_HASH_LEN);
		s >>= 1;
	}
	memcpy(f->h[f->n++], cur, LEDGER_HASH_LEN);
	f->size++;
	if (ncompleted)
		*ncompleted = level;
}

void merkle__frontier_root(const struct merkle_frontier *f, uint8_t out[LEDGER_HASH_LEN])
{
	uint8_t r[LEDGER_HASH_LEN];

	if (f->n == 0) {
		ledger__sha256(out, NULL, 0, NULL, 0);
		return;
	}
	memcpy(r, f->h[f->n - 1], LEDGER_HASH_LEN);
	for (unsigned i = f->n - 1; i-- > 0;)
		merkle_node_hash(r, f->h[i], r);
	memcpy(out, r, LEDGER_HASH_LEN);
}

unsigned merkle__frontier_refs(struct merkle_node_ref *refs, uint64_t size)
{
	unsigned n = 0;
	uint64_t prefix = 0;

	for (int level = 63; level >= 0; level--) {
		uint64_t bit = UINT64_C(1) << level;

		if (size & bit) {
			refs[n].level = (unsigned)level;
			refs[n].idx = prefix >> level;
			n++;
			prefix += bit;
		}
	}
	return n;
}

/* ---------------------------------------------------- in-memory trees */

struct mem_tree {
	const uint8_t (*leaves)[LEDGER_HASH_LEN];
};

static void mem_mth(uint8_t out[LEDGER_HASH_LEN], const uint8_t (*leaves)[LEDGER_HASH_LEN], uint64_t n)
{
	uint8_t l[LEDGER_HASH_LEN], r[LEDGER_HASH_LEN];
	uint64_t k;

	if (n == 1) {
		memcpy(out, leaves[0], LEDGER_HASH_LEN);
		return;
	}
	k = split_point(n);
	mem_mth(l, leaves, k);
	mem_mth(r, leaves + k, n - k);
	merkle_node_hash(out, l, r);
}

static int mem_fetch(void *ctx, struct merkle_node_ref *refs, size_t n)
{
	struct mem_tree *t = ctx;

	for (size_t i = 0; i < n; i++)
		mem_mth(refs[i].hash, t->leaves + (refs[i].idx << refs[i].level),
		        UINT64_C(1) << refs[i].level);
	return 0;
}

int merkle_root(uint8_t out[LEDGER_HASH_LEN], const uint8_t (*leaves)[LEDGER_HASH_LEN], uint64_t n)
{
	if (n == 0) {
		ledger__sha256(out, NULL, 0, NULL, 0);
		return 0;
	}
	mem_mth(out, leaves, n);
	return 0;
}

int merkle_prove_inclusion_mem(uint8_t (*out)[LEDGER_HASH_LEN], size_t *out_len,
                               const uint8_t (*leaves)[LEDGER_HASH_LEN], uint64_t index, uint64_t size)
{
	struct merkle_range r[LEDGER_MAX_PROOF];
	struct mem_tree t = { leaves };

	GUARD(merkle__inclusion_ranges(r, out_len, index, size));
	return merkle__ranges_hash(out, r, *out_len, mem_fetch, &t);
}

int merkle_prove_consistency_mem(uint8_t (*out)[LEDGER_HASH_LEN], size_t *out_len,
                                 const uint8_t (*leaves)[LEDGER_HASH_LEN], uint64_t size1, uint64_t size2)
{
	struct merkle_range r[LEDGER_MAX_PROOF];
	struct mem_tree t = { leaves };

	GUARD(merkle__consistency_ranges(r, out_len, size1, size2));
	return merkle__ranges_hash(out, r, *out_len, mem_fetch, &t);
}

/* ------------------------------------------------------- verification */

/* RFC 9162 §2.1.3.2, step by step. */
int merkle_verify_inclusion(const uint8_t leaf[LEDGER_HASH_LEN], uint64_t index, uint64_t size,
                            const uint8_t (*path)[LEDGER_HASH_LEN], size_t path_len,
                            const uint8_t root[LEDGER_HASH_LEN])
{
	uint64_t fn, sn;
	uint8_t r[LEDGER_HASH_LEN];

	if (index >= size)
		return ehr_error_set(EHR_ERR_TAMPER, "inclusion: leaf index %llu >= tree size %llu",
		                     (unsigned long long)index, (unsigned long long)size);
	if (path_len > LEDGER_MAX_PROOF)
		return ehr_error_set(EHR_ERR_TAMPER, "inclusion: proof too long");
	fn = index;
	sn = size - 1;
	memcpy(r, leaf, LEDGER_HASH_LEN);
	for (size_t i = 0; i < path_len; i++) {
		if (sn == 0)
			return ehr_error_set(EHR_ERR_TAMPER, "inclusion: proof longer than the tree is deep");
		if ((fn & 1) || fn == sn) {
			merkle_node_hash(r, path[i], r);
			if (!(fn & 1))
				while (!(fn & 1) && fn != 0) {
					fn >>= 1;
					sn >>= 1;
				}
		} else {
			merkle_node_hash(r, r, path[i]);
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0)
		return ehr_error_set(EHR_ERR_TAMPER, "inclusion: proof too short for tree size %llu",
		                     (unsigned long long)size);
	if (memcmp(r, root, LEDGER_HASH_LEN) != 0) /* not secret */
		return ehr_error_set(EHR_ERR_TAMPER,
		                     "inclusion: computed root differs for leaf %llu in size %llu",
		                     (unsigned long long)index, (unsigned long long)size);
	return 0;
}

/* RFC 9162 §2.1.4.2, step by step. */
int merkle_verify_consistency(uint64_t size1, uint64_t size2, const uint8_t root1[LEDGER_HASH_LEN],
                              const uint8_t root2[LEDGER_HASH_LEN], const uint8_t (*proof)[LEDGER_HASH_LEN],
                              size_t proof_len)
{
	const uint8_t(*p)[LEDGER_HASH_LEN] = proof;
	size_t n = proof_len, i = 0;
	uint64_t fn, sn;
	uint8_t fr[LEDGER_HASH_LEN], sr[LEDGER_HASH_LEN];

	if (size1 > size2)
		return ehr_error_set(EHR_ERR_TAMPER, "consistency: size %llu is older than %llu (rollback)",
		                     (unsigned long long)size2, (unsigned long long)size1);
	if (proof_len > LEDGER_MAX_PROOF)
		return ehr_error_set(EHR_ERR_TAMPER, "consistency: proof too long");
	if (size1 == size2) {
		if (proof_len != 0 || memcmp(root1, root2, LEDGER_HASH_LEN) != 0) /* not secret */
			return ehr_error_set(EHR_ERR_TAMPER,
			                     "consistency: different roots at the same size %llu",
			                     (unsigned long long)size1);
		return 0;
	}
	if (size1 == 0) {
		if (proof_len != 0)
			return ehr_error_set(EHR_ERR_TAMPER,
			                     "consistency: non-empty proof from the empty tree");
		return 0;
	}
	if (proof_len == 0)
		return ehr_error_set(EHR_ERR_TAMPER, "consistency: empty proof");
	/* 1. If size1 is a power of two, the proof implicitly starts with root1. */
	if ((size1 & (size1 - 1)) == 0) {
		memcpy(fr, root1, LEDGER_HASH_LEN);
	} else {
		memcpy(fr, p[0], LEDGER_HASH_LEN);
		i = 1;
	}
	memcpy(sr, fr, LEDGER_HASH_LEN);
	fn = size1 - 1;
	sn = size2 - 1;
	while (fn & 1) {
		fn >>= 1;
		sn >>= 1;
	}
	for (; i < n; i++) {
		if (sn == 0)
			return ehr_error_set(EHR_ERR_TAMPER, "consistency: proof too long");
		if ((fn & 1) || fn == sn) {
			merkle_node_hash(fr, p[i], fr);
			merkle_node_hash(sr, p[i], sr);
			if (!(fn & 1))
				while (!(fn & 1) && fn != 0) {
					fn >>= 1;
					sn >>= 1;
				}
		} else {
			merkle_node_hash(sr, sr, p[i]);
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0)
		return ehr_error_set(EHR_ERR_TAMPER, "consistency: proof too short");
	if (memcmp(fr, root1, LEDGER_HASH_LEN) != 0) /* not secret */
		return ehr_error_set(EHR_ERR_TAMPER, "consistency: tree %llu is not a prefix of tree %llu",
		                     (unsigned long long)size1, (unsigned long long)size2);
	if (memcmp(sr, root2, LEDGER_HASH_LEN) != 0) /* not secret */
		return ehr_error_set(EHR_ERR_TAMPER, "consistency: computed root of tree %llu differs",
		                     (unsigned long long)size2);
	return 0;
}

int merkle_check_advance(uint64_t old_size, const uint8_t old_root[LEDGER_HASH_LEN], uint64_t new_size,
                         const uint8_t new_root[LEDGER_HASH_LEN], const uint8_t (*proof)[LEDGER_HASH_LEN],
                         size_t proof_len)
{
	if (new_size < old_size)
		return ehr_error_set(EHR_ERR_TAMPER,
		                     "rollback: served tree size %llu is older than trusted size %llu",
		                     (unsigned long long)new_size, (unsigned long long)old_size);
	if (new_size == old_size && memcmp(old_root, new_root, LEDGER_HASH_LEN) != 0) /* not secret */
		return ehr_error_set(EHR_ERR_TAMPER, "fork: different root at trusted size %llu",
		                     (unsigned long long)old_size);
	return merkle_verify_consistency(old_size, new_size, old_root, new_root, proof, proof_len);
}
