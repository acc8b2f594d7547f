-- IP address management (portable, as 0001).
--
-- Offsets count units from the pool's network address: one address in an
-- `addresses` pool, a block of 2^unit_bits addresses (the longest prefix the pool
-- hands out) in a `prefixes` pool. They are stored with the top bit flipped (the
-- unsigned 64-bit offset minus 2^63), so every offset from 0 to 2^64 - 2 fits a
-- BIGINT and sorts in order: a whole IPv6 /64 is one addressable range.

CREATE TABLE ipam_pools (
    id TEXT PRIMARY KEY,
    -- The network, e.g. 10.20.0.0/16 or fd00:20::/64.
    cidr TEXT NOT NULL,
    -- addresses | prefixes
    kind TEXT NOT NULL,
    unit_bits BIGINT NOT NULL,
    -- The offsets API allocations may use, first..=last.
    range_first BIGINT NOT NULL,
    range_last BIGINT NOT NULL,
    -- Every offset from range_first up to (not including) free_hint is reserved or
    -- allocated: the search for the lowest free offset starts here.
    free_hint BIGINT NOT NULL,
    -- JSON list of the reserved entries as last ensured (the compiled fleet's).
    reserved TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

-- What occupies a pool: allocations (kind 'allocated', with a team) and the merged
-- reserved ranges (kind 'reserved', no team). Rows of one pool never overlap, so the
-- row that starts at an offset is the only one that can cover it.
CREATE TABLE ipam_entries (
    id TEXT PRIMARY KEY,
    pool_id TEXT NOT NULL REFERENCES ipam_pools (id),
    -- allocated | reserved
    kind TEXT NOT NULL,
    -- First and last offset covered, inclusive.
    lo BIGINT NOT NULL,
    hi BIGINT NOT NULL,
    prefix_len BIGINT NOT NULL,
    -- The address with its prefix length (10.20.128.0/16, 10.64.3.0/24), or a
    -- reserved range (first-last).
    address TEXT NOT NULL,
    team TEXT,
    description TEXT NOT NULL,
    -- The caller's idempotency key: allocating twice with one key allocates once.
    idempotency_key TEXT,
    created_ms BIGINT NOT NULL,
    -- The backstop against two allocations of one address, and the index the search
    -- for the lowest free offset walks.
    UNIQUE (pool_id, lo)
);

CREATE UNIQUE INDEX ipam_entries_by_key ON ipam_entries (pool_id, idempotency_key);

CREATE INDEX ipam_entries_by_team ON ipam_entries (pool_id, team, lo);
