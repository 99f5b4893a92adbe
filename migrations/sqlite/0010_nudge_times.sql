-- coachd schema, version 10: a client's own reminder times, over the [notify] defaults,
-- and the trainers' daily needs-attention digest.
-- `nudge_daily_at` ("HH:MM", local): when a whole-day or weekly homework's reminder is
-- due; `nudge_lead_min`: how long before a window ends a windowed one's is. NULL: the
-- configured default.
ALTER TABLE clients ADD COLUMN nudge_daily_at TEXT;
ALTER TABLE clients ADD COLUMN nudge_lead_min INTEGER;

-- One daily needs-attention digest per trainer and day (`occurrence` is the day).
CREATE UNIQUE INDEX outbox_one_attention ON outbox(trainer_id, occurrence) WHERE kind = 'attention';
