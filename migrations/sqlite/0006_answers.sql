-- coachd schema, version 6: answers to a questions homework ("On a scale of 1-10, how do
-- you choose to make this week work for you?"), given on the client's private page.
--
-- Answering is a check-in (that is what the judge counts: the occurrence is done when
-- answered) plus one row here per question. One answer set per homework and occurrence
-- (the day, or the week's Monday): a later submission in the same period deletes the
-- earlier check-in, whose answers go with it, and writes its own.
CREATE TABLE answers (
    checkin_id  INTEGER NOT NULL REFERENCES checkins(id) ON DELETE CASCADE,
    homework_id INTEGER NOT NULL REFERENCES homework(id) ON DELETE CASCADE,
    occurrence  TEXT NOT NULL,               -- the occurrence's date: the day, or the week's Monday
    question    INTEGER NOT NULL CHECK (question BETWEEN 0 AND 9),  -- index into the rule's questions
    text        TEXT CHECK (length(text) <= 2000),  -- free text; 'yes' or 'no'
    number      REAL,                        -- a 1-10 scale; 1 or 0 for yes or no
    created_ms  INTEGER NOT NULL,
    PRIMARY KEY (homework_id, occurrence, question),
    CHECK (text IS NOT NULL OR number IS NOT NULL)
);
CREATE INDEX answers_checkin ON answers(checkin_id);
