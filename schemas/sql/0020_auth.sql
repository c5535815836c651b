-- 0020_auth.sql - registration, certificates, patients, nonces, DPoP replay cache.
-- Secrets (registration tokens, enrolment codes, nonces) are stored only as SHA-256.
-- Patient identifiers are stored only as keyed-hash pseudonyms (auth_pseudonym).

CREATE TABLE auth_reg_tokens (
	token_hash  bytea PRIMARY KEY CHECK (length(token_hash) = 32),
	role        text NOT NULL CHECK (role IN ('server', 'auditor')),
	name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
	created_at  timestamptz NOT NULL DEFAULT now(),
	expires_at  timestamptz NOT NULL,
	used_at     timestamptz,
	used_by     text
);

-- Medical servers and auditors. id is assigned by the gateway (certificate CN);
-- name is the operator's free text and never leaves this table.
CREATE TABLE auth_principals (
	id          text PRIMARY KEY,
	role        text NOT NULL CHECK (role IN ('server', 'auditor')),
	name        text NOT NULL,
	created_at  timestamptz NOT NULL DEFAULT now(),
	revoked_at  timestamptz
);

CREATE TABLE auth_certs (
	serial       text PRIMARY KEY,          -- lower-case hex, minimal bytes
	principal_id text NOT NULL REFERENCES auth_principals(id),
	role         text NOT NULL CHECK (role IN ('server', 'auditor')),
	not_before   timestamptz NOT NULL,
	not_after    timestamptz NOT NULL,
	issued_at    timestamptz NOT NULL DEFAULT now(),
	revoked_at   timestamptz
);
CREATE INDEX auth_certs_principal ON auth_certs (principal_id);

CREATE TABLE auth_patients (
	patient_id   text PRIMARY KEY,          -- pseudonym "pt-..."
	created_by   text NOT NULL,             -- server id
	created_at   timestamptz NOT NULL DEFAULT now(),
	device_jkt   text,                      -- RFC 7638 thumbprint of the device key
	device_jwk   text,                      -- the public JWK (JSON text)
	enrolled_at  timestamptz,
	revoked_at   timestamptz
);

CREATE TABLE auth_enrol_codes (
	code_hash   bytea PRIMARY KEY CHECK (length(code_hash) = 32),
	patient_id  text NOT NULL REFERENCES auth_patients(patient_id),
	created_at  timestamptz NOT NULL DEFAULT now(),
	expires_at  timestamptz NOT NULL,
	used_at     timestamptz
);

CREATE TABLE auth_challenges (
	nonce_hash  bytea PRIMARY KEY CHECK (length(nonce_hash) = 32),
	patient_id  text NOT NULL,
	expires_at  timestamptz NOT NULL,
	used_at     timestamptz
);
CREATE INDEX auth_challenges_expiry ON auth_challenges (expires_at);

-- DPoP proof jti values seen inside the acceptance window (RFC 9449 §11.1).
-- The primary key makes a jti single-use across every instance sharing the DB.
CREATE TABLE auth_dpop_jti (
	jti         text PRIMARY KEY,
	expires_at  timestamptz NOT NULL
);
CREATE INDEX auth_dpop_jti_expiry ON auth_dpop_jti (expires_at);

GRANT SELECT, INSERT, UPDATE ON auth_reg_tokens, auth_principals, auth_certs, auth_patients,
	auth_enrol_codes TO ehrgate_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON auth_challenges, auth_dpop_jti TO ehrgate_app;
