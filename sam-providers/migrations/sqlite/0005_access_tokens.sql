-- Personal access tokens (issue 22): only the SHA-256 of a token is kept.
CREATE TABLE access_tokens (
    token_hash   TEXT    PRIMARY KEY NOT NULL,
    id           TEXT    NOT NULL UNIQUE,
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    scope        TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER
);
CREATE INDEX access_tokens_user ON access_tokens (user_id);
