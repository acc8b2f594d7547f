//! IP allocations per second, with each allocation's latency (p50/p99), for 64
//! concurrent allocators on one pool, on a SQLite file and on the PostgreSQL beside
//! it; on PostgreSQL also spread over 8 pools (each pool's row is its own lock), and
//! the cost of the one full walk a pool makes after its reserved set changed (the
//! lowest-free search restarts from the range's start) with tens of thousands taken.
//!
//! `cargo bench -p strata-store --bench ipam` (needs PostgreSQL at 127.0.0.1:5432
//! with trust auth, or STRATA_TEST_POSTGRES).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use strata_store::Store;
use strata_store::ipam::PoolDef;

const ALLOCATORS: usize = 64;
const EACH: usize = 50;

fn pg_base() -> String {
    std::env::var("STRATA_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

fn net(s: &str) -> IpNet {
    s.parse().expect("cidr")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `ALLOCATORS` tasks, each making `EACH` allocations in one of `pools`.
async fn run(store: Arc<Store>, pools: &[String]) -> (f64, Duration, Duration) {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..ALLOCATORS {
        let store = store.clone();
        let pool = pools[t % pools.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut took = Vec::with_capacity(EACH);
            for i in 0..EACH {
                let at = Instant::now();
                store
                    .allocate_address(&pool, "bench", "", Some(&format!("{t}:{i}")))
                    .await
                    .expect("allocate");
                took.push(at.elapsed());
            }
            took
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("allocator"));
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    all.sort_unstable();
    (rate, percentile(&all, 0.5), percentile(&all, 0.99))
}

/// Fill `taken` addresses of a fresh pool, change its reserved set (the search
/// restarts from the range's start), and time the next allocation.
async fn full_walk(store: &Store, pool: &str, taken: usize) -> (Duration, Duration) {
    let def = PoolDef::addresses(pool, net("10.200.0.0/16")).with_range(1..=65534);
    store
        .ensure_pool(&def.clone().with_reserved([net("10.200.255.1/32")]))
        .await
        .expect("ensure");
    for i in 0..taken {
        store
            .allocate_address(pool, "bench", "", Some(&format!("fill:{i}")))
            .await
            .expect("fill");
    }
    store
        .ensure_pool(&def.with_reserved([net("10.200.255.0/24")]))
        .await
        .expect("ensure");
    let at = Instant::now();
    store
        .allocate_address(pool, "bench", "", None)
        .await
        .expect("allocate");
    let walk = at.elapsed();
    let at = Instant::now();
    store
        .allocate_address(pool, "bench", "", None)
        .await
        .expect("allocate");
    (walk, at.elapsed())
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tmp");
        let sqlite = Arc::new(
            Store::connect(&format!("sqlite:{}", dir.path().join("bench.db").display()))
                .await
                .expect("sqlite"),
        );
        let schema = format!("strata_bench_{}", uuid::Uuid::new_v4().simple());
        let base = pg_base();
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&base)
            .await
            .expect("PostgreSQL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut conn)
            .await
            .expect("schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        let pg = Arc::new(
            Store::connect(&format!("{base}{sep}options=-c%20search_path%3D{schema}"))
                .await
                .expect("postgres"),
        );
        println!(
            "{ALLOCATORS} concurrent allocators x {EACH} allocations each ({} in all)",
            ALLOCATORS * EACH
        );
        for (name, store) in [("sqlite", sqlite.clone()), ("postgres", pg.clone())] {
            let mut cases = vec![(1usize, "one pool")];
            if name == "postgres" {
                cases.push((8, "8 pools"));
            }
            for (n, label) in cases {
                let pools: Vec<String> = (0..n)
                    .map(|i| format!("bench/{label}/{i}"))
                    .collect();
                for (i, p) in pools.iter().enumerate() {
                    let reserved: Vec<IpNet> = (0..64)
                        .map(|h| net(&format!("10.{}.{}.{}/32", 100 + i, 128 + h / 16, h * 7 % 250)))
                        .collect();
                    store
                        .ensure_pool(
                            &PoolDef::addresses(p.clone(), net(&format!("10.{}.0.0/16", 100 + i)))
                                .with_reserved(reserved),
                        )
                        .await
                        .expect("ensure");
                }
                let (rate, p50, p99) = run(store.clone(), &pools).await;
                println!(
                    "{name:9} {label:9}: {rate:8.0} allocations/s  p50 {:7.2} ms  p99 {:7.2} ms",
                    p50.as_secs_f64() * 1e3,
                    p99.as_secs_f64() * 1e3
                );
            }
        }
        for (name, store) in [("sqlite", sqlite.clone()), ("postgres", pg.clone())] {
            let taken = 30_000;
            let (walk, next) = full_walk(&store, "bench/walk", taken).await;
            println!(
                "{name:9} after a reserved-set change, {taken} taken: first allocation {:7.2} ms, next {:5.2} ms",
                walk.as_secs_f64() * 1e3,
                next.as_secs_f64() * 1e3
            );
        }
        drop(pg);
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&mut conn)
            .await
            .expect("drop schema");
    });
}
