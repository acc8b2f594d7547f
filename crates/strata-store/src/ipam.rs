//! IP address management: pools of addresses or prefixes that the API hands out to
//! teams, beside what the compiled fleet (`fleet.lock`) already uses.
//!
//! **Pools.** [`Store::ensure_pool`] upserts a pool from its definition ([`PoolDef`]):
//! a CIDR (IPv4 or IPv6), a kind (`addresses`: single addresses; `prefixes`: aligned
//! child prefixes), the offsets API allocations may use (an `addresses` pool defaults
//! to the upper half of its host range, so the compiler's lowest-first allocations and
//! the API's never meet) and the reserved entries (what the fleet already uses:
//! gateways, hosts, BMCs, VIPs, subnets), replaced wholesale on every ensure and never
//! handed out. A pool's CIDR, kind and unit cannot change while it has allocations.
//!
//! **Allocations.** [`Store::allocate_address`] and [`Store::allocate_prefix`] take the
//! lowest free offset (aligned, for a prefix) in the pool's range that is neither
//! reserved nor allocated; an idempotency key already used in the pool returns the
//! allocation it made. [`Store::release`] frees one again.
//!
//! **Storage.** An address is an integer offset from the pool's network address, in
//! units of one address (`addresses`) or of one block of the longest prefix the pool
//! hands out (`prefixes`): a BIGINT with its top bit flipped, so offsets 0 to 2^64 - 2
//! fit and sort in order (a whole IPv6 /64; larger ranges are refused). Reserved
//! ranges (merged) and allocations are rows of one table that never overlap, with
//! `UNIQUE (pool_id, lo)`: the row that starts at an offset is the only one that can
//! cover it, so "the lowest free offset" is one indexed gap query. Each pool keeps a
//! hint below which everything is taken, so the search starts where the last one ended.
//!
//! **Concurrency.** An allocation is one transaction that first locks its pool's row
//! (`SELECT … FOR UPDATE` on PostgreSQL; SQLite's one connection serialises writers):
//! allocations in one pool queue on that row, different pools proceed in parallel, and
//! the unique constraint is the backstop.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

use ipnet::IpNet;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::{Backend, Store, StoreError, now_ms};

/// The most allocations one page of [`Store::allocations`] holds.
pub const MAX_PAGE: u32 = 1000;

/// Flipped to store an unsigned offset as an order-preserving BIGINT.
const TOP: u64 = 1 << 63;
/// The highest offset a row may cover: one below `u64::MAX`, so `hi + 1` (the gap
/// query's candidate) never overflows the column.
const WINDOW_MAX: u64 = u64::MAX - 1;
/// Rows read per round trip while looking for room for a prefix.
const SCAN_BATCH: i64 = 512;

fn db(off: u64) -> i64 {
    i64::from_be_bytes((off ^ TOP).to_be_bytes())
}

fn off(v: i64) -> u64 {
    u64::from_be_bytes(v.to_be_bytes()) ^ TOP
}

/// What a pool hands out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolKind {
    /// Single addresses (a VLAN's interface addresses, VIPs).
    Addresses,
    /// Aligned child prefixes (tenant subnets).
    Prefixes,
}

impl PoolKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolKind::Addresses => "addresses",
            PoolKind::Prefixes => "prefixes",
        }
    }

    fn parse(s: &str) -> Option<PoolKind> {
        match s {
            "addresses" => Some(PoolKind::Addresses),
            "prefixes" => Some(PoolKind::Prefixes),
            _ => None,
        }
    }
}

impl fmt::Display for PoolKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A pool as the fleet defines it; [`Store::ensure_pool`] makes the store match it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolDef {
    /// e.g. `fra1/vlan/tenant-ml`, `fleet/tenant/ml`.
    pub id: String,
    /// The pool's network (host bits are dropped).
    pub cidr: IpNet,
    pub kind: PoolKind,
    /// The offsets from the network address that API allocations may use, inclusive.
    /// `None`: an `addresses` pool's upper half of its host range (IPv4 without the
    /// network and broadcast addresses, IPv6 without the all-zeros subnet-router
    /// anycast and the all-ones address); a `prefixes` pool's whole CIDR. A
    /// `prefixes` pool uses the whole blocks of `max_prefix_len` inside the range.
    pub range: Option<RangeInclusive<u128>>,
    /// `prefixes` pools: the longest prefix handed out, which is also the unit the
    /// pool counts in (reserved addresses take their whole block). `None`: /32 for
    /// IPv4; /64 for IPv6 (/128 in a pool longer than /64). `addresses` pools hand
    /// out single addresses: leave it `None`.
    pub max_prefix_len: Option<u8>,
    /// What the compiled fleet already uses, never handed out. An entry with host
    /// bits set (`10.0.0.1/24`, interface notation) reserves that one address; one
    /// without (`10.0.4.0/24`, `10.0.0.9/32`) its whole prefix. Entries must overlap
    /// the pool's CIDR.
    pub reserved: Vec<IpNet>,
}

impl PoolDef {
    /// An `addresses` pool with the default range and nothing reserved.
    pub fn addresses(id: impl Into<String>, cidr: IpNet) -> PoolDef {
        PoolDef {
            id: id.into(),
            cidr,
            kind: PoolKind::Addresses,
            range: None,
            max_prefix_len: None,
            reserved: Vec::new(),
        }
    }

    /// A `prefixes` pool over its whole CIDR with nothing reserved.
    pub fn prefixes(id: impl Into<String>, cidr: IpNet) -> PoolDef {
        PoolDef {
            kind: PoolKind::Prefixes,
            ..PoolDef::addresses(id, cidr)
        }
    }

    pub fn with_range(mut self, range: RangeInclusive<u128>) -> PoolDef {
        self.range = Some(range);
        self
    }

    pub fn with_reserved(mut self, reserved: impl IntoIterator<Item = IpNet>) -> PoolDef {
        self.reserved = reserved.into_iter().collect();
        self
    }

    pub fn with_max_prefix_len(mut self, len: u8) -> PoolDef {
        self.max_prefix_len = Some(len);
        self
    }
}

/// A pool as the store holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PoolView {
    pub id: String,
    pub cidr: IpNet,
    pub kind: PoolKind,
    /// The first and last address of the range API allocations use.
    pub range_first: IpAddr,
    pub range_last: IpAddr,
    /// How many units the range holds: addresses, or blocks of `max_prefix_len`.
    pub range_size: u64,
    /// The longest prefix handed out (32 or 128 for an `addresses` pool).
    pub max_prefix_len: u8,
    /// The reserved entries as last ensured, sorted.
    pub reserved: Vec<IpNet>,
    /// How many allocations the pool has.
    pub allocations: u64,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// One allocation the API made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Allocation {
    pub id: String,
    pub pool: String,
    /// An address with its pool's prefix length (`10.20.128.0/16`), or the allocated
    /// prefix (`10.64.3.0/24`).
    pub address: IpNet,
    pub team: String,
    pub description: String,
    pub created_ms: i64,
}

/// One page of a pool's allocations, in address order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AllocationPage {
    pub items: Vec<Allocation>,
    /// The cursor of the next page; `None` on the last.
    pub next: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("unknown IP pool {0:?}")]
    UnknownPool(String),
    #[error(
        "IP pool {pool:?} is exhausted: its range holds {holds} {what}, all reserved or allocated"
    )]
    Exhausted {
        pool: String,
        /// How many addresses (or aligned prefixes of the length asked for) the
        /// pool's range holds.
        holds: u128,
        /// `addresses`, or `/24 prefixes`.
        what: String,
    },
    #[error(
        "IP pool {pool:?} ({cidr}) hands out prefixes from /{min} to /{max}, not /{prefix_len}"
    )]
    BadPrefixLength {
        pool: String,
        cidr: IpNet,
        prefix_len: u8,
        min: u8,
        max: u8,
    },
    #[error("IP pool {pool:?} hands out {kind}, not {wanted}")]
    KindMismatch {
        pool: String,
        kind: PoolKind,
        wanted: PoolKind,
    },
    #[error("IP pool {pool:?}: {reason}")]
    InvalidPool { pool: String, reason: String },
    #[error(
        "IP pool {pool:?} has {allocations} allocation(s): its {change} is refused until they are released"
    )]
    PoolInUse {
        pool: String,
        allocations: u64,
        /// What the definition tried to change, e.g. `cidr 10.0.0.0/24 -> 10.1.0.0/24`.
        change: String,
    },
    #[error(
        "IP pool {pool:?}: reserved {reserved} overlaps allocation {allocation} ({address}); release it first"
    )]
    ReservedConflict {
        pool: String,
        reserved: IpNet,
        allocation: String,
        address: IpNet,
    },
    #[error("bad pagination cursor {0:?}")]
    BadCursor(String),
    #[error("the store holds an unreadable IP pool record: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for IpamError {
    fn from(e: sqlx::Error) -> IpamError {
        IpamError::Store(StoreError::Sql(e))
    }
}

fn ip_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// `1 << bits`, minus one: the last offset of a block of `bits` host bits.
fn last_of(bits: u32) -> u128 {
    1u128.checked_shl(bits).map_or(u128::MAX, |n| n - 1)
}

/// How a pool maps offsets to addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Layout {
    net: IpNet,
    kind: PoolKind,
    /// An offset counts `1 << unit_bits` addresses.
    unit_bits: u8,
    /// The range API allocations use, in units, inclusive.
    first: u64,
    last: u64,
}

impl Layout {
    fn of(def: &PoolDef) -> Result<Layout, IpamError> {
        let invalid = |reason: String| IpamError::InvalidPool {
            pool: def.id.clone(),
            reason,
        };
        if def.id.is_empty() {
            return Err(invalid("a pool needs an id".into()));
        }
        let net = def.cidr.trunc();
        let bits = net.max_prefix_len();
        let len = net.prefix_len();
        let host_bits = u32::from(bits - len);
        let unit_bits = match def.kind {
            PoolKind::Addresses => match def.max_prefix_len {
                None => 0,
                Some(m) if m == bits => 0,
                Some(m) => {
                    return Err(invalid(format!(
                        "an addresses pool hands out single addresses, not /{m} prefixes"
                    )));
                }
            },
            PoolKind::Prefixes => {
                let max = def.max_prefix_len.unwrap_or(match net {
                    IpNet::V4(_) => 32,
                    IpNet::V6(_) if len <= 64 => 64,
                    IpNet::V6(_) => 128,
                });
                if max < len || max > bits {
                    return Err(invalid(format!(
                        "the longest prefix handed out (/{max}) must be between /{len} and /{bits}"
                    )));
                }
                bits - max
            }
        };
        let unit = u32::from(unit_bits);
        let (first, last) = match &def.range {
            Some(r) => {
                let (f, l) = (*r.start(), *r.end());
                let cidr_last = last_of(host_bits);
                if f > l || l > cidr_last {
                    return Err(invalid(format!(
                        "range {f}..={l} is not within {net}'s offsets 0..={cidr_last}"
                    )));
                }
                let mask = last_of(unit);
                let fu = f.checked_shr(unit).unwrap_or(0) + u128::from(f & mask != 0);
                let lu = if l & mask == mask {
                    Some(l.checked_shr(unit).unwrap_or(0))
                } else {
                    l.checked_shr(unit).unwrap_or(0).checked_sub(1)
                };
                match lu {
                    Some(lu) if lu >= fu => (fu, lu),
                    _ => {
                        return Err(invalid(format!(
                            "range {f}..={l} holds no whole /{}",
                            bits - unit_bits
                        )));
                    }
                }
            }
            None => match def.kind {
                PoolKind::Prefixes => (0, last_of(host_bits - unit)),
                PoolKind::Addresses => {
                    let (hf, hl) = match host_bits {
                        0 => (0, 0),
                        1 => (0, 1),
                        _ => (1, last_of(host_bits) - 1),
                    };
                    let count = hl - hf + 1;
                    (hf + count / 2, hl)
                }
            },
        };
        if last > u128::from(WINDOW_MAX) {
            return Err(invalid(format!(
                "its range reaches offset {last}, beyond the {WINDOW_MAX} the store can hold: \
                 give a range within the first 2^64 - 1 {}",
                if unit_bits == 0 {
                    "addresses".to_string()
                } else {
                    format!("/{} blocks", bits - unit_bits)
                }
            )));
        }
        let fit = |v: u128| u64::try_from(v).map_err(|_| invalid(format!("offset {v} too large")));
        Ok(Layout {
            net,
            kind: def.kind,
            unit_bits,
            first: fit(first)?,
            last: fit(last)?,
        })
    }

    fn max_prefix_len(&self) -> u8 {
        self.net.max_prefix_len() - self.unit_bits
    }

    fn base(&self) -> u128 {
        ip_u128(self.net.network())
    }

    /// The first address of unit `off`.
    fn addr(&self, off: u64) -> Option<IpAddr> {
        let v = self
            .base()
            .checked_add(u128::from(off).checked_shl(u32::from(self.unit_bits))?)?;
        match self.net {
            IpNet::V4(_) => u32::try_from(v).ok().map(|v| IpAddr::V4(Ipv4Addr::from(v))),
            IpNet::V6(_) => Some(IpAddr::V6(Ipv6Addr::from(v))),
        }
    }

    /// The last address of unit `off`.
    fn last_addr(&self, off: u64) -> Option<IpAddr> {
        let first = ip_u128(self.addr(off)?);
        let v = first.checked_add(last_of(u32::from(self.unit_bits)))?;
        match self.net {
            IpNet::V4(_) => u32::try_from(v).ok().map(|v| IpAddr::V4(Ipv4Addr::from(v))),
            IpNet::V6(_) => Some(IpAddr::V6(Ipv6Addr::from(v))),
        }
    }

    fn net_at(&self, off: u64, prefix_len: u8) -> Result<IpNet, IpamError> {
        self.addr(off)
            .and_then(|a| IpNet::new(a, prefix_len).ok())
            .ok_or_else(|| {
                IpamError::Corrupt(format!("offset {off} /{prefix_len} in {}", self.net))
            })
    }

    /// The units a reserved entry covers, clipped to the pool's CIDR and to the
    /// offsets the store holds. `Err`: it does not overlap the pool; `Ok(None)`: it
    /// lies beyond the offsets the store holds (nothing is allocated there).
    fn units(&self, e: &IpNet) -> Result<Option<(u64, u64)>, ()> {
        if e.max_prefix_len() != self.net.max_prefix_len() {
            return Err(());
        }
        let (lo, hi) = if e.addr() != e.network() {
            (ip_u128(e.addr()), ip_u128(e.addr()))
        } else {
            (ip_u128(e.network()), ip_u128(e.broadcast()))
        };
        let (base, end) = (self.base(), ip_u128(self.net.broadcast()));
        let (lo, hi) = (lo.max(base), hi.min(end));
        if lo > hi {
            return Err(());
        }
        let unit = u32::from(self.unit_bits);
        let lo = (lo - base).checked_shr(unit).unwrap_or(0);
        let hi = (hi - base).checked_shr(unit).unwrap_or(0);
        if lo > u128::from(WINDOW_MAX) {
            return Ok(None);
        }
        let hi = hi.min(u128::from(WINDOW_MAX));
        match (u64::try_from(lo), u64::try_from(hi)) {
            (Ok(lo), Ok(hi)) => Ok(Some((lo, hi))),
            _ => Ok(None),
        }
    }

    /// How a reserved row reads: `first-last`, or the one address.
    fn span_text(&self, lo: u64, hi: u64) -> String {
        let first = self.addr(lo).map(|a| a.to_string()).unwrap_or_default();
        if lo == hi && self.unit_bits == 0 {
            return first;
        }
        let last = self
            .last_addr(hi)
            .map(|a| a.to_string())
            .unwrap_or_default();
        format!("{first}-{last}")
    }
}

/// A pool's row.
struct PoolRow {
    id: String,
    layout: Layout,
    hint: u64,
    reserved: String,
    created_ms: i64,
    updated_ms: i64,
}

macro_rules! pool_columns {
    () => {
        "id, cidr, kind, unit_bits, range_first, range_last, free_hint, reserved, created_ms, updated_ms"
    };
}

macro_rules! allocation_columns {
    () => {
        "id, pool_id, address, team, description, created_ms, lo"
    };
}

fn pool_of(r: &AnyRow) -> Result<PoolRow, IpamError> {
    let id: String = r.try_get(0)?;
    let corrupt = |what: &str| IpamError::Corrupt(format!("pool {id:?}: {what}"));
    let cidr: String = r.try_get(1)?;
    let net: IpNet = cidr.parse().map_err(|_| corrupt("cidr"))?;
    let kind: String = r.try_get(2)?;
    let kind = PoolKind::parse(&kind).ok_or_else(|| corrupt("kind"))?;
    let unit_bits = u8::try_from(r.try_get::<i64, _>(3)?)
        .ok()
        .filter(|u| *u <= net.max_prefix_len() - net.prefix_len())
        .ok_or_else(|| corrupt("unit_bits"))?;
    let layout = Layout {
        net,
        kind,
        unit_bits,
        first: off(r.try_get(4)?),
        last: off(r.try_get(5)?),
    };
    // What the arithmetic on offsets relies on.
    if layout.first > layout.last || layout.last > WINDOW_MAX {
        return Err(corrupt("range"));
    }
    Ok(PoolRow {
        layout,
        hint: off(r.try_get(6)?),
        reserved: r.try_get(7)?,
        created_ms: r.try_get(8)?,
        updated_ms: r.try_get(9)?,
        id,
    })
}

fn allocation_of(r: &AnyRow) -> Result<Allocation, IpamError> {
    let id: String = r.try_get(0)?;
    let address: String = r.try_get(2)?;
    let address = address
        .parse()
        .map_err(|_| IpamError::Corrupt(format!("allocation {id:?}: address {address:?}")))?;
    Ok(Allocation {
        pool: r.try_get(1)?,
        address,
        team: r.try_get::<Option<String>, _>(3)?.unwrap_or_default(),
        description: r.try_get(4)?,
        created_ms: r.try_get(5)?,
        id,
    })
}

/// The opaque cursor after the allocation at offset `lo` (stored form).
fn cursor_of(lo: i64) -> String {
    format!("{:016x}", off(lo))
}

fn cursor_lo(cursor: &str) -> Result<i64, IpamError> {
    if cursor.len() != 16 {
        return Err(IpamError::BadCursor(cursor.to_string()));
    }
    u64::from_str_radix(cursor, 16)
        .map(db)
        .map_err(|_| IpamError::BadCursor(cursor.to_string()))
}

/// Sorted, merged (overlapping or adjacent) unit ranges.
fn merge(mut spans: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    spans.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(spans.len());
    for (lo, hi) in spans {
        match out.last_mut() {
            // hi ≤ WINDOW_MAX: + 1 cannot overflow.
            Some(last) if lo <= last.1 + 1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// The row that starts at or before `pos`: the only one that can cover it.
async fn covering(
    conn: &mut AnyConnection,
    pool: &str,
    pos: u64,
) -> Result<Option<(u64, u64)>, IpamError> {
    let row = sqlx::query(
        "SELECT lo, hi FROM ipam_entries WHERE pool_id = $1 AND lo <= $2 ORDER BY lo DESC LIMIT 1",
    )
    .bind(pool)
    .bind(db(pos))
    .fetch_optional(conn)
    .await?;
    row.map(|r| Ok((off(r.try_get(0)?), off(r.try_get(1)?))))
        .transpose()
}

/// The rows from `start_lo` on (in offset order) that a gap follows: each with the
/// start of the next row (`None` after the last). Rows are disjoint, so the gap is
/// `hi + 1 ..= next - 1`. One ordered walk of the `(pool_id, lo)` index, with no
/// per-row probe: the cost is the run of taken offsets it passes, whatever the
/// planner knows about the table.
async fn gaps_after(
    conn: &mut AnyConnection,
    pool: &str,
    start_lo: u64,
    limit: i64,
) -> Result<Vec<(u64, Option<u64>)>, IpamError> {
    let rows = sqlx::query(
        "SELECT g.hi, g.next FROM ( \
           SELECT lo, hi, LEAD(lo) OVER (ORDER BY lo) AS next FROM ipam_entries \
           WHERE pool_id = $1 AND lo >= $2) g \
         WHERE g.next IS NULL OR g.next > g.hi + 1 ORDER BY g.lo LIMIT $3",
    )
    .bind(pool)
    .bind(db(start_lo))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let next: Option<i64> = r.try_get(1)?;
            Ok((off(r.try_get(0)?), next.map(off)))
        })
        .collect()
}

/// The lowest free offset in `[from, last]`, if any.
async fn lowest_free(
    conn: &mut AnyConnection,
    pool: &str,
    from: u64,
    last: u64,
) -> Result<Option<u64>, IpamError> {
    if from > last {
        return Ok(None);
    }
    let start = match covering(conn, pool, from).await? {
        Some((lo, hi)) if hi >= from => lo,
        _ => return Ok(Some(from)),
    };
    // From the covering row on, the first gap ends the run of taken offsets.
    let gap = gaps_after(conn, pool, start, 1).await?;
    Ok(gap
        .first()
        .map(|(hi, _)| hi.saturating_add(1))
        .filter(|free| *free <= last))
}

/// The lowest block of `size` units aligned to `size` in `[from, last]` that no row
/// overlaps, and the lowest free unit at or after `from` (`last + 1` if none).
async fn lowest_free_block(
    conn: &mut AnyConnection,
    pool: &str,
    from: u64,
    last: u64,
    size: u64,
) -> Result<(Option<u64>, u64), IpamError> {
    let mut first_free = None;
    // Whether gap `lo..=hi` holds a block: records the first gap seen.
    let mut fits = |lo: u64, hi: u64| -> Option<u64> {
        let lo = lo.max(from);
        if lo > hi || lo > last {
            return None;
        }
        first_free.get_or_insert(lo);
        let c = lo.div_ceil(size).checked_mul(size)?;
        let end = c.checked_add(size - 1)?;
        (end <= hi.min(last)).then_some(c)
    };
    if from > last {
        return Ok((None, last + 1));
    }
    let mut start = match covering(conn, pool, from).await? {
        Some((lo, _)) => lo,
        None => {
            // Nothing starts at or before `from`: the gap runs from it to the first row.
            let row = sqlx::query(
                "SELECT lo FROM ipam_entries WHERE pool_id = $1 AND lo >= $2 ORDER BY lo LIMIT 1",
            )
            .bind(pool)
            .bind(db(from))
            .fetch_optional(&mut *conn)
            .await?;
            let next = row.map(|r| r.try_get::<i64, _>(0)).transpose()?.map(off);
            let hi = next.map_or(u64::MAX, |n| n.saturating_sub(1));
            if let Some(c) = fits(from, hi) {
                return Ok((Some(c), first_free.unwrap_or(from)));
            }
            match next {
                Some(n) => n,
                None => return Ok((None, first_free.unwrap_or(last + 1))),
            }
        }
    };
    loop {
        let gaps = gaps_after(conn, pool, start, SCAN_BATCH).await?;
        let full = gaps.len() >= usize::try_from(SCAN_BATCH).unwrap_or(usize::MAX);
        for (hi, next) in gaps {
            let lo = hi.saturating_add(1);
            if lo > last {
                return Ok((None, first_free.unwrap_or(last + 1)));
            }
            if let Some(c) = fits(lo, next.map_or(u64::MAX, |n| n.saturating_sub(1))) {
                return Ok((Some(c), first_free.unwrap_or(c)));
            }
            match next {
                Some(n) => start = n,
                None => return Ok((None, first_free.unwrap_or(last + 1))),
            }
        }
        if !full {
            return Ok((None, first_free.unwrap_or(last + 1)));
        }
    }
}

/// An allocation found by its idempotency key.
async fn by_key(
    conn: &mut AnyConnection,
    pool: &str,
    key: &str,
) -> Result<Option<Allocation>, IpamError> {
    sqlx::query(concat!(
        "SELECT ",
        allocation_columns!(),
        " FROM ipam_entries WHERE pool_id = $1 AND idempotency_key = $2 AND kind = 'allocated'"
    ))
    .bind(pool)
    .bind(key)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(allocation_of)
    .transpose()
}

async fn set_hint(conn: &mut AnyConnection, pool: &str, hint: u64) -> Result<(), IpamError> {
    sqlx::query("UPDATE ipam_pools SET free_hint = $1 WHERE id = $2")
        .bind(db(hint))
        .bind(pool)
        .execute(conn)
        .await?;
    Ok(())
}

/// What one allocation inserts.
struct NewAllocation<'a> {
    lo: u64,
    hi: u64,
    address: IpNet,
    team: &'a str,
    description: &'a str,
    key: Option<&'a str>,
}

impl Store {
    /// Begin a transaction holding pool `id`'s row: allocations and ensures of one
    /// pool queue here (PostgreSQL row lock; SQLite has one writer).
    async fn lock_pool(
        &self,
        id: &str,
    ) -> Result<(sqlx::Transaction<'static, sqlx::Any>, PoolRow), IpamError> {
        let mut tx = self.pool.begin().await?;
        let row = Self::pool_for_update(&mut tx, self.backend, id).await?;
        match row {
            Some(p) => Ok((tx, p)),
            None => {
                tx.rollback().await?;
                Err(IpamError::UnknownPool(id.to_string()))
            }
        }
    }

    async fn pool_for_update(
        conn: &mut AnyConnection,
        backend: Backend,
        id: &str,
    ) -> Result<Option<PoolRow>, IpamError> {
        let sql = match backend {
            Backend::Postgres => concat!(
                "SELECT ",
                pool_columns!(),
                " FROM ipam_pools WHERE id = $1 FOR UPDATE"
            ),
            Backend::Sqlite => {
                concat!("SELECT ", pool_columns!(), " FROM ipam_pools WHERE id = $1")
            }
        };
        sqlx::query(sql)
            .bind(id)
            .fetch_optional(conn)
            .await?
            .as_ref()
            .map(pool_of)
            .transpose()
    }

    /// Create or update a pool to match `def`: its CIDR, kind, range and reserved
    /// entries (replacing the previous set). Refused while the pool has allocations:
    /// a change of CIDR, kind or longest prefix, and reserved entries that overlap an
    /// allocation. Reserved entries outside the offsets the store holds (beyond 2^64
    /// units into a huge IPv6 pool) are kept in the definition only: nothing can be
    /// allocated there.
    pub async fn ensure_pool(&self, def: &PoolDef) -> Result<PoolView, IpamError> {
        let layout = Layout::of(def)?;
        let mut entries = Vec::new();
        for e in &def.reserved {
            match layout.units(e) {
                Ok(Some((lo, hi))) => entries.push((*e, lo, hi)),
                Ok(None) => {}
                Err(()) => {
                    return Err(IpamError::InvalidPool {
                        pool: def.id.clone(),
                        reason: format!("reserved {e} is outside {}", layout.net),
                    });
                }
            }
        }
        let spans = merge(entries.iter().map(|(_, lo, hi)| (*lo, *hi)).collect());
        let mut listed = def.reserved.clone();
        listed.sort_unstable();
        listed.dedup();
        let listed = serde_json::to_string(&listed)
            .map_err(|e| IpamError::Corrupt(format!("reserved entries: {e}")))?;
        let now = now_ms();
        let id = def.id.as_str();

        let mut tx = self.pool.begin().await?;
        let created = sqlx::query(
            "INSERT INTO ipam_pools (id, cidr, kind, unit_bits, range_first, range_last, \
             free_hint, reserved, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(layout.net.to_string())
        .bind(layout.kind.as_str())
        .bind(i64::from(layout.unit_bits))
        .bind(db(layout.first))
        .bind(db(layout.last))
        .bind(db(layout.first))
        .bind(&listed)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        let mut insert = spans.clone();
        if !created {
            let Some(old) = Self::pool_for_update(&mut tx, self.backend, id).await? else {
                tx.rollback().await?;
                return Err(IpamError::UnknownPool(id.to_string()));
            };
            let o = &old.layout;
            let mut changes = Vec::new();
            if o.net != layout.net {
                changes.push(format!("cidr {} -> {}", o.net, layout.net));
            }
            if o.kind != layout.kind {
                changes.push(format!("kind {} -> {}", o.kind, layout.kind));
            }
            if o.unit_bits != layout.unit_bits {
                changes.push(format!(
                    "longest prefix /{} -> /{}",
                    o.max_prefix_len(),
                    layout.max_prefix_len()
                ));
            }
            let mut reset = o.first != layout.first || o.last != layout.last;
            if !changes.is_empty() {
                let n: i64 = sqlx::query(
                    "SELECT COUNT(*) FROM ipam_entries WHERE pool_id = $1 AND kind = 'allocated'",
                )
                .bind(id)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
                if n > 0 {
                    tx.rollback().await?;
                    return Err(IpamError::PoolInUse {
                        pool: id.to_string(),
                        allocations: u64::try_from(n).unwrap_or(0),
                        change: changes.join(", "),
                    });
                }
                sqlx::query("DELETE FROM ipam_entries WHERE pool_id = $1 AND kind = 'reserved'")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                reset = true;
            }
            // Replace the reserved set: drop the rows it no longer has, add the new.
            let rows = sqlx::query(
                "SELECT id, lo, hi FROM ipam_entries WHERE pool_id = $1 AND kind = 'reserved'",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            let want: std::collections::BTreeSet<(u64, u64)> = spans.iter().copied().collect();
            let mut have = std::collections::BTreeSet::new();
            for r in rows {
                let span = (off(r.try_get(1)?), off(r.try_get(2)?));
                if want.contains(&span) {
                    have.insert(span);
                } else {
                    let row_id: String = r.try_get(0)?;
                    sqlx::query("DELETE FROM ipam_entries WHERE id = $1")
                        .bind(row_id)
                        .execute(&mut *tx)
                        .await?;
                    reset = true;
                }
            }
            insert.retain(|s| !have.contains(s));
            let hint = if reset { layout.first } else { old.hint };
            sqlx::query(
                "UPDATE ipam_pools SET cidr = $1, kind = $2, unit_bits = $3, range_first = $4, \
                 range_last = $5, free_hint = $6, reserved = $7, updated_ms = $8 WHERE id = $9",
            )
            .bind(layout.net.to_string())
            .bind(layout.kind.as_str())
            .bind(i64::from(layout.unit_bits))
            .bind(db(layout.first))
            .bind(db(layout.last))
            .bind(db(hint))
            .bind(&listed)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        for (lo, hi) in insert {
            // Rows are disjoint: only the last one starting at or before `hi` can
            // overlap [lo, hi].
            let clash = sqlx::query(
                "SELECT id, address, lo, hi FROM ipam_entries \
                 WHERE pool_id = $1 AND lo <= $2 ORDER BY lo DESC LIMIT 1",
            )
            .bind(id)
            .bind(db(hi))
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(r) = clash {
                let (alo, ahi) = (off(r.try_get(2)?), off(r.try_get(3)?));
                if ahi >= lo {
                    let allocation: String = r.try_get(0)?;
                    let address: String = r.try_get(1)?;
                    tx.rollback().await?;
                    let address = address.parse().map_err(|_| {
                        IpamError::Corrupt(format!("allocation {allocation:?}: {address:?}"))
                    })?;
                    let reserved = entries
                        .iter()
                        .find(|(_, elo, ehi)| *elo <= ahi && *ehi >= alo)
                        .map_or(layout.net, |(e, _, _)| *e);
                    return Err(IpamError::ReservedConflict {
                        pool: id.to_string(),
                        reserved,
                        allocation,
                        address,
                    });
                }
            }
            sqlx::query(
                "INSERT INTO ipam_entries (id, pool_id, kind, lo, hi, prefix_len, address, \
                 team, description, idempotency_key, created_ms) \
                 VALUES ($1, $2, 'reserved', $3, $4, $5, $6, NULL, 'reserved by the fleet', NULL, $7)",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(id)
            .bind(db(lo))
            .bind(db(hi))
            .bind(i64::from(layout.max_prefix_len()))
            .bind(layout.span_text(lo, hi))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.ip_pool(id)
            .await?
            .ok_or_else(|| IpamError::UnknownPool(id.to_string()))
    }

    /// Every pool, by id.
    pub async fn pools(&self) -> Result<Vec<PoolView>, IpamError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            pool_columns!(),
            ", (SELECT COUNT(*) FROM ipam_entries e WHERE e.pool_id = p.id AND e.kind = 'allocated') \
             FROM ipam_pools p ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::view_of).collect()
    }

    /// One pool.
    pub async fn ip_pool(&self, id: &str) -> Result<Option<PoolView>, IpamError> {
        sqlx::query(concat!(
            "SELECT ",
            pool_columns!(),
            ", (SELECT COUNT(*) FROM ipam_entries e WHERE e.pool_id = p.id AND e.kind = 'allocated') \
             FROM ipam_pools p WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(Self::view_of)
        .transpose()
    }

    fn view_of(r: &AnyRow) -> Result<PoolView, IpamError> {
        let p = pool_of(r)?;
        let allocations: i64 = r.try_get(10)?;
        let l = &p.layout;
        let corrupt = || IpamError::Corrupt(format!("pool {:?}: range", p.id));
        Ok(PoolView {
            cidr: l.net,
            kind: l.kind,
            range_first: l.addr(l.first).ok_or_else(corrupt)?,
            range_last: l.last_addr(l.last).ok_or_else(corrupt)?,
            range_size: (l.last - l.first).saturating_add(1),
            max_prefix_len: l.max_prefix_len(),
            reserved: serde_json::from_str(&p.reserved)
                .map_err(|_| IpamError::Corrupt(format!("pool {:?}: reserved", p.id)))?,
            allocations: u64::try_from(allocations).unwrap_or(0),
            created_ms: p.created_ms,
            updated_ms: p.updated_ms,
            id: p.id,
        })
    }

    /// Allocate the lowest free address of `pool`'s range for `team`. With an
    /// `idempotency_key` this pool already allocated under, that allocation.
    pub async fn allocate_address(
        &self,
        pool: &str,
        team: &str,
        description: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Allocation, IpamError> {
        let (mut tx, p) = self.lock_pool(pool).await?;
        let l = &p.layout;
        if l.kind != PoolKind::Addresses {
            tx.rollback().await?;
            return Err(IpamError::KindMismatch {
                pool: pool.to_string(),
                kind: l.kind,
                wanted: PoolKind::Addresses,
            });
        }
        if let Some(key) = idempotency_key
            && let Some(a) = by_key(&mut tx, pool, key).await?
        {
            tx.rollback().await?;
            return Ok(a);
        }
        let from = p.hint.max(l.first);
        let Some(at) = lowest_free(&mut tx, pool, from, l.last).await? else {
            // Everything up to the end of the range is taken: the next search need
            // not walk it again until something is released.
            set_hint(&mut tx, pool, l.last + 1).await?;
            tx.commit().await?;
            return Err(IpamError::Exhausted {
                pool: pool.to_string(),
                holds: u128::from(l.last - l.first) + 1,
                what: "addresses".into(),
            });
        };
        let address = l.net_at(at, l.net.prefix_len())?;
        let new = NewAllocation {
            lo: at,
            hi: at,
            address,
            team,
            description,
            key: idempotency_key,
        };
        let a = Self::insert_allocation(&mut tx, pool, &new).await?;
        set_hint(&mut tx, pool, at + 1).await?;
        tx.commit().await?;
        Ok(a)
    }

    /// Allocate the lowest free `/prefix_len` of a `prefixes` pool (aligned, inside
    /// its range, overlapping nothing reserved or allocated) for `team`. With an
    /// `idempotency_key` this pool already allocated under, that allocation.
    pub async fn allocate_prefix(
        &self,
        pool: &str,
        prefix_len: u8,
        team: &str,
        description: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Allocation, IpamError> {
        let (mut tx, p) = self.lock_pool(pool).await?;
        let l = &p.layout;
        if l.kind != PoolKind::Prefixes {
            tx.rollback().await?;
            return Err(IpamError::KindMismatch {
                pool: pool.to_string(),
                kind: l.kind,
                wanted: PoolKind::Prefixes,
            });
        }
        let (min, max) = (l.net.prefix_len(), l.max_prefix_len());
        if prefix_len < min || prefix_len > max {
            tx.rollback().await?;
            return Err(IpamError::BadPrefixLength {
                pool: pool.to_string(),
                cidr: l.net,
                prefix_len,
                min,
                max,
            });
        }
        if let Some(key) = idempotency_key
            && let Some(a) = by_key(&mut tx, pool, key).await?
        {
            tx.rollback().await?;
            return Ok(a);
        }
        let size = 1u128.checked_shl(u32::from(max - prefix_len));
        let exhausted = || IpamError::Exhausted {
            pool: pool.to_string(),
            holds: size.map_or(0, |size| {
                ((u128::from(l.last) + 1) / size).saturating_sub(u128::from(l.first).div_ceil(size))
            }),
            what: format!("/{prefix_len} prefixes"),
        };
        let Some(size) = size.and_then(|s| u64::try_from(s).ok()) else {
            tx.rollback().await?;
            return Err(exhausted());
        };
        let from = p.hint.max(l.first);
        let (found, free) = lowest_free_block(&mut tx, pool, from, l.last, size).await?;
        let Some(at) = found else {
            set_hint(&mut tx, pool, free).await?;
            tx.commit().await?;
            return Err(exhausted());
        };
        let new = NewAllocation {
            lo: at,
            hi: at + (size - 1),
            address: l.net_at(at, prefix_len)?,
            team,
            description,
            key: idempotency_key,
        };
        let a = Self::insert_allocation(&mut tx, pool, &new).await?;
        // Everything below `free` is taken; below the new block's end too when it
        // starts there.
        let hint = if at == free { new.hi + 1 } else { free };
        set_hint(&mut tx, pool, hint).await?;
        tx.commit().await?;
        Ok(a)
    }

    async fn insert_allocation(
        conn: &mut AnyConnection,
        pool: &str,
        new: &NewAllocation<'_>,
    ) -> Result<Allocation, IpamError> {
        let a = Allocation {
            id: uuid::Uuid::now_v7().to_string(),
            pool: pool.to_string(),
            address: new.address,
            team: new.team.to_string(),
            description: new.description.to_string(),
            created_ms: now_ms(),
        };
        sqlx::query(
            "INSERT INTO ipam_entries (id, pool_id, kind, lo, hi, prefix_len, address, team, \
             description, idempotency_key, created_ms) \
             VALUES ($1, $2, 'allocated', $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&a.id)
        .bind(pool)
        .bind(db(new.lo))
        .bind(db(new.hi))
        .bind(i64::from(new.address.prefix_len()))
        .bind(a.address.to_string())
        .bind(&a.team)
        .bind(&a.description)
        .bind(new.key)
        .bind(a.created_ms)
        .execute(conn)
        .await?;
        Ok(a)
    }

    /// Release an allocation; its address can be handed out again. Returns what was
    /// released, `None` when there was no such allocation.
    pub async fn release(&self, id: &str) -> Result<Option<Allocation>, IpamError> {
        let Some(a) = self.allocation(id).await? else {
            return Ok(None);
        };
        let (mut tx, _) = self.lock_pool(&a.pool).await?;
        let row = sqlx::query(
            "DELETE FROM ipam_entries WHERE id = $1 AND kind = 'allocated' RETURNING lo",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let lo: i64 = row.try_get(0)?;
        sqlx::query(
            "UPDATE ipam_pools SET free_hint = CASE WHEN free_hint > $1 THEN $2 ELSE free_hint END \
             WHERE id = $3",
        )
        .bind(lo)
        .bind(lo)
        .bind(&a.pool)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(a))
    }

    /// One allocation.
    pub async fn allocation(&self, id: &str) -> Result<Option<Allocation>, IpamError> {
        sqlx::query(concat!(
            "SELECT ",
            allocation_columns!(),
            " FROM ipam_entries WHERE id = $1 AND kind = 'allocated'"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(allocation_of)
        .transpose()
    }

    /// A page of `pool`'s allocations in address order, only `team`'s when given:
    /// at most `limit` (1 to [`MAX_PAGE`]) after `cursor` (the previous page's
    /// `next`; `None` for the first page).
    pub async fn allocations(
        &self,
        pool: &str,
        team: Option<&str>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<AllocationPage, IpamError> {
        let after = cursor.map(cursor_lo).transpose()?;
        let known = sqlx::query("SELECT id FROM ipam_pools WHERE id = $1")
            .bind(pool)
            .fetch_optional(&self.pool)
            .await?;
        if known.is_none() {
            return Err(IpamError::UnknownPool(pool.to_string()));
        }
        let limit = limit.clamp(1, MAX_PAGE);
        let mut sql = String::from(concat!(
            "SELECT ",
            allocation_columns!(),
            " FROM ipam_entries WHERE pool_id = $1 AND kind = 'allocated'"
        ));
        let mut n = 1;
        if team.is_some() {
            n += 1;
            sql.push_str(&format!(" AND team = ${n}"));
        }
        if after.is_some() {
            n += 1;
            sql.push_str(&format!(" AND lo > ${n}"));
        }
        sql.push_str(&format!(" ORDER BY lo LIMIT ${}", n + 1));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(pool);
        if let Some(team) = team {
            q = q.bind(team);
        }
        if let Some(after) = after {
            q = q.bind(after);
        }
        let rows = q.bind(i64::from(limit) + 1).fetch_all(&self.pool).await?;
        let more = rows.len() > limit as usize;
        let mut items = Vec::with_capacity(rows.len().min(limit as usize));
        let mut next = None;
        for r in rows.iter().take(limit as usize) {
            items.push(allocation_of(r)?);
            next = Some(cursor_of(r.try_get(6)?));
        }
        Ok(AllocationPage {
            items,
            next: if more { next } else { None },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("cidr")
    }

    #[test]
    fn offsets_keep_their_order_in_the_column() {
        let offs = [0, 1, TOP - 1, TOP, TOP + 1, WINDOW_MAX];
        for w in offs.windows(2) {
            assert!(db(w[0]) < db(w[1]));
            assert_eq!(off(db(w[0])), w[0]);
        }
        assert_eq!(db(WINDOW_MAX), i64::MAX - 1);
    }

    #[test]
    fn address_pools_default_to_the_upper_half_of_their_hosts() {
        let l = Layout::of(&PoolDef::addresses("p", net("10.0.0.0/24"))).expect("layout");
        assert_eq!((l.first, l.last), (128, 254));
        let l = Layout::of(&PoolDef::addresses("p", net("10.0.0.0/16"))).expect("layout");
        assert_eq!((l.first, l.last), (32768, 65534));
        let l = Layout::of(&PoolDef::addresses("p", net("fd00::/64"))).expect("layout");
        assert_eq!((l.first, l.last), (TOP, WINDOW_MAX));
        let l = Layout::of(&PoolDef::addresses("p", net("10.0.0.8/32"))).expect("layout");
        assert_eq!((l.first, l.last), (0, 0));
        let e = Layout::of(&PoolDef::addresses("p", net("fd00::/48"))).expect_err("too big");
        assert!(e.to_string().contains("beyond"), "{e}");
        assert!(
            Layout::of(&PoolDef::addresses("p", net("fd00::/48")).with_range(1..=1000)).is_ok()
        );
    }

    #[test]
    fn prefix_pools_count_in_blocks_of_their_longest_prefix() {
        let l = Layout::of(&PoolDef::prefixes("p", net("fd00::/48"))).expect("layout");
        assert_eq!((l.unit_bits, l.first, l.last), (64, 0, 65535));
        let l = Layout::of(
            &PoolDef::prefixes("p", net("10.0.0.0/16"))
                .with_max_prefix_len(24)
                .with_range(300..=1023),
        )
        .expect("layout");
        // Whole /24s inside offsets 300..=1023: 10.0.2.0/24 and 10.0.3.0/24.
        assert_eq!((l.first, l.last), (2, 3));
        assert_eq!(l.span_text(2, 3), "10.0.2.0-10.0.3.255");
        assert!(
            Layout::of(&PoolDef::prefixes("p", net("10.0.0.0/16")).with_max_prefix_len(8)).is_err()
        );
    }

    #[test]
    fn reserved_entries_are_addresses_or_prefixes() {
        let l = Layout::of(&PoolDef::addresses("p", net("10.0.0.0/24"))).expect("layout");
        assert_eq!(l.units(&net("10.0.0.1/24")), Ok(Some((1, 1))));
        assert_eq!(l.units(&net("10.0.0.64/26")), Ok(Some((64, 127))));
        assert_eq!(l.units(&net("10.0.0.0/8")), Ok(Some((0, 255))));
        assert_eq!(l.units(&net("10.0.1.0/24")), Err(()));
        assert_eq!(l.units(&net("fd00::1/64")), Err(()));
        assert_eq!(
            merge(vec![(5, 9), (1, 1), (2, 3), (8, 20)]),
            vec![(1, 3), (5, 20)]
        );
    }

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        assert_eq!(cursor_lo(&cursor_of(db(42))).expect("cursor"), db(42));
        assert!(cursor_lo("zz").is_err());
        assert!(cursor_lo("zzzzzzzzzzzzzzzz").is_err());
    }
}
