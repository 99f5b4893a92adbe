-- coachd schema, version 5: benchmarks, the tests a trainer records during a session
-- ("max push-ups: 18 reps", "plank: 75 s", "squat form: 4 of 5"), so a chart can set the
-- result over time beside the adherence of the homework meant to move it.
--
-- The ranges below are the store's own checks (src/store/benchmarks.rs) repeated, so a
-- row written some other way cannot hold a value no chart can draw. NaN reaches SQLite
-- as NULL and is refused by NOT NULL.
CREATE TABLE benchmarks (
    id          INTEGER PRIMARY KEY,
    client_id   INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    name        TEXT NOT NULL CHECK (length(trim(name)) BETWEEN 1 AND 64),  -- the test, e.g. 'max push-ups'
    unit        TEXT NOT NULL CHECK (unit IN ('reps', 's', 'kg', 'km/h', 'score')),
    value       REAL NOT NULL CHECK (
                    CASE unit
                        WHEN 'reps'  THEN value BETWEEN 0 AND 10000 AND value = round(value)
                        WHEN 's'     THEN value BETWEEN 0 AND 86400
                        WHEN 'kg'    THEN value BETWEEN 0 AND 1000
                        WHEN 'km/h'  THEN value BETWEEN 0 AND 200
                        WHEN 'score' THEN value BETWEEN 1 AND 5
                    END),
    note        TEXT,
    -- The homework this test is meant to show the effect of; kept when the homework goes.
    homework_id INTEGER REFERENCES homework(id) ON DELETE SET NULL,
    date        TEXT NOT NULL,           -- client's local date of the session
    trainer_id  INTEGER REFERENCES trainers(id) ON DELETE SET NULL,  -- who recorded it; NULL: the command line
    created_ms  INTEGER NOT NULL
);
CREATE INDEX benchmarks_client ON benchmarks(client_id, name COLLATE NOCASE, date);
