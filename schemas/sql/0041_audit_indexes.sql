-- 0041_audit_indexes.sql - indexes for the auditor's query API (docs/AUDIT.md).
--
-- 0010 indexes (type, seq), (actor, seq), (subject, seq) and a BRIN on ts_ms.
-- A time-bounded query is answered by turning `since` into a first seq with
-- this btree (one index probe), then walking the seq order; the (ts_ms, seq)
-- order also serves ORDER BY ts_ms LIMIT 1 without a sort.
CREATE INDEX ledger_entries_ts_seq_idx ON ledger_entries (ts_ms, seq);
