-- coachd schema, version 2: the dashboard's sessions, clients' private links and weekly
-- reflections.

-- A trainer's login session. Only a SHA-256 of the cookie's token is kept.
CREATE TABLE sessions (
    token_hash BYTEA PRIMARY KEY NOT NULL,
    trainer_id BIGINT NOT NULL REFERENCES trainers(id) ON DELETE CASCADE,
    csrf       TEXT NOT NULL,            -- the session's form token
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX sessions_trainer ON sessions(trainer_id);

-- A client's private link (`coachd share`). Only a SHA-256 of the token is kept.
CREATE TABLE share_links (
    token_hash BYTEA PRIMARY KEY NOT NULL,
    client_id  BIGINT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    created_ms BIGINT NOT NULL,
    revoked_ms BIGINT
);
CREATE INDEX share_links_client ON share_links(client_id);

-- The client's weekly reflection: a 1-10 rating and a note per Monday-Sunday week.
CREATE TABLE reflections (
    client_id  BIGINT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    week       TEXT NOT NULL,            -- the week's Monday, local date
    rating     BIGINT NOT NULL CHECK (rating BETWEEN 1 AND 10),
    note       TEXT,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (client_id, week)
);
