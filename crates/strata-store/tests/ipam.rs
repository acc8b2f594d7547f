//! IP address management, run against both databases like `store.rs`: SQLite in a
//! temporary file and the PostgreSQL beside the tests (127.0.0.1:5432, trust auth,
//! database `test`; `STRATA_TEST_POSTGRES` overrides the URL), each test in a schema
//! of its own.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use ipnet::IpNet;
use proptest::prelude::*;
use strata_store::Store;
use strata_store::ipam::{Allocation, IpamError, MAX_PAGE, PoolDef, PoolKind};

mod common;
use common::{drop_schema, postgres, sqlite};

/// Each case as two tests: on a SQLite file and on PostgreSQL in a fresh schema.
macro_rules! on_both {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let dir = tempfile::tempdir().expect("tmp");
                let s = std::sync::Arc::new(super::sqlite(&dir).await);
                super::$case(s).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let (s, schema) = super::postgres().await;
                super::$case(std::sync::Arc::new(s)).await;
                super::drop_schema(&schema).await;
            }
        }
    )*};
}

on_both!(
    addresses_are_handed_out_lowest_first_around_reserved_ones,
    an_idempotency_key_allocates_once,
    a_released_address_is_handed_out_again,
    an_exhausted_pool_says_how_many_it_holds,
    prefixes_are_aligned_and_never_overlap,
    ipv6_pools,
    ensuring_a_pool_replaces_its_reserved_set_and_guards_its_allocations,
    pages_cover_every_allocation_once,
    concurrent_allocators_never_share_an_address,
);

fn net(s: &str) -> IpNet {
    s.parse().expect("cidr")
}

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|s| net(s)).collect()
}

async fn address(s: &Store, pool: &str) -> String {
    s.allocate_address(pool, "ml", "test", None)
        .await
        .expect("allocate")
        .address
        .to_string()
}

async fn addresses_are_handed_out_lowest_first_around_reserved_ones(s: Arc<Store>) {
    // Default range: the upper half of 10.0.0.1–254, .128 to .254.
    let view = s
        .ensure_pool(
            &PoolDef::addresses("fra1/vlan/tenant-ml", net("10.0.0.0/24")).with_reserved(nets(&[
                "10.0.0.1/24",   // the gateway, interface notation: that one address
                "10.0.0.128/32", // a VIP
                "10.0.0.130/24", // a host
                "10.0.0.132/31", // .132 and .133
            ])),
        )
        .await
        .expect("ensure");
    assert_eq!(view.kind, PoolKind::Addresses);
    assert_eq!(view.range_first.to_string(), "10.0.0.128");
    assert_eq!(view.range_last.to_string(), "10.0.0.254");
    assert_eq!(view.range_size, 127);
    assert_eq!(view.reserved.len(), 4);
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(address(&s, "fra1/vlan/tenant-ml").await);
    }
    assert_eq!(
        got,
        [
            "10.0.0.129/24",
            "10.0.0.131/24",
            "10.0.0.134/24",
            "10.0.0.135/24",
            "10.0.0.136/24"
        ]
    );
    let a = s
        .allocate_address("fra1/vlan/tenant-ml", "web", "lb vip", Some("k1"))
        .await
        .expect("allocate");
    assert_eq!(a.address.to_string(), "10.0.0.137/24");
    assert_eq!((a.team.as_str(), a.description.as_str()), ("web", "lb vip"));
    assert_eq!(a.pool, "fra1/vlan/tenant-ml");
    assert!(a.created_ms > 0);
    assert_eq!(s.allocation(&a.id).await.expect("read"), Some(a.clone()));
    let pools = s.pools().await.expect("pools");
    assert_eq!(pools.len(), 1);
    assert_eq!(pools[0].allocations, 6);
    let e = s
        .allocate_address("nope", "ml", "", None)
        .await
        .expect_err("unknown");
    assert!(
        matches!(e, IpamError::UnknownPool(ref p) if p == "nope"),
        "{e}"
    );
}

async fn an_idempotency_key_allocates_once(s: Arc<Store>) {
    for id in ["a", "b"] {
        s.ensure_pool(&PoolDef::addresses(id, net("10.1.0.0/24")))
            .await
            .expect("ensure");
    }
    let first = s
        .allocate_address("a", "ml", "one", Some("req-1"))
        .await
        .expect("allocate");
    let again = s
        .allocate_address("a", "ml", "one, retried", Some("req-1"))
        .await
        .expect("again");
    assert_eq!(again, first);
    let other = s
        .allocate_address("a", "ml", "two", Some("req-2"))
        .await
        .expect("other key");
    assert_ne!(other.address, first.address);
    // Keys belong to their pool.
    let b = s
        .allocate_address("b", "ml", "one", Some("req-1"))
        .await
        .expect("pool b");
    assert_ne!(b.id, first.id);
    // Concurrent retries of one request still allocate once.
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.allocate_address("a", "ml", "burst", Some("req-3"))
                .await
                .expect("allocate")
                .id
        }));
    }
    let mut ids = HashSet::new();
    for t in tasks {
        ids.insert(t.await.expect("task"));
    }
    assert_eq!(ids.len(), 1);
    let page = s.allocations("a", None, None, 100).await.expect("list");
    assert_eq!(page.items.len(), 3);
}

async fn a_released_address_is_handed_out_again(s: Arc<Store>) {
    s.ensure_pool(&PoolDef::addresses("p", net("10.2.0.0/24")))
        .await
        .expect("ensure");
    let a: Vec<Allocation> = {
        let mut v = Vec::new();
        for i in 0..4 {
            v.push(
                s.allocate_address("p", "ml", &format!("n{i}"), Some(&format!("k{i}")))
                    .await
                    .expect("allocate"),
            );
        }
        v
    };
    assert_eq!(a[1].address.to_string(), "10.2.0.129/24");
    let released = s.release(&a[1].id).await.expect("release");
    assert_eq!(released, Some(a[1].clone()));
    assert_eq!(s.release(&a[1].id).await.expect("again"), None);
    assert_eq!(s.allocation(&a[1].id).await.expect("read"), None);
    // The freed address is the lowest free one again.
    let b = s
        .allocate_address("p", "ml", "again", None)
        .await
        .expect("allocate");
    assert_eq!(b.address, a[1].address);
    assert_ne!(b.id, a[1].id);
    // A key is remembered while its allocation lives: released, it allocates anew.
    s.release(&a[3].id).await.expect("release");
    let c = s
        .allocate_address("p", "ml", "n3", Some("k3"))
        .await
        .expect("allocate");
    assert_ne!(c.id, a[3].id);
    assert_eq!(c.address, a[3].address);
    assert_eq!(s.release("no-such-id").await.expect("release"), None);
}

async fn an_exhausted_pool_says_how_many_it_holds(s: Arc<Store>) {
    // A /29's hosts are .1–.6; the upper half .4–.6.
    s.ensure_pool(&PoolDef::addresses("small", net("10.3.0.0/29")))
        .await
        .expect("ensure");
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(
            s.allocate_address("small", "ml", "", None)
                .await
                .expect("allocate"),
        );
    }
    for _ in 0..2 {
        let e = s
            .allocate_address("small", "ml", "", None)
            .await
            .expect_err("exhausted");
        assert!(
            matches!(e, IpamError::Exhausted { holds: 3, ref what, .. } if what == "addresses"),
            "{e:?}"
        );
        assert!(e.to_string().contains("holds 3 addresses"), "{e}");
    }
    s.release(&got[2].id).await.expect("release");
    let again = s
        .allocate_address("small", "ml", "", None)
        .await
        .expect("room again");
    assert_eq!(again.address, got[2].address);
    // A reserved entry covering the whole range leaves nothing.
    s.ensure_pool(
        &PoolDef::addresses("full", net("10.3.1.0/29")).with_reserved(nets(&["10.3.1.0/29"])),
    )
    .await
    .expect("ensure");
    let e = s
        .allocate_address("full", "ml", "", None)
        .await
        .expect_err("exhausted");
    assert!(matches!(e, IpamError::Exhausted { holds: 3, .. }), "{e:?}");
}

async fn prefixes_are_aligned_and_never_overlap(s: Arc<Store>) {
    s.ensure_pool(
        &PoolDef::prefixes("fleet/tenant/ml", net("10.64.0.0/16"))
            .with_reserved(nets(&["10.64.0.0/24", "10.64.1.5/32"])),
    )
    .await
    .expect("ensure");
    let mut got = Vec::new();
    for len in [24, 26, 25, 30, 30, 32, 24] {
        got.push(
            s.allocate_prefix("fleet/tenant/ml", len, "ml", "subnet", None)
                .await
                .expect("allocate")
                .address
                .to_string(),
        );
    }
    assert_eq!(
        got,
        [
            "10.64.2.0/24",
            "10.64.1.64/26",
            "10.64.1.128/25",
            "10.64.1.0/30",
            "10.64.1.8/30",
            "10.64.1.4/32",
            "10.64.3.0/24",
        ]
    );
    let again = s
        .allocate_prefix("fleet/tenant/ml", 20, "ml", "big", Some("big"))
        .await
        .expect("a /20");
    assert_eq!(again.address.to_string(), "10.64.16.0/20");
    let same = s
        .allocate_prefix("fleet/tenant/ml", 20, "ml", "big", Some("big"))
        .await
        .expect("same");
    assert_eq!(same.id, again.id);
    for len in [15, 33] {
        let e = s
            .allocate_prefix("fleet/tenant/ml", len, "ml", "", None)
            .await
            .expect_err("bad length");
        assert!(
            matches!(
                e,
                IpamError::BadPrefixLength {
                    min: 16,
                    max: 32,
                    ..
                }
            ),
            "{e:?}"
        );
    }
    let e = s
        .allocate_address("fleet/tenant/ml", "ml", "", None)
        .await
        .expect_err("kind");
    assert!(
        matches!(
            e,
            IpamError::KindMismatch {
                kind: PoolKind::Prefixes,
                wanted: PoolKind::Addresses,
                ..
            }
        ),
        "{e:?}"
    );
    s.ensure_pool(&PoolDef::addresses("addr", net("10.65.0.0/24")))
        .await
        .expect("ensure");
    let e = s
        .allocate_prefix("addr", 28, "ml", "", None)
        .await
        .expect_err("kind");
    assert!(matches!(e, IpamError::KindMismatch { .. }), "{e:?}");
    // The whole pool, then nothing is left of its size.
    let e = s
        .allocate_prefix("fleet/tenant/ml", 16, "ml", "", None)
        .await
        .expect_err("taken");
    assert!(
        matches!(e, IpamError::Exhausted { holds: 1, ref what, .. } if what == "/16 prefixes"),
        "{e:?}"
    );
    // A range and a longest prefix: /24s out of offsets 256..=1279 (10.66.1.0–10.66.4.255).
    s.ensure_pool(
        &PoolDef::prefixes("ranged", net("10.66.0.0/16"))
            .with_max_prefix_len(24)
            .with_range(256..=1279)
            .with_reserved(nets(&["10.66.2.9/16"])),
    )
    .await
    .expect("ensure");
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(
            s.allocate_prefix("ranged", 24, "ml", "", None)
                .await
                .expect("allocate")
                .address
                .to_string(),
        );
    }
    assert_eq!(got, ["10.66.1.0/24", "10.66.3.0/24", "10.66.4.0/24"]);
    let e = s
        .allocate_prefix("ranged", 28, "ml", "", None)
        .await
        .expect_err("longer than /24");
    assert!(
        matches!(e, IpamError::BadPrefixLength { max: 24, .. }),
        "{e:?}"
    );
    let e = s
        .allocate_prefix("ranged", 23, "ml", "", None)
        .await
        .expect_err("no aligned /23 left");
    // Of the /23s, only 10.66.2.0/23 lies wholly inside the range.
    assert!(matches!(e, IpamError::Exhausted { holds: 1, .. }), "{e:?}");
}

async fn ipv6_pools(s: Arc<Store>) {
    let v = s
        .ensure_pool(
            &PoolDef::addresses("fra1/vlan/v6", net("fd00:10::/64"))
                .with_reserved(nets(&["fd00:10::8000:0:0:0/128", "fd00:10::1/64"])),
        )
        .await
        .expect("ensure");
    assert_eq!(v.range_first.to_string(), "fd00:10:0:0:8000::");
    assert_eq!(v.range_last.to_string(), "fd00:10::ffff:ffff:ffff:fffe");
    assert_eq!(v.range_size, (1u64 << 63) - 1);
    assert_eq!(address(&s, "fra1/vlan/v6").await, "fd00:10::8000:0:0:1/64");
    assert_eq!(address(&s, "fra1/vlan/v6").await, "fd00:10::8000:0:0:2/64");
    // Prefix pools count in /64s; a reserved address takes its whole /64.
    s.ensure_pool(
        &PoolDef::prefixes("fleet/v6", net("fd00:100::/48"))
            .with_reserved(nets(&["fd00:100::/64", "fd00:100:0:1::1/128"])),
    )
    .await
    .expect("ensure");
    let mut got = Vec::new();
    for len in [64, 56, 64, 60] {
        got.push(
            s.allocate_prefix("fleet/v6", len, "ml", "", None)
                .await
                .expect("allocate")
                .address
                .to_string(),
        );
    }
    assert_eq!(
        got,
        [
            "fd00:100:0:2::/64",
            "fd00:100:0:100::/56",
            "fd00:100:0:3::/64",
            "fd00:100:0:10::/60"
        ]
    );
    let e = s
        .allocate_prefix("fleet/v6", 65, "ml", "", None)
        .await
        .expect_err("/64 is the longest");
    assert!(
        matches!(e, IpamError::BadPrefixLength { max: 64, .. }),
        "{e:?}"
    );
    // A range beyond 2^64 offsets is refused; an explicit one inside is fine.
    let e = s
        .ensure_pool(&PoolDef::addresses("big", net("fd00:200::/48")))
        .await
        .expect_err("too big");
    assert!(matches!(e, IpamError::InvalidPool { .. }), "{e:?}");
    s.ensure_pool(&PoolDef::addresses("big", net("fd00:200::/48")).with_range(0x100..=0x1ff))
        .await
        .expect("ensure");
    assert_eq!(address(&s, "big").await, "fd00:200::100/48");
}

async fn ensuring_a_pool_replaces_its_reserved_set_and_guards_its_allocations(s: Arc<Store>) {
    let def = PoolDef::addresses("p", net("10.4.0.0/24")).with_range(1..=10);
    s.ensure_pool(
        &def.clone()
            .with_reserved(nets(&["10.4.0.1/32", "10.4.0.2/32"])),
    )
    .await
    .expect("ensure");
    assert_eq!(address(&s, "p").await, "10.4.0.3/24");
    // The next commit no longer uses .1: it is allocatable; .5 now reserved is skipped.
    s.ensure_pool(
        &def.clone()
            .with_reserved(nets(&["10.4.0.2/32", "10.4.0.5/32"])),
    )
    .await
    .expect("ensure");
    let got = [
        address(&s, "p").await,
        address(&s, "p").await,
        address(&s, "p").await,
    ];
    assert_eq!(got, ["10.4.0.1/24", "10.4.0.4/24", "10.4.0.6/24"]);
    // Ensuring the same definition again changes nothing.
    let v = s
        .ensure_pool(
            &def.clone()
                .with_reserved(nets(&["10.4.0.5/32", "10.4.0.2/32"])),
        )
        .await
        .expect("ensure");
    assert_eq!(v.allocations, 4);
    assert_eq!(v.reserved, nets(&["10.4.0.2/32", "10.4.0.5/32"]));
    // Reserving allocated addresses is refused, naming one of the allocations.
    let e = s
        .ensure_pool(&def.clone().with_reserved(nets(&["10.4.0.0/29"])))
        .await
        .expect_err("conflict");
    match &e {
        IpamError::ReservedConflict {
            reserved, address, ..
        } => {
            assert_eq!(reserved.to_string(), "10.4.0.0/29");
            assert_eq!(address.to_string(), "10.4.0.6/24");
        }
        other => panic!("{other:?}"),
    }
    // …and left the pool as it was.
    let v = s.ip_pool("p").await.expect("read").expect("pool");
    assert_eq!(v.reserved, nets(&["10.4.0.2/32", "10.4.0.5/32"]));
    // The CIDR, kind or unit cannot change under allocations.
    for changed in [
        PoolDef::addresses("p", net("10.5.0.0/24")).with_range(1..=10),
        PoolDef::prefixes("p", net("10.4.0.0/24")),
    ] {
        let e = s.ensure_pool(&changed).await.expect_err("in use");
        assert!(
            matches!(e, IpamError::PoolInUse { allocations: 4, .. }),
            "{e:?}"
        );
    }
    // A range change is fine; allocations outside it stay.
    let v = s
        .ensure_pool(&PoolDef::addresses("p", net("10.4.0.0/24")).with_range(100..=110))
        .await
        .expect("range");
    assert_eq!(v.allocations, 4);
    assert_eq!(address(&s, "p").await, "10.4.0.100/24");
    // Entries outside the CIDR are a mistake in the caller.
    let e = s
        .ensure_pool(&def.clone().with_reserved(nets(&["10.9.0.1/32"])))
        .await
        .expect_err("outside");
    assert!(matches!(e, IpamError::InvalidPool { .. }), "{e:?}");
    // Without allocations the CIDR may change.
    let page = s.allocations("p", None, None, 100).await.expect("list");
    for a in page.items {
        s.release(&a.id).await.expect("release");
    }
    let v = s
        .ensure_pool(
            &PoolDef::addresses("p", net("10.5.0.0/24")).with_reserved(nets(&["10.5.0.128/32"])),
        )
        .await
        .expect("moved");
    assert_eq!(v.cidr.to_string(), "10.5.0.0/24");
    assert_eq!(address(&s, "p").await, "10.5.0.129/24");
}

async fn pages_cover_every_allocation_once(s: Arc<Store>) {
    s.ensure_pool(
        &PoolDef::addresses("p", net("10.6.0.0/22"))
            .with_reserved(nets(&["10.6.2.10/32", "10.6.2.64/27"])),
    )
    .await
    .expect("ensure");
    let teams = ["ml", "web", "db"];
    let mut all = BTreeMap::new();
    for i in 0..250 {
        let a = s
            .allocate_address("p", teams[i % 3], &format!("n{i}"), None)
            .await
            .expect("allocate");
        all.insert(a.id.clone(), a);
    }
    // Release a few so pages have holes.
    let gone: Vec<String> = all.keys().step_by(17).cloned().collect();
    for id in &gone {
        s.release(id).await.expect("release");
        all.remove(id);
    }
    for team in [None, Some("web")] {
        let want: BTreeSet<String> = all
            .values()
            .filter(|a| team.is_none_or(|t| a.team == t))
            .map(|a| a.id.clone())
            .collect();
        let mut seen = Vec::new();
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let page = s
                .allocations("p", team, cursor.as_deref(), 7)
                .await
                .expect("page");
            assert!(page.items.len() <= 7);
            seen.extend(page.items);
            pages += 1;
            match page.next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(pages, want.len().div_ceil(7));
        let ids: Vec<String> = seen.iter().map(|a| a.id.clone()).collect();
        assert_eq!(ids.len(), want.len(), "each once");
        assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), want);
        let addrs: Vec<IpNet> = seen.iter().map(|a| a.address).collect();
        let mut sorted = addrs.clone();
        sorted.sort();
        assert_eq!(addrs, sorted, "in address order");
    }
    let big = s
        .allocations("p", None, None, 5000)
        .await
        .expect("big page");
    assert_eq!(big.items.len(), all.len().min(MAX_PAGE as usize));
    assert_eq!(big.next, None);
    let e = s
        .allocations("p", None, Some("not-a-cursor"), 10)
        .await
        .expect_err("bad cursor");
    assert!(matches!(e, IpamError::BadCursor(_)), "{e:?}");
    let e = s
        .allocations("nope", None, None, 10)
        .await
        .expect_err("unknown");
    assert!(matches!(e, IpamError::UnknownPool(_)), "{e:?}");
}

/// 64 allocators at once on one pool (and, alongside, on a second): no address is
/// handed out twice and none is reserved.
async fn concurrent_allocators_never_share_an_address(s: Arc<Store>) {
    const TASKS: usize = 64;
    const EACH: usize = 15;
    let reserved = nets(&["10.7.128.0/28", "10.7.130.1/32", "10.7.131.0/30"]);
    s.ensure_pool(&PoolDef::addresses("hot", net("10.7.0.0/16")).with_reserved(reserved.clone()))
        .await
        .expect("ensure");
    s.ensure_pool(&PoolDef::prefixes("hot/prefixes", net("10.8.0.0/16")))
        .await
        .expect("ensure");
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..EACH {
                let a = s
                    .allocate_address("hot", &format!("t{t}"), "", Some(&format!("{t}:{i}")))
                    .await
                    .expect("allocate");
                got.push(a.address);
                if i % 5 == 0 {
                    let p = s
                        .allocate_prefix("hot/prefixes", 26 + (t % 3) as u8, "ml", "", None)
                        .await
                        .expect("prefix");
                    got.push(p.address);
                }
            }
            got
        }));
    }
    let mut addresses = Vec::new();
    let mut prefixes = Vec::new();
    for t in tasks {
        for a in t.await.expect("task") {
            if a.prefix_len() == 16 {
                addresses.push(a);
            } else {
                prefixes.push(a);
            }
        }
    }
    let unique: HashSet<IpNet> = addresses.iter().copied().collect();
    assert_eq!(addresses.len(), TASKS * EACH);
    assert_eq!(
        unique.len(),
        addresses.len(),
        "an address was handed out twice"
    );
    assert!(
        addresses
            .iter()
            .all(|a| !reserved.iter().any(|r| r.contains(&a.addr())))
    );
    // Lowest first: the allocations fill the range's start around the reserved ones.
    let free_before: Vec<u32> = (32768u32..)
        .filter(|o| {
            let ip = std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 7, 0, 0)) + o);
            !reserved
                .iter()
                .any(|r| r.contains(&std::net::IpAddr::V4(ip)))
        })
        .take(TASKS * EACH)
        .collect();
    let mut offsets: Vec<u32> = addresses
        .iter()
        .map(|a| match a.addr() {
            std::net::IpAddr::V4(v) => {
                u32::from(v) - u32::from(std::net::Ipv4Addr::new(10, 7, 0, 0))
            }
            std::net::IpAddr::V6(_) => u32::MAX,
        })
        .collect();
    offsets.sort_unstable();
    assert_eq!(offsets, free_before);
    // Prefixes never overlap.
    for (i, a) in prefixes.iter().enumerate() {
        for b in &prefixes[i + 1..] {
            assert!(!a.contains(b) && !b.contains(a), "{a} overlaps {b}");
        }
    }
    let v = s.ip_pool("hot").await.expect("read").expect("pool");
    assert_eq!(v.allocations as usize, TASKS * EACH);
}

// ---- The property: random allocate/release sequences against an in-memory model.

#[derive(Clone, Debug)]
enum Op {
    Allocate { key: Option<u8>, len: u8 },
    Release(usize),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            3 => (prop::option::of(0u8..6), 0u8..4).prop_map(|(key, len)| Op::Allocate { key, len }),
            1 => (0usize..64).prop_map(Op::Release),
        ],
        1..60,
    )
}

/// The model: which units are taken, by which allocation.
struct Model {
    /// Units in the range, first..=last.
    first: u32,
    last: u32,
    reserved: BTreeSet<u32>,
    /// id -> (first unit, units, key)
    live: BTreeMap<String, (u32, u32, Option<u8>)>,
}

impl Model {
    fn taken(&self, u: u32) -> bool {
        self.reserved.contains(&u) || self.live.values().any(|(lo, n, _)| u >= *lo && u < lo + n)
    }

    /// The lowest aligned free block of `size` units in the range.
    fn lowest(&self, size: u32) -> Option<u32> {
        (0..=self.last)
            .step_by(size as usize)
            .filter(|c| *c >= self.first && c + size - 1 <= self.last)
            .find(|c| (*c..c + size).all(|u| !self.taken(u)))
    }
}

/// Runs `ops` on a fresh SQLite store against the model; `prefixes`: a prefixes pool
/// 10.9.0.0/24 counted in /30s (64 units), else an addresses pool 10.9.0.0/26.
fn check(reserved_units: BTreeSet<u32>, range: (u32, u32), prefixes: bool, ops: Vec<Op>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let s = Store::connect("sqlite::memory:").await.expect("store");
        let (first, last) = range;
        let unit = if prefixes { 4u32 } else { 1 };
        let reserved: Vec<IpNet> = reserved_units
            .iter()
            .map(|u| {
                let ip = std::net::Ipv4Addr::new(10, 9, 0, 0);
                let ip = std::net::Ipv4Addr::from(u32::from(ip) + u * unit);
                // A whole /30 unit, or one address inside it (interface notation).
                if !prefixes {
                    IpNet::new(std::net::IpAddr::V4(ip), 32).expect("net")
                } else if u % 2 == 0 {
                    IpNet::new(std::net::IpAddr::V4(ip), 30).expect("net")
                } else {
                    IpNet::new(
                        std::net::IpAddr::V4(std::net::Ipv4Addr::from(u32::from(ip) + unit - 1)),
                        24,
                    )
                    .expect("net")
                }
            })
            .collect();
        let def = if prefixes {
            PoolDef::prefixes("prop", net("10.9.0.0/24"))
                .with_max_prefix_len(30)
                .with_range(u128::from(first * 4)..=u128::from(last * 4 + 3))
        } else {
            PoolDef::addresses("prop", net("10.9.0.0/26"))
                .with_range(u128::from(first)..=u128::from(last))
        };
        s.ensure_pool(&def.with_reserved(reserved))
            .await
            .expect("ensure");
        let mut m = Model {
            first,
            last,
            reserved: reserved_units,
            live: BTreeMap::new(),
        };
        for op in ops {
            match op {
                Op::Allocate { key, len } => {
                    let key_text = key.map(|k| format!("key{k}"));
                    let (size, r) = if prefixes {
                        let prefix_len = 30 - len;
                        (
                            1u32 << len,
                            s.allocate_prefix("prop", prefix_len, "t", "", key_text.as_deref())
                                .await,
                        )
                    } else {
                        (
                            1,
                            s.allocate_address("prop", "t", "", key_text.as_deref())
                                .await,
                        )
                    };
                    let existing = key.and_then(|k| {
                        m.live
                            .iter()
                            .find(|(_, (_, _, kk))| *kk == Some(k))
                            .map(|(id, _)| id.clone())
                    });
                    if let Some(id) = existing {
                        assert_eq!(r.expect("idempotent").id, id);
                        continue;
                    }
                    match (m.lowest(size), r) {
                        (Some(c), Ok(a)) => {
                            let base = u32::from(std::net::Ipv4Addr::new(10, 9, 0, 0));
                            let got = match a.address.addr() {
                                std::net::IpAddr::V4(v) => (u32::from(v) - base) / unit,
                                std::net::IpAddr::V6(_) => u32::MAX,
                            };
                            assert_eq!(got, c, "lowest free");
                            assert!(
                                (c..c + size).all(|u| !m.taken(u)),
                                "no duplicate, not reserved"
                            );
                            m.live.insert(a.id, (c, size, key));
                        }
                        (None, Err(IpamError::Exhausted { .. })) => {}
                        (want, got) => panic!("model {want:?}, store {got:?}"),
                    }
                }
                Op::Release(i) => {
                    let Some(id) = m.live.keys().nth(i % m.live.len().max(1)).cloned() else {
                        continue;
                    };
                    let r = s.release(&id).await.expect("release");
                    assert_eq!(r.map(|a| a.id), Some(id.clone()));
                    m.live.remove(&id);
                }
            }
        }
        let page = s.allocations("prop", None, None, 1000).await.expect("list");
        let ids: BTreeSet<String> = page.items.into_iter().map(|a| a.id).collect();
        assert_eq!(ids, m.live.keys().cloned().collect::<BTreeSet<_>>());
    });
}

fn range_and_reserved() -> impl Strategy<Value = ((u32, u32), BTreeSet<u32>)> {
    (0u32..40, 0u32..24).prop_flat_map(|(first, span)| {
        let last = (first + span).min(63);
        (
            Just((first, last)),
            prop::collection::btree_set(0u32..64, 0..12),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn address_pools_match_the_model((range, reserved) in range_and_reserved(), ops in ops()) {
        check(reserved, range, false, ops);
    }

    #[test]
    fn prefix_pools_match_the_model((range, reserved) in range_and_reserved(), ops in ops()) {
        check(reserved, range, true, ops);
    }
}
