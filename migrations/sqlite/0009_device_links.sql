-- coachd schema, version 9: what the running collector knows of each paired device's
-- link, so `coachd devices list` (another process) can show which sensors are
-- connected and which are waiting, e.g. because BlueZ refused one connection more
-- than the adapter can hold.
--
-- link: 'connected' or 'waiting' (NULL: no collector is recording it);
-- link_note: why it is waiting (BlueZ's refusal, out of range, adapter off);
-- link_ms: when the collector last wrote it. The collector clears them when it stops.
ALTER TABLE devices ADD COLUMN link TEXT;
ALTER TABLE devices ADD COLUMN link_note TEXT;
ALTER TABLE devices ADD COLUMN link_ms INTEGER;
