//! End-to-end tests of the `strata` binary, as a user runs it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    strata_testkit::repo_root()
}

fn strata(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .output()
        .expect("run strata")
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

#[test]
fn every_broken_example_reports_its_exact_code_and_line() {
    let dir = root().join("examples/broken");
    let mut seen = 0;
    let mut names: Vec<_> = fs::read_dir(&dir)
        .expect("examples/broken")
        .map(|e| e.expect("entry").path())
        .collect();
    names.sort();
    for case in names.into_iter().filter(|p| p.is_dir()) {
        let file = case.join("fleet.yaml");
        let text = fs::read_to_string(&file).expect("fleet.yaml");
        let (line, code) = text
            .lines()
            .enumerate()
            .find_map(|(i, l)| {
                let m = l.split("# expect: ").nth(1)?;
                m.starts_with('S')
                    .then(|| (i as u64 + 1, m.trim().to_string()))
            })
            .unwrap_or_else(|| panic!("{} has no `# expect: CODE` marker", file.display()));
        let rel = case
            .strip_prefix(root())
            .expect("relative")
            .display()
            .to_string();
        let out = strata(&["validate", &rel, "-o", "json"]);
        assert_eq!(out.status.code(), Some(1), "{rel}: validate must exit 1");
        let v = json(&out);
        let diags = v["diagnostics"].as_array().expect("diagnostics");
        assert!(
            diags
                .iter()
                .any(|d| d["code"] == code.as_str() && d["line"] == line),
            "{rel}: expected {code} at line {line}, got {diags:#?}"
        );
        for d in diags.iter().filter(|d| d["severity"] == "error") {
            assert_eq!(d["code"], code.as_str(), "{rel}: unrelated error {d:#}");
            assert!(
                d["file"]
                    .as_str()
                    .is_some_and(|f| f.ends_with("fleet.yaml")),
                "{rel}: {d:#}"
            );
            assert!(d["column"].as_u64().is_some_and(|c| c >= 1), "{rel}: {d:#}");
            assert!(
                d["expected"].as_str().is_some_and(|s| !s.is_empty()),
                "{rel}: {d:#}"
            );
            assert!(
                d["help"].as_str().is_some_and(|s| !s.is_empty()),
                "{rel}: {d:#}"
            );
        }
        // The human form names file:line:column, the code and the help line.
        let human = strata(&["validate", &rel]);
        let stderr = String::from_utf8_lossy(&human.stderr);
        assert!(stderr.contains(&format!("[{code}]")), "{rel}: {stderr}");
        assert!(
            stderr.contains(&format!("fleet.yaml:{line}:")),
            "{rel}: {stderr}"
        );
        assert!(stderr.contains("help:"), "{rel}: {stderr}");
        seen += 1;
    }
    assert!(seen >= 8, "only {seen} broken examples");
}

#[test]
fn the_example_fleet_validates_conforms_and_its_lock_is_current() {
    let v = strata(&["validate", "examples/fleet", "--locked"]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    let c = strata(&["conform", "examples/fleet", "-o", "json"]);
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    let r = json(&c);
    assert_eq!(r["conformant"], true);
    let waw1 = r["dcs"]
        .as_array()
        .expect("dcs")
        .iter()
        .find(|d| d["dc"] == "waw1")
        .expect("waw1");
    assert_eq!(waw1["differences"][0]["path"], "fabric.spines");
    assert_eq!(waw1["differences"][0]["declared"], true);
    assert_eq!(waw1["differences"][0]["blueprint"], 2);
    assert_eq!(waw1["differences"][0]["dc"], 4);
}

#[test]
fn undeclared_snowflake_fails_conform_with_a_listing() {
    let c = strata(&[
        "conform",
        "examples/broken/undeclared-snowflake",
        "-o",
        "json",
    ]);
    assert_eq!(c.status.code(), Some(1));
    let r = json(&c);
    assert_eq!(r["conformant"], false);
    let ams1 = r["dcs"]
        .as_array()
        .expect("dcs")
        .iter()
        .find(|d| d["dc"] == "ams1")
        .expect("ams1");
    assert_eq!(ams1["differences"][0]["declared"], false);
    assert_eq!(r["diagnostics"][0]["code"], "S0501");
}

#[test]
fn conform_fails_on_design_errors_instead_of_calling_them_conformant() {
    // The spec compiles and every DC matches the blueprint, but a VM fits on no node.
    let c = strata(&["conform", "examples/broken/vm-does-not-fit", "-o", "json"]);
    assert_eq!(
        c.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&c.stderr)
    );
    let r = json(&c);
    assert_eq!(r["conformant"], false);
    assert!(
        r["diagnostics"]
            .as_array()
            .expect("diagnostics")
            .iter()
            .any(|d| d["code"] == "S0406"),
        "{r:#}"
    );
    let human = strata(&["conform", "examples/broken/vm-does-not-fit"]);
    assert_eq!(human.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&human.stdout);
    let stderr = String::from_utf8_lossy(&human.stderr);
    assert!(!stdout.contains("conformant"), "{stdout}");
    assert!(stderr.contains("[S0406]"), "{stderr}");
}

fn copy_renamed(src: &Path, dst: &Path, rename: &dyn Fn(usize, &str) -> String) {
    let mut files = Vec::new();
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(d).expect("dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    walk(src, &mut files);
    files.sort();
    fs::create_dir_all(dst).expect("mkdir");
    for (i, f) in files.iter().enumerate() {
        let name = f.file_name().expect("name").to_string_lossy().to_string();
        let target = if name == "fleet.lock" {
            name
        } else {
            rename(i, &name)
        };
        fs::copy(f, dst.join(target)).expect("copy");
    }
}

#[test]
fn compile_output_is_identical_whatever_the_file_names_and_order() {
    let tmp = tempfile::tempdir().expect("tmp");
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let n = 100usize;
    // Same files, flattened, in two opposite orders.
    copy_renamed(&root().join("examples/fleet"), &a, &|i, name| {
        format!("{:03}-{name}", i)
    });
    copy_renamed(&root().join("examples/fleet"), &b, &|i, name| {
        format!("{:03}-{name}", n - i)
    });
    let ja = strata(&[
        "compile",
        a.to_str().expect("utf8"),
        "--no-write-lock",
        "-o",
        "json",
    ]);
    let jb = strata(&[
        "compile",
        b.to_str().expect("utf8"),
        "--no-write-lock",
        "-o",
        "json",
    ]);
    assert!(
        ja.status.success(),
        "{}",
        String::from_utf8_lossy(&ja.stderr)
    );
    assert_eq!(ja.stdout, jb.stdout, "compiled fleet depends on file order");
    let again = strata(&[
        "compile",
        a.to_str().expect("utf8"),
        "--no-write-lock",
        "-o",
        "json",
    ]);
    assert_eq!(ja.stdout, again.stdout, "compile is not deterministic");
    let fleet = json(&ja);
    assert_eq!(fleet["dcs"].as_array().map(Vec::len), Some(3));
}

#[test]
fn init_scaffolds_fleets_that_validate() {
    let tmp = tempfile::tempdir().expect("tmp");
    let starter = tmp.path().join("starter");
    let s = starter.to_str().expect("utf8");
    let o = strata(&["init", s, "--dcs", "3"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = strata(&["validate", s, "-o", "json"]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    assert_eq!(json(&v)["summary"]["dcs"], 3);
    // plan/apply keep their state in DIR/.strata, which Git is told to ignore.
    let ignore = fs::read_to_string(starter.join(".gitignore")).expect(".gitignore");
    assert!(ignore.lines().any(|l| l == "/.strata/"), "{ignore}");
    // Refuses to overwrite.
    assert_eq!(strata(&["init", s]).status.code(), Some(1));
    // --force keeps what the .gitignore already says, without repeating the entry.
    fs::write(starter.join(".gitignore"), "*.swp\n/.strata/\n").expect("write");
    assert!(strata(&["init", s, "--force"]).status.success());
    assert_eq!(
        fs::read_to_string(starter.join(".gitignore")).expect(".gitignore"),
        "*.swp\n/.strata/\n"
    );

    let synth = tmp.path().join("synthetic");
    let s = synth.to_str().expect("utf8");
    let o = strata(&[
        "init",
        s,
        "--dcs",
        "2",
        "--racks-per-dc",
        "4",
        "--machines-per-rack",
        "10",
        "--vms-per-dc",
        "50",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = strata(&["validate", s, "-o", "json"]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    let r = json(&v);
    assert_eq!(r["summary"]["machines"], 80);
    // 50 declared + 5 MAAS controllers per DC.
    assert_eq!(r["summary"]["vms"], 110);

    // compile records the allocations; a second compile changes nothing.
    assert!(strata(&["compile", s]).status.success());
    let lock1 = fs::read_to_string(synth.join("fleet.lock")).expect("lock");
    assert!(strata(&["validate", s, "--locked"]).status.success());
    assert!(strata(&["compile", s]).status.success());
    assert_eq!(
        lock1,
        fs::read_to_string(synth.join("fleet.lock")).expect("lock")
    );
}

#[test]
fn schema_is_json_and_the_committed_copy_is_current() {
    let o = strata(&["schema"]);
    assert!(o.status.success());
    let v = json(&o);
    assert!(v["properties"]["machines"].is_object());
    let committed =
        fs::read_to_string(root().join("schema/strata-spec.schema.json")).expect("schema file");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        committed,
        "schema/strata-spec.schema.json is stale: run `strata schema --out schema/strata-spec.schema.json`"
    );
}

#[test]
fn errors_and_usage_have_distinct_exit_codes() {
    let missing = strata(&["validate", "does/not/exist"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does not exist"));
    let usage = strata(&["validate", "--no-such-flag"]);
    assert_eq!(usage.status.code(), Some(2));
    let explain = strata(&["explain", "S0303"]);
    assert!(explain.status.success());
    assert!(String::from_utf8_lossy(&explain.stdout).contains("vxlan-mtu"));
    assert_eq!(strata(&["explain", "S9999"]).status.code(), Some(1));
}

#[test]
fn the_demo_embeds_exactly_the_example_files() {
    let mut on_disk = Vec::new();
    fn walk(d: &Path, base: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(d).expect("dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(&p, base, out);
            } else if p.extension().is_some_and(|x| x == "yaml") {
                out.push(p.strip_prefix(base).expect("rel").display().to_string());
            }
        }
    }
    walk(&root().join("examples/fleet"), &root(), &mut on_disk);
    on_disk.sort();
    let o = strata(&["demo", "--no-verify", "--no-twin", "-o", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&o);
    assert_eq!(v["dcs"].as_array().map(Vec::len), Some(3));
    assert_eq!(v["embedded_files"], serde_json::json!(on_disk));
}

#[test]
fn a_failing_command_asked_for_json_reports_the_failure_as_json() {
    let out = strata(&[
        "plan",
        "examples/fleet",
        "--targets",
        "/nonexistent/targets.json",
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["ok"], false);
    let msg = v["error"]["message"].as_str().expect("message");
    assert!(msg.contains("/nonexistent/targets.json"), "{msg}");
    // The human form still goes to stderr.
    assert!(String::from_utf8_lossy(&out.stderr).contains("error: "));
    // Without -o json, stdout stays empty.
    let human = strata(&[
        "plan",
        "examples/fleet",
        "--targets",
        "/nonexistent/targets.json",
    ]);
    assert_eq!(human.status.code(), Some(1));
    assert!(human.stdout.is_empty());
}

/// Run strata with its stdout connected to a pipe whose reader is already gone, so
/// that its first write fails with EPIPE (as under `strata ... | head -1` once head
/// has exited).
fn strata_into_closed_pipe(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run strata")
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let commands: [&[&str]; 7] = [
        &["explain"],
        &["explain", "-o", "json"],
        &["conform", "examples/fleet"],
        &["compile", "examples/fleet", "--no-write-lock", "-o", "json"],
        &["validate", "examples/fleet"],
        &["schema"],
        &["demo", "--no-twin", "--no-verify"],
    ];
    for args in commands {
        let out = strata_into_closed_pipe(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "strata {args:?}:\n{stderr}"
        );
        assert_eq!(out.status.code(), Some(0), "strata {args:?}:\n{stderr}");
    }
}

#[test]
fn strata_explain_piped_into_head_exits_quietly() {
    // The shell's own case: the reader takes one line and goes away while strata is
    // still writing.
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["explain"])
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut first)
        .expect("read a line");
    assert!(first.starts_with('S'), "{first}");
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[test]
fn a_file_that_cannot_be_rendered_leaves_nothing_on_disk() {
    // A bond hash policy that is not a plain token cannot be written into
    // /etc/network/interfaces: the Proxmox renderer fails for those nodes.
    let tmp = tempfile::tempdir().expect("tmp");
    let fleet = tmp.path().join("fleet");
    let status = Command::new("cp")
        .arg("-r")
        .arg(root().join("examples/fleet"))
        .arg(&fleet)
        .status()
        .expect("cp");
    assert!(status.success());
    let hw = fleet.join("hardware.yaml");
    let text = fs::read_to_string(&hw).expect("hardware.yaml");
    assert!(text.contains("xmit_hash_policy: layer3+4 }"));
    fs::write(
        &hw,
        text.replace(
            "xmit_hash_policy: layer3+4 }",
            "xmit_hash_policy: \"layer3+4 and more\" }",
        ),
    )
    .expect("write");
    let lock_before = fs::read_to_string(fleet.join("fleet.lock")).expect("lock");
    let out_dir = tmp.path().join("out");
    let f = fleet.to_str().expect("utf8");
    let o = out_dir.to_str().expect("utf8");
    for format in ["human", "json"] {
        let out = strata(&["render", f, "--out", o, "-o", format]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!out_dir.exists(), "render wrote {}", out_dir.display());
        if stderr.contains("could not be rendered") {
            assert!(
                stderr.contains("/proxmox/") && stderr.contains("not a plain interface-file token"),
                "{stderr}"
            );
            assert!(stderr.contains("nothing written"), "{stderr}");
        } else {
            // A design check may catch the value first; either way nothing is written.
            assert!(stderr.contains("nothing rendered"), "{stderr}");
        }
        if format == "json" {
            assert_eq!(json(&out)["ok"], false);
        }
    }
    assert_eq!(
        fs::read_to_string(fleet.join("fleet.lock")).expect("lock"),
        lock_before
    );
}
