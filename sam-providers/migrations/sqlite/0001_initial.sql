-- SAM schema, SQLite dialect. Timestamps are INTEGER nanoseconds since the Unix
-- epoch (UTC), so every instant round-trips exactly; ids are canonical
-- hyphenated UUID text.

CREATE TABLE users (
    id          TEXT    PRIMARY KEY NOT NULL,
    github_id   INTEGER NOT NULL UNIQUE,
    login       TEXT    NOT NULL,
    name        TEXT,
    email       TEXT,
    avatar_url  TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE sessions (
    id_hash      TEXT    PRIMARY KEY NOT NULL,
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE credentials (
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider     TEXT    NOT NULL,
    ciphertext   BLOB    NOT NULL,
    validated_at INTEGER,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (user_id, provider)
);
CREATE INDEX credentials_provider ON credentials (provider);

CREATE TABLE installations (
    id            INTEGER PRIMARY KEY NOT NULL,
    account_login TEXT    NOT NULL,
    account_type  TEXT    NOT NULL,
    account_id    INTEGER NOT NULL,
    suspended     INTEGER NOT NULL,
    removed_at    INTEGER,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE workspaces (
    id                TEXT    PRIMARY KEY NOT NULL,
    owner             TEXT    NOT NULL REFERENCES users (id),
    name              TEXT    NOT NULL,
    repository        TEXT    NOT NULL,
    branch            TEXT    NOT NULL,
    vm_size           TEXT    NOT NULL,
    vm_location       TEXT    NOT NULL,
    installation_id   INTEGER NOT NULL,
    status            TEXT    NOT NULL,
    reason            TEXT    NOT NULL,
    server_id         TEXT,
    server_ipv4       TEXT,
    dns_record        TEXT,
    agent_ready       INTEGER NOT NULL,
    error_message     TEXT,
    idle_timeout_secs INTEGER,
    last_activity_at  INTEGER,
    last_heartbeat_at INTEGER,
    status_changed_at INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    version           INTEGER NOT NULL,
    UNIQUE (owner, name)
);
CREATE INDEX workspaces_owner_created ON workspaces (owner, created_at);
CREATE INDEX workspaces_status ON workspaces (status, id);

CREATE TABLE workspace_events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id TEXT    NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    from_status  TEXT    NOT NULL,
    to_status    TEXT    NOT NULL,
    event        TEXT    NOT NULL,
    reason       TEXT    NOT NULL,
    message      TEXT,
    at           INTEGER NOT NULL
);
CREATE INDEX workspace_events_workspace ON workspace_events (workspace_id, seq);
CREATE TRIGGER workspace_events_append_only BEFORE UPDATE ON workspace_events
BEGIN
    SELECT RAISE(ABORT, 'workspace_events is append-only');
END;

CREATE TABLE bootstrap_tokens (
    token_hash   TEXT    PRIMARY KEY NOT NULL,
    workspace_id TEXT    NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    owner        TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    redeemed_at  INTEGER
);
CREATE INDEX bootstrap_tokens_workspace ON bootstrap_tokens (workspace_id);

CREATE TABLE leases (
    key        TEXT    PRIMARY KEY NOT NULL,
    holder     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
