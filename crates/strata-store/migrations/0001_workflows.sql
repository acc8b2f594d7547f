-- Portable between SQLite and PostgreSQL: TEXT and BIGINT columns only;
-- identifiers are UUIDs made by the caller; times are Unix milliseconds.

CREATE TABLE workflows (
    id TEXT PRIMARY KEY,
    -- The caller's idempotency key: starting a workflow twice with one key starts it once.
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    -- running | done | failed | cancelled
    state TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

CREATE TABLE steps (
    workflow_id TEXT NOT NULL REFERENCES workflows (id),
    idx BIGINT NOT NULL,
    name TEXT NOT NULL,
    -- pending | running | done | failed | cancelled
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    max_attempts BIGINT NOT NULL,
    timeout_ms BIGINT NOT NULL,
    not_before_ms BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until_ms BIGINT,
    -- The leader fencing counter the step was claimed under.
    fencing BIGINT,
    evidence TEXT,
    error TEXT,
    PRIMARY KEY (workflow_id, idx)
);

CREATE INDEX steps_claimable ON steps (state, not_before_ms);

CREATE TABLE events (
    id TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL REFERENCES workflows (id),
    at_ms BIGINT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);

CREATE INDEX events_by_workflow ON events (workflow_id, at_ms);

CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    -- Raised each time the lease changes hands; a side effect checks it first.
    fencing BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
