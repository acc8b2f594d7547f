//! `strata serve` on a PostgreSQL primary/standby pair of its own (started here with
//! initdb and pg_basebackup, not the shared instance, which refuses replication),
//! reached through a forwarding address as a VIP would give it. The primary dies, the
//! standby is promoted and the address moves: the server reconnects and carries on —
//! the next pushed commit is planned and applied.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// Run a PostgreSQL tool as the `postgres` user (the server refuses to run as root).
fn pg(tool: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(format!("{PG_BIN}/{tool}"))
        .args(args)
        .output()
        .expect("runuser");
    assert!(out.status.success(), "{tool} {args:?}: {}", text(&out));
    out
}

fn can_run() -> bool {
    Path::new(PG_BIN).join("initdb").exists()
        && Command::new("runuser")
            .args(["-u", "postgres", "--", "true"])
            .status()
            .is_ok_and(|s| s.success())
}

/// A TCP forwarder to whichever port `target` holds: the address clients keep while
/// the database behind it changes (what a VIP or a pooler gives).
fn forwarder(target: Arc<AtomicU16>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let to = target.load(Ordering::SeqCst);
            std::thread::spawn(move || {
                let Ok(up) = TcpStream::connect(("127.0.0.1", to)) else {
                    return;
                };
                let (Ok(mut a), Ok(mut b)) = (conn.try_clone(), up.try_clone()) else {
                    return;
                };
                let pump = std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = a.read(&mut buf) {
                        if n == 0 || b.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = b.shutdown(std::net::Shutdown::Both);
                });
                let (mut c, mut u) = (conn, up);
                let mut buf = [0u8; 16384];
                while let Ok(n) = u.read(&mut buf) {
                    if n == 0 || c.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = c.shutdown(std::net::Shutdown::Both);
                let _ = pump.join();
            });
        }
    });
    port
}

struct Cluster {
    dir: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for d in ["primary", "standby"] {
            let data = self.dir.join(d);
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(format!("{PG_BIN}/pg_ctl"))
                .args([
                    "-D",
                    data.to_str().unwrap_or_default(),
                    "stop",
                    "-m",
                    "immediate",
                ])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn curl(method: &str, url: &str, token: &str) -> (u16, Value) {
    api(method, url, Some(token))
}

fn wait_applied(base: &str, token: &str, sha: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let (_, c) = curl("GET", &format!("{base}/api/v1/commits/{sha}"), token);
        if c["state"] == "applied" {
            return;
        }
        assert!(
            Instant::now() < deadline && c["state"] != "failed",
            "commit {sha} not applied: {c:#}\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn the_server_carries_on_after_a_postgresql_failover() {
    assert!(
        can_run(),
        "this test starts its own PostgreSQL 15 pair: it needs {PG_BIN} and the postgres user (Debian's postgresql-15)"
    );
    // A directory the postgres user owns.
    let dir = PathBuf::from(format!("/tmp/strata-pg-failover-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let status = Command::new("chown")
        .args(["postgres:postgres"])
        .arg(&dir)
        .status()
        .expect("chown");
    assert!(status.success());
    let cluster = Cluster { dir: dir.clone() };
    let d = |p: &str| dir.join(p).to_str().expect("utf8").to_string();
    let (p1, p2) = (strata_testkit::free_port(), strata_testkit::free_port());

    pg(
        "initdb",
        &[
            "-D",
            &d("primary"),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        ],
    );
    let conf = format!(
        "port = {p1}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nwal_level = replica\nmax_wal_senders = 5\nhot_standby = on\nfsync = off\n",
        dir.display()
    );
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("primary/postgresql.conf"))
        .expect("conf");
    f.write_all(conf.as_bytes()).expect("write conf");
    pg(
        "pg_ctl",
        &["-D", &d("primary"), "-l", &d("primary.log"), "-w", "start"],
    );
    pg(
        "pg_basebackup",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &p1.to_string(),
            "-U",
            "postgres",
            "-D",
            &d("standby"),
            "-R",
            "-X",
            "stream",
        ],
    );
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("standby/postgresql.auto.conf"))
        .expect("auto conf");
    f.write_all(format!("port = {p2}\n").as_bytes())
        .expect("write");
    pg(
        "pg_ctl",
        &["-D", &d("standby"), "-l", &d("standby.log"), "-w", "start"],
    );

    let target = Arc::new(AtomicU16::new(p1));
    let vip = forwarder(target.clone());

    // The fleet, the twin, the server.
    let work_dir = strata_testkit::scratch_dir("strata-serve-failover");
    let twin = TwinProcess::start(&work_dir, &[]);
    // Its policy applies the bring-up's updates too: no approval to wait for.
    let work = fleet_allowing_updates(&work_dir);
    let bare = work_dir.join("fleet.git");
    git(&work, &["init", "-q", "-b", "main"]);
    git(
        &work_dir,
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "main",
            bare.to_str().expect("utf8"),
        ],
    );
    git(
        &work,
        &["remote", "add", "origin", bare.to_str().expect("utf8")],
    );
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "fleet"]);
    git(&work, &["push", "-q", "origin", "main"]);
    let first = git(&work, &["rev-parse", "HEAD"]).trim().to_string();

    let port = strata_testkit::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let log = work_dir.join("serve.log");
    let w = |p: &str| work_dir.join(p).to_str().expect("utf8").to_string();
    let mut child: Child = strata()
        .args([
            "serve",
            "--spec-repo",
            bare.to_str().expect("utf8"),
            "--targets",
            twin.endpoints.to_str().expect("utf8"),
            "--database",
            &format!("postgres://postgres@127.0.0.1:{vip}/postgres"),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--state-dir",
            &w("state"),
            "--poll-interval",
            "1s",
            "--reconcile-interval",
            "1h",
            "--admin-token-file",
            &w("admin.token"),
            "--lease-ttl",
            "6s",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn strata serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !work_dir.join("admin.token").exists() {
        assert!(
            Instant::now() < deadline,
            "no admin token: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(200));
    let token = std::fs::read_to_string(work_dir.join("admin.token"))
        .expect("token")
        .trim()
        .to_string();
    wait_applied(&base, &token, &first, &log);

    // Let the standby replay everything, then lose the primary and promote the standby.
    std::thread::sleep(Duration::from_secs(2));
    pg("pg_ctl", &["-D", &d("primary"), "stop", "-m", "immediate"]);
    pg("pg_ctl", &["-D", &d("standby"), "promote", "-w"]);
    target.store(p2, Ordering::SeqCst);

    // A new commit after the failover is planned and applied by the same server.
    let path = work.join("vms.yaml");
    let mut vms = std::fs::read_to_string(&path).expect("vms.yaml");
    vms.push_str("  - { name: after-failover, site: fra1, role: ci-runner, cores: 2, memory_mib: 4096, disk_gb: 40, networks: [management], tags: [ci] }\n");
    std::fs::write(&path, vms).expect("write");
    git(&work, &["commit", "-q", "-am", "a VM after the failover"]);
    git(&work, &["push", "-q", "origin", "main"]);
    let second = git(&work, &["rev-parse", "HEAD"]).trim().to_string();
    wait_applied(&base, &token, &second, &log);
    // What was recorded before the failover is still there.
    let (_, c) = curl("GET", &format!("{base}/api/v1/commits/{first}"), &token);
    assert_eq!(c["state"], "applied", "{c:#}");
    let (code, r) = curl("GET", &format!("{base}/readyz"), &token);
    assert_eq!((code, r["leader"].clone()), (200, Value::Bool(true)), "{r}");

    let _ = child.kill();
    let _ = child.wait();
    drop(cluster);
    let _ = std::fs::remove_dir_all(&work_dir);
}
