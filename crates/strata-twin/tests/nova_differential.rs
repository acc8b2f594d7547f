//! Differential check of the twin's Nova against real Nova 34, the oracle: two real
//! Novas (`scripts/nova-real.py`, Nova's own functional-test harness served over HTTP from
//! the venv `scripts/install-test-deps.sh` builds) and a twin. One run of the request
//! sequence (`scripts/clients/differential_nova.py --a twin --b real1 --fair real2`)
//! compares the twin with the first real Nova and that real Nova with the second: real
//! vs real must agree (the proof that the comparison only compares what a deployment
//! fixes) and so must twin vs real (its known differences listed, with their reasons,
//! in the script's ACCEPTED). The real processes' process groups are killed however the
//! test ends.
//!
//! When real Nova is not installed the test fails with the command that installs it;
//! `STRATA_SKIP_REAL_OPENSTACK=1` opts out explicitly (`.ci/run` never sets it).

#[path = "openstack_support.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use strata_testkit::OptOut;

/// The venv with real Nova (`$STRATA_NOVA_VENV`, default `/opt/strata-nova`).
fn nova_venv() -> PathBuf {
    std::env::var_os("STRATA_NOVA_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/strata-nova"))
}

/// Real Nova processes, each in its own process group; all are killed on drop (also
/// when the test panics).
struct RealNovas {
    urls: Vec<String>,
    groups: Vec<i32>,
    dir: PathBuf,
}

impl Drop for RealNovas {
    fn drop(&mut self) {
        strata_testkit::stop_groups(&self.groups);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl RealNovas {
    /// Start `n` real Novas at once and wait for each one's `READY` line; `None` when the
    /// user opted out. Panics with the install command when Nova is not installed, and
    /// with a process's log when it does not come up within a minute.
    fn start(n: usize, what: &str) -> Option<RealNovas> {
        if strata_testkit::opted_out(OptOut::RealOpenstack, what) {
            return None;
        }
        let venv = nova_venv();
        let python = venv.join("bin/python");
        assert!(
            python.is_file() && venv.join(".strata-nova-real").is_file(),
            "real Nova is not installed in {}: run `sudo scripts/install-test-deps.sh` \
             (or only this part: `scripts/install-test-deps.sh --nova`; another venv: \
             STRATA_NOVA_VENV)\n(or set STRATA_SKIP_REAL_OPENSTACK=1 to skip {what})",
            venv.display()
        );
        let script = strata_testkit::script("nova-real.py");
        let mut real = RealNovas {
            urls: Vec::new(),
            groups: Vec::new(),
            dir: strata_testkit::scratch_dir("nova-real"),
        };
        let (tx, rx) = mpsc::channel();
        for i in 0..n {
            let log = real.dir.join(format!("nova-{i}.log"));
            let stderr = std::fs::File::create(&log).expect("log file");
            let mut child = Command::new(&python)
                .arg(&script)
                .args(["--port", "0", "--computes", "4"])
                .env("PYTHONWARNINGS", "ignore")
                .current_dir(&real.dir)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(stderr)
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
            real.groups.push(child.id() as i32);
            let stdout = child.stdout.take().expect("stdout");
            let tx = tx.clone();
            std::thread::spawn(move || {
                let ready = BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                    .find_map(|l| {
                        l.split_whitespace()
                            .find_map(|w| w.strip_prefix("url="))
                            .map(str::to_string)
                    });
                let _ = tx.send((i, ready));
                // The child is reaped by stop_groups' kill; keep its handle alive until then.
                let _ = child.wait();
            });
        }
        drop(tx);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut urls = vec![String::new(); n];
        for _ in 0..n {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((i, Some(url))) => urls[i] = url,
                Ok((i, None)) => panic!(
                    "real Nova {i} exited before it was ready:\n{}",
                    tail(&real.dir.join(format!("nova-{i}.log")))
                ),
                Err(_) => panic!(
                    "real Nova did not come up within a minute:\n{}",
                    (0..n)
                        .map(|i| tail(&real.dir.join(format!("nova-{i}.log"))))
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            }
        }
        real.urls = urls;
        Some(real)
    }
}

/// The last lines of a log.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Run the differential script: the twin against the first real Nova, that one against
/// the second.
fn differential(twin: &str, real: &str, fair: &str) -> Output {
    let script = strata_testkit::script("clients/differential_nova.py");
    Command::new("python3")
        .arg(&script)
        .args(["--a", twin, "--b", real, "--fair", fair])
        .stdin(Stdio::null())
        .output()
        .expect("differential_nova.py")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twin_nova_matches_real_nova() {
    let started = Instant::now();
    let Some(real) = tokio::task::spawn_blocking(|| {
        RealNovas::start(
            2,
            "the differential check of the twin's Nova against real Nova",
        )
    })
    .await
    .expect("join") else {
        return;
    };
    eprintln!(
        "real Novas at {} (up in {:.1} s)",
        real.urls.join(", "),
        started.elapsed().as_secs_f64()
    );

    // The system clock: real Nova builds in wall-clock time and the script polls both.
    let twin = support::start_system_clock(&["fra1"]).await;
    let endpoints = real.dir.join("endpoints.json");
    twin.write_endpoints(&endpoints).expect("endpoints");
    let twin_target = format!("twin:{}", endpoints.display());
    let (r1, r2) = (
        format!("real:{}", real.urls[0]),
        format!("real:{}", real.urls[1]),
    );
    let out = tokio::task::spawn_blocking(move || differential(&twin_target, &r1, &r2))
        .await
        .expect("join");
    twin.shutdown().await.expect("shutdown");
    drop(real);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The summary: one line per compared pair, then the known differences' reasons.
    let summary: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("twin: "))
        .collect();
    eprintln!(
        "{}
nova differential: {:.1} s in all",
        summary.join("\n"),
        started.elapsed().as_secs_f64()
    );
    let pair = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or("(no summary)")
            .to_string()
    };
    let (fair, twin_line) = (pair("real1 vs real2:"), pair("twin vs real1:"));
    assert!(
        fair.contains(" 0 with differences") && fair.ends_with("0 with known differences"),
        "two real Novas differ, so the comparison is not fair (normalise what differs \
         between deployments in differential_nova.py): {fair}\n{stdout}\n{stderr}"
    );
    assert!(
        out.status.success() && twin_line.contains(" 0 with differences"),
        "the twin's Nova differs from real Nova: {twin_line}\n{stdout}\n{stderr}"
    );
}
