-- 0076_ehr_segment_tags.sql - the GCM tag of every segment of a record's
-- object, in order (16 bytes each; docs/STORAGE.md §5a). The ehr.store
-- ledger entry commits to their SHA-256 ("seg_tags_sha256"), so a read can
-- check each segment against the ledger as it arrives and release it at
-- once instead of fetching the whole object first. NULL for records
-- stored before this column, or whose row fsck completed from the ledger:
-- those are read the old way (whole object fetched and checked first).
ALTER TABLE ehr_records ADD COLUMN seg_tags bytea;
