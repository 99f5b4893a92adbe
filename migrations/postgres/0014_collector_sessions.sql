-- coachd schema, version 14: what each remote collector forwarded of a session.
--
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
