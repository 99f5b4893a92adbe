-- The verdict cache, one row per homework and calendar month instead of one per
-- occurrence: `codes` holds a byte per day of the month (0 when nothing is cached for
-- that day, else the final verdict), so adherence reads a few hundred short rows for a
-- roster; `detail` holds the month's occurrences in a compact JSON array (what the
-- homework itself supplies, its text, unit and period, is left out), decoded only for
-- the months a caller shows. The old table was a cache too: dropping it only means the
-- next status judges again.
DROP TABLE verdicts;

CREATE TABLE verdicts (
    homework_id BIGINT NOT NULL REFERENCES homework(id) ON DELETE CASCADE,
    month       BIGINT NOT NULL,        -- year * 12 + month - 1 of the occurrences' dates
    codes       BYTEA NOT NULL,           -- 31 bytes: day d of the month at index d - 1
    detail      TEXT NOT NULL,           -- JSON: [[day, achieved, target, self_reported, evidence], ...]
    PRIMARY KEY (homework_id, month)
);
