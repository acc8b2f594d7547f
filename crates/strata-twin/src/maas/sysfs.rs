//! Running a user's commissioning script for real, against a fake sysfs of the
//! machine.
//!
//! MAAS's structured model has no PCIe link state: operators read it with a custom
//! commissioning script (uploaded through `POST /api/2.0/scripts/`) that reads
//! `/sys/bus/pci/devices/<addr>/current_link_speed` and friends on the machine,
//! and checks its output or exit status. On a real machine MAAS's runner
//! (canonical/maas
//! src/metadataserver/user_data/templates/snippets/maas_run_remote_scripts.py,
//! `run_script`) executes the script in the commissioning environment against the
//! real `/sys`, with `OUTPUT_*_PATH`, `RESULT_PATH`, `RUNTIME`,
//! `MAAS_RESOURCES_FILE`... in its environment, captures stdout, stderr and both
//! interleaved, and reports the exit status: 0 passes, anything else fails the
//! script (and so commissioning), a run past the timeout is killed and reported
//! timed out with exit status 124, and a script that cannot be executed reports the
//! error as its output with exit status 2 (or the OS error number).
//!
//! The twin does the same on its own host: it materialises the machine's sysfs in a
//! temporary directory and runs the script there, with `SYSFS_ROOT` naming that
//! tree. Scripts written for both honour `${SYSFS_ROOT:-/sys}` (unset on a real
//! machine, so they read `/sys`). The tree, with Linux's exact text formats:
//!
//! - `bus/pci/devices/<addr>/{vendor,device,class,current_link_speed,
//!   current_link_width,max_link_speed,max_link_width,numa_node}` for every GPU
//!   and NIC function (`0x10de`, `0x2330`, `0x030200`, `16.0 GT/s PCIe`, `16`,
//!   `-1` for no NUMA affinity...; speeds as the kernel's `pci_speed_string`:
//!   `2.5`, `5.0`, `8.0`, `16.0`, `32.0`, `64.0 GT/s PCIe` for Gen1..Gen6);
//! - `class/net/<iface>/{address,speed,carrier,operstate}`;
//! - `devices/system/node/node<N>/{cpulist,meminfo}`;
//! - `class/dmi/id/{sys_vendor,product_name,product_family,product_version,
//!   product_sku,product_serial,board_vendor,board_name,board_version,board_serial,
//!   bios_vendor,bios_version,bios_date,chassis_vendor,chassis_version,
//!   chassis_serial}`.
//!
//! The script runs with `sh`, or with the interpreter its shebang names when that is
//! `sh`, `bash` or `python3` (directly or through `/usr/bin/env`, with the shebang's
//! arguments), in an emptied environment (`PATH`, `HOME` and `LANG`, MAAS's variables,
//! `SYSFS_ROOT`), its working directory the temporary one, for at most its timeout
//! and never more than [`MAX_RUNTIME`]: the twin's MAAS waits for it (the timeout is
//! on the host's clock, since it bounds a real process; the result's times come from
//! the twin's clock). Packages the script declares are not installed and its
//! `RESULT_PATH` file is returned as MAAS stores it but not interpreted.
//!
//! Running uploaded scripts means whoever holds the DC's MAAS API key runs programs
//! on the twin's host, as the twin's user (with its environment withheld): the twin
//! is a test instrument, to be bound where only its tests reach it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::Value;

use super::model::{Hardware, script_status};
use super::render;

/// The longest the twin lets a script run, whatever its own timeout.
pub const MAX_RUNTIME: Duration = Duration::from_secs(60);

/// What a run produced, as MAAS stores a script result.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub status: u8,
    pub exit_status: i32,
    /// stdout and stderr interleaved in arrival order.
    pub output: String,
    pub stdout: String,
    pub stderr: String,
    /// The file the script wrote at `RESULT_PATH`, if any.
    pub result: String,
}

/// The kernel's text for a PCIe generation's transfer rate (`pci_speed_string` in
/// drivers/pci/probe.c, shown by `current_link_speed`/`max_link_speed`).
pub fn link_speed(gen_: u8) -> &'static str {
    match gen_ {
        1 => "2.5 GT/s PCIe",
        2 => "5.0 GT/s PCIe",
        3 => "8.0 GT/s PCIe",
        4 => "16.0 GT/s PCIe",
        5 => "32.0 GT/s PCIe",
        6 => "64.0 GT/s PCIe",
        _ => "Unknown",
    }
}

/// A CPU list as the kernel prints it (`0-15,32-47`).
fn cpulist(ids: &[u32]) -> String {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let start = ids[i];
        let mut end = start;
        while i + 1 < ids.len() && ids[i + 1] == end + 1 {
            i += 1;
            end = ids[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

fn write(root: &Path, rel: &str, text: &str) -> std::io::Result<()> {
    let path = root.join(rel);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)
}

/// One PCI function's sysfs directory.
struct PciFn<'a> {
    addr: &'a str,
    vendor: &'a str,
    device: &'a str,
    class: &'a str,
    numa: i64,
    cur: (u8, u8),
    max: (u8, u8),
}

fn pci_function(root: &Path, f: &PciFn) -> std::io::Result<()> {
    let dir = format!("bus/pci/devices/{}", f.addr);
    let files = [
        ("vendor", format!("0x{}\n", f.vendor.to_ascii_lowercase())),
        ("device", format!("0x{}\n", f.device.to_ascii_lowercase())),
        ("class", format!("{}\n", f.class)),
        ("current_link_speed", format!("{}\n", link_speed(f.cur.0))),
        ("current_link_width", format!("{}\n", f.cur.1)),
        ("max_link_speed", format!("{}\n", link_speed(f.max.0))),
        ("max_link_width", format!("{}\n", f.max.1)),
        ("numa_node", format!("{}\n", f.numa)),
    ];
    for (name, text) in files {
        write(root, &format!("{dir}/{name}"), &text)?;
    }
    Ok(())
}

/// Materialise the sysfs of a machine with hardware `hw` under `root`.
pub fn materialise(root: &Path, hw: &Hardware) -> std::io::Result<()> {
    std::fs::create_dir_all(root.join("bus/pci/devices"))?;
    for g in &hw.gpus {
        pci_function(
            root,
            &PciFn {
                addr: &g.pci_address,
                vendor: &g.vendor_id,
                device: &g.product_id,
                // 3D controller (NVIDIA's datacentre parts), else VGA.
                class: if g.vendor_id.eq_ignore_ascii_case("10de") {
                    "0x030200"
                } else {
                    "0x030000"
                },
                numa: i64::from(g.numa_node),
                cur: (g.link_gen, g.link_width),
                max: (g.max_gen, g.max_width),
            },
        )?;
    }
    for n in &hw.nics {
        pci_function(
            root,
            &PciFn {
                addr: &n.pci_address,
                vendor: &n.vendor_id,
                device: &n.product_id,
                class: "0x020000",
                numa: i64::from(n.numa_node),
                cur: (n.pcie_gen, n.pcie_width),
                max: (n.pcie_gen, n.pcie_width),
            },
        )?;
        let net = format!("class/net/{}", n.name);
        write(
            root,
            &format!("{net}/address"),
            &format!("{}\n", n.mac_address),
        )?;
        let (speed, carrier, oper) = if n.link_connected {
            (n.link_speed.to_string(), "1", "up")
        } else {
            ("-1".to_string(), "0", "down")
        };
        write(root, &format!("{net}/speed"), &format!("{speed}\n"))?;
        write(root, &format!("{net}/carrier"), &format!("{carrier}\n"))?;
        write(root, &format!("{net}/operstate"), &format!("{oper}\n"))?;
    }
    for n in hw.numa_layout() {
        let dir = format!("devices/system/node/node{}", n.index);
        write(
            root,
            &format!("{dir}/cpulist"),
            &format!("{}\n", cpulist(&n.cores)),
        )?;
        write(
            root,
            &format!("{dir}/meminfo"),
            &format!(
                "Node {} MemTotal:       {} kB\n",
                n.index,
                n.memory_mib * 1024
            ),
        )?;
    }
    let dmi: std::collections::BTreeMap<&str, String> = render::dmi(hw).into_iter().collect();
    for (file, key) in [
        ("sys_vendor", "system_vendor"),
        ("product_name", "system_product"),
        ("product_family", "system_family"),
        ("product_version", "system_version"),
        ("product_sku", "system_sku"),
        ("product_serial", "system_serial"),
        ("board_vendor", "mainboard_vendor"),
        ("board_name", "mainboard_product"),
        ("board_version", "mainboard_version"),
        ("board_serial", "mainboard_serial"),
        ("bios_vendor", "mainboard_firmware_vendor"),
        ("bios_version", "mainboard_firmware_version"),
        ("bios_date", "mainboard_firmware_date"),
        ("chassis_vendor", "chassis_vendor"),
        ("chassis_version", "chassis_version"),
        ("chassis_serial", "chassis_serial"),
    ] {
        let v = dmi.get(key).map(String::as_str).unwrap_or("");
        write(root, &format!("class/dmi/id/{file}"), &format!("{v}\n"))?;
    }
    Ok(())
}

/// The interpreter and its arguments for a script: its shebang's when that names
/// `sh`, `bash` or `python3` (`#!/bin/bash -e`, `#!/usr/bin/env python3`), else `sh`.
pub fn interpreter(script: &str) -> (String, Vec<String>) {
    let first = script.lines().next().unwrap_or("");
    let Some(rest) = first.strip_prefix("#!") else {
        return ("sh".into(), vec![]);
    };
    let mut words = rest.split_whitespace();
    let Some(mut prog) = words.next() else {
        return ("sh".into(), vec![]);
    };
    let mut args: Vec<String> = words.map(str::to_string).collect();
    if prog.rsplit('/').next() == Some("env") && !args.is_empty() {
        let named = args.remove(0);
        return match named.as_str() {
            "sh" | "bash" | "python3" => (named, args),
            _ => ("sh".into(), vec![]),
        };
    }
    prog = prog.rsplit('/').next().unwrap_or(prog);
    match prog {
        "sh" | "bash" | "python3" => (prog.to_string(), args),
        _ => ("sh".into(), vec![]),
    }
}

static RUNS: AtomicU64 = AtomicU64::new(0);

/// A fresh private directory for one run.
fn scratch() -> std::io::Result<PathBuf> {
    let base = std::env::temp_dir();
    loop {
        let n = RUNS.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!(
            "strata-twin-script-{}-{n}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Removes the run's directory when the run ends, however it ends.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn failed_to_execute(exit_status: i32, msg: &str) -> Outcome {
    Outcome {
        status: script_status::FAILED,
        exit_status,
        output: msg.to_string(),
        stdout: String::new(),
        stderr: msg.to_string(),
        result: String::new(),
    }
}

/// Run `script` (with MAAS's `timeout_s`, 0: none) against the sysfs of `hw`, with
/// `resources` (the machine-resources document) at `MAAS_RESOURCES_FILE`.
pub fn run(script: &str, timeout_s: u64, hw: &Hardware, resources: &Value) -> Outcome {
    let dir = match scratch() {
        Ok(d) => d,
        Err(e) => return failed_to_execute(2, &format!("twin: no scratch directory: {e}")),
    };
    let _cleanup = Cleanup(dir.clone());
    let sys = dir.join("sys");
    let paths = Paths {
        script: dir.join("script"),
        resources: dir.join("resources.json"),
        result: dir.join("result.yaml"),
        download: dir.join("download"),
        out: dir.join("out"),
    };
    let prepared = materialise(&sys, hw)
        .and_then(|()| std::fs::write(&paths.script, script))
        .and_then(|()| std::fs::write(&paths.resources, resources.to_string()))
        .and_then(|()| std::fs::create_dir_all(&paths.download))
        .and_then(|()| std::fs::create_dir_all(&paths.out));
    if let Err(e) = prepared {
        return failed_to_execute(2, &format!("twin: could not prepare the run: {e}"));
    }
    let limit = match timeout_s {
        0 => MAX_RUNTIME,
        s => Duration::from_secs(s).min(MAX_RUNTIME),
    };
    execute(script, &dir, &sys, &paths, limit)
}

struct Paths {
    script: PathBuf,
    resources: PathBuf,
    result: PathBuf,
    download: PathBuf,
    out: PathBuf,
}

/// One of the script's output streams as a reader thread fills it, and the
/// signal that the stream ended.
type Stream = (Arc<Mutex<Vec<u8>>>, std::sync::mpsc::Receiver<()>);

fn execute(script: &str, dir: &Path, sys: &Path, p: &Paths, limit: Duration) -> Outcome {
    let (prog, args) = interpreter(script);
    let path = std::env::var("PATH")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    let out = |name: &str| p.out.join(name).display().to_string();
    let mut cmd = Command::new(&prog);
    // Its own process group, so that what it starts can be stopped with it.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.args(&args)
        .arg(&p.script)
        .current_dir(dir)
        .env_clear()
        .env("PATH", path)
        .env("HOME", dir)
        .env("LANG", "C.UTF-8")
        .env("SYSFS_ROOT", sys)
        .env("MAAS_RESOURCES_FILE", &p.resources)
        .env("OUTPUT_COMBINED_PATH", out("combined"))
        .env("OUTPUT_STDOUT_PATH", out("stdout"))
        .env("OUTPUT_STDERR_PATH", out("stderr"))
        .env("RESULT_PATH", &p.result)
        .env("DOWNLOAD_PATH", &p.download)
        .env("RUNTIME", limit.as_secs().to_string())
        .env("HAS_STARTED", "False")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        // MAAS reports the OS error's number, or 2 (what bash returns when it can't
        // execute), with the error as the output.
        Err(e) => {
            return failed_to_execute(
                e.raw_os_error().filter(|n| *n != 0).unwrap_or(2),
                &e.to_string(),
            );
        }
    };
    let combined = Arc::new(Mutex::new(Vec::new()));
    let streams: Vec<Stream> = [
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .map(|pipe| {
        let combined = combined.clone();
        let own = Arc::new(Mutex::new(Vec::new()));
        let mine = own.clone();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            if let Some(mut pipe) = pipe {
                let mut buf = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    mine.lock().extend_from_slice(&buf[..n]);
                    combined.lock().extend_from_slice(&buf[..n]);
                }
            }
            let _ = done.send(());
        });
        (own, finished)
    })
    .collect();
    // The script's deadline is on the host's clock: it bounds a real process.
    let deadline = Instant::now() + limit;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                // Still running, so the group is the script's.
                kill_group(child.id());
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => break None,
        }
    };
    // What the script started and left holding its output is stopped with it (the
    // commissioning environment is torn down too): a pipe still open means a member
    // of its process group still lives, so the group's id is still its own. Output
    // already read is kept.
    let settled = |wait: Duration| {
        streams.iter().all(|(_, finished)| {
            // Ended now, or earlier (its signal taken and its thread gone).
            !matches!(
                finished.recv_timeout(wait),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout)
            )
        })
    };
    if !settled(Duration::from_millis(200)) {
        kill_group(child.id());
        settled(Duration::from_secs(2));
    }
    let mut outputs = streams
        .iter()
        .map(|(own, _)| String::from_utf8_lossy(&own.lock()).into_owned());
    let stdout = outputs.next().unwrap_or_default();
    let stderr = outputs.next().unwrap_or_default();
    let output = String::from_utf8_lossy(&combined.lock()).into_owned();
    let result = std::fs::read(&p.result)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let (status, exit_status) = if timed_out {
        // 124, as the timeout command exits (maas_run_remote_scripts.py).
        (script_status::TIMEDOUT, 124)
    } else {
        match status.and_then(|s| s.code()) {
            Some(0) => (script_status::PASSED, 0),
            Some(code) => (script_status::FAILED, code),
            // Killed by a signal: Python's `Popen.returncode`, minus the signal.
            None => {
                #[cfg(unix)]
                let code = {
                    use std::os::unix::process::ExitStatusExt;
                    status.and_then(|s| s.signal()).map_or(1, |s| -s)
                };
                #[cfg(not(unix))]
                let code = 1;
                (script_status::FAILED, code)
            }
        }
    };
    Outcome {
        status,
        exit_status,
        output,
        stdout,
        stderr,
        result,
    }
}

/// Kill the process group the script leads (`kill -KILL -- -PGID`).
fn kill_group(pid: u32) {
    #[cfg(unix)]
    {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    #[cfg(not(unix))]
    let _ = pid;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpulists_and_speeds_read_like_linux() {
        assert_eq!(cpulist(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(cpulist(&[]), "");
        assert_eq!(link_speed(4), "16.0 GT/s PCIe");
        assert_eq!(link_speed(5), "32.0 GT/s PCIe");
        assert_eq!(link_speed(3), "8.0 GT/s PCIe");
    }

    #[test]
    fn runs_capture_streams_and_stop_what_they_leave_behind() {
        let hw = Hardware::default();
        let doc = serde_json::json!({});
        let o = run(
            "#!/bin/sh\necho out; echo err >&2; sleep 30 &\necho \"$SYSFS_ROOT\" >&2\nexit 3\n",
            0,
            &hw,
            &doc,
        );
        assert_eq!((o.status, o.exit_status), (script_status::FAILED, 3));
        assert_eq!(o.stdout, "out\n");
        assert!(
            o.stderr.starts_with("err\n") && o.stderr.trim_end().ends_with("/sys"),
            "{o:?}"
        );
        let o = run("#!/bin/sh\nkill -9 $$\n", 0, &hw, &doc);
        assert_eq!((o.status, o.exit_status), (script_status::FAILED, -9));
        let started = Instant::now();
        let o = run("#!/bin/bash\necho a\nsleep 20\n", 1, &hw, &doc);
        assert_eq!(
            (o.status, o.exit_status, o.output.as_str()),
            (script_status::TIMEDOUT, 124, "a\n")
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn interpreters_from_shebangs() {
        let i = |s: &str| interpreter(s);
        assert_eq!(i("#!/bin/bash -e\n"), ("bash".into(), vec!["-e".into()]));
        assert_eq!(i("#!/usr/bin/env python3\n"), ("python3".into(), vec![]));
        assert_eq!(i("#!/bin/sh\n"), ("sh".into(), vec![]));
        assert_eq!(i("#!/usr/bin/perl\n"), ("sh".into(), vec![]));
        assert_eq!(i("echo hi\n"), ("sh".into(), vec![]));
    }
}
