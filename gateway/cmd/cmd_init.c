/*
 * cmd_init.c - `ehrgate init`: a fresh state directory with a dev PKI and
 * every key the gateway needs. File names are a contract that other areas
 * and docs/OPERATIONS.md rely on:
 *
 *   ca.pem, ca.key            dev root CA (P-256), signs server.pem
 *   server.pem, server.key    TLS server cert (P-256), SAN DNS:localhost, IP:127.0.0.1
 *   regca.pem, regca.key      registration CA (P-256, self-signed), issues client certs
 *   ledger.key, ledger.pub    Ed25519, PKCS#8 PEM / SubjectPublicKeyInfo PEM
 *   token.key, token.pub      P-256 for ES256 access tokens, PKCS#8 PEM / SPKI PEM
 *   link.key                  32 random bytes: HMAC key of the external-id -> patient
 *                             links that erasure destroys (pseudonyms themselves are
 *                             random; a pre-0055 install also has pseudonym.key)
 *   kek/<kid>.key             32 random bytes; kid is 16 lower-case hex digits
 *   kek/current               the current kid (no trailing newline)
 *
 * The directory is 0700, private keys 0600, certificates and public keys 0644.
 * Nothing is overwritten: if any of the files exists, init stops (exit 1),
 * except that a state directory with every file but link.key (made before
 * schema 0055) gets link.key alone, when the database holds no links yet.
 */
#include "auth/auth.h"
#include "gateway/cmd/commands.h"
#include "gateway/gateway.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

static const char *init_files[] = {
	"ca.pem",     "ca.key",     "server.pem", "server.key", "regca.pem", "regca.key",
	"ledger.key", "ledger.pub", "token.key",  "token.pub",  "link.key",  "kek/current",
};

static int path_of(struct ehr_buf *b, const char *dir, const char *name)
{
	ehr_buf_reset(b);
	return ehr_buf_printf(b, "%s/%s", dir, name);
}

static int write_bio(const char *dir, const char *name, BIO *bio, unsigned mode)
{
	struct ehr_buf path = EHR_BUF_INIT(4096);
	char *data;
	long len = BIO_get_mem_data(bio, &data);
	int err;

	GUARD_GOTO(path_of(&path, dir, name));
	err = ehr_file_write_atomic(ehr_buf_cstr(&path), data, (size_t)len, mode, true);
out:
	ehr_buf_free(&path);
	return err;
}

static int write_private_key(const char *dir, const char *name, EVP_PKEY *k)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int err = 0;

	if (bio == NULL)
		return ehr_error_set(EHR_ERR_NOMEM, "out of memory");
	/* PKCS#8, unencrypted: protected by 0600 and the 0700 directory. */
	GUARD_OSSL_GOTO(PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL));
	err = write_bio(dir, name, bio, 0600);
out:
	BIO_free_all(bio); /* memory BIO contents are not cleansed by OpenSSL; keep it short-lived */
	return err;
}

static int write_public_key(const char *dir, const char *name, EVP_PKEY *k)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int err = 0;

	if (bio == NULL)
		return ehr_error_set(EHR_ERR_NOMEM, "out of memory");
	GUARD_OSSL_GOTO(PEM_write_bio_PUBKEY(bio, k));
	err = write_bio(dir, name, bio, 0644);
out:
	BIO_free_all(bio);
	return err;
}

static int write_cert(const char *dir, const char *name, X509 *x)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int err = 0;

	if (bio == NULL)
		return ehr_error_set(EHR_ERR_NOMEM, "out of memory");
	GUARD_OSSL_GOTO(PEM_write_bio_X509(bio, x));
	err = write_bio(dir, name, bio, 0644);
out:
	BIO_free_all(bio);
	return err;
}

static int write_random(const char *dir, const char *name, size_t n)
{
	struct ehr_buf path = EHR_BUF_INIT(4096);
	uint8_t key[64];
	int err;

	GUARD_GOTO(ehr_random(key, n));
	GUARD_GOTO(path_of(&path, dir, name));
	err = ehr_file_write_atomic(ehr_buf_cstr(&path), key, n, 0600, true);
out:
	OPENSSL_cleanse(key, sizeof(key));
	ehr_buf_free(&path);
	return err;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return ehr_error_ossl(EHR_ERR_CRYPTO, "X509V3_EXT_conf_nid");
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	if (ok != 1)
		return ehr_error_ossl(EHR_ERR_CRYPTO, "X509_add_ext");
	return 0;
}

struct cert_spec {
	const char *cn;
	long days;
	bool ca;
	const char *san; /* NULL for none */
};

/* Issue a certificate for `key`, signed by issuer_key (self-signed when
 * issuer is NULL). */
static int make_cert(X509 **out, EVP_PKEY *key, const struct cert_spec *s, X509 *issuer, EVP_PKEY *issuer_key)
{
	X509 *x = X509_new();
	X509_NAME *name = NULL;
	BIGNUM *bn = NULL;
	uint8_t serial[16];
	int err = 0;

	ENSURE_GOTO(x != NULL, EHR_ERR_NOMEM);
	GUARD_GOTO(ehr_random(serial, sizeof(serial)));
	serial[0] &= 0x7f; /* positive, RFC 5280 §4.1.2.2 */
	serial[0] |= 0x01;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	ENSURE_GOTO(bn != NULL, EHR_ERR_NOMEM);
	GUARD_OSSL_GOTO(X509_set_version(x, X509_VERSION_3));
	ENSURE_GOTO(BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL, EHR_ERR_CRYPTO);
	ENSURE_GOTO(X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL, EHR_ERR_CRYPTO);
	ENSURE_GOTO(X509_gmtime_adj(X509_getm_notAfter(x), s->days * 86400L) != NULL, EHR_ERR_CRYPTO);
	name = X509_NAME_new();
	ENSURE_GOTO(name != NULL, EHR_ERR_NOMEM);
	GUARD_OSSL_GOTO(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
	                                           (const unsigned char *)"ehrgate dev", -1, -1, 0));
	GUARD_OSSL_GOTO(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)s->cn, -1,
	                                           -1, 0));
	GUARD_OSSL_GOTO(X509_set_subject_name(x, name));
	GUARD_OSSL_GOTO(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name));
	GUARD_OSSL_GOTO(X509_set_pubkey(x, key));
	if (s->ca) {
		GUARD_GOTO(
		        add_ext(x, issuer ? issuer : x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
		GUARD_GOTO(add_ext(x, issuer ? issuer : x, NID_key_usage,
		                   "critical,keyCertSign,cRLSign,digitalSignature"));
	} else {
		GUARD_GOTO(add_ext(x, issuer ? issuer : x, NID_basic_constraints, "critical,CA:FALSE"));
		GUARD_GOTO(add_ext(x, issuer ? issuer : x, NID_key_usage, "critical,digitalSignature"));
		GUARD_GOTO(add_ext(x, issuer ? issuer : x, NID_ext_key_usage, "serverAuth"));
	}
	GUARD_GOTO(add_ext(x, issuer ? issuer : x, NID_subject_key_identifier, "hash"));
	if (issuer)
		GUARD_GOTO(add_ext(x, issuer, NID_authority_key_identifier, "keyid:always"));
	if (s->san)
		GUARD_GOTO(add_ext(x, issuer ? issuer : x, NID_subject_alt_name, s->san));
	if (X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) <= 0) {
		err = ehr_error_ossl(EHR_ERR_CRYPTO, "X509_sign");
		goto out;
	}
	*out = x;
	x = NULL;
out:
	X509_free(x);
	X509_NAME_free(name);
	BN_free(bn);
	return err;
}

static int new_p256(EVP_PKEY **out)
{
	*out = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	return *out ? 0 : ehr_error_ossl(EHR_ERR_CRYPTO, "P-256 key generation");
}

static int init_state(const char *dir)
{
	EVP_PKEY *ca_key = NULL, *srv_key = NULL, *reg_key = NULL, *ledger_key = NULL, *token_key = NULL;
	X509 *ca = NULL, *srv = NULL, *reg = NULL;
	struct ehr_buf path = EHR_BUF_INIT(4096), kid = EHR_BUF_INIT(64), name = EHR_BUF_INIT(128);
	uint8_t kid_raw[8];
	int err = 0;
	const struct cert_spec ca_spec = { "ehrgate dev root CA", 3650, true, NULL };
	const struct cert_spec srv_spec = { "localhost", 825, false, "DNS:localhost,IP:127.0.0.1" };
	const struct cert_spec reg_spec = { "ehrgate registration CA", 3650, true, NULL };

	GUARD_GOTO(new_p256(&ca_key));
	GUARD_GOTO(new_p256(&srv_key));
	GUARD_GOTO(new_p256(&reg_key));
	GUARD_GOTO(new_p256(&token_key));
	ledger_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (ledger_key == NULL) {
		err = ehr_error_ossl(EHR_ERR_CRYPTO, "Ed25519 key generation");
		goto out;
	}
	GUARD_GOTO(make_cert(&ca, ca_key, &ca_spec, NULL, NULL));
	GUARD_GOTO(make_cert(&srv, srv_key, &srv_spec, ca, ca_key));
	GUARD_GOTO(make_cert(&reg, reg_key, &reg_spec, NULL, NULL));

	GUARD_GOTO(write_private_key(dir, "ca.key", ca_key));
	GUARD_GOTO(write_cert(dir, "ca.pem", ca));
	GUARD_GOTO(write_private_key(dir, "server.key", srv_key));
	GUARD_GOTO(write_cert(dir, "server.pem", srv));
	GUARD_GOTO(write_private_key(dir, "regca.key", reg_key));
	GUARD_GOTO(write_cert(dir, "regca.pem", reg));
	GUARD_GOTO(write_private_key(dir, "ledger.key", ledger_key));
	GUARD_GOTO(write_public_key(dir, "ledger.pub", ledger_key));
	GUARD_GOTO(write_private_key(dir, "token.key", token_key));
	GUARD_GOTO(write_public_key(dir, "token.pub", token_key));
	GUARD_GOTO(write_random(dir, AUTH_LINK_KEY_FILE, 32));

	GUARD_GOTO(path_of(&path, dir, "kek"));
	GUARD_GOTO(ehr_mkdir_p(ehr_buf_cstr(&path), 0700));
	GUARD_GOTO(ehr_random(kid_raw, sizeof(kid_raw)));
	GUARD_GOTO(ehr_hex_encode(&kid, kid_raw, sizeof(kid_raw)));
	GUARD_GOTO(ehr_buf_printf(&name, "kek/%s.key", ehr_buf_cstr(&kid)));
	GUARD_GOTO(write_random(dir, ehr_buf_cstr(&name), 32));
	GUARD_GOTO(path_of(&path, dir, "kek/current"));
	GUARD_GOTO(ehr_file_write_atomic(ehr_buf_cstr(&path), kid.data, kid.len, 0600, true));
out:
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(srv_key);
	EVP_PKEY_free(reg_key);
	EVP_PKEY_free(ledger_key);
	EVP_PKEY_free(token_key);
	X509_free(ca);
	X509_free(srv);
	X509_free(reg);
	ehr_buf_free(&path);
	ehr_buf_free(&kid);
	ehr_buf_free(&name);
	return err;
}

/* An install older than schema 0055: every key but link.key. Add it alone
 * (docs/ERASURE.md §11), touching nothing else. */
static int add_link_key(const struct gw_config *cfg, const char *path)
{
	struct gw_app *app = NULL;
	int err;

	if (gw_app_open(&app, cfg, GW_APP_DB) < 0) {
		fprintf(stderr, "ehrgate init: adding %s needs the database: %s\n", path, ehr_error_detail());
		return 1;
	}
	err = gw_cmd_link_key_create(gw_app_db(app), path);
	gw_app_close(app);
	if (err < 0) {
		fprintf(stderr, "ehrgate init: %s\n", ehr_error_detail());
		return 1;
	}
	printf("ehrgate init: added %s to the existing state directory; no other key was touched\n", path);
	return 0;
}

static void init_usage(FILE *f)
{
	fprintf(f, "usage: ehrgate init [--state-dir DIR] [-c FILE] [--set section.key=value]...\n\n"
	           "Create the state directory (default: [server] state_dir) with mode 0700 and,\n"
	           "inside it, a dev PKI (ca.pem, server.pem for localhost/127.0.0.1, regca.pem),\n"
	           "the Ed25519 ledger key, the ES256 token key, the link key (link.key) and a first\n"
	           "key-encryption key (kek/). Private keys are 0600. Existing keys are never\n"
	           "overwritten: init exits 1 if any is present, except on a state directory that\n"
	           "has every key but link.key (an install older than schema 0055): then it adds\n"
	           "link.key alone, if the database holds no external-id links yet.\n");
}

int gw_cmd_init(int argc, char **argv)
{
	struct gw_config *cfg = NULL;
	struct ehr_buf path = EHR_BUF_INIT(4096);
	const char *dir = NULL;
	int rc, found = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			init_usage(stdout);
			return 0;
		}
	}
	if ((rc = gw_config_from_args(&cfg, &argc, argv)) != 0)
		return rc;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--state-dir") == 0 && i + 1 < argc) {
			dir = argv[++i];
		} else if (strncmp(argv[i], "--state-dir=", 12) == 0) {
			dir = argv[i] + 12;
		} else {
			fprintf(stderr, "ehrgate init: unexpected argument '%s'\n", argv[i]);
			init_usage(stderr);
			rc = 2;
			goto out;
		}
	}
	if (dir == NULL)
		dir = gw_config_get(cfg, "server", "state_dir");
	umask(077);
	if (ehr_mkdir_p(dir, 0700) < 0) {
		fprintf(stderr, "ehrgate init: %s\n", ehr_error_detail());
		rc = 1;
		goto out;
	}
	if (chmod(dir, 0700) != 0) {
		fprintf(stderr, "ehrgate init: chmod %s: %s\n", dir, strerror(errno));
		rc = 1;
		goto out;
	}
	for (size_t i = 0; i < EHR_ARRAY_LEN(init_files); i++) {
		path_of(&path, dir, init_files[i]);
		if (access(ehr_buf_cstr(&path), F_OK) == 0)
			found++;
	}
	path_of(&path, dir, AUTH_LINK_KEY_FILE);
	if (found == (int)EHR_ARRAY_LEN(init_files) - 1 && access(ehr_buf_cstr(&path), F_OK) != 0) {
		rc = add_link_key(cfg, ehr_buf_cstr(&path));
		goto out;
	}
	for (size_t i = 0; found && i < EHR_ARRAY_LEN(init_files); i++) {
		path_of(&path, dir, init_files[i]);
		if (access(ehr_buf_cstr(&path), F_OK) == 0)
			fprintf(stderr, "ehrgate init: %s already exists\n", ehr_buf_cstr(&path));
	}
	if (found) {
		fprintf(stderr, "ehrgate init: refusing to overwrite existing keys in %s\n", dir);
		rc = 1;
		goto out;
	}
	if (init_state(dir) < 0) {
		fprintf(stderr, "ehrgate init: %s\n", ehr_error_detail());
		rc = 1;
		goto out;
	}
	printf("ehrgate init: created %s (dev CA: %s/ca.pem)\n", dir, dir);
	rc = 0;
out:
	ehr_buf_free(&path);
	gw_config_free(cfg);
	return rc;
}
