//! Verification: running the real third-party validators over generated files.
//!
//! `strata-render` produces configuration text; this crate checks it with the tools
//! that will eventually consume it (FRR's `vtysh`, `netplan`, `cloud-init`, ifupdown2,
//! `keepalived`, Ansible, `promtool`), so that a file that "looks right" but that the
//! real tool rejects is caught before it reaches a machine.
//!
//! Architecture invariant: this is an I/O edge crate. It starts processes, creates
//! temporary directories and reads files, and it must never generate or modify
//! configuration content itself: it only copies a file byte for byte where a tool
//! insists on a location (netplan) and reports what the tools say.
//!
//! The tools are installed by `scripts/install-test-deps.sh` (Debian 12 packages plus
//! a venv with `ansible-core` at `$STRATA_TOOLS_VENV`, default `/opt/strata-tools`).
//! [`Verifier::discover`] finds them; [`Verifier::missing`] says what is absent.
//!
//! Every tool runs with a cleared environment (system `PATH`, `C.UTF-8` locale, a
//! private temporary directory as working directory, `HOME` and `TMPDIR`), in its own
//! process group, with a timeout (60 s by default) after which the group is killed.
//! Nothing here panics on any input: every failure (a missing tool, a spawn error, a
//! timeout, an unreadable file) becomes a [`Check`] with `ok: false` and a message.
//!
//! What each kind runs, and what the tool does and does not reject, is documented on
//! the [`kinds`] module (Debian 12 versions: FRR 8.4, netplan 0.106, cloud-init 22.4,
//! ifupdown2 3.0, keepalived 2.2.7, ansible-core 2.19, Prometheus 2.42).

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use strata_render::FileKind;

pub mod kinds;
mod run;

/// The result of validating one file with one tool.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// The file: the relative path given to [`Verifier::verify_dir`], or the path given
    /// to [`Verifier::verify_file`].
    pub path: String,
    pub kind: FileKind,
    /// The validator's name (`vtysh`, `netplan`, ...).
    pub tool: String,
    /// The command line that was run, for a person to read (and re-run); empty when no
    /// command could be run.
    pub command: String,
    /// Whether the tool accepted the file.
    pub ok: bool,
    /// The tool's combined stdout and stderr (trimmed, at most about 4 KB, head and
    /// tail kept), or the reason it could not run.
    pub output: String,
}

/// Resolved locations of the validators. Cheap to clone; `Sync`, so one verifier can
/// serve many threads.
#[derive(Clone, Debug)]
pub struct Verifier {
    vtysh: Option<PathBuf>,
    netplan: Option<PathBuf>,
    cloud_init: Option<PathBuf>,
    ifup: Option<PathBuf>,
    unshare: Option<PathBuf>,
    keepalived: Option<PathBuf>,
    ansible: Option<PathBuf>,
    ansible_inventory: Option<PathBuf>,
    python: Option<PathBuf>,
    promtool: Option<PathBuf>,
    /// `bin/` of the tools venv.
    venv_bin: PathBuf,
    /// Whether `unshare --mount --net` works here (root, or CAP_SYS_ADMIN).
    namespaces: bool,
    timeout: Duration,
}

/// Where `scripts/install-test-deps.sh` puts the venv unless `STRATA_TOOLS_VENV` says otherwise.
pub const DEFAULT_TOOLS_VENV: &str = "/opt/strata-tools";

/// The default time one tool may run before it is killed and the check fails.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How many files [`Verifier::verify_dir`] checks at once.
const WORKERS: usize = 4;

const INSTALL_HINT: &str = "run scripts/install-test-deps.sh";

/// Why the ifupdown2 check cannot run without privileges (see [`kinds`]).
const IFUPDOWN2_NEEDS_ROOT: &str = "ifup cannot run here: the ifupdown2 check runs `ifup -s` \
    (which refuses to run unless root) in a private mount namespace (`unshare --mount`), and \
    creating one failed; run as root (or with CAP_SYS_ADMIN)";

/// Directories searched after `PATH`: Debian keeps several tools in sbin, which is not
/// on every user's `PATH`.
const EXTRA_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

impl Verifier {
    /// Find the validators: the venv's `bin/` (`$STRATA_TOOLS_VENV/bin`, default
    /// `/opt/strata-tools/bin`) first for Ansible and Python, then `PATH`, then the
    /// usual system directories. Also probes once whether private namespaces can be
    /// created (needed for the hermetic ifupdown2 and keepalived checks).
    pub fn discover() -> Verifier {
        let venv = std::env::var_os("STRATA_TOOLS_VENV")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_TOOLS_VENV));
        let venv_bin = venv.join("bin");

        let system_dirs = system_dirs();
        let mut venv_first = vec![venv_bin.clone()];
        venv_first.extend(system_dirs.iter().cloned());
        // Prefer Debian's interpreter over whatever `python3` is first on PATH (a pyenv
        // shim, say, does not work in the cleared environment the helpers run in).
        let mut python_dirs = vec![venv_bin.clone(), PathBuf::from("/usr/bin")];
        python_dirs.extend(system_dirs.iter().cloned());

        let unshare = find_executable("unshare", &system_dirs);
        let namespaces = unshare.as_deref().is_some_and(kinds::namespaces_work);
        Verifier {
            vtysh: find_executable("vtysh", &system_dirs),
            netplan: find_executable("netplan", &system_dirs),
            cloud_init: find_executable("cloud-init", &system_dirs),
            ifup: find_executable("ifup", &system_dirs),
            unshare,
            keepalived: find_executable("keepalived", &system_dirs),
            ansible: find_executable("ansible", &venv_first),
            ansible_inventory: find_executable("ansible-inventory", &venv_first),
            python: find_executable("python3", &python_dirs),
            promtool: find_executable("promtool", &system_dirs),
            venv_bin,
            namespaces,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The same verifier with another per-tool timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Verifier {
        self.timeout = timeout;
        self
    }

    /// `Some(message)` when the tool for `kind` is not installed, e.g.
    /// `"vtysh not found; run scripts/install-test-deps.sh"`, or cannot run here (the
    /// ifupdown2 check needs root for its private mount namespace). `None` for
    /// [`FileKind::Other`], which has no tool.
    pub fn missing(&self, kind: FileKind) -> Option<String> {
        let needed: &[(&str, &Option<PathBuf>)] = match kind {
            FileKind::FrrConf => &[("vtysh", &self.vtysh)],
            FileKind::Netplan => &[("netplan", &self.netplan)],
            FileKind::CloudInit => &[("cloud-init", &self.cloud_init)],
            FileKind::ProxmoxInterfaces => &[("ifup", &self.ifup), ("unshare", &self.unshare)],
            FileKind::Keepalived => &[("keepalived", &self.keepalived)],
            FileKind::KollaInventory => &[("ansible-inventory", &self.ansible_inventory)],
            FileKind::KollaGlobals => &[("ansible", &self.ansible)],
            FileKind::NovaPci | FileKind::NeutronMl2 => &[("python3", &self.python)],
            FileKind::Prometheus => &[("promtool", &self.promtool)],
            FileKind::Other => &[],
        };
        let absent = needed
            .iter()
            .find(|(_, path)| path.is_none())
            .map(|(name, _)| {
                let where_ = if matches!(name, &"ansible" | &"ansible-inventory") {
                    format!(" (looked in {} and on PATH)", self.venv_bin.display())
                } else {
                    String::new()
                };
                format!("{name} not found{where_}; {INSTALL_HINT}")
            });
        if absent.is_none() && kind == FileKind::ProxmoxInterfaces && !self.namespaces {
            return Some(IFUPDOWN2_NEEDS_ROOT.to_string());
        }
        absent
    }

    /// Validate one file on disk as `kind`. [`FileKind::Other`] is not verified and
    /// gives `ok: true` with an explanatory `output`.
    pub fn verify_file(&self, path: &Path, kind: FileKind) -> Check {
        self.check(path.display().to_string(), path, kind)
    }

    /// Validate the files `files` (paths relative to `root`, `/`-separated, as in
    /// `RenderedFile::path`) with a few worker threads. Entries of kind
    /// [`FileKind::Other`] are skipped; the other results come back in input order.
    /// A relative path that is absolute or climbs out of `root` (`..`) is not read and
    /// gives a failed check.
    pub fn verify_dir(&self, root: &Path, files: &[(String, FileKind)]) -> Vec<Check> {
        let jobs: Vec<&(String, FileKind)> = files
            .iter()
            .filter(|(_, kind)| *kind != FileKind::Other)
            .collect();
        let run_job = |(rel, kind): &(String, FileKind)| -> Check {
            match safe_join(root, rel) {
                Some(path) => self.check(rel.clone(), &path, *kind),
                None => Check {
                    path: rel.clone(),
                    kind: *kind,
                    tool: kinds::tool_name(*kind).to_string(),
                    command: String::new(),
                    ok: false,
                    output: format!(
                        "refusing to verify {rel:?}: not a relative path inside {}",
                        root.display()
                    ),
                },
            }
        };

        let next = std::sync::atomic::AtomicUsize::new(0);
        let work = || {
            let mut done = Vec::new();
            loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(job) = jobs.get(index) else { break };
                done.push((index, run_job(job)));
            }
            done
        };

        let mut results: Vec<Option<Check>> = vec![None; jobs.len()];
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..WORKERS.min(jobs.len()))
                .filter_map(|i| {
                    std::thread::Builder::new()
                        .name(format!("strata-verify-{i}"))
                        .spawn_scoped(scope, work)
                        .ok()
                })
                .collect();
            // If no thread could be started, do the work here.
            let mut finished = if handles.is_empty() {
                work()
            } else {
                Vec::new()
            };
            for handle in handles {
                if let Ok(done) = handle.join() {
                    finished.extend(done);
                }
            }
            for (index, check) in finished {
                if let Some(slot) = results.get_mut(index) {
                    *slot = Some(check);
                }
            }
        });
        results
            .into_iter()
            .zip(jobs)
            .map(|(result, (rel, kind))| {
                result.unwrap_or_else(|| Check {
                    path: rel.clone(),
                    kind: *kind,
                    tool: kinds::tool_name(*kind).to_string(),
                    command: String::new(),
                    ok: false,
                    output: "internal error: the verification worker stopped unexpectedly"
                        .to_string(),
                })
            })
            .collect()
    }

    fn check(&self, shown: String, path: &Path, kind: FileKind) -> Check {
        let tool = kinds::tool_name(kind).to_string();
        let fail = |command: String, output: String| Check {
            path: shown.clone(),
            kind,
            tool: tool.clone(),
            command,
            ok: false,
            output,
        };
        if kind == FileKind::Other {
            return Check {
                ok: true,
                output: "not verified: files of kind `other` have no validator".to_string(),
                ..fail(String::new(), String::new())
            };
        }
        if let Some(message) = self.missing(kind) {
            return fail(String::new(), message);
        }
        let file = match std::path::absolute(path) {
            Ok(file) => file,
            Err(e) => {
                return fail(
                    String::new(),
                    format!("cannot resolve {}: {e}", path.display()),
                );
            }
        };
        match std::fs::metadata(&file) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => {
                return fail(
                    String::new(),
                    format!("{} is not a regular file", file.display()),
                );
            }
            Err(e) => {
                return fail(
                    String::new(),
                    format!("cannot read {}: {e}", file.display()),
                );
            }
        }
        let scratch = match tempfile::Builder::new().prefix("strata-verify-").tempdir() {
            Ok(dir) => dir,
            Err(e) => {
                return fail(
                    String::new(),
                    format!("cannot create a temporary directory: {e}"),
                );
            }
        };
        let verdict = kinds::run_kind(self, kind, &file, scratch.path());
        Check {
            path: shown,
            kind,
            tool,
            command: verdict.command,
            ok: verdict.ok,
            output: run::trim_output(&verdict.output),
        }
    }
}

/// `root/rel` when `rel` is a plain relative path (no `..`, not absolute, not empty).
fn safe_join(root: &Path, rel: &str) -> Option<PathBuf> {
    let rel_path = Path::new(rel);
    let mut normal = 0;
    for component in rel_path.components() {
        match component {
            Component::Normal(_) => normal += 1,
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (normal > 0).then(|| root.join(rel_path))
}

/// The first `dir/name` that is an executable regular file.
/// Where system tools are looked for: `PATH`, then the usual system directories (sbin
/// included, which is not on every user's `PATH`).
pub fn system_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(EXTRA_DIRS.iter().map(PathBuf::from));
    dirs
}

/// An executable regular file named `name` on `PATH` or in the system directories.
pub fn find_command(name: &str) -> Option<PathBuf> {
    find_executable(name, &system_dirs())
}

/// An executable regular file named `name` in the first of `dirs` (absolute ones only)
/// that has one.
pub fn find_executable(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    dirs.iter()
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_join_rejects_escapes() {
        let root = Path::new("/out");
        assert_eq!(
            safe_join(root, "hosts/leaf1/frr.conf"),
            Some(PathBuf::from("/out/hosts/leaf1/frr.conf"))
        );
        assert_eq!(safe_join(root, "./a"), Some(PathBuf::from("/out/./a")));
        assert_eq!(safe_join(root, "../etc/passwd"), None);
        assert_eq!(safe_join(root, "a/../../b"), None);
        assert_eq!(safe_join(root, "/etc/passwd"), None);
        assert_eq!(safe_join(root, ""), None);
        assert_eq!(safe_join(root, "."), None);
    }

    #[test]
    fn missing_tools_are_reported_with_the_install_hint() {
        let verifier = Verifier {
            vtysh: None,
            netplan: None,
            cloud_init: None,
            ifup: None,
            unshare: None,
            keepalived: None,
            ansible: None,
            ansible_inventory: None,
            python: None,
            promtool: None,
            venv_bin: PathBuf::from("/nowhere/bin"),
            namespaces: false,
            timeout: DEFAULT_TIMEOUT,
        };
        assert_eq!(
            verifier.missing(FileKind::FrrConf).as_deref(),
            Some("vtysh not found; run scripts/install-test-deps.sh")
        );
        for kind in FileKind::VERIFIED {
            let message = verifier
                .missing(kind)
                .expect("every verified kind needs a tool");
            assert!(message.ends_with(INSTALL_HINT), "{message}");
        }
        assert_eq!(verifier.missing(FileKind::Other), None);

        // A missing tool is a failed check, never a panic or a pass.
        let check = verifier.verify_file(Path::new("/nonexistent"), FileKind::Prometheus);
        assert!(!check.ok);
        assert!(check.output.contains("promtool not found"));

        let other = verifier.verify_file(Path::new("/nonexistent"), FileKind::Other);
        assert!(other.ok);

        let dir_checks = verifier.verify_dir(
            Path::new("/nonexistent"),
            &[
                ("README.md".to_string(), FileKind::Other),
                ("a/frr.conf".to_string(), FileKind::FrrConf),
                ("../x.yaml".to_string(), FileKind::Netplan),
            ],
        );
        assert_eq!(dir_checks.len(), 2);
        assert_eq!(dir_checks[0].path, "a/frr.conf");
        assert_eq!(dir_checks[1].path, "../x.yaml");
        assert!(dir_checks.iter().all(|c| !c.ok));
    }

    #[test]
    fn check_serializes_with_kebab_case_kind() {
        let check = Check {
            path: "a/frr.conf".to_string(),
            kind: FileKind::FrrConf,
            tool: "vtysh".to_string(),
            command: "vtysh -C -f a/frr.conf".to_string(),
            ok: true,
            output: String::new(),
        };
        let json = serde_json::to_value(&check).expect("serialize");
        assert_eq!(json["kind"], "frr-conf");
        assert_eq!(json["ok"], true);
    }
}
