-- coachd schema, version 4: honest sync times per cloud account. `last_sync_ms` is the
-- last complete, successful sync; a failing account shows its last attempt and its last
-- error with their times instead of looking fresh.
ALTER TABLE accounts ADD COLUMN last_attempt_ms BIGINT;
ALTER TABLE accounts ADD COLUMN last_error_ms BIGINT;
UPDATE accounts SET last_attempt_ms = last_sync_ms;
UPDATE accounts SET last_error_ms = last_sync_ms WHERE last_error IS NOT NULL;
