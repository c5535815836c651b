-- 0010_ledger.sql - the tamper-evident ledger (docs/LEDGER.md §3, §9).
--
-- Append-only: the application role may INSERT and SELECT, nothing else,
-- and triggers refuse UPDATE, DELETE and TRUNCATE for every role that runs
-- ordinary triggers. Appenders serialise on pg_advisory_xact_lock and read
-- the tip (the highest block) inside that lock; the primary keys on seq,
-- height and tree_size make a gap-free, fork-free chain the only thing
-- that can commit even if a writer ignored the lock.

CREATE TABLE ledger_entries (
	seq          bigint  PRIMARY KEY CHECK (seq >= 0),
	ts_ms        bigint  NOT NULL,
	type         text    NOT NULL,
	actor        text    NOT NULL,
	subject      text    NOT NULL,
	block_height bigint  NOT NULL,
	entry        bytea   NOT NULL,   -- canonical encoding (LEDGER.md §1)
	leaf_hash    bytea   NOT NULL,   -- SHA-256(0x00 || entry)
	nodes        bytea   NOT NULL    -- MTH of the perfect subtrees ending at this leaf, levels 1..ctz(seq+1)
);

-- Audit queries: by subject (patient view), by actor, by time (BRIN: ts_ms
-- grows with seq). A type filter walks the primary key in seq order, which
-- is what cursor pagination does anyway; every extra index costs appends.
CREATE INDEX ledger_entries_subject_idx ON ledger_entries (subject, seq);
CREATE INDEX ledger_entries_actor_idx ON ledger_entries (actor, seq);
CREATE INDEX ledger_entries_ts_idx ON ledger_entries USING brin (ts_ms);

CREATE TABLE ledger_blocks (
	height    bigint PRIMARY KEY CHECK (height >= 0),
	prev_hash bytea  NOT NULL,
	tree_size bigint NOT NULL UNIQUE CHECK (tree_size > 0),
	root      bytea  NOT NULL,
	ts_ms     bigint NOT NULL,
	hash      bytea  NOT NULL,       -- SHA-256 of the header (LEDGER.md §5)
	sig       bytea  NOT NULL,       -- Ed25519 over the header
	origin    text   NOT NULL,       -- checkpoint origin line
	cp_sig    bytea  NOT NULL        -- Ed25519 over the checkpoint body (LEDGER.md §6)
);

CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME
		USING ERRCODE = 'P0001';
END
$$;

CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
	FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
	FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_blocks_append_only BEFORE UPDATE OR DELETE ON ledger_blocks
	FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_blocks_no_truncate BEFORE TRUNCATE ON ledger_blocks
	FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- A writer that cached the tip checks, inside the advisory lock and the
-- same transaction, that nobody appended since; if someone did, it gets
-- serialization_failure and re-reads the tip (LEDGER.md §3).
CREATE FUNCTION ledger_expect_tip(expected bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	IF (SELECT max(height) FROM ledger_blocks) IS DISTINCT FROM expected THEN
		RAISE EXCEPTION 'ledger tip moved (expected height %)', expected USING ERRCODE = '40001';
	END IF;
END
$$;

REVOKE ALL ON ledger_entries, ledger_blocks FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger_expect_tip(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger_expect_tip(bigint) TO ehrgate_app;
GRANT SELECT, INSERT ON ledger_entries, ledger_blocks TO ehrgate_app;
