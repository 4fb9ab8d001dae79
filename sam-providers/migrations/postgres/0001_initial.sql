-- SAM schema, PostgreSQL dialect. Timestamps are BIGINT nanoseconds since the
-- Unix epoch (UTC): TIMESTAMPTZ keeps only microseconds and SAM compares
-- instants exactly. Ids are canonical hyphenated UUID text with the "C"
-- collation, so keyset pagination orders them bytewise (UUID v7 = time order).

CREATE TABLE users (
    id          TEXT COLLATE "C" PRIMARY KEY,
    github_id   BIGINT NOT NULL UNIQUE,
    login       TEXT   NOT NULL,
    name        TEXT,
    email       TEXT,
    avatar_url  TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE sessions (
    id_hash      TEXT COLLATE "C" PRIMARY KEY,
    user_id      TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE credentials (
    user_id      TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider     TEXT   NOT NULL,
    ciphertext   BYTEA  NOT NULL,
    validated_at BIGINT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (user_id, provider)
);
CREATE INDEX credentials_provider ON credentials (provider);

CREATE TABLE installations (
    id            BIGINT  PRIMARY KEY,
    account_login TEXT    NOT NULL,
    account_type  TEXT    NOT NULL,
    account_id    BIGINT  NOT NULL,
    suspended     BOOLEAN NOT NULL,
    removed_at    BIGINT,
    updated_at    BIGINT  NOT NULL
);

CREATE TABLE workspaces (
    id                TEXT COLLATE "C" PRIMARY KEY,
    owner             TEXT COLLATE "C" NOT NULL REFERENCES users (id),
    name              TEXT    NOT NULL,
    repository        TEXT    NOT NULL,
    branch            TEXT    NOT NULL,
    vm_size           TEXT    NOT NULL,
    vm_location       TEXT    NOT NULL,
    installation_id   BIGINT  NOT NULL,
    status            TEXT    NOT NULL,
    reason            TEXT    NOT NULL,
    server_id         TEXT,
    server_ipv4       TEXT,
    dns_record        TEXT,
    agent_ready       BOOLEAN NOT NULL,
    error_message     TEXT,
    idle_timeout_secs BIGINT,
    last_activity_at  BIGINT,
    last_heartbeat_at BIGINT,
    status_changed_at BIGINT  NOT NULL,
    created_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL,
    version           BIGINT  NOT NULL,
    UNIQUE (owner, name)
);
CREATE INDEX workspaces_owner_created ON workspaces (owner, created_at);
CREATE INDEX workspaces_status ON workspaces (status, id);

CREATE TABLE workspace_events (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id TEXT COLLATE "C" NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    from_status  TEXT   NOT NULL,
    to_status    TEXT   NOT NULL,
    event        TEXT   NOT NULL,
    reason       TEXT   NOT NULL,
    message      TEXT,
    at           BIGINT NOT NULL
);
CREATE INDEX workspace_events_workspace ON workspace_events (workspace_id, seq);
CREATE FUNCTION sam_refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END
$$;
CREATE TRIGGER workspace_events_append_only BEFORE UPDATE ON workspace_events
    FOR EACH ROW EXECUTE FUNCTION sam_refuse_update();

CREATE TABLE bootstrap_tokens (
    token_hash   TEXT COLLATE "C" PRIMARY KEY,
    workspace_id TEXT COLLATE "C" NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    owner        TEXT COLLATE "C" NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    redeemed_at  BIGINT
);
CREATE INDEX bootstrap_tokens_workspace ON bootstrap_tokens (workspace_id);

CREATE TABLE leases (
    key        TEXT COLLATE "C" PRIMARY KEY,
    holder     TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);
