-- coachd schema, version 11: remote Bluetooth collectors (`coachd collect` on a small box
-- by the equipment) registered at this hub, and the batches each has forwarded.
--
-- collectors: one row per `coachd collector add NAME`; `token_hash` is the SHA-256 of the
-- token printed once (the token itself is never stored). `last_seq` is the collector's
-- cursor: the highest sequence number applied, written in the same transaction as the
-- batch. The status columns are what the collector last reported (its outbox backlog,
-- whether the outbox is full, its adapter's state, the sensors in range as JSON), and
-- `refused` the last batch the hub refused and why, for `coachd collector list`;
-- `applied_ms` the last request that went through (a refusal after it is current).
-- No client's rows live here: a collector is equipment, like a device.
CREATE TABLE collectors (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_hash BLOB NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL,
    last_contact_ms INTEGER,
    last_seq INTEGER NOT NULL DEFAULT 0,
    applied_ms INTEGER,
    applied_batches INTEGER NOT NULL DEFAULT 0,
    applied_samples INTEGER NOT NULL DEFAULT 0,
    report_ms INTEGER,
    backlog_batches INTEGER,
    backlog_bytes INTEGER,
    outbox_full INTEGER NOT NULL DEFAULT 0,
    not_stored INTEGER NOT NULL DEFAULT 0,
    adapter TEXT,
    in_range TEXT,
    refused TEXT,
    refused_ms INTEGER
);

-- The replay log: each applied batch's id and content digest, so a batch sent again
-- (the answer was lost) changes nothing, and the same sequence number with other
-- content is refused. Pruned to the newest sequence numbers of each collector.
CREATE TABLE collector_batches (
    collector_id INTEGER NOT NULL REFERENCES collectors(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    batch_id TEXT NOT NULL,
    digest BLOB NOT NULL,
    applied_ms INTEGER NOT NULL,
    PRIMARY KEY (collector_id, seq)
) WITHOUT ROWID;
