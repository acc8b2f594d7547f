//! The fabric lab end to end: `strata lab up && strata lab test && strata lab down`
//! with real FRR in network namespaces.
//!
//! These need root, FRR, keepalived and iproute2 (scripts/install-test-deps.sh). They
//! run unless `STRATA_SKIP_LAB_TESTS=1`. Each test builds its own lab (`t-*`), runs
//! one at a time (they share the CPUs), and a guard takes its lab down even when the
//! test fails.

// Test code: a panic is the failure report, so unwrapping is fine here.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// One lab at a time.
static LABS: Mutex<()> = Mutex::new(());

const ROOT: &str = "/run/strata-lab";

fn root() -> PathBuf {
    strata_testkit::repo_root()
}

fn skip() -> bool {
    if strata_testkit::OptOut::Lab.is_set() {
        strata_testkit::skip_note(strata_testkit::OptOut::Lab, "the fabric lab tests");
        return true;
    }
    false
}

fn strata(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .env_remove("STRATA_LAB_NAME")
        .env_remove("STRATA_LAB_STATE_DIR")
        .output()
        .expect("run strata")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", text(o)))
}

/// Takes the lab down when dropped, whatever happened.
struct Lab {
    name: &'static str,
}

impl Lab {
    fn new(name: &'static str) -> Lab {
        // A leftover from an earlier, killed run must not fail this one.
        let _ = strata(&["lab", "down", "--name", name]);
        Lab { name }
    }

    fn up(&self, extra: &[&str]) -> Output {
        let mut args = vec!["lab", "up", "--name", self.name];
        args.extend_from_slice(extra);
        strata(&args)
    }

    fn test(&self) -> Output {
        strata(&["lab", "test", "--name", self.name, "-o", "json"])
    }

    fn down(&self) -> Output {
        strata(&["lab", "down", "--name", self.name])
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = self.down();
        if !out.status.success() {
            eprintln!("lab down --name {} failed:\n{}", self.name, text(&out));
        }
    }
}

/// Nothing of lab `name` is left: no namespace, no directory, no process.
fn assert_gone(name: &str) {
    let prefix = format!("sl.{name}.");
    let left: Vec<String> = fs::read_dir("/var/run/netns")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    let dir = format!("{ROOT}/{name}");
    assert!(!Path::new(&dir).exists(), "{dir} is left");
    let marker = format!("{dir}/");
    let procs: Vec<String> = fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .filter_map(|e| {
            let cmd = fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            (cmd.contains(&marker) || cmd.ends_with(&format!("{dir} "))).then_some(cmd)
        })
        .collect();
    assert!(procs.is_empty(), "processes left: {procs:?}");
}

fn status_of(report: &serde_json::Value, id: u64) -> String {
    report["report"]["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["id"] == id)
        .map(|c| c["status"].as_str().unwrap_or("?").to_string())
        .unwrap_or_else(|| panic!("no check {id}"))
}

#[test]
fn one_dc_up_test_down() {
    if skip() {
        return;
    }
    let _one = LABS.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new("t-one");
    let up = lab.up(&["examples/fleet", "--dc", "ams1"]);
    assert!(up.status.success(), "{}", text(&up));
    let out = String::from_utf8_lossy(&up.stdout);
    assert!(
        out.contains("bonds are rendered and statically checked but not exercised"),
        "{out}"
    );

    let test = lab.test();
    let report = json(&test);
    assert!(
        test.status.success(),
        "{}",
        serde_json::to_string_pretty(&report).unwrap()
    );
    assert_eq!(report["ok"], true);
    for id in 1..=6 {
        assert_eq!(status_of(&report, id), "pass", "check {id}");
    }
    assert_eq!(status_of(&report, 7), "skipped");
    // Every check shows its evidence.
    for c in report["report"]["checks"].as_array().unwrap() {
        if c["status"] == "pass" {
            assert!(!c["evidence"].as_array().unwrap().is_empty(), "{c}");
        }
    }

    let down = lab.down();
    assert!(down.status.success(), "{}", text(&down));
    assert_gone("t-one");
}

#[test]
fn two_dcs_joined_through_their_border_leaves() {
    if skip() {
        return;
    }
    let _one = LABS.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new("t-dci");
    let up = lab.up(&["examples/fleet", "--dc", "ams1", "--dci"]);
    assert!(up.status.success(), "{}", text(&up));
    let test = lab.test();
    let report = json(&test);
    assert!(
        test.status.success(),
        "{}",
        serde_json::to_string_pretty(&report).unwrap()
    );
    for id in 1..=7 {
        assert_eq!(status_of(&report, id), "pass", "check {id}");
    }
    let dci = &report["report"]["checks"][6]["summary"];
    assert!(
        dci.as_str().unwrap().contains("interconnect ams1-waw1"),
        "{dci}"
    );
    let down = lab.down();
    assert!(down.status.success(), "{}", text(&down));
    assert_gone("t-dci");
}

#[test]
fn an_underlay_mtu_too_small_for_vxlan_fails_the_lab() {
    if skip() {
        return;
    }
    let _one = LABS.lock().unwrap_or_else(|e| e.into_inner());
    // examples/fleet with a 9000-byte underlay under a 9000-byte overlay.
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("fleet");
    copy_dir(&root().join("examples/fleet"), &spec);
    let fleet_yaml = spec.join("fleet.yaml");
    let yaml = fs::read_to_string(&fleet_yaml).unwrap();
    assert!(yaml.contains("underlay: 9216"));
    fs::write(
        &fleet_yaml,
        yaml.replace("underlay: 9216", "underlay: 9000"),
    )
    .unwrap();
    let spec_s = spec.to_str().unwrap();

    let lab = Lab::new("t-mtu");
    // The static check stops it first...
    let refused = lab.up(&[spec_s, "--dc", "ams1"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("S0303") && err.contains("--allow-invalid"),
        "{err}"
    );
    assert_gone("t-mtu");

    // ...and bypassed, the lab itself shows the design is broken.
    let up = lab.up(&[spec_s, "--dc", "ams1", "--allow-invalid"]);
    assert!(up.status.success(), "{}", text(&up));
    let test = lab.test();
    assert_eq!(test.status.code(), Some(1), "{}", text(&test));
    let report = json(&test);
    assert_eq!(report["ok"], false);
    assert_eq!(report["allow_invalid"], true);
    assert_eq!(status_of(&report, 1), "pass");
    assert_eq!(status_of(&report, 3), "fail");
    let check3 = &report["report"]["checks"][2];
    let problems: Vec<&str> = check3["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    assert!(!problems.is_empty());
    for p in &problems {
        assert!(
            p.contains("DF ping of 9000-byte packets")
                && p.contains(
                    "underlay links have MTU 9000, which cannot carry the tenant MTU 9000 plus 50 bytes of VXLAN encapsulation"
                ),
            "{p}"
        );
    }
    // Small packets still get through: it is the MTU, not reachability.
    assert!(
        check3["summary"].as_str().unwrap().starts_with(
            "4/4 tenant-network host pairs in different racks reach each other; 0/4 with DF"
        ),
        "{check3}"
    );
    drop(lab);
    assert_gone("t-mtu");
}

#[test]
fn up_refuses_a_half_built_lab_and_down_is_safe_twice() {
    if skip() {
        return;
    }
    let _one = LABS.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new("t-twice");
    let up = lab.up(&["examples/fleet", "--dc", "fra1", "--racks", "1"]);
    assert!(up.status.success(), "{}", text(&up));

    let again = lab.up(&["examples/fleet", "--dc", "fra1", "--racks", "1"]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already (or half) built"),
        "{}",
        text(&again)
    );
    let forced = lab.up(&["examples/fleet", "--dc", "fra1", "--racks", "1", "--force"]);
    assert!(forced.status.success(), "{}", text(&forced));

    let first = lab.down();
    assert!(first.status.success(), "{}", text(&first));
    assert!(String::from_utf8_lossy(&first.stdout).contains("is down"));
    assert_gone("t-twice");
    let second = lab.down();
    assert!(second.status.success(), "{}", text(&second));
    assert!(
        String::from_utf8_lossy(&second.stdout).contains("nothing to remove"),
        "{}",
        text(&second)
    );

    // Testing a lab that is not there says so.
    let test = lab.test();
    assert_eq!(test.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&test.stderr).contains("no lab named `t-twice`"));
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create the copy's directory");
    for e in fs::read_dir(from)
        .expect("read the directory to copy")
        .flatten()
    {
        let p = e.path();
        let target = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &target);
        } else {
            fs::copy(&p, &target).expect("copy a file");
        }
    }
}
