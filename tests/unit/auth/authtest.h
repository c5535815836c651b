/* authtest.h - helpers shared by the auth unit and integration tests. */
#ifndef EHR_AUTHTEST_H
#define EHR_AUTHTEST_H

#include <openssl/x509.h>

#include "auth/auth.h"

/* A self-signed P-256 CA (CN=name) valid now. */
int authtest_make_ca(X509 **ca, EVP_PKEY **key, const char *name);
/* A compact JWS with any header/payload JSON text and alg, using libjwt the
 * way an attacker would: "HS256" keyed with `hmac_key`, or "none". */
int authtest_libjwt_token(struct ehr_buf *out, const char *alg, const char *payload_json,
                          const char *header_kid, const void *hmac_key, size_t keylen);
/* Sign arbitrary header/payload JSON text with ES256 (key) into a compact JWS. */
int authtest_es256_jws(struct ehr_buf *out, EVP_PKEY *key, const char *header_json, const char *payload_json);
/* Flip one bit of the signature part (the last character's base64url value). */
void authtest_tamper_last(struct ehr_buf *jws);

/* Write a gateway state directory's auth files into dir (created):
 * regca.pem/regca.key, ca.pem (another CA), token.key/token.pub, pseudonym.key. */
int authtest_make_state(const char *dir);

#endif
