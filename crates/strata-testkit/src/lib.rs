//! Test support shared by strata's integration tests.
//!
//! Owns: where the repository's test data (`testdata/`), scripts (`scripts/`) and
//! example fleets (`examples/`, loaded and compiled) are, found from this crate's `CARGO_MANIFEST_DIR` so a clone anywhere finds them; and the
//! one way a test opts out of a part that needs a tool (an explicit `STRATA_SKIP_*=1`
//! variable, announced with [`SKIP_MARKER`] on the real stderr, which `cargo test` does
//! not capture, so that `.ci/run` sees every skip and fails on it).
//!
//! Must never: be a dependency of a non-test target; read anything outside the
//! repository; let a test pass silently because its data or tool is missing (a missing
//! file panics with the command that restores it).

mod examples;

pub use examples::{broken_fleets, example_dir, example_fleet, spec_sources};

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Printed (on the process's real stderr) by every test part that is skipped. `.ci/run`
/// fails when the test output contains it.
pub const SKIP_MARKER: &str = "strata-skip:";

/// The explicit opt-outs. Each is honoured only when set to `1`; `.ci/run` sets none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptOut {
    /// Real validators (FRR, netplan, cloud-init, ifupdown2, keepalived, promtool, ansible).
    Tools,
    /// Real third-party API clients (proxmoxer, python-libmaas, openstack CLI/SDK).
    Clients,
    /// Real Keystone and Placement started from PyPI by `scripts/openstack-real.sh`.
    RealOpenstack,
    /// The fabric lab (network namespaces, real FRR; needs root).
    Lab,
}

impl OptOut {
    /// The environment variable that opts out.
    pub fn var(self) -> &'static str {
        match self {
            OptOut::Tools => "STRATA_SKIP_TOOL_TESTS",
            OptOut::Clients => "STRATA_SKIP_CLIENT_TESTS",
            OptOut::RealOpenstack => "STRATA_SKIP_REAL_OPENSTACK",
            OptOut::Lab => "STRATA_SKIP_LAB_TESTS",
        }
    }

    /// Whether the user opted out of this group (`VAR=1`).
    pub fn is_set(self) -> bool {
        std::env::var(self.var()).is_ok_and(|v| v == "1")
    }
}

/// When the user opted out of `group`, announce that `what` is skipped and return
/// true; otherwise false (the test runs, and fails if its tool is missing).
pub fn opted_out(group: OptOut, what: &str) -> bool {
    if group.is_set() {
        skip_note(group, what);
        true
    } else {
        false
    }
}

/// Announce a skipped part on the real stderr (not captured by the test harness).
pub fn skip_note(group: OptOut, what: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{SKIP_MARKER} {what} ({}=1)", group.var());
}

/// The repository root (the directory holding the workspace `Cargo.toml`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv with the real API clients and Ansible that `scripts/install-test-deps.sh`
/// builds: `$STRATA_TOOLS_VENV`, default `/opt/strata-tools`.
pub fn tools_venv() -> PathBuf {
    std::env::var_os("STRATA_TOOLS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/strata-tools"))
}

/// A program of the tools venv (`python`, `openstack`, ...); whether it exists is the
/// caller's check, which names the install command.
pub fn venv_bin(name: &str) -> PathBuf {
    tools_venv().join("bin").join(name)
}

/// A path under the repository's `testdata/`; panics, naming the path, when it is not
/// there (the data is tracked in Git: a missing file means a broken checkout).
pub fn testdata(rel: &str) -> PathBuf {
    let path = repo_root().join("testdata").join(rel);
    assert!(
        path.exists(),
        "test data {} is missing: it is tracked in the repository (testdata/README.md); \
         restore it with `git checkout -- testdata/{rel}`",
        path.display()
    );
    path
}

/// The text of a file under `testdata/` (see [`testdata`]).
pub fn read_testdata(rel: &str) -> String {
    let path = testdata(rel);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading test data {}: {e}", path.display()))
}

/// A script under the repository's `scripts/`; panics when it is not there.
pub fn script(rel: &str) -> PathBuf {
    let path = repo_root().join("scripts").join(rel);
    assert!(
        path.is_file(),
        "{} is missing: it is tracked in the repository; restore it with `git checkout -- scripts/{rel}`",
        path.display()
    );
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_repository_and_its_test_data() {
        assert!(repo_root().join("Cargo.toml").is_file());
        assert!(testdata("README.md").is_file());
        assert!(script("test.sh").is_file());
    }

    #[test]
    #[should_panic(expected = "git checkout -- testdata/no-such-file")]
    fn a_missing_file_names_the_fix() {
        testdata("no-such-file");
    }

    #[test]
    fn each_opt_out_has_its_variable() {
        let vars: Vec<_> = [
            OptOut::Tools,
            OptOut::Clients,
            OptOut::RealOpenstack,
            OptOut::Lab,
        ]
        .iter()
        .map(|g| g.var())
        .collect();
        assert!(vars.iter().all(|v| v.starts_with("STRATA_SKIP_")));
    }
}

/// Real Keystone and Placement, started by `scripts/openstack-real.sh` on free ports of
/// 127.0.0.1 with fresh databases; both process groups are stopped when this is dropped
/// (also when the test panics).
#[derive(Debug)]
pub struct RealOpenstack {
    /// Keystone's v3 URL (`http://127.0.0.1:PORT/v3`).
    pub keystone: String,
    /// Placement's root URL.
    pub placement: String,
    groups: Vec<i32>,
    dir: PathBuf,
}

impl RealOpenstack {
    /// Start them, or return `None` (with a skip note) when the user opted out with
    /// `STRATA_SKIP_REAL_OPENSTACK=1`. Panics with the install command when they are not
    /// installed, and with the script's output when they do not start. Blocks (about half
    /// a minute on 2 cores): call it from `spawn_blocking` in async tests.
    pub fn start(what: &str) -> Option<RealOpenstack> {
        if opted_out(OptOut::RealOpenstack, what) {
            return None;
        }
        let script = script("openstack-real.sh");
        let check = std::process::Command::new("bash")
            .arg(&script)
            .arg("check")
            .output()
            .unwrap_or_else(|e| panic!("bash {}: {e}", script.display()));
        assert!(
            check.status.success(),
            "{}\n(or set STRATA_SKIP_REAL_OPENSTACK=1 to skip {what})",
            String::from_utf8_lossy(&check.stderr).trim()
        );
        let dir = scratch_dir("openstack-real");
        let (ks, pl) = (free_port(), free_port());
        let mut real = RealOpenstack {
            keystone: String::new(),
            placement: String::new(),
            groups: Vec::new(),
            dir,
        };
        let out = std::process::Command::new("bash")
            .arg(&script)
            .arg("start")
            .arg(&real.dir)
            .arg(ks.to_string())
            .arg(pl.to_string())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("bash {}: {e}", script.display()));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let ready = stdout.lines().rev().find(|l| l.starts_with("READY "));
        let parsed = ready.and_then(parse_ready);
        match (out.status.success(), parsed) {
            (true, Some((keystone, placement, groups))) => {
                real.keystone = keystone;
                real.placement = placement;
                real.groups = groups;
                Some(real)
            }
            _ => {
                // Drop stops whatever the script started before it failed.
                real.groups = real.recorded_groups();
                panic!(
                    "real Keystone and Placement did not start ({}):\n{stdout}\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }

    fn recorded_groups(&self) -> Vec<i32> {
        ["keystone.pgid", "placement.pgid"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(self.dir.join(f)).ok())
            .filter_map(|s| s.trim().parse().ok())
            .collect()
    }
}

/// `READY keystone=URL placement=URL pids: A B` → (keystone, placement, [A, B]).
fn parse_ready(line: &str) -> Option<(String, String, Vec<i32>)> {
    let word = |prefix: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(prefix))
            .map(str::to_string)
    };
    let groups: Vec<i32> = line
        .split_once("pids:")?
        .1
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    (groups.len() == 2).then_some(())?;
    Some((word("keystone=")?, word("placement=")?, groups))
}

impl Drop for RealOpenstack {
    fn drop(&mut self) {
        let mut groups = self.groups.clone();
        for g in self.recorded_groups() {
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
        stop_groups(&groups);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// SIGTERM each process group, wait up to 20 s for them to go, then SIGKILL the rest.
pub fn stop_groups(groups: &[i32]) {
    let signal = |sig: &str, g: i32| {
        g > 1
            && std::process::Command::new("kill")
                .args([sig, "--", &format!("-{g}")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    };
    for g in groups {
        signal("-TERM", *g);
    }
    for _ in 0..100 {
        if !groups.iter().any(|g| signal("-0", *g)) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    for g in groups {
        signal("-KILL", *g);
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"))
}

/// A new, empty directory under the system's temporary directory.
pub fn scratch_dir(prefix: &str) -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("strata-{prefix}-{}-{stamp}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

#[cfg(test)]
mod ready_tests {
    use super::parse_ready;

    #[test]
    fn parses_the_ready_line() {
        let (k, p, g) = parse_ready(
            "READY keystone=http://127.0.0.1:1/v3 placement=http://127.0.0.1:2 pids: 10 11",
        )
        .expect("parsed");
        assert_eq!(k, "http://127.0.0.1:1/v3");
        assert_eq!(p, "http://127.0.0.1:2");
        assert_eq!(g, vec![10, 11]);
        assert!(parse_ready("READY keystone=x pids: 1").is_none());
    }
}
