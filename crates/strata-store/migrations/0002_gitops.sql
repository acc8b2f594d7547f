-- What the server saw in Git and did about it (portable, as 0001).

CREATE TABLE commits (
    sha TEXT PRIMARY KEY,
    branch TEXT NOT NULL,
    seen_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    -- queued | invalid | planned | waiting | applying | applied | failed | superseded
    state TEXT NOT NULL,
    -- JSON: diagnostics, the plan summary (Markdown), the plan hash, the decision, the outcome
    result TEXT
);

CREATE INDEX commits_by_time ON commits (seen_ms);

CREATE TABLE plans (
    hash TEXT PRIMARY KEY,
    commit_sha TEXT NOT NULL,
    -- commit | drift
    origin TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    -- waiting | approved | applied | failed | stale | superseded
    state TEXT NOT NULL,
    -- JSON list: why the plan waits for an approval
    reasons TEXT NOT NULL,
    -- The saved plan (format strata-plan/1), which the hash is over
    saved TEXT NOT NULL
);

CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    plan_hash TEXT NOT NULL,
    approver TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    -- accepted | refused
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL
);

CREATE INDEX approvals_by_plan ON approvals (plan_hash, at_ms);

-- Small named values the server keeps (the allocation lock it applied with).
CREATE TABLE kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);
