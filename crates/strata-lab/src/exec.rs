//! Carrying a lab out on this machine, and taking it down: the I/O half of the crate.
//!
//! Everything here shells out to the real tools (`ip`, `vtysh`, FRR's daemons,
//! keepalived, `ping`, util-linux's `nsenter`, `unshare`, `mount`) and touches only
//! what belongs to the lab: namespaces named with its prefix `sl.<name>.`, mounts and
//! files under its directory, and processes whose command line names that directory
//! (every daemon the lab starts gets its pid file, sockets and config there).
//!
//! How a switch runs: its namespace gets zebra, bgpd and bfdd, each with its own pid
//! file, zserv socket and vty socket directory in the switch's directory, started with
//! `-F datacenter` and never with `-p 0` (that would close the BGP listener). Each
//! daemon is started through `nsenter --net` into the switch namespace and `unshare
//! --mount --uts` into a private mount and UTS namespace, where the switch's own
//! `netns/` directory is bind-mounted over `/var/run/netns`: with `zebra -n` (the netns
//! VRF backend) zebra treats every name there as a VRF, so it must see exactly the
//! switch's tenant VRFs, each a bind mount of that switch's VRF namespace under the
//! VRF's name. The hostname is the switch's, so BGP peers show real names.
//! The rendered (pruned) `frr.conf` is then loaded with `vtysh -f`, as `vtysh -b`
//! would at boot.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use strata_verify::{find_command, find_executable};

use crate::Error;
use crate::script::{self, Batch, Sysctl};
use crate::state::{Phase, Process, State, lab_dir};
use crate::topology::{Host, Lab, Router};

/// Where iproute2 and FRR keep named network namespaces.
pub const NETNS_DIR: &str = "/var/run/netns";

/// The external programs the lab runs, found once.
#[derive(Debug, Clone)]
pub struct Tools {
    pub ip: PathBuf,
    pub vtysh: PathBuf,
    pub keepalived: PathBuf,
    pub ping: PathBuf,
    pub nsenter: PathBuf,
    pub unshare: PathBuf,
    pub mount: PathBuf,
    pub umount: PathBuf,
    pub kill: PathBuf,
    pub sh: PathBuf,
    /// FRR's daemon directory (`/usr/lib/frr`).
    pub frr: PathBuf,
}

impl Tools {
    /// Find every tool; the error names all that are missing.
    pub fn discover() -> Result<Tools, Error> {
        let mut missing = Vec::new();
        let mut get = |name: &str| {
            find_command(name).unwrap_or_else(|| {
                missing.push(name.to_string());
                PathBuf::new()
            })
        };
        let tools = Tools {
            ip: get("ip"),
            vtysh: get("vtysh"),
            keepalived: get("keepalived"),
            ping: get("ping"),
            nsenter: get("nsenter"),
            unshare: get("unshare"),
            mount: get("mount"),
            umount: get("umount"),
            kill: get("kill"),
            sh: get("sh"),
            frr: PathBuf::from("/usr/lib/frr"),
        };
        for d in ["zebra", "bgpd", "bfdd"] {
            if find_executable(d, std::slice::from_ref(&tools.frr)).is_none() {
                missing.push(format!("{}/{d}", tools.frr.display()));
            }
        }
        if missing.is_empty() {
            Ok(tools)
        } else {
            Err(Error::Env(format!(
                "strata lab needs {} (install them with scripts/install-test-deps.sh)",
                missing.join(", ")
            )))
        }
    }
}

/// Fail unless running as root with working network namespaces.
pub fn require_root(tools: &Tools) -> Result<(), Error> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse::<u32>().ok());
    if euid != Some(0) {
        return Err(Error::Env(
            "strata lab needs root: it creates network namespaces, veth pairs, bridges and \
             VXLAN devices and runs FRR and keepalived in them; run it as root"
                .into(),
        ));
    }
    let out = Command::new(&tools.ip)
        .args(["netns", "list"])
        .output()
        .map_err(|e| Error::Env(format!("cannot run {}: {e}", tools.ip.display())))?;
    if !out.status.success() {
        return Err(Error::Env(format!(
            "`ip netns` does not work here ({}): the lab needs network namespaces",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Run to completion; the error carries the command and its output.
pub fn run_ok(cmd: &mut Command) -> Result<String, Error> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Other(format!("cannot run `{}`: {e}", show(cmd))))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            command: show(cmd),
            output: combined(&out),
        })
    }
}

/// stdout and stderr of a finished command, trimmed.
pub fn combined(out: &Output) -> String {
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr);
    if !err.trim().is_empty() {
        if !s.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
        s.push_str(&err);
    }
    s.trim_end().to_string()
}

/// `ip [-n NS] [-force] -batch -` with `lines` on stdin. A failure names the line.
pub fn ip_batch(
    tools: &Tools,
    ns: Option<&str>,
    lines: &[String],
    force: bool,
) -> Result<(), Error> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new(&tools.ip);
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    if force {
        cmd.arg("-force");
    }
    cmd.args(["-batch", "-"]);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Other(format!("cannot run `{}`: {e}", show(&cmd))))?;
    let mut input = lines.join("\n");
    input.push('\n');
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes())
        .map_err(|e| Error::Other(format!("writing to `{}`: {e}", show(&cmd))))?;
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Other(format!("waiting for `{}`: {e}", show(&cmd))))?;
    if out.status.success() || force {
        return Ok(());
    }
    let text = combined(&out);
    let failed_line = text
        .lines()
        .find_map(|l| l.strip_prefix("Command failed -:"))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .and_then(|n| lines.get(n.wrapping_sub(1)));
    let where_ = ns.map(|n| format!(" in namespace {n}")).unwrap_or_default();
    Err(Error::Command {
        command: match failed_line {
            Some(l) => format!("ip {l}{where_}"),
            None => format!("{}{where_}", show(&cmd)),
        },
        output: text,
    })
}

fn write_sysctl(tools: &Tools, s: &Sysctl) -> Result<(), Error> {
    let path = format!("/proc/sys/{}", s.key.replace('.', "/"));
    run_ok(
        Command::new(&tools.ip)
            .args(["netns", "exec", &s.ns])
            .arg(&tools.sh)
            .args(["-c", &format!("echo {} > {path}", s.value)]),
    )
    .map(|_| ())
}

/// Run `f` over `items` on a few threads; the first error wins.
fn parallel<T: Sync, F>(items: &[T], f: F) -> Result<(), Error>
where
    F: Fn(&T) -> Result<(), Error> + Sync,
{
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let errors = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers.min(items.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    if let Err(e) = f(item) {
                        errors.lock().expect("errors").push(e);
                    }
                }
            });
        }
    });
    match errors.into_inner().expect("errors").into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Run `f` over `items` on a few threads, collecting every result in order.
pub fn parallel_map<T: Sync, R: Send, F>(items: &[T], f: F) -> Vec<R>
where
    F: Fn(&T) -> R + Sync,
{
    let results: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let workers = 8.min(items.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    *results[i].lock().expect("result") = Some(f(item));
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| m.into_inner().expect("result").expect("every item ran"))
        .collect()
}

/// Poll `cond` every 50 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Is `pid` a live (not zombie) process?
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, Some("Z") | Some("X") | None)
}

/// The NUL-separated command line of `pid`.
pub fn cmdline(pid: u32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Does a command line name the lab directory `dir` (its own files)?
fn names_dir(args: &[String], dir: &str) -> bool {
    let inside = format!("{dir}/");
    args.iter().any(|a| a == dir || a.contains(&inside))
}

/// Live processes whose command line names `dir`, except this one.
pub fn lab_processes(dir: &Path) -> Vec<u32> {
    let dir = dir.to_string_lossy();
    let me = std::process::id();
    let mut pids = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return pids;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid != me && alive(pid) && names_dir(&cmdline(pid), &dir) {
            pids.push(pid);
        }
    }
    pids.sort();
    pids
}

/// Named network namespaces starting with `prefix`.
pub fn lab_namespaces(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(NETNS_DIR)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Mount points under `dir`, deepest first.
fn lab_mounts(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy();
    let inside = format!("{dir}/");
    let mut points: Vec<String> = fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount)
        .filter(|p| p.starts_with(&inside))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
    points.dedup();
    points
}

/// mountinfo escapes space, tab, newline and backslash as `\NNN` (octal).
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = u32::from(b[i + 1] - b'0') * 64
                + u32::from(b[i + 2] - b'0') * 8
                + u32::from(b[i + 3] - b'0');
            out.push((v & 0xff) as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The uid and gid of user `frr` (FRR's daemons drop to it).
fn frr_ids() -> Result<(u32, u32), Error> {
    let passwd = fs::read_to_string("/etc/passwd").map_err(|e| Error::io("/etc/passwd", e))?;
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[0] == "frr")
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                .flatten()
        })
        .ok_or_else(|| {
            Error::Env("there is no `frr` user: install FRR (scripts/install-test-deps.sh)".into())
        })
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<(), Error> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| Error::io(path, e))?;
    if path.is_dir() {
        for e in fs::read_dir(path)
            .map_err(|e| Error::io(path, e))?
            .flatten()
        {
            let p = e.path();
            // The netns directory holds bind mounts of namespaces: leave those alone.
            if p.file_name().is_some_and(|n| n == "netns") {
                continue;
            }
            chown_tree(&p, uid, gid)?;
        }
    }
    Ok(())
}

/// Start a detached process (own process group, stdio to `log`); its pid.
fn spawn_detached(argv: &[OsString], envs: &[(&str, String)], log: &Path) -> Result<u32, Error> {
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| Error::io(log, e))?;
    let err = out.try_clone().map_err(|e| Error::io(log, e))?;
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let child = cmd
        .spawn()
        .map_err(|e| Error::Other(format!("cannot start `{}`: {e}", show(&cmd))))?;
    Ok(child.id())
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// What `lab up` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UpReport {
    pub dir: PathBuf,
    pub namespaces: usize,
    pub links: usize,
    pub routers: usize,
    pub hosts: usize,
    pub processes: usize,
    pub seconds: f64,
}

/// How to run `lab up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The directory labs live in (`/run/strata-lab`).
    pub root: PathBuf,
    /// Take down whatever is left of a lab of the same name first.
    pub force: bool,
    /// This program: the VIP members' health-check listener is `<helper> lab serve-tcp`.
    pub helper: PathBuf,
    pub spec: String,
    pub allow_invalid: bool,
}

/// What is left of a lab named `name` (state file, namespaces, processes), if anything.
pub fn leftovers(root: &Path, name: &str) -> Option<String> {
    let dir = lab_dir(root, name);
    let prefix = format!("sl.{name}.");
    let mut parts = Vec::new();
    if State::path(&dir).exists() {
        parts.push(format!("state file {}", State::path(&dir).display()));
    }
    let ns = lab_namespaces(&prefix);
    if !ns.is_empty() {
        parts.push(format!("{} namespaces named {prefix}*", ns.len()));
    }
    let procs = lab_processes(&dir);
    if !procs.is_empty() {
        parts.push(format!("{} processes using {}", procs.len(), dir.display()));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Build `lab`: namespaces, links, devices, then FRR on every switch and keepalived on
/// the VIP pair. Refuses to start over leftovers of a lab of the same name unless
/// `force`. On failure the state file stays, so `lab down` removes what was built.
pub fn up(lab: Lab, opts: &UpOptions) -> Result<UpReport, Error> {
    let start = Instant::now();
    let tools = Tools::discover()?;
    require_root(&tools)?;
    if let Some(what) = leftovers(&opts.root, &lab.name) {
        if !opts.force {
            return Err(Error::Exists(format!(
                "a lab named `{}` is already (or half) built: {what}; run `strata lab down --name {}` \
                 first, or pass --force to take it down and build again",
                lab.name, lab.name
            )));
        }
        down(&opts.root, &lab.name)?;
    }
    let dir = lab_dir(&opts.root, &lab.name);
    fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut state = State::new(dir.clone(), opts.spec.clone(), opts.allow_invalid, lab);
    state.save()?;

    // Namespaces, links, devices.
    let script = script::build(&state.lab);
    let mut phases = script.phases.iter();
    if let Some(first) = phases.next() {
        for b in first {
            ip_batch(&tools, b.ns.as_deref(), &b.lines, false)?;
        }
    }
    parallel(&script.early_sysctls, |s| write_sysctl(&tools, s))?;
    for phase in phases {
        parallel(phase, |b: &Batch| {
            ip_batch(&tools, b.ns.as_deref(), &b.lines, false)
        })?;
    }
    parallel(&script.sysctls, |s| write_sysctl(&tools, s))?;

    // FRR on every switch.
    let (uid, gid) = frr_ids()?;
    for r in &state.lab.routers {
        prepare_router(&tools, &state, r, uid, gid)?;
    }
    let routers = state.lab.routers.clone();
    for r in &routers {
        let pid = spawn_frr(&tools, &state, r, "zebra")?;
        state.processes.push(Process {
            node: r.name.clone(),
            ns: r.ns.clone(),
            daemon: "zebra".into(),
            pid,
        });
    }
    state.save()?;
    for r in &routers {
        wait_for_socket(&state, r, "zserv.api", "zebra")?;
    }
    for r in &routers {
        for d in ["bgpd", "bfdd"] {
            let pid = spawn_frr(&tools, &state, r, d)?;
            state.processes.push(Process {
                node: r.name.clone(),
                ns: r.ns.clone(),
                daemon: d.into(),
                pid,
            });
        }
    }
    state.save()?;
    for r in &routers {
        for (sock, d) in [
            ("zebra.vty", "zebra"),
            ("bgpd.vty", "bgpd"),
            ("bfdd.vty", "bfdd"),
        ] {
            wait_for_socket(&state, r, sock, d)?;
        }
    }
    parallel(&routers, |r| load_config(&tools, &state, r))?;

    // keepalived on the VIP pair, each behind a listener its health check connects to.
    let members: Vec<Host> = state
        .lab
        .hosts
        .iter()
        .filter(|h| h.keepalived.is_some())
        .cloned()
        .collect();
    for h in &members {
        let hd = state.node_dir(&h.name);
        fs::create_dir_all(&hd).map_err(|e| Error::io(&hd, e))?;
        if let Some(port) = h.health_port {
            let pid = spawn_listener(&tools, &state, h, port, &opts.helper)?;
            state.processes.push(Process {
                node: h.name.clone(),
                ns: h.ns.clone(),
                daemon: "listener".into(),
                pid,
            });
        }
        let pid = start_keepalived(&tools, &state, h)?;
        state.processes.push(Process {
            node: h.name.clone(),
            ns: h.ns.clone(),
            daemon: "keepalived".into(),
            pid,
        });
        state.save()?;
    }
    state.phase = Phase::Up;
    state.save()?;
    Ok(UpReport {
        dir,
        namespaces: state.lab.namespaces.len(),
        links: state.lab.links.len(),
        routers: state.lab.routers.len(),
        hosts: state.lab.hosts.len(),
        processes: state.processes.len(),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The switch's directory: `frr.conf`, an empty startup config, and `netns/` with one
/// bind mount of each of its VRF namespaces under the VRF's name.
fn prepare_router(
    tools: &Tools,
    state: &State,
    r: &Router,
    uid: u32,
    gid: u32,
) -> Result<(), Error> {
    let d = state.node_dir(&r.name);
    let netns = d.join("netns");
    fs::create_dir_all(&netns).map_err(|e| Error::io(&netns, e))?;
    fs::write(d.join("frr.conf"), &r.frr_conf).map_err(|e| Error::io(d.join("frr.conf"), e))?;
    fs::write(d.join("empty.conf"), "").map_err(|e| Error::io(d.join("empty.conf"), e))?;
    for v in &r.vrfs {
        let target = netns.join(&v.vrf);
        fs::write(&target, "").map_err(|e| Error::io(&target, e))?;
        run_ok(
            Command::new(&tools.mount)
                .arg("--bind")
                .arg(Path::new(NETNS_DIR).join(&v.ns))
                .arg(&target),
        )?;
    }
    chown_tree(&d, uid, gid)
}

fn spawn_frr(tools: &Tools, state: &State, r: &Router, daemon: &str) -> Result<u32, Error> {
    let d = state.node_dir(&r.name);
    let p = |f: &str| d.join(f).into_os_string();
    let mut argv: Vec<OsString> = vec![
        tools.nsenter.clone().into(),
        format!("--net={NETNS_DIR}/{}", r.ns).into(),
        tools.unshare.clone().into(),
        "--mount".into(),
        "--uts".into(),
        "--propagation".into(),
        "private".into(),
        tools.sh.clone().into(),
        "-c".into(),
        "mount --rbind \"$LAB_NETNS\" /var/run/netns && mount -t sysfs sysfs /sys && \
         echo \"$LAB_HOSTNAME\" > /proc/sys/kernel/hostname && exec \"$0\" \"$@\""
            .into(),
        tools.frr.join(daemon).into_os_string(),
    ];
    if daemon == "zebra" {
        argv.push("-n".into());
    }
    for a in ["-F", "datacenter", "-P", "0", "-f"] {
        argv.push(a.into());
    }
    argv.push(p("empty.conf"));
    argv.push("-i".into());
    argv.push(p(&format!("{daemon}.pid")));
    argv.push("-z".into());
    argv.push(p("zserv.api"));
    argv.push("--vty_socket".into());
    argv.push(d.clone().into_os_string());
    argv.push("--log".into());
    argv.push(format!("file:{}", d.join(format!("{daemon}.log")).display()).into());
    if daemon == "bfdd" {
        argv.push("--bfdctl".into());
        argv.push(p("bfdd.sock"));
    }
    let log = d.join(format!("{daemon}.out"));
    spawn_detached(
        &argv,
        &[
            ("LAB_NETNS", d.join("netns").display().to_string()),
            ("LAB_HOSTNAME", r.name.clone()),
        ],
        &log,
    )
}

fn wait_for_socket(state: &State, r: &Router, sock: &str, daemon: &str) -> Result<(), Error> {
    let d = state.node_dir(&r.name);
    let path = d.join(sock);
    let pid = state
        .processes
        .iter()
        .find(|p| p.node == r.name && p.daemon == daemon)
        .map(|p| p.pid);
    let ok = wait_until(Duration::from_secs(20), || {
        path.exists() || pid.is_some_and(|p| !alive(p))
    });
    if ok && path.exists() {
        return Ok(());
    }
    Err(Error::Other(format!(
        "{daemon} on {} did not come up ({} missing); its output:\n{}\n{}",
        r.name,
        path.display(),
        tail(&d.join(format!("{daemon}.out")), 10),
        tail(&d.join(format!("{daemon}.log")), 10)
    )))
}

fn vtysh_cmd(tools: &Tools, dir: &Path) -> Command {
    let mut c = Command::new(&tools.vtysh);
    c.arg("--vty_socket").arg(dir);
    c
}

fn load_config(tools: &Tools, state: &State, r: &Router) -> Result<(), Error> {
    let d = state.node_dir(&r.name);
    let out = vtysh_cmd(tools, &d)
        .arg("-f")
        .arg(d.join("frr.conf"))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Other(format!("cannot run vtysh: {e}")))?;
    let text = combined(&out);
    if !out.status.success() || text.contains("% ") {
        return Err(Error::Command {
            command: format!(
                "vtysh -f {} (switch {})",
                d.join("frr.conf").display(),
                r.name
            ),
            output: text,
        });
    }
    Ok(())
}

fn spawn_listener(
    tools: &Tools,
    state: &State,
    h: &Host,
    port: u16,
    helper: &Path,
) -> Result<u32, Error> {
    let d = state.node_dir(&h.name);
    let argv: Vec<OsString> = vec![
        tools.ip.clone().into(),
        "netns".into(),
        "exec".into(),
        h.ns.clone().into(),
        helper.into(),
        "lab".into(),
        "serve-tcp".into(),
        "--listen".into(),
        SocketAddr::new(h.ip(), port).to_string().into(),
        "--lab-dir".into(),
        state.dir.clone().into_os_string(),
    ];
    spawn_detached(&argv, &[], &d.join("listener.out"))
}

/// Start keepalived for VIP member `h` with its rendered file; the pid (and process
/// group) of keepalived's parent.
pub fn start_keepalived(tools: &Tools, state: &State, h: &Host) -> Result<u32, Error> {
    let d = state.node_dir(&h.name);
    let conf = d.join("keepalived.conf");
    fs::write(&conf, h.keepalived.as_deref().unwrap_or_default())
        .map_err(|e| Error::io(&conf, e))?;
    let p = |f: &str| d.join(f).into_os_string();
    let argv: Vec<OsString> = vec![
        tools.ip.clone().into(),
        "netns".into(),
        "exec".into(),
        h.ns.clone().into(),
        tools.keepalived.clone().into(),
        "--dont-fork".into(),
        "--log-console".into(),
        "--log-detail".into(),
        "--no-syslog".into(),
        "--vrrp".into(),
        "-f".into(),
        conf.into_os_string(),
        "-p".into(),
        p("keepalived.pid"),
        "-r".into(),
        p("vrrp.pid"),
    ];
    spawn_detached(&argv, &[], &d.join("keepalived.log"))
}

/// What `lab down` removed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DownReport {
    pub dir: PathBuf,
    pub processes: Vec<u32>,
    pub mounts: usize,
    pub namespaces: Vec<String>,
    pub dir_removed: bool,
}

impl DownReport {
    pub fn nothing(&self) -> bool {
        self.processes.is_empty()
            && self.mounts == 0
            && self.namespaces.is_empty()
            && !self.dir_removed
    }
}

/// Remove every process, mount, namespace and file of the lab named `name`, and only
/// those. Safe to run again (the second run finds nothing).
pub fn down(root: &Path, name: &str) -> Result<DownReport, Error> {
    crate::plan::validate_name(name)?;
    let tools = Tools::discover()?;
    require_root(&tools)?;
    let dir = lab_dir(root, name);
    let prefix = format!("sl.{name}.");
    let state = State::load(&dir).ok().flatten();
    let mut report = DownReport {
        dir: dir.clone(),
        ..DownReport::default()
    };

    // Processes: those recorded (when still this lab's) and any other naming the dir.
    let dir_s = dir.to_string_lossy().to_string();
    let mut pids: BTreeSet<u32> = lab_processes(&dir).into_iter().collect();
    if let Some(s) = &state {
        for p in &s.processes {
            if alive(p.pid) && names_dir(&cmdline(p.pid), &dir_s) {
                pids.insert(p.pid);
            }
        }
    }
    if !pids.is_empty() {
        let list: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
        let _ = Command::new(&tools.kill)
            .arg("-TERM")
            .args(&list)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !wait_until(Duration::from_secs(5), || pids.iter().all(|p| !alive(*p))) {
            let left: Vec<String> = pids
                .iter()
                .filter(|p| alive(**p))
                .map(|p| p.to_string())
                .collect();
            let _ = Command::new(&tools.kill)
                .arg("-KILL")
                .args(&left)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            wait_until(Duration::from_secs(3), || pids.iter().all(|p| !alive(*p)));
        }
        report.processes = pids.into_iter().collect();
    }

    // Bind mounts of VRF namespaces under the lab directory.
    for m in lab_mounts(&dir) {
        let ok = Command::new(&tools.umount)
            .arg(&m)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new(&tools.umount)
                .args(["-l", &m])
                .stderr(Stdio::null())
                .status();
        }
        report.mounts += 1;
    }

    // Namespaces (deleting one deletes every interface in it).
    let mut names: BTreeSet<String> = lab_namespaces(&prefix).into_iter().collect();
    if let Some(s) = &state {
        names.extend(
            s.lab
                .namespaces
                .iter()
                .filter(|n| Path::new(NETNS_DIR).join(&n.name).exists())
                .map(|n| n.name.clone()),
        );
    }
    let names: Vec<String> = names
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    if !names.is_empty() {
        let lines: Vec<String> = names.iter().map(|n| format!("netns del {n}")).collect();
        ip_batch(&tools, None, &lines, true)?;
        report.namespaces = names;
    }
    let still = lab_namespaces(&prefix);
    if !still.is_empty() {
        return Err(Error::Other(format!(
            "could not delete namespaces: {}",
            still.join(", ")
        )));
    }

    if dir.exists() {
        if !lab_mounts(&dir).is_empty() {
            return Err(Error::Other(format!(
                "{} still has mounts; not removing it",
                dir.display()
            )));
        }
        fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        report.dir_removed = true;
    }
    Ok(report)
}

/// The health-check endpoint of a VIP member: accept and close connections on `addr`
/// forever. Retries the bind for a while (the address may still be coming up).
pub fn serve_tcp(addr: SocketAddr) -> Result<(), Error> {
    let start = Instant::now();
    let listener = loop {
        match std::net::TcpListener::bind(addr) {
            Ok(l) => break l,
            Err(e) if start.elapsed() < Duration::from_secs(10) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(Error::Other(format!("cannot listen on {addr}: {e}"))),
        }
    };
    for mut c in listener.incoming().flatten() {
        let mut buf = [0u8; 64];
        let _ = c.set_read_timeout(Some(Duration::from_millis(100)));
        let _ = c.read(&mut buf);
    }
    Ok(())
}

/// A built lab, opened for testing.
pub struct Runtime {
    pub tools: Tools,
    pub state: State,
}

impl Runtime {
    /// Open the lab named `name` under `root`.
    pub fn open(root: &Path, name: &str) -> Result<Runtime, Error> {
        crate::plan::validate_name(name)?;
        let tools = Tools::discover()?;
        require_root(&tools)?;
        let dir = lab_dir(root, name);
        let state = State::load(&dir)?.ok_or_else(|| {
            Error::Env(format!(
                "no lab named `{name}` (no {}); build one with `strata lab up`",
                State::path(&dir).display()
            ))
        })?;
        if state.phase != Phase::Up {
            return Err(Error::Env(format!(
                "lab `{name}` is half-built (`lab up` did not finish); take it down with \
                 `strata lab down --name {name}` and build it again"
            )));
        }
        Ok(Runtime { tools, state })
    }

    pub fn lab(&self) -> &Lab {
        &self.state.lab
    }

    /// `vtysh -c CMD` on a switch; the text, or the error text.
    pub fn vtysh(&self, router: &str, cmd: &str) -> Result<String, String> {
        let d = self.state.node_dir(router);
        let out = vtysh_cmd(&self.tools, &d)
            .args(["-c", cmd])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run vtysh: {e}"))?;
        let text = combined(&out);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!("vtysh -c '{cmd}' on {router} failed: {text}"))
        }
    }

    /// `vtysh -c CMD` parsed as JSON.
    pub fn vtysh_json(&self, router: &str, cmd: &str) -> Result<serde_json::Value, String> {
        let text = self.vtysh(router, cmd)?;
        serde_json::from_str(&text).map_err(|e| {
            format!(
                "`{cmd}` on {router} is not JSON ({e}): {}",
                excerpt(&text, 5)
            )
        })
    }

    /// Run `argv` inside namespace `ns`; (shown command, success, output).
    pub fn in_ns(&self, ns: &str, argv: &[&str]) -> (String, bool, String) {
        let mut cmd = Command::new(&self.tools.ip);
        cmd.args(["netns", "exec", ns])
            .args(argv)
            .stdin(Stdio::null());
        let shown = format!("ip netns exec {ns} {}", argv.join(" "));
        match cmd.output() {
            Ok(out) => (shown, out.status.success(), combined(&out)),
            Err(e) => (shown, false, format!("cannot run: {e}")),
        }
    }

    /// `ip -n NS ARGS` (no netns exec needed).
    pub fn ip(&self, ns: &str, args: &[&str]) -> (String, bool, String) {
        let mut cmd = Command::new(&self.tools.ip);
        cmd.args(["-n", ns]).args(args).stdin(Stdio::null());
        let shown = format!("ip -n {ns} {}", args.join(" "));
        match cmd.output() {
            Ok(out) => (shown, out.status.success(), combined(&out)),
            Err(e) => (shown, false, format!("cannot run: {e}")),
        }
    }

    /// Send `signal` to a process group.
    pub fn kill_group(&self, pgid: u32, signal: &str) -> bool {
        Command::new(&self.tools.kill)
            .arg(format!("-{signal}"))
            .arg("--")
            .arg(format!("-{pgid}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Start keepalived again on a member (after check 6 failed it) and record it.
    pub fn restart_keepalived(&mut self, host: &str) -> Result<u32, Error> {
        let h = self
            .state
            .lab
            .host(host)
            .cloned()
            .ok_or_else(|| Error::Other(format!("no host {host}")))?;
        let pid = start_keepalived(&self.tools, &self.state, &h)?;
        self.state
            .processes
            .retain(|p| !(p.node == host && p.daemon == "keepalived"));
        self.state.processes.push(Process {
            node: h.name.clone(),
            ns: h.ns.clone(),
            daemon: "keepalived".into(),
            pid,
        });
        self.state.save()?;
        Ok(pid)
    }

    /// The keepalived process of a member, if recorded and alive.
    pub fn keepalived_pid(&self, host: &str) -> Option<u32> {
        self.state
            .processes
            .iter()
            .find(|p| p.node == host && p.daemon == "keepalived")
            .map(|p| p.pid)
            .filter(|p| alive(*p))
    }

    /// Recorded processes that are no longer running.
    pub fn dead_processes(&self) -> Vec<&Process> {
        self.state
            .processes
            .iter()
            .filter(|p| !alive(p.pid))
            .collect()
    }
}

/// The first `lines` lines of `text` (and a count of the rest).
pub fn excerpt(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    if all.len() <= lines {
        return all.join("\n");
    }
    format!(
        "{}\n... ({} more lines)",
        all[..lines].join("\n"),
        all.len() - lines
    )
}
