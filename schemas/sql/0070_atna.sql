-- 0070_atna.sql - the ATNA feed's durable cursor (docs/AUDIT.md §8).
--
-- One row per Audit Record Repository (the name in [atna] repositories):
-- the highest ledger seq that was written to that repository over TLS,
-- flushed, and seen followed by a live connection. The feed resumes at
-- last_seq + 1 after any restart, so every entry is sent at least once, in
-- seq order. The cursor only moves forward (GREATEST in the upsert). Only the
-- instance holding the repository's session advisory lock writes its row.
CREATE TABLE atna_cursor (
	repository text   PRIMARY KEY CHECK (length(repository) BETWEEN 1 AND 64),
	last_seq   bigint NOT NULL CHECK (last_seq >= -1),
	updated_ms bigint NOT NULL
);

REVOKE ALL ON atna_cursor FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON atna_cursor TO ehrgate_app;
