-- Outbound webhooks: subscriptions to the audit log, each with its delivery cursor,
-- and the last delivery attempts of each (portable, as 0001).

CREATE TABLE webhook_subscriptions (
    id TEXT PRIMARY KEY,
    -- http:// or https://, no credentials
    url TEXT NOT NULL,
    -- The signing secret, sealed by the server's secrets key ("v1:<base64>"); the
    -- secret itself is never stored
    secret_sealed TEXT NOT NULL,
    -- JSON list of action patterns: "*", "ip.*", "machine.decommission"
    events TEXT NOT NULL,
    -- The team whose audit records it receives; '*' for every record
    team TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    -- The last audit seq delivered (or passed over as not subscribed)
    cursor_seq BIGINT NOT NULL,
    -- Failed attempts at the record after the cursor (0: none failed)
    attempts BIGINT NOT NULL,
    -- No attempt before this (the backoff after a failure)
    next_attempt_ms BIGINT NOT NULL,
    last_error TEXT NOT NULL,
    delivered BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    -- UUIDv7: sorts in the order the attempts were made
    id TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    action TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    -- delivered | failed
    outcome TEXT NOT NULL,
    -- The receiver's HTTP status (0: no answer)
    http_status BIGINT NOT NULL,
    error TEXT NOT NULL
);

CREATE INDEX webhook_deliveries_by_subscription ON webhook_deliveries (subscription_id, id);
