-- Personal access tokens (issue 22): only the SHA-256 of a token is kept.
CREATE TABLE access_tokens (
    token_hash   TEXT COLLATE "C" PRIMARY KEY,
    id           TEXT COLLATE "C" NOT NULL UNIQUE,
    user_id      TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    scope        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT
);
CREATE INDEX access_tokens_user ON access_tokens (user_id);
