-- 0040_contracts.sql - access-policy contract state, materialised from the
-- ledger (docs/CONTRACTS.md §5).
--
-- The ledger is the source of truth: every row here is derived from a
-- contract.create / contract.revoke / contract.group.* entry, whose seq is
-- kept, and `ehrgate contracts rebuild` recomputes these tables from the
-- ledger alone. The application role may INSERT, SELECT and UPDATE (a
-- revocation sets revoked_seq); it never deletes. Only the rebuild, run by
-- the operator with the admin conninfo, empties the tables.

CREATE TABLE policy_contracts (
	cid          text    PRIMARY KEY CHECK (cid ~ '^[A-Za-z0-9_-]{43}$'),
	patient      text    NOT NULL,
	grantee_kind text    NOT NULL CHECK (grantee_kind IN ('server', 'group')),
	grantee      text    NOT NULL,
	actions      integer NOT NULL CHECK (actions BETWEEN 1 AND 3),   -- 1 read, 2 append
	scope_kind   text    NOT NULL CHECK (scope_kind IN ('all', 'records', 'categories')),
	scope        text[]  NOT NULL DEFAULT '{}',
	purpose      text    NOT NULL,
	not_before   bigint  NOT NULL,
	not_after    bigint  NOT NULL CHECK (not_after > not_before),
	issued_at    bigint  NOT NULL,
	created_seq  bigint  NOT NULL UNIQUE,   -- ledger seq of contract.create
	document     text    NOT NULL,          -- RFC 8785 form of the signed contract
	signature    text    NOT NULL,          -- ES256, JOSE r||s, base64url
	jkt          text    NOT NULL,          -- RFC 7638 thumbprint of the signing key
	revoked_seq  bigint,                    -- ledger seq of the first contract.revoke
	revocation   text,                      -- RFC 8785 form of the signed revocation
	revocation_signature text
);

-- Evaluation loads one patient's contracts; the list API pages by seq.
CREATE INDEX policy_contracts_patient_idx ON policy_contracts (patient, created_seq);
-- Which contracts name a grantee (operators, audits).
CREATE INDEX policy_contracts_grantee_idx ON policy_contracts (grantee_kind, grantee);

-- Named groups of medical servers a contract may name as grantee.
CREATE TABLE policy_groups (
	group_name text   NOT NULL,
	server_id  text   NOT NULL,
	added_seq  bigint NOT NULL,             -- ledger seq of contract.group.add
	PRIMARY KEY (group_name, server_id)
);
CREATE INDEX policy_groups_server_idx ON policy_groups (server_id);

REVOKE ALL ON policy_contracts, policy_groups FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON policy_contracts TO ehrgate_app;
-- Group removal is a ledger entry too; the materialised row goes.
GRANT SELECT, INSERT, DELETE ON policy_groups TO ehrgate_app;
