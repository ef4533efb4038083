-- Revoked sessions, kept where a Redis loss cannot forget them: the SHA-256 of the session
-- id and the moment after which no credential of it can be valid any more. Read only when
-- a session's Redis record is missing (after a Redis loss), before it is put back.
CREATE TABLE session_revocations (
    session_hash bytea PRIMARY KEY,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX session_revocations_expiry_idx ON session_revocations (expires_at);
