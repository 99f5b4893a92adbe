-- coachd schema, version 14: a remote collector's scope, what each collector forwarded
-- of a session, and the files it forwarded from its inbox folder.
--
-- collectors.trainer_id: a collector bound to one trainer (`coachd collector add NAME
-- --trainer LOGIN`) records and forwards only the devices and files of that trainer's
-- clients; NULL is a studio-wide collector (every device paired at the hub). Removing
-- the trainer removes the collector with it (its token stops working) rather than
-- widening it to the whole studio.
ALTER TABLE collectors ADD COLUMN trainer_id BIGINT REFERENCES trainers(id) ON DELETE CASCADE;

-- The newest sample time of each series kind a collector forwarded for a session. Two
-- collectors near the same strap at the same time each forward every beat they heard,
-- a few milliseconds apart: a forwarded sample next to one another collector stored
-- (later than this collector's own newest) is the same beat, and is not stored twice.
-- A client's rows (through the session): erased with the client's activities.
CREATE TABLE collector_sessions (
    collector_id BIGINT NOT NULL REFERENCES collectors(id) ON DELETE CASCADE,
    activity_id BIGINT NOT NULL REFERENCES activities(id) ON DELETE CASCADE,
    kind BIGINT NOT NULL,
    last_ms BIGINT NOT NULL,
    PRIMARY KEY (collector_id, activity_id, kind)
);
CREATE INDEX collector_sessions_activity ON collector_sessions (activity_id);

-- Files a collector forwarded from its inbox folder: imported, or quarantined at the hub
-- because they could not be read (`quarantined`: the last one's name, client and why).
ALTER TABLE collectors ADD COLUMN files_imported BIGINT NOT NULL DEFAULT 0;
ALTER TABLE collectors ADD COLUMN files_quarantined BIGINT NOT NULL DEFAULT 0;
ALTER TABLE collectors ADD COLUMN quarantined TEXT;
