-- coachd schema, version 8: reaching people. Push and e-mail channels of clients and
-- trainers, and the outbox of every message coachd decided to send (or decided not to).
--
-- A channel is one URL (ntfy://, gotify://, smtp://, ...), sealed with the data dir's key
-- because it holds a token or a password; `shown` is the same URL with the secrets
-- replaced by ***, for lists and pages. One channel per client and one per trainer.
CREATE TABLE channels (
    id            INTEGER PRIMARY KEY,
    client_id     INTEGER REFERENCES clients(id) ON DELETE CASCADE,
    trainer_id    INTEGER REFERENCES trainers(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,               -- ntfy, gotify, smtp
    url           BLOB NOT NULL,               -- sealed
    shown         TEXT NOT NULL,
    state         TEXT NOT NULL DEFAULT 'untested',  -- untested, ok, failing
    last_error    TEXT,
    last_ok_ms    INTEGER,
    last_error_ms INTEGER,
    created_ms    INTEGER NOT NULL,
    updated_ms    INTEGER NOT NULL,
    CHECK ((client_id IS NULL) <> (trainer_id IS NULL))
);
CREATE UNIQUE INDEX channels_of_client ON channels(client_id) WHERE client_id IS NOT NULL;
CREATE UNIQUE INDEX channels_of_trainer ON channels(trainer_id) WHERE trainer_id IS NOT NULL;

-- A client who followed the opt-out link of a nudge: no more nudges until the trainer
-- sets a channel again.
ALTER TABLE clients ADD COLUMN nudges_off_ms INTEGER;

-- The outbox. A nudge's row is committed before anything is sent (state `pending`),
-- claimed (`sending`) just before the send and settled after it, so a restart never
-- sends twice: a row found `sending` at start is marked `interrupted`, not sent again.
-- At most one nudge per homework occurrence (the unique index), sent or suppressed,
-- and one digest per trainer and week.
--
-- state: pending, sending, retry (failed, waits for next_try_ms), sent, failed (gave
-- up: the window closed or the channel refused for good), interrupted, suppressed
-- (decided not to send: done, excused, checked in, opted out, quiet hours, too late).
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY,
    client_id     INTEGER REFERENCES clients(id) ON DELETE CASCADE,
    trainer_id    INTEGER REFERENCES trainers(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,               -- nudge, digest, weekly, test
    homework_id   INTEGER REFERENCES homework(id) ON DELETE CASCADE,
    occurrence    TEXT,                        -- the occurrence's date (a week's Monday)
    channel_kind  TEXT,                        -- what it went (or was to go) through
    title         TEXT NOT NULL,
    body          TEXT NOT NULL,
    state         TEXT NOT NULL,
    reason        TEXT,                        -- why suppressed, or the last error
    attempts      INTEGER NOT NULL DEFAULT 0,
    due_ms        INTEGER NOT NULL,            -- when it was meant to go out
    next_try_ms   INTEGER NOT NULL,
    expires_ms    INTEGER NOT NULL,            -- never sent after this (the window's close)
    link_expires_ms INTEGER,                   -- its links work until then (close + grace)
    link_used_ms  INTEGER,                     -- the check-in link's single use
    created_ms    INTEGER NOT NULL,
    sent_ms       INTEGER,
    updated_ms    INTEGER NOT NULL,
    CHECK ((client_id IS NULL) <> (trainer_id IS NULL))
);
CREATE UNIQUE INDEX outbox_one_nudge ON outbox(homework_id, occurrence) WHERE kind = 'nudge';
-- One weekly digest per trainer and week (`occurrence` is the week's Monday).
CREATE UNIQUE INDEX outbox_one_digest ON outbox(trainer_id, occurrence) WHERE kind = 'digest';
-- One weekly message per client and week (their week, and the link to reflect on it).
CREATE UNIQUE INDEX outbox_one_weekly ON outbox(client_id, occurrence) WHERE kind = 'weekly';
CREATE INDEX outbox_due ON outbox(state, next_try_ms);
CREATE INDEX outbox_of_client ON outbox(client_id, created_ms);
