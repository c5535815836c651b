-- 0050_ehr_erasure.sql - record erasure (crypto-shredding), retention and
-- legal holds (docs/ERASURE.md).
--
-- An erased record keeps its row: record_id, patient pseudonym, sizes,
-- ct_sha256 and ledger_seq stay (they are what the ledger already holds),
-- and the erasure adds erase_seq (the ehr.erase ledger entry). What is
-- destroyed is the wrapped data key (wrapped_key and kek_id become NULL)
-- and the object. The sequence (records/erase.c):
--   stored  -> 'erasing': key wiped and the request (basis, by, actor)
--              kept, in ONE transaction: from here nothing can undo it;
--           -> the ehr.erase entry durable, erase_seq set;
--           -> the object deleted;
--           -> 'erased'.
-- `ehrgate fsck` finishes every 'erasing' row from what the row holds.

ALTER TABLE ehr_records DROP CONSTRAINT ehr_records_state_check;
ALTER TABLE ehr_records ADD CONSTRAINT ehr_records_state_check
	CHECK (state IN ('pending', 'stored', 'erasing', 'erased'));
ALTER TABLE ehr_records ALTER COLUMN kek_id DROP NOT NULL;
ALTER TABLE ehr_records ALTER COLUMN wrapped_key DROP NOT NULL;
ALTER TABLE ehr_records
	ADD COLUMN erase_seq   bigint UNIQUE,   -- the ehr.erase ledger entry
	ADD COLUMN erase_basis text,            -- legal-basis code (docs/ERASURE.md §5)
	ADD COLUMN erase_by    text,            -- 'patient' | 'operator' | 'patient-erasure'
	ADD COLUMN erase_actor text,            -- ledger actor of the request (a pseudonym or 'operator')
	ADD COLUMN erase_ms    bigint;          -- when the key was destroyed
-- A row holds a data key exactly when it is not being or been erased.
ALTER TABLE ehr_records ADD CONSTRAINT ehr_records_key_check CHECK (
	CASE WHEN state IN ('erasing', 'erased')
	     THEN wrapped_key IS NULL AND kek_id IS NULL AND erase_basis IS NOT NULL
	          AND erase_by IS NOT NULL AND erase_actor IS NOT NULL AND erase_ms IS NOT NULL
	     ELSE wrapped_key IS NOT NULL AND kek_id IS NOT NULL END);
ALTER TABLE ehr_records ADD CONSTRAINT ehr_records_erased_check
	CHECK (state <> 'erased' OR erase_seq IS NOT NULL);

-- No acknowledged erasure is undone: once a row is 'erasing' it only moves
-- to 'erased', its key stays NULL, and the erasure's facts do not change.
CREATE FUNCTION ehr_records_erasure_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF OLD.state IN ('erasing', 'erased') THEN
		IF NEW.state NOT IN ('erasing', 'erased') OR (OLD.state = 'erased' AND NEW.state <> 'erased')
		   OR NEW.erase_basis IS DISTINCT FROM OLD.erase_basis
		   OR NEW.erase_actor IS DISTINCT FROM OLD.erase_actor
		   OR (OLD.erase_seq IS NOT NULL AND NEW.erase_seq IS DISTINCT FROM OLD.erase_seq) THEN
			RAISE EXCEPTION 'ehr_records: an erasure cannot be undone or changed';
		END IF;
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER ehr_records_erasure_guard BEFORE UPDATE ON ehr_records
	FOR EACH ROW EXECUTE FUNCTION ehr_records_erasure_guard();
CREATE INDEX ehr_records_erasing_idx ON ehr_records (record_id) WHERE state = 'erasing';

-- Legal holds: while a hold on the record or on its patient is in force
-- (lifted_ms IS NULL), erasure is refused. Each place and lift is also a
-- ledger entry (ehr.hold.place / ehr.hold.lift). A hold row is written
-- BEFORE its ledger entry, so a crash leaves the hold in force.
CREATE TABLE ehr_holds (
	hold_id    bigserial PRIMARY KEY,
	patient    text,                         -- patient pseudonym, or
	record_id  text,                         -- one record
	reason     text   NOT NULL,              -- reason code (docs/ERASURE.md §6)
	placed_ms  bigint NOT NULL,
	placed_seq bigint,                       -- the ehr.hold.place entry
	lifted_ms  bigint,
	lifted_seq bigint,                       -- the ehr.hold.lift entry
	CHECK ((patient IS NULL) <> (record_id IS NULL))
);
CREATE UNIQUE INDEX ehr_holds_active_idx ON ehr_holds (coalesce(patient, ''), coalesce(record_id, ''), reason)
	WHERE lifted_ms IS NULL;

GRANT SELECT, INSERT, UPDATE ON ehr_holds TO ehrgate_app;
GRANT USAGE ON SEQUENCE ehr_holds_hold_id_seq TO ehrgate_app;
