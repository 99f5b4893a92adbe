-- coachd schema, version 13: scans the hub asks of a remote collector
-- (`coachd devices scan --collector NAME`).
--
-- One row per request: the collector learns of it in its next pairing-list answer
-- (`GET /collector/v1/pairings`, every `collector.report_s`), listens `seconds` on its
-- adapter, and posts what it heard (`POST /collector/v1/scans/ID`): `seen` is the JSON
-- list of sensors (address, name, services, RSSI), or `error` why the scan failed.
-- `sent_ms`: when the request went out to the collector; `done_ms`: when its answer came.
-- A request nobody answered is deleted by the command that gave up waiting. No client's
-- rows live here: what a scan heard is equipment, like a device. AUTOINCREMENT: a
-- collector runs each id once, so an id is never handed out again after its row is gone.
CREATE TABLE collector_scans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    collector_id INTEGER NOT NULL REFERENCES collectors(id) ON DELETE CASCADE,
    seconds INTEGER NOT NULL,
    asked_ms INTEGER NOT NULL,
    sent_ms INTEGER,
    done_ms INTEGER,
    seen TEXT,
    error TEXT
);
CREATE INDEX collector_scans_open ON collector_scans (collector_id, done_ms);
