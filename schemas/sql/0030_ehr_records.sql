-- 0030_ehr_records.sql - metadata of encrypted EHR records (docs/STORAGE.md §4).
--
-- One row per record. The object itself (ciphertext only) lives in the object
-- store under ehr/<rid[0:2]>/<rid>; the ledger's ehr.store entry holds its
-- SHA-256. The row keeps what the object must not: the data key wrapped by
-- the KEK `kek_id`. A row is written 'pending' before the object is
-- uploaded (so a crash never loses the wrapped key of an object that the
-- ledger may already name) and becomes 'stored' with the ledger seq once
-- the ehr.store entry is durable. `ehrgate fsck` settles pending rows.
-- `ehrgate admin rotate-kek` rewrites kek_id and wrapped_key only.

CREATE TABLE ehr_records (
	record_id    text    PRIMARY KEY CHECK (record_id ~ '^[0-9a-f]{32}$'),
	patient      text    NOT NULL,                  -- patient pseudonym
	stored_by    text    NOT NULL,                  -- server id (certificate subject id)
	content_type text    NOT NULL,
	category     text,
	plain_size   bigint  CHECK (plain_size >= 0),
	ct_size      bigint  CHECK (ct_size >= 0),
	ct_sha256    bytea   CHECK (ct_sha256 IS NULL OR length(ct_sha256) = 32),
	kek_id       text    NOT NULL,
	wrapped_key  bytea   NOT NULL CHECK (length(wrapped_key) = 61),
	state        text    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'stored')),
	ledger_seq   bigint  UNIQUE,
	created_ms   bigint  NOT NULL,
	CHECK (state = 'pending' OR (ledger_seq IS NOT NULL AND ct_sha256 IS NOT NULL AND ct_size IS NOT NULL))
);

CREATE INDEX ehr_records_patient_idx ON ehr_records (patient, created_ms, record_id);
CREATE INDEX ehr_records_kek_idx ON ehr_records (kek_id);
CREATE INDEX ehr_records_pending_idx ON ehr_records (created_ms) WHERE state = 'pending';

-- The gateway inserts, reads, completes (pending -> stored) and re-wraps rows,
-- and removes a pending row whose upload failed.
GRANT SELECT, INSERT, UPDATE, DELETE ON ehr_records TO ehrgate_app;
