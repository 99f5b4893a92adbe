-- coachd schema, version 3: cloud providers' pending authorizations and account lookup.

-- An authorization link `coachd connect` printed and the callback has not used yet.
-- Single use: the callback deletes it. The PKCE verifier is sealed with the data key.
CREATE TABLE oauth_states (
    state       TEXT PRIMARY KEY NOT NULL,
    provider    TEXT NOT NULL,
    client_id   BIGINT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    verifier    BYTEA,
    redirect    TEXT NOT NULL,
    expires_ms  BIGINT NOT NULL
);

-- Webhook events name the provider's user id.
CREATE INDEX accounts_external ON accounts(provider, external_user_id);
