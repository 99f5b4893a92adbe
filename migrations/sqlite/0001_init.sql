-- coachd schema, version 1.
--
-- Conventions:
--   * instants are INTEGER milliseconds since the Unix epoch, UTC (`*_ms`);
--   * local calendar dates are TEXT 'YYYY-MM-DD' in the client's time zone;
--   * every table that a source writes is keyed by something the source can repeat
--     (source + external id, client + date + metric), so replaying a batch is a no-op.

-- Facts about the store itself (schema-independent settings, the key check).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE trainers (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT,                 -- argon2id PHC string; NULL until a password is set
    created_ms    INTEGER NOT NULL
);

CREATE TABLE clients (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
    tz          TEXT NOT NULL,          -- IANA name, validated before insert
    hr_max      INTEGER CHECK (hr_max IS NULL OR hr_max BETWEEN 100 AND 250),
    birth_year  INTEGER CHECK (birth_year IS NULL OR birth_year BETWEEN 1900 AND 2100),
    trainer_id  INTEGER REFERENCES trainers(id) ON DELETE SET NULL,
    created_ms  INTEGER NOT NULL
);

-- Bluetooth sensors. A device with client_id NULL was seen but is not paired:
-- its data is never recorded.
CREATE TABLE devices (
    id          INTEGER PRIMARY KEY,
    address     TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name        TEXT,
    services    TEXT NOT NULL DEFAULT '',  -- comma-separated GATT service names
    client_id   INTEGER REFERENCES clients(id) ON DELETE SET NULL,
    paired_ms   INTEGER,
    last_seen_ms INTEGER
);
CREATE INDEX devices_client ON devices(client_id);

-- Cloud provider accounts. Tokens are sealed with the data dir's key
-- (XChaCha20-Poly1305, nonce prepended); plaintext tokens never touch the disk.
CREATE TABLE accounts (
    id               INTEGER PRIMARY KEY,
    client_id        INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    provider         TEXT NOT NULL,
    external_user_id TEXT,
    state            TEXT NOT NULL DEFAULT 'pending',  -- pending, active, needs_reauth, revoked, error
    access_token     BLOB,
    refresh_token    BLOB,
    expires_ms       INTEGER,
    scopes           TEXT NOT NULL DEFAULT '',
    last_error       TEXT,
    last_sync_ms     INTEGER,
    created_ms       INTEGER NOT NULL,
    updated_ms       INTEGER NOT NULL,
    UNIQUE (client_id, provider)
);

-- One workout or bout of activity as one source recorded it. Dedup across sources
-- happens when reading (the homework engine), never by deleting what a source sent.
CREATE TABLE activities (
    id            INTEGER PRIMARY KEY,
    client_id     INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    source        TEXT NOT NULL,         -- ble, fit, tcx, gpx, apple, strava, polar, manual, ...
    external_id   TEXT NOT NULL,         -- the source's own id, stable across re-deliveries
    start_ms      INTEGER NOT NULL,
    end_ms        INTEGER NOT NULL CHECK (end_ms >= start_ms),
    utc_offset_s  INTEGER NOT NULL,      -- local offset at start, as the source knew it
    type          TEXT NOT NULL,         -- run, ride, walk, strength, yoga, ...
    category      TEXT NOT NULL,         -- cardio, strength, mobility, other
    duration_s    REAL NOT NULL CHECK (duration_s >= 0),  -- moving time
    distance_m    REAL,
    avg_hr        REAL,
    max_hr        INTEGER,
    energy_kj     REAL,
    content_hash  BLOB,                  -- hash of the source content (file bytes, payload)
    -- Heart-rate histogram kept in step with the hr series: codec points (bpm, ms spent
    -- at that bpm), so the engine counts minutes above any threshold without samples.
    hr_hist       BLOB,
    hr_samples    INTEGER NOT NULL DEFAULT 0,
    updated_ms    INTEGER NOT NULL,
    UNIQUE (source, external_id)
);
CREATE INDEX activities_client_start ON activities(client_id, start_ms);
CREATE INDEX activities_hash ON activities(content_hash) WHERE content_hash IS NOT NULL;

-- Sample series, the high-volume data. One row holds up to 15 minutes of one series
-- of one activity, encoded by src/store/codec.rs (delta-of-delta time, delta value,
-- zigzag varints): about 2 bytes per per-second heart-rate sample against ~25 for a
-- row per sample (figures from benches/ingest.rs).
CREATE TABLE sample_chunks (
    activity_id INTEGER NOT NULL REFERENCES activities(id) ON DELETE CASCADE,
    kind        INTEGER NOT NULL,        -- 1 hr, 2 rr, 3 power, 4 cadence, 5 speed
    chunk_ms    INTEGER NOT NULL,        -- start of the chunk's 15-minute slot
    first_ms    INTEGER NOT NULL,
    last_ms     INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    data        BLOB NOT NULL,
    PRIMARY KEY (activity_id, kind, chunk_ms)
);

CREATE TABLE strength_sets (
    activity_id INTEGER NOT NULL REFERENCES activities(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,        -- order within the activity
    start_ms    INTEGER,
    duration_s  REAL,
    exercise    TEXT NOT NULL,           -- push_up, squat, pull_up, ... ('rest' sets too)
    set_type    TEXT NOT NULL DEFAULT 'active',  -- active, rest
    reps        INTEGER CHECK (reps IS NULL OR reps >= 0),
    weight_kg   REAL,
    PRIMARY KEY (activity_id, seq)
) WITHOUT ROWID;

-- Per-day metrics, one value per source so two sources never overwrite each other.
CREATE TABLE daily_metrics (
    client_id  INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    date       TEXT NOT NULL,            -- client's local date
    metric     TEXT NOT NULL,            -- steps, resting_hr, sleep_s
    source     TEXT NOT NULL,
    value      REAL NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (client_id, date, metric, source)
) WITHOUT ROWID;

-- Timed pieces of a daily metric (a minute of steps, a stretch of sleep) from sources
-- that deliver them piecemeal (Health Auto Export). Keyed by time, so a repeated push
-- changes nothing; the day's total in daily_metrics is re-derived from them.
CREATE TABLE metric_buckets (
    client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    metric    TEXT NOT NULL,
    source    TEXT NOT NULL,
    t_ms      INTEGER NOT NULL,          -- the instant that dates the bucket
    value     REAL NOT NULL,
    PRIMARY KEY (client_id, metric, source, t_ms)
) WITHOUT ROWID;

-- Tokens that let a client's phone push data (Health Auto Export). Only a hash is kept.
CREATE TABLE push_tokens (
    token_hash BLOB PRIMARY KEY NOT NULL,
    client_id  INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER
);
CREATE INDEX push_tokens_client ON push_tokens(client_id);

CREATE TABLE homework (
    id          INTEGER PRIMARY KEY,
    client_id   INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    text        TEXT NOT NULL,           -- normalized phrase
    rule        TEXT NOT NULL,           -- JSON rule, owned by the homework engine
    from_date   TEXT NOT NULL,
    until_date  TEXT,
    created_ms  INTEGER NOT NULL
);
CREATE INDEX homework_client ON homework(client_id);

-- Final verdicts (never `pending`), so a status run judges only what changed.
-- Adherence reads only the verdict column; the JSON is parsed for displayed dates only.
CREATE TABLE verdicts (
    homework_id INTEGER NOT NULL REFERENCES homework(id) ON DELETE CASCADE,
    date        TEXT NOT NULL,           -- the occurrence's date (a week's Monday for weekly homework)
    verdict     TEXT NOT NULL,
    occurrence  TEXT NOT NULL,           -- JSON, as `status --json` prints it
    PRIMARY KEY (homework_id, date)
);

-- Local dates whose evidence changed since the client's verdicts were last refreshed.
-- Written by ingest, check-ins and excuses in the same transaction as the change.
CREATE TABLE dirty_dates (
    client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    date      TEXT NOT NULL,
    PRIMARY KEY (client_id, date)
) WITHOUT ROWID;

CREATE TABLE checkins (
    id          INTEGER PRIMARY KEY,
    client_id   INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    homework_id INTEGER REFERENCES homework(id) ON DELETE CASCADE,
    date        TEXT NOT NULL,
    value       REAL,
    note        TEXT,
    origin      TEXT NOT NULL DEFAULT 'cli',  -- cli, client_page
    created_ms  INTEGER NOT NULL
);
CREATE INDEX checkins_client_date ON checkins(client_id, date);

CREATE TABLE excuses (
    homework_id INTEGER NOT NULL REFERENCES homework(id) ON DELETE CASCADE,
    date        TEXT NOT NULL,
    reason      TEXT,
    created_ms  INTEGER NOT NULL,
    PRIMARY KEY (homework_id, date)
);

-- How far each source has got, per stream (an account, a device, an inbox).
-- Written in the same transaction as the data it covers.
CREATE TABLE cursors (
    source     TEXT NOT NULL,
    stream     TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (source, stream)
);
