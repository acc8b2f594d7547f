-- Self-service requests: what a team asked for (a VM, a bare-metal machine, GPU
-- instances), where it was placed and what was made for it (portable, as 0001).

CREATE TABLE requests (
    id TEXT PRIMARY KEY,
    team TEXT NOT NULL,
    name TEXT NOT NULL,
    -- vm | metal | gpu
    kind TEXT NOT NULL,
    -- approval | provisioning | ready | failed | releasing | released
    state TEXT NOT NULL,
    -- JSON: the request as accepted (normalised)
    spec TEXT NOT NULL,
    -- What it counts against the team's quota
    instances BIGINT NOT NULL,
    cores BIGINT NOT NULL,
    ram_mib BIGINT NOT NULL,
    gpus BIGINT NOT NULL,
    -- Where it was placed ('' until placed) and how (JSON, or NULL)
    dc TEXT NOT NULL,
    placement TEXT,
    -- JSON: what was made for it, as last observed (or NULL)
    resources TEXT,
    workflow_id TEXT NOT NULL,
    -- '' until a release started
    release_workflow_id TEXT NOT NULL,
    created_by TEXT NOT NULL,
    -- '' until approved (or when no approval was needed)
    approved_by TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    -- 0: never expires
    expires_ms BIGINT NOT NULL,
    -- Why it is in its state (a failure, who released it)
    detail TEXT NOT NULL
);

CREATE INDEX requests_by_team ON requests (team, id);

CREATE INDEX requests_by_expiry ON requests (state, expires_ms);
