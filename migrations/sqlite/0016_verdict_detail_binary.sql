-- The verdict cache's `detail` in a compact binary form (postcard) instead of JSON: a
-- year of a roster's occurrences decodes in a fraction of the time. The table is a
-- cache: dropping it only means the next status judges again.
DROP TABLE verdicts;

CREATE TABLE verdicts (
    homework_id INTEGER NOT NULL REFERENCES homework(id) ON DELETE CASCADE,
    month       INTEGER NOT NULL,        -- year * 12 + month - 1 of the occurrences' dates
    codes       BLOB NOT NULL,           -- 31 bytes: day d of the month at index d - 1
    detail      BLOB NOT NULL,           -- postcard: [(day, achieved, target, self_reported, evidence), ...]
    PRIMARY KEY (homework_id, month)
) WITHOUT ROWID;
