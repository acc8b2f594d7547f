//! Stable allocation: hand out slots of a pool to keys, keeping what the lock says.
//!
//! A pool is a numbered space of slots (addresses of a subnet, blocks of a supernet,
//! numbers of a range). [`allocate`] gives each requested key a slot:
//!
//! 1. pinned keys take their pinned slot (the spec said so);
//! 2. keys recorded in the lock keep their slot, if it still fits and is free;
//! 3. new keys with a preferred slot (the conventional layout, such as a switch
//!    port numbered after the peer's position) take it if it is still free;
//! 4. remaining keys, in sorted order, take the lowest free slots.
//!
//! Keys that are no longer requested are dropped from the lock, freeing their slot.
//! Nothing that was allocated ever moves unless the user edits the lock.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// How slots map to the values written in the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    /// Integers `first..=last`.
    Numbers { first: u32, last: u32 },
    /// Host addresses of a subnet, skipping the network address, the broadcast
    /// address (IPv4, prefixes shorter than /31) and the first `reserved` hosts.
    Hosts { net: IpNet, reserved: u32 },
    /// Equal blocks of `prefix_len` inside `net`.
    Blocks { net: IpNet, prefix_len: u8 },
    /// Switch ports `swp<first>..=swp<last>`.
    Ports { first: u32, last: u32 },
}

/// The name prefix of a switch port (`swp1`, `swp49`).
pub const PORT_PREFIX: &str = "swp";

impl Space {
    /// Number of slots (saturating at `u128::MAX`).
    pub fn size(&self) -> u128 {
        match *self {
            Space::Numbers { first, last } | Space::Ports { first, last } => {
                u128::from(last.saturating_sub(first)) + 1
            }
            Space::Hosts { net, reserved } => {
                let bits = host_bits(&net);
                let total = pow2(bits);
                let usable = match (bits, is_v4(&net)) {
                    (0 | 1, _) => total,
                    // IPv4 loses the network and broadcast addresses.
                    (_, true) => total - 2,
                    // IPv6 loses the subnet-router anycast address.
                    (_, false) => total - 1,
                };
                usable.saturating_sub(u128::from(reserved))
            }
            Space::Blocks { net, prefix_len } => {
                if prefix_len < net.prefix_len() || prefix_len > net.max_prefix_len() {
                    0
                } else {
                    pow2(u32::from(prefix_len - net.prefix_len()))
                }
            }
        }
    }

    /// The value of slot `i`, as written in the lock.
    pub fn value(&self, i: u128) -> String {
        match *self {
            Space::Numbers { first, .. } => (u128::from(first) + i).to_string(),
            Space::Ports { first, .. } => format!("{PORT_PREFIX}{}", u128::from(first) + i),
            Space::Hosts { .. } => self.addr(i).to_string(),
            Space::Blocks { .. } => self.block(i).to_string(),
        }
    }

    /// Slot of a lock value, if it parses and lies in this space.
    pub fn slot_of(&self, value: &str) -> Option<u128> {
        let slot = match *self {
            Space::Numbers { first, last } => {
                let v: u32 = value.parse().ok()?;
                if v < first || v > last {
                    return None;
                }
                u128::from(v - first)
            }
            Space::Ports { first, last } => {
                let digits = value.strip_prefix(PORT_PREFIX)?;
                // `swp05` is not a port name: only canonical numbers round-trip.
                if digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let v: u32 = digits.parse().ok()?;
                if v < first || v > last {
                    return None;
                }
                u128::from(v - first)
            }
            Space::Hosts { net, .. } => {
                let a: IpAddr = value.parse().ok()?;
                self.host_slot(net, a)?
            }
            Space::Blocks { net, prefix_len } => {
                let b: IpNet = value.parse().ok()?;
                if b.prefix_len() != prefix_len || b.trunc() != b || !net.contains(&b) {
                    return None;
                }
                let off = to_u128(b.network()) - to_u128(net.network());
                off >> (net.max_prefix_len() - prefix_len)
            }
        };
        (slot < self.size()).then_some(slot)
    }

    fn host_slot(&self, net: IpNet, a: IpAddr) -> Option<u128> {
        let Space::Hosts { reserved, .. } = *self else {
            return None;
        };
        if !net.contains(&a) || is_v4(&net) != a.is_ipv4() {
            return None;
        }
        let off = to_u128(a) - to_u128(net.network());
        let first = first_host_offset(&net) + u128::from(reserved);
        off.checked_sub(first)
    }

    /// Host address of slot `i` (for `Hosts`).
    pub fn addr(&self, i: u128) -> IpAddr {
        match *self {
            Space::Hosts { net, reserved } => from_u128(
                &net,
                to_u128(net.network()) + first_host_offset(&net) + u128::from(reserved) + i,
            ),
            Space::Numbers { .. } | Space::Ports { .. } | Space::Blocks { .. } => {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            }
        }
    }

    /// Block of slot `i` (for `Blocks`).
    pub fn block(&self, i: u128) -> IpNet {
        match *self {
            Space::Blocks { net, prefix_len } => {
                let step = pow2(u32::from(net.max_prefix_len() - prefix_len));
                let base = to_u128(net.network()) + i * step;
                make_net(&net, base, prefix_len)
            }
            Space::Hosts { net, .. } => net,
            Space::Numbers { .. } | Space::Ports { .. } => IpNet::V4(Ipv4Net::default()),
        }
    }
}

fn is_v4(net: &IpNet) -> bool {
    matches!(net, IpNet::V4(_))
}

fn host_bits(net: &IpNet) -> u32 {
    u32::from(net.max_prefix_len() - net.prefix_len())
}

fn pow2(bits: u32) -> u128 {
    if bits >= 128 {
        u128::MAX
    } else {
        1u128 << bits
    }
}

/// Offset of the first usable host: 0 for /31, /32 (and IPv6 /127, /128), else 1.
fn first_host_offset(net: &IpNet) -> u128 {
    if host_bits(net) >= 2 { 1 } else { 0 }
}

pub fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

fn from_u128(like: &IpNet, v: u128) -> IpAddr {
    match like {
        IpNet::V4(_) => IpAddr::V4(Ipv4Addr::from(v as u32)),
        IpNet::V6(_) => IpAddr::V6(Ipv6Addr::from(v)),
    }
}

fn make_net(like: &IpNet, base: u128, prefix_len: u8) -> IpNet {
    match like {
        IpNet::V4(_) => {
            IpNet::V4(Ipv4Net::new(Ipv4Addr::from(base as u32), prefix_len).unwrap_or_default())
        }
        IpNet::V6(_) => {
            IpNet::V6(Ipv6Net::new(Ipv6Addr::from(base), prefix_len).unwrap_or_default())
        }
    }
}

/// A key whose recorded slot could not be kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub key: String,
    pub recorded: String,
    pub reason: ConflictReason,
    /// The pinned key that holds the recorded slot, when a pin took it: the pin is
    /// the mistake, not the object that already had the slot.
    pub pinned_by: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictReason {
    /// The recorded value does not parse or is outside the pool now.
    OutsidePool,
    /// Another key (pinned or recorded) already holds that slot.
    Taken,
}

/// What [`allocate`] decided.
#[derive(Clone, Debug, Default)]
pub struct Allocation {
    /// Slot of every requested key that got one.
    pub slots: BTreeMap<String, u128>,
    /// The pool's new lock entries (requested keys only).
    pub lock: BTreeMap<String, String>,
    /// Lock entries that could not be honoured (their keys got new slots).
    pub conflicts: Vec<Conflict>,
    /// Keys that got no slot because the pool is full.
    pub unallocated: Vec<String>,
}

impl Allocation {
    pub fn get(&self, key: &str) -> Option<u128> {
        self.slots.get(key).copied()
    }

    pub fn exhausted(&self) -> bool {
        !self.unallocated.is_empty()
    }
}

/// Allocate a slot in `space` to every key of `keys`.
///
/// `pins` are `(key, slot)` pairs fixed by the spec; they are taken as given, even when
/// two pins share a slot (the design checks report that with the spec's spans).
pub fn allocate<'k>(
    space: &Space,
    keys: impl IntoIterator<Item = &'k str>,
    pins: &[(String, u128)],
    recorded: Option<&BTreeMap<String, String>>,
) -> Allocation {
    allocate_preferring(space, keys, pins, &BTreeMap::new(), recorded)
}

/// [`allocate`], where the keys that are neither pinned nor recorded and have a
/// `preferred` slot go first, in the order of those slots: each takes its preferred
/// slot if it lies in the space and nobody holds it, else the lowest free slot. The
/// keys without a preference then fill the lowest free slots. Preferred slots never
/// displace pinned or recorded ones: that is what keeps, say, a switch port where it
/// was cabled when a new peer's conventional port is already taken.
pub fn allocate_preferring<'k>(
    space: &Space,
    keys: impl IntoIterator<Item = &'k str>,
    pins: &[(String, u128)],
    preferred: &BTreeMap<String, u128>,
    recorded: Option<&BTreeMap<String, String>>,
) -> Allocation {
    let mut keys: Vec<&str> = keys.into_iter().collect();
    keys.sort_unstable();
    keys.dedup();
    let size = space.size();
    let mut out = Allocation::default();
    let mut taken: HashSet<u128> = HashSet::with_capacity(keys.len());
    let pinned: HashSet<&str> = pins.iter().map(|(k, _)| k.as_str()).collect();
    let mut pin_at: BTreeMap<u128, &str> = BTreeMap::new();

    for (k, slot) in pins {
        if *slot < size {
            taken.insert(*slot);
            pin_at.entry(*slot).or_insert(k.as_str());
        }
        out.slots.insert(k.clone(), *slot);
    }

    let mut pending: Vec<&str> = Vec::new();
    for k in &keys {
        if pinned.contains(k) {
            continue;
        }
        match recorded.and_then(|r| r.get(*k)) {
            Some(v) => match space.slot_of(v) {
                Some(slot) if taken.insert(slot) => {
                    out.slots.insert((*k).to_string(), slot);
                }
                Some(slot) => {
                    out.conflicts.push(Conflict {
                        key: (*k).to_string(),
                        recorded: v.clone(),
                        reason: ConflictReason::Taken,
                        pinned_by: pin_at.get(&slot).map(|p| (*p).to_string()),
                    });
                    pending.push(k);
                }
                None => {
                    out.conflicts.push(Conflict {
                        key: (*k).to_string(),
                        recorded: v.clone(),
                        reason: ConflictReason::OutsidePool,
                        pinned_by: None,
                    });
                    pending.push(k);
                }
            },
            None => pending.push(k),
        }
    }

    // New keys with a preferred slot, in the order of those slots: each takes its
    // own if free, else the lowest free one (so two new leaves of a new rack take
    // the next two free ports in order). Then the keys without a preference.
    let (mut placed_by_preference, unplaced): (Vec<(u128, &str)>, Vec<&str>) = {
        let mut with = Vec::new();
        let mut without = Vec::new();
        for k in pending {
            match preferred.get(k) {
                Some(slot) => with.push((*slot, k)),
                None => without.push(k),
            }
        }
        (with, without)
    };
    placed_by_preference.sort_unstable();
    // The lowest free slot only ever grows, since slots are only ever taken.
    let mut cursor: u128 = 0;
    let lowest_free = |taken: &HashSet<u128>, cursor: &mut u128| {
        while *cursor < size && taken.contains(cursor) {
            *cursor += 1;
        }
        (*cursor < size).then_some(*cursor)
    };
    for (slot, k) in placed_by_preference {
        let slot = if slot < size && !taken.contains(&slot) {
            Some(slot)
        } else {
            lowest_free(&taken, &mut cursor)
        };
        match slot {
            Some(slot) => {
                taken.insert(slot);
                out.slots.insert(k.to_string(), slot);
            }
            None => out.unallocated.push(k.to_string()),
        }
    }
    for k in unplaced {
        match lowest_free(&taken, &mut cursor) {
            Some(slot) => {
                taken.insert(slot);
                out.slots.insert(k.to_string(), slot);
            }
            None => out.unallocated.push(k.to_string()),
        }
    }

    for (k, slot) in &out.slots {
        if *slot < size {
            out.lock.insert(k.clone(), space.value(*slot));
        }
    }
    out
}

/// Allocate aligned sub-prefixes of different sizes inside `net`
/// (infrastructure VLAN subnets of a DC block). `requests` are `(key, prefix_len)`.
pub fn allocate_prefixes(
    net: IpNet,
    requests: &[(String, u8)],
    recorded: Option<&BTreeMap<String, String>>,
) -> PrefixAllocation {
    let mut out = PrefixAllocation::default();
    let mut taken: Vec<(u128, u128)> = Vec::new();
    let overlaps =
        |taken: &[(u128, u128)], s: u128, e: u128| taken.iter().any(|&(a, b)| s <= b && a <= e);
    let mut pending: Vec<&(String, u8)> = Vec::new();
    for req in requests {
        let (key, len) = req;
        let kept = recorded.and_then(|r| r.get(key)).map(|v| {
            let ok = v
                .parse::<IpNet>()
                .ok()
                .filter(|p| p.prefix_len() == *len && p.trunc() == *p && net.contains(p));
            (v, ok)
        });
        match kept {
            Some((_, Some(p)))
                if !overlaps(&taken, to_u128(p.network()), to_u128(p.broadcast())) =>
            {
                taken.push((to_u128(p.network()), to_u128(p.broadcast())));
                out.prefixes.insert(key.clone(), p);
            }
            Some((v, p)) => {
                out.conflicts.push(Conflict {
                    key: key.clone(),
                    recorded: v.clone(),
                    reason: if p.is_some() {
                        ConflictReason::Taken
                    } else {
                        ConflictReason::OutsidePool
                    },
                    pinned_by: None,
                });
                pending.push(req);
            }
            None => pending.push(req),
        }
    }
    // Largest first packs aligned blocks without holes; ties by key for determinism.
    pending.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    let base = to_u128(net.network());
    let end = to_u128(net.broadcast());
    for (key, len) in pending {
        if *len < net.prefix_len() || *len > net.max_prefix_len() {
            out.unallocated.push(key.clone());
            continue;
        }
        let step = pow2(u32::from(net.max_prefix_len() - len));
        let mut s = base;
        let mut found = None;
        while s <= end && s.checked_add(step - 1).is_some_and(|e| e <= end) {
            let e = s + step - 1;
            match taken.iter().find(|&&(a, b)| s <= b && a <= e) {
                Some(&(_, b)) => {
                    // Jump past the blocking range, re-aligned.
                    let next = (b / step).checked_add(1).and_then(|n| n.checked_mul(step));
                    match next {
                        Some(next) if next > s => s = next,
                        _ => break,
                    }
                }
                None => {
                    found = Some(s);
                    break;
                }
            }
        }
        match found {
            Some(s) => {
                taken.push((s, s + step - 1));
                out.prefixes.insert(key.clone(), make_net(&net, s, *len));
            }
            None => out.unallocated.push(key.clone()),
        }
    }
    for (k, p) in &out.prefixes {
        out.lock.insert(k.clone(), p.to_string());
    }
    out
}

#[derive(Clone, Debug, Default)]
pub struct PrefixAllocation {
    pub prefixes: BTreeMap<String, IpNet>,
    pub lock: BTreeMap<String, String>,
    pub conflicts: Vec<Conflict>,
    pub unallocated: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("net")
    }

    #[test]
    fn host_space_skips_network_gateway_and_broadcast() {
        let s = Space::Hosts {
            net: net("10.0.0.0/29"),
            reserved: 1,
        };
        assert_eq!(s.size(), 5); // .2-.6
        assert_eq!(s.value(0), "10.0.0.2");
        assert_eq!(s.value(4), "10.0.0.6");
        assert_eq!(s.slot_of("10.0.0.6"), Some(4));
        assert_eq!(s.slot_of("10.0.0.7"), None);
        assert_eq!(s.slot_of("10.0.0.1"), None);
        let p2p = Space::Hosts {
            net: net("10.0.0.0/31"),
            reserved: 0,
        };
        assert_eq!(p2p.size(), 2);
        assert_eq!(p2p.value(0), "10.0.0.0");
    }

    #[test]
    fn block_space_round_trips() {
        let s = Space::Blocks {
            net: net("10.0.0.0/8"),
            prefix_len: 16,
        };
        assert_eq!(s.size(), 256);
        assert_eq!(s.value(3), "10.3.0.0/16");
        assert_eq!(s.slot_of("10.3.0.0/16"), Some(3));
        assert_eq!(s.slot_of("10.3.0.0/17"), None);
        assert_eq!(s.slot_of("11.0.0.0/16"), None);
        let v6 = Space::Blocks {
            net: net("fd00::/48"),
            prefix_len: 64,
        };
        assert_eq!(v6.value(1), "fd00:0:0:1::/64");
    }

    #[test]
    fn lock_is_honoured_and_new_keys_fill_holes() {
        let s = Space::Numbers {
            first: 100,
            last: 104,
        };
        let mut rec = BTreeMap::new();
        rec.insert("b".to_string(), "100".to_string());
        rec.insert("gone".to_string(), "101".to_string());
        let a = allocate(&s, ["a", "b", "c"], &[], Some(&rec));
        assert_eq!(a.lock.get("b").map(String::as_str), Some("100"));
        assert_eq!(a.lock.get("a").map(String::as_str), Some("101"));
        assert_eq!(a.lock.get("c").map(String::as_str), Some("102"));
        assert!(!a.lock.contains_key("gone"));
    }

    #[test]
    fn port_space_round_trips_canonical_names_only() {
        let s = Space::Ports {
            first: 49,
            last: 52,
        };
        assert_eq!(s.size(), 4);
        assert_eq!(s.value(0), "swp49");
        assert_eq!(s.slot_of("swp52"), Some(3));
        assert_eq!(s.slot_of("swp53"), None);
        assert_eq!(s.slot_of("swp048"), None);
        assert_eq!(s.slot_of("swp+50"), None);
        assert_eq!(s.slot_of("eth50"), None);
        assert_eq!(s.slot_of("50"), None);
    }

    #[test]
    fn preferred_slots_yield_to_the_lock_and_fall_back_to_the_lowest_free() {
        let s = Space::Ports { first: 1, last: 8 };
        // Two racks and a border leaf, cabled in the conventional order.
        let preferred: BTreeMap<String, u128> = [("r01", 0), ("r02", 1), ("border1", 2)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let first = allocate_preferring(&s, ["r01", "r02", "border1"], &[], &preferred, None);
        assert_eq!(first.lock["border1"], "swp3");
        // A new rack sorts before the border leaf and prefers its port: the lock wins,
        // the new rack takes the lowest free port.
        let preferred: BTreeMap<String, u128> =
            [("r01", 0), ("r02", 1), ("r03", 2), ("border1", 3)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
        let second = allocate_preferring(
            &s,
            ["r01", "r02", "r03", "border1"],
            &[],
            &preferred,
            Some(&first.lock),
        );
        assert_eq!(second.lock["border1"], "swp3");
        assert_eq!(second.lock["r03"], "swp4");
        assert!(second.conflicts.is_empty());
        // A preferred slot outside the space is ignored.
        let outside: BTreeMap<String, u128> = [("x".to_string(), 99)].into_iter().collect();
        let third = allocate_preferring(&s, ["x"], &[], &outside, None);
        assert_eq!(third.lock["x"], "swp1");
    }

    #[test]
    fn a_key_without_preference_never_takes_a_free_preferred_slot_first() {
        let s = Space::Numbers { first: 1, last: 3 };
        let preferred: BTreeMap<String, u128> = [("b".to_string(), 0)].into_iter().collect();
        let a = allocate_preferring(&s, ["a", "b"], &[], &preferred, None);
        assert_eq!(a.lock["b"], "1");
        assert_eq!(a.lock["a"], "2");
    }

    #[test]
    fn exhaustion_and_conflicts_are_reported() {
        let s = Space::Numbers { first: 1, last: 2 };
        let mut rec = BTreeMap::new();
        rec.insert("x".to_string(), "9".to_string());
        let a = allocate(&s, ["x", "y", "z"], &[], Some(&rec));
        assert_eq!(a.conflicts.len(), 1);
        assert_eq!(a.conflicts[0].reason, ConflictReason::OutsidePool);
        assert_eq!(a.unallocated, vec!["z".to_string()]);
    }

    #[test]
    fn a_pin_on_a_recorded_slot_names_the_pin() {
        let s = Space::Numbers { first: 1, last: 9 };
        let mut rec = BTreeMap::new();
        rec.insert("works".to_string(), "3".to_string());
        let a = allocate(&s, ["works", "new"], &[("new".to_string(), 2)], Some(&rec));
        assert_eq!(a.conflicts.len(), 1);
        assert_eq!(a.conflicts[0].key, "works");
        assert_eq!(a.conflicts[0].reason, ConflictReason::Taken);
        assert_eq!(a.conflicts[0].pinned_by.as_deref(), Some("new"));
    }

    #[test]
    fn prefixes_pack_aligned_and_keep_the_lock() {
        let reqs = vec![
            ("a".to_string(), 24u8),
            ("b".to_string(), 22u8),
            ("c".to_string(), 23u8),
        ];
        let p = allocate_prefixes(net("10.0.0.0/16"), &reqs, None);
        assert_eq!(p.prefixes["b"].to_string(), "10.0.0.0/22");
        assert_eq!(p.prefixes["c"].to_string(), "10.0.4.0/23");
        assert_eq!(p.prefixes["a"].to_string(), "10.0.6.0/24");
        let mut rec = p.lock.clone();
        rec.remove("b");
        let again = allocate_prefixes(net("10.0.0.0/16"), &reqs, Some(&rec));
        assert_eq!(again.prefixes["c"].to_string(), "10.0.4.0/23");
        assert_eq!(again.prefixes["a"].to_string(), "10.0.6.0/24");
        assert_eq!(again.prefixes["b"].to_string(), "10.0.0.0/22");
        let full = allocate_prefixes(net("10.0.0.0/23"), &reqs, None);
        assert!(!full.unallocated.is_empty());
    }
}
