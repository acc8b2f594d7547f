-- Teams' API tokens and the audit log (portable, as 0001).

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    -- The team the token acts for; '*' for the whole fleet
    team TEXT NOT NULL,
    -- viewer | member | operator | admin
    role TEXT NOT NULL,
    -- Space-separated: read, write
    scopes TEXT NOT NULL,
    -- argon2id PHC string of the secret part; the token itself is never stored
    secret_hash TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    -- 0: never expires
    expires_ms BIGINT NOT NULL,
    -- 0: not revoked
    revoked_ms BIGINT NOT NULL,
    last_used_ms BIGINT NOT NULL
);

CREATE INDEX api_tokens_by_team ON api_tokens (team, id);

-- Append-only, hash-chained: each row's hash covers the previous row's hash and this
-- row's fields, so editing or deleting a row breaks every later hash.
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    -- The team the object belongs to; '*' for fleet-wide objects
    team TEXT NOT NULL,
    action TEXT NOT NULL,
    object TEXT NOT NULL,
    -- JSON (or 'null')
    before_json TEXT NOT NULL,
    after_json TEXT NOT NULL,
    request_id TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

CREATE INDEX audit_log_by_team ON audit_log (team, seq);
