-- 0055_patient_links.sql - pseudonyms that erasure can unlink, and patient
-- erasure state (docs/ERASURE.md §Pseudonyms, §Patient erasure).
--
-- New patients get a RANDOM pseudonym ("pt-" + 32 random bytes, base64url):
-- nothing derives it from the external id. The hospital's external id is
-- found again only through auth_patient_links: link_hash is
-- HMAC-SHA256(link.key, "ehrgate-link-v1\n" external_id) and names the
-- patient. Patient erasure deletes the link row in the transaction that
-- marks the patient erased, so recomputing the keyed hash afterwards finds
-- nothing and the pseudonym has no derivation left.
--
-- Patients created before this migration have DERIVED pseudonyms
-- (HMAC(pseudonym.key, "patient", external_id)): scheme 'derived'. Their
-- link rows are created lazily (POST /v1/patients with their external id)
-- or by `ehrgate admin migrate-pseudonyms --external-ids FILE`.

ALTER TABLE auth_patients
	ADD COLUMN scheme      text NOT NULL DEFAULT 'derived' CHECK (scheme IN ('derived', 'random')),
	-- NULL: active; 'erasing': the erasure is committed and in the ledger,
	-- records may remain to be erased (fsck or a re-run finishes them);
	-- 'erased': done.
	ADD COLUMN erase_state text CHECK (erase_state IN ('erasing', 'erased')),
	ADD COLUMN erase_seq   bigint UNIQUE,           -- ledger seq of auth.patient.erase
	ADD COLUMN erased_at   timestamptz,
	-- the request, kept so that fsck finishes the record erasures on it
	ADD COLUMN erase_basis text,
	ADD COLUMN erase_by    text CHECK (erase_by IN ('patient', 'operator')),
	ADD COLUMN erase_actor text,
	ADD CONSTRAINT auth_patients_erase_seq CHECK (erase_state IS NULL OR (erase_seq IS NOT NULL AND erase_basis IS NOT NULL));
-- Rows inserted from now on say which scheme made them.
ALTER TABLE auth_patients ALTER COLUMN scheme SET DEFAULT 'random';

CREATE TABLE auth_patient_links (
	link_hash   bytea PRIMARY KEY CHECK (length(link_hash) = 32),
	patient_id  text NOT NULL UNIQUE REFERENCES auth_patients(patient_id),
	created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX auth_patients_erasing ON auth_patients (erase_seq) WHERE erase_state = 'erasing';
CREATE INDEX auth_challenges_patient ON auth_challenges (patient_id);
CREATE INDEX auth_enrol_codes_patient ON auth_enrol_codes (patient_id);

-- Erasure deletes a patient's link, enrolment codes and challenges.
GRANT SELECT, INSERT, DELETE ON auth_patient_links TO ehrgate_app;
GRANT DELETE ON auth_enrol_codes TO ehrgate_app;
