-- 0080_published.sql - quorum-published checkpoints (docs/LEDGER.md §11).
--
-- A checkpoint counts only once k witnesses cosigned it. The publisher
-- (publish/) writes each one that reached quorum here: the ledger's signed
-- note with the witnesses' cosignature lines appended. The rows are
-- append-only like the ledger, and the published head moves only forward,
-- by a compare-and-swap on its one row:
--   UPDATE ledger_published_head SET tree_size = new
--    WHERE tree_size = old AND new > old
-- in the same transaction as the INSERT, so of two instances' rounds for
-- one head only one wins and the published size never goes back.
CREATE TABLE ledger_published (
	tree_size    bigint  PRIMARY KEY CHECK (tree_size > 0),
	note         text    NOT NULL CHECK (length(note) <= 65536),
	cosigners    integer NOT NULL CHECK (cosigners > 0),
	published_ms bigint  NOT NULL
);

CREATE TABLE ledger_published_head (
	one        boolean PRIMARY KEY DEFAULT true CHECK (one),
	tree_size  bigint  NOT NULL CHECK (tree_size >= 0),
	updated_ms bigint  NOT NULL
);
INSERT INTO ledger_published_head (one, tree_size, updated_ms) VALUES (true, 0, 0);

CREATE TRIGGER ledger_published_append_only BEFORE UPDATE OR DELETE ON ledger_published
	FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_published_no_truncate BEFORE TRUNCATE ON ledger_published
	FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- The head row may only move forward, whoever updates it.
CREATE FUNCTION ledger_published_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.tree_size <= OLD.tree_size THEN
		RAISE EXCEPTION 'published head may not go back (% -> %)', OLD.tree_size, NEW.tree_size
			USING ERRCODE = 'P0001';
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER ledger_published_head_forward BEFORE UPDATE ON ledger_published_head
	FOR EACH ROW EXECUTE FUNCTION ledger_published_forward();
CREATE TRIGGER ledger_published_head_no_delete BEFORE DELETE ON ledger_published_head
	FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_published_head_no_truncate BEFORE TRUNCATE ON ledger_published_head
	FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

REVOKE ALL ON ledger_published, ledger_published_head FROM PUBLIC;
GRANT SELECT, INSERT ON ledger_published TO ehrgate_app;
GRANT SELECT, UPDATE ON ledger_published_head TO ehrgate_app;
