//! Workflow steps per second through the store's claim → complete protocol, on a
//! SQLite file and on the PostgreSQL beside it, with one worker and with four; and,
//! as the peer measured in the same run, `pgbench`'s simple-update transactions per
//! second on the same PostgreSQL (one client) — the database's own rate for a
//! comparable write transaction.
//!
//! `cargo bench -p strata-store --bench steps` (needs PostgreSQL at 127.0.0.1:5432 with
//! trust auth, or STRATA_TEST_POSTGRES; pgbench from PostgreSQL's client tools).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use strata_store::{StepSpec, Store, now_ms};

const WORKFLOWS: usize = 200;
const STEPS: usize = 5;

fn pg_base() -> String {
    std::env::var("STRATA_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

async fn run(store: Arc<Store>, workers: usize) -> f64 {
    let steps: Vec<StepSpec> = (0..STEPS)
        .map(|i| StepSpec {
            timeout: Duration::from_secs(60),
            ..StepSpec::new(format!("s{i}"))
        })
        .collect();
    let tag = uuid::Uuid::new_v4().simple().to_string();
    for w in 0..WORKFLOWS {
        store
            .start(&format!("bench:{tag}:{w}"), "bench", "x", &steps)
            .await
            .expect("start");
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..workers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let worker = format!("w{n}");
            let mut done = 0usize;
            loop {
                match store.claim(&worker, None, now_ms()).await.expect("claim") {
                    Some(c) => {
                        if store
                            .complete(&c, &json!({"ok": true}))
                            .await
                            .expect("complete")
                        {
                            done += 1;
                        }
                    }
                    None => return done,
                }
            }
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("worker");
    }
    assert_eq!(total, WORKFLOWS * STEPS, "every step ran exactly once");
    total as f64 / started.elapsed().as_secs_f64()
}

fn pgbench_tps() -> Option<f64> {
    let db = "strata_bench_pgbench";
    let base = pg_base();
    let (server, _) = base.rsplit_once('/')?;
    let admin = std::process::Command::new("psql")
        .args([
            &base,
            "-q",
            "-c",
            &format!("DROP DATABASE IF EXISTS {db}"),
            "-c",
            &format!("CREATE DATABASE {db}"),
        ])
        .output()
        .ok()?;
    if !admin.status.success() {
        return None;
    }
    let url = format!("{server}/{db}");
    let bin = ["/usr/lib/postgresql/15/bin/pgbench", "pgbench"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok()
        })?;
    let init = std::process::Command::new(bin)
        .args(["-i", "-q", "-s", "1", &url])
        .output()
        .ok()?;
    if !init.status.success() {
        return None;
    }
    let out = std::process::Command::new(bin)
        .args(["-N", "-c", "1", "-T", "5", &url])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let tps = text
        .lines()
        .find(|l| l.starts_with("tps ="))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok());
    let _ = std::process::Command::new("psql")
        .args([&base, "-q", "-c", &format!("DROP DATABASE IF EXISTS {db}")])
        .output();
    tps
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
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&pg_base())
            .await
            .expect("PostgreSQL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut conn)
            .await
            .expect("schema");
        let base = pg_base();
        let sep = if base.contains('?') { '&' } else { '?' };
        let pg = Arc::new(
            Store::connect(&format!("{base}{sep}options=-c%20search_path%3D{schema}"))
                .await
                .expect("postgres"),
        );
        println!("{WORKFLOWS} workflows x {STEPS} steps, claim + complete per step");
        for (name, store) in [("sqlite", sqlite.clone()), ("postgres", pg.clone())] {
            for workers in [1, 4] {
                let rate = run(store.clone(), workers).await;
                println!("{name:9} workers={workers}: {rate:8.0} steps/s");
            }
        }
        drop(pg);
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&mut conn)
            .await
            .expect("drop");
    });
    match pgbench_tps() {
        Some(tps) => println!("peer: pgbench -N (simple update), 1 client: {tps:.0} tps"),
        None => println!("peer: pgbench unavailable"),
    }
}
