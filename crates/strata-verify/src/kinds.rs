//! What each [`FileKind`] runs, and what the tool does and does not catch.
//!
//! Established by experiment on Debian 12 (bookworm) with its packaged tools; `FILE`
//! is always the absolute path of the file under test, `SCRATCH` a fresh private
//! temporary directory (also the tool's working directory, `HOME` and `TMPDIR`).
//!
//! # `frr-conf`: `vtysh --config_dir SCRATCH -C -f FILE` (FRR 8.4)
//! A dry run against vtysh's command grammar; no daemons needed. `--config_dir`
//! points at an empty `vtysh.conf`, so `/etc/frr` is not read. Exits 2 with
//! `line N: % Unknown command[..]: ...` for unknown commands *and* for malformed
//! values (`ip address 10.0.0.300/32`, `bgp router-id 1.2.3`, an AS number above
//! 2^32-1). It does not check meaning: an undefined peer-group, a neighbor activated
//! in an address family without being defined, or two `router bgp` blocks all pass.
//!
//! # `netplan`: `netplan generate --root-dir SCRATCH/root` (netplan 0.106)
//! The file is copied byte for byte to `SCRATCH/root/etc/netplan/NAME.yaml` with mode
//! 0600 (netplan warns about wider permissions). Exits 1 on invalid YAML, unknown
//! keys, bad values (`mode: nonsense` in a bond, `mtu: banana`, a malformed address)
//! and references to undefined interfaces (`link: nosuch`). Generated files stay under
//! the root; the generator only queries `systemctl is-system-running`. Netplan prints
//! deprecations (`gateway4`) as GLib `WARNING **` lines with exit status 0; they are
//! counted as failures, since generated files should use the current syntax.
//!
//! # `cloud-init`: `cloud-init schema --config-file FILE` (cloud-init 22.4)
//! Exits 1 on schema errors (`runcmd: 5`, `users: 5`, a `write_files` entry without
//! `path`), invalid YAML, a missing `#cloud-config` first line, or a document that is
//! not a mapping. Unknown top-level keys are accepted (the schema allows them).
//! Deprecated forms (`chpasswd: {list: ...}`, `ssh_pwauth: maybe`) only print
//! `Cloud config schema deprecations: ...` with exit status 0; a non-empty
//! deprecation list is counted as a failure here.
//!
//! # `proxmox-interfaces`: ifupdown2's `ifup -s -a -i - < FILE` (ifupdown2 3.0)
//! `-s` is ifupdown2's syntax check (`--no-act` accepts garbage and is not used). Run
//! as root inside `unshare --mount --net`, where before `exec ifup`:
//! * `/etc/network/ifupdown2/ifupdown2.conf` is bind-mounted over by a fixed config
//!   with `addon_syntax_check=1` (Debian ships 0, which lets unknown keywords such as
//!   `bogus-keyword 5` pass), `template_enable=0` (no Mako templating),
//!   `addon_scripts_support=0`, `multiple_vlan_aware_bridge_support=1` (as Proxmox
//!   allows several VLAN-aware bridges; with 0 the second one is an error that still
//!   exits 0) and `state_dir` under the private `/run`;
//! * `/run` (which holds ifupdown2's global lock `/run/network/.lock`; without a
//!   private one, parallel checks fail with "Another instance of this program is
//!   already running", exit 89), `/etc/network/interfaces.d` and both `policy.d`
//!   directories are replaced by empty tmpfs, so only FILE is read (a
//!   `source /etc/network/interfaces.d/*` line finds nothing).
//!
//! FILE is passed on stdin, so its own location is irrelevant. ifupdown2 still
//! reads the packaged `addons.conf`, opens a netlink socket, reads sysctls and runs
//! `ip rule show` and `modprobe -q bonding` while loading its addons. The private
//! network namespace (only `lo`) keeps its netlink cache away from the host's links:
//! in the host's namespace, links that other processes create and delete while the
//! cache is dumped (the fabric lab runs beside it in CI) made ifupdown2 log
//! `recv() error: [Errno 22] Invalid argument` for a file that is correct (once in
//! CI); a check that still logs a netlink `recv() error` is run once more.
//!
//! Rejected (exit 1, with `error:`/`warning:` lines): unknown keywords (`unsupported
//! keyword (bogus-keyword)`, also `dns-nameservers`, which only resolvconf's hook
//! script understands), invalid values (`bond-mode nonsense`, `bridge-vlan-aware
//! maybe`, `address 10.0.0.300/24`, `mtu banana`, `bond-miimon abc`, `vlan-id 5000`),
//! unsupported methods (`inet foo`) and lines outside any stanza. Not rejected:
//! bridge or bond ports that are not defined (`bridge-ports nosuch`), a gateway
//! without an address, duplicate stanzas. Because ifupdown2 sometimes logs an
//! error and still exits 0, any `error:` or `warning:` line fails the check
//! (e.g. "bridge inherits mtu from its ports" for an `mtu` on a bridge). Unknown
//! keywords are found in every stanza (at parse time), but values are checked only
//! for `auto` interfaces (`-a`): a stanza without `auto` (or with `allow-hotplug`)
//! containing `bond-mode nonsense` passes, and a file with no `auto` stanza at all
//! fails ("no ifaces found matching given allow lists"). Needs root and mount
//! namespaces; without them [`Verifier::missing`] says so and the check fails rather
//! than running a weaker one.
//!
//! # `keepalived`: `keepalived --config-test -f FILE` (keepalived 2.2.7)
//! Run inside `unshare --net` when possible, so the result does not depend on the
//! verifying host's interfaces (there are none but `lo`). keepalived exits 5 for
//! *any* reported problem, including every interface it cannot find, and exits 0
//! when the file itself does not exist ("Config files missing"). So the verdict is
//! read from the output: the lines `WARNING - interface X for ... doesn't exist` and
//! `Non-existent interface specified in configuration` are ignored; any other line
//! (`Unknown keyword 'bogus'`, `VRID '999' not valid - must be between 1 & 255`,
//! `invalid number 'banana'`, `malformed unicast peer address`, `unknown
//! authentication type`, `track script chk_x not found`, `missing '}'`) fails. Not
//! checked: whether `vrrp_script` scripts exist or are executable.
//!
//! # `kolla-inventory`: `ansible-inventory -i FILE --list --output SCRATCH/inventory.json`
//! From the tools venv (ansible-core 2.19), with `ANSIBLE_INVENTORY_ENABLED=ini`
//! (only the INI parser, so a broken file cannot fall through to another plugin),
//! `ANSIBLE_INVENTORY_UNPARSED_FAILED=True` and
//! `ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED=True`: by default Ansible only *warns*
//! that a source could not be parsed and exits 0 with an empty inventory. Strict, it
//! exits 1 on malformed section headers, unknown section types (`[foo:bar]`), a
//! `:children` section naming an undefined group, host variables that are not
//! `key=value`, and unbalanced quotes. An empty file is a valid empty inventory.
//! Group names with `-` (Kolla's `nova-compute`) only draw a warning. The JSON
//! written to `--output` must also parse and contain the `all` group. Ansible's
//! configuration is an empty `ansible.cfg` in SCRATCH, `ANSIBLE_HOME` and
//! `ANSIBLE_LOCAL_TEMP` are in SCRATCH, so nothing is read from or written to `~`.
//!
//! # `kolla-globals`: `ansible localhost -i localhost, -c local -m ansible.builtin.debug -a var=kolla_base_distro -e @FILE`
//! Loads the file as extra vars exactly as `kolla-ansible -e @globals.yml` does, with
//! the same hermetic settings as above and `ANSIBLE_DUPLICATE_YAML_DICT_KEY=error`.
//! Exits non-zero (4 or 5) on invalid YAML, duplicate keys, and a document that is
//! not a mapping (a list, a scalar, an empty file). Jinja references to undefined
//! variables are not errors here: Kolla resolves them against its own defaults.
//!
//! # `nova-pci`: `python3 scripts/verify-helpers/nova_pci_check.py FILE`
//! The script (embedded in this crate and written to SCRATCH) parses the file like
//! oslo.config (repeated keys collect into a list) and checks the `[pci]`
//! `device_spec` and `alias` JSON values against nova's rules: see the script's
//! docstring. Python is the venv's, else `/usr/bin/python3`.
//!
//! # `neutron-ml2`: `python3 scripts/verify-helpers/neutron_ml2_check.py FILE`
//! Parses the file with python's configparser (strict: duplicate sections or options
//! fail) and checks `network_vlan_ranges` and `flat_networks` the way neutron-lib's
//! `parse_network_vlan_ranges` reads them (a bad entry stops neutron-server). It does
//! not know which physnets the hosts' bridges map.
//!
//! # `prometheus`: `promtool check config FILE` (Prometheus 2.42)
//! Exits 1 on unknown fields, bad durations (`scrape_interval: banana`), duplicate
//! job names, `scrape_timeout` greater than `scrape_interval`, and `rule_files` that
//! do not exist (resolved relative to FILE, and checked themselves). Target
//! addresses are not validated (`nohostport:abc` passes).

use std::fs;
use std::fs::File;
use std::path::Path;
use std::time::Duration;

use strata_render::FileKind;

use crate::Verifier;
use crate::run::{Invocation, Outcome, shell_quote};

/// The name reported in [`crate::Check::tool`] for `kind`.
pub(crate) fn tool_name(kind: FileKind) -> &'static str {
    match kind {
        FileKind::FrrConf => "vtysh",
        FileKind::Netplan => "netplan",
        FileKind::CloudInit => "cloud-init",
        FileKind::ProxmoxInterfaces => "ifup",
        FileKind::Keepalived => "keepalived",
        FileKind::KollaInventory => "ansible-inventory",
        FileKind::KollaGlobals => "ansible",
        FileKind::NovaPci => "nova_pci_check.py",
        FileKind::NeutronMl2 => "neutron_ml2_check.py",
        FileKind::Prometheus => "promtool",
        FileKind::Other => "none",
    }
}

/// What one kind's check concluded.
pub(crate) struct Verdict {
    pub command: String,
    pub ok: bool,
    pub output: String,
}

impl Verdict {
    fn failed(command: String, output: String) -> Verdict {
        Verdict {
            command,
            ok: false,
            output,
        }
    }
}

/// Whether `unshare --mount --net` works here (it needs root or CAP_SYS_ADMIN).
pub(crate) fn namespaces_work(unshare: &Path) -> bool {
    let Ok(scratch) = tempfile::Builder::new().prefix("strata-verify-").tempdir() else {
        return false;
    };
    Invocation::new(unshare, scratch.path())
        .args([
            "--mount",
            "--net",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-c",
            ":",
        ])
        .run(Duration::from_secs(10))
        .is_ok_and(|outcome| outcome.success())
}

/// Run the validator for `kind` over `file` (absolute, an existing regular file).
/// The tool is known to be present (see [`Verifier::missing`]).
pub(crate) fn run_kind(
    verifier: &Verifier,
    kind: FileKind,
    file: &Path,
    scratch: &Path,
) -> Verdict {
    let tool = |path: &Option<std::path::PathBuf>| path.clone().unwrap_or_default();
    match kind {
        FileKind::FrrConf => frr(verifier, &tool(&verifier.vtysh), file, scratch),
        FileKind::Netplan => netplan(verifier, &tool(&verifier.netplan), file, scratch),
        FileKind::CloudInit => cloud_init(verifier, &tool(&verifier.cloud_init), file, scratch),
        FileKind::ProxmoxInterfaces => {
            // A netlink socket error is about the host, not the file: check again,
            // once.
            let v = ifupdown2(verifier, file, scratch);
            if !v.ok && v.output.contains("recv() error") {
                ifupdown2(verifier, file, scratch)
            } else {
                v
            }
        }
        FileKind::Keepalived => keepalived(verifier, file, scratch),
        FileKind::KollaInventory => kolla_inventory(verifier, file, scratch),
        FileKind::KollaGlobals => kolla_globals(verifier, file, scratch),
        FileKind::NovaPci => helper(verifier, file, scratch, "nova_pci_check.py", NOVA_PCI_CHECK),
        FileKind::NeutronMl2 => helper(
            verifier,
            file,
            scratch,
            "neutron_ml2_check.py",
            NEUTRON_ML2_CHECK,
        ),
        FileKind::Prometheus => promtool(verifier, &tool(&verifier.promtool), file, scratch),
        FileKind::Other => Verdict {
            command: String::new(),
            ok: true,
            output: "not verified".to_string(),
        },
    }
}

/// Run `invocation`; `judge` turns a finished run into (ok, extra message).
fn execute(
    verifier: &Verifier,
    invocation: Invocation,
    command: String,
    judge: impl FnOnce(&Outcome) -> (bool, Option<String>),
) -> Verdict {
    match invocation.run(verifier.timeout) {
        Err(e) => Verdict::failed(command, e.to_string()),
        Ok(outcome) => {
            // A run killed after the timeout has already said so in its output.
            let (ok, note) = match outcome.status {
                None => (false, None),
                Some(_) => judge(&outcome),
            };
            let mut output = outcome.output.trim().to_string();
            if output.is_empty() && !ok {
                output = format!("rejected ({}) without a message", outcome.describe_status());
            }
            if let Some(note) = note {
                if !output.is_empty() {
                    output.push('\n');
                }
                output.push_str("strata-verify: ");
                output.push_str(&note);
            }
            Verdict {
                command,
                ok,
                output,
            }
        }
    }
}

/// Exit status alone decides.
fn by_status(outcome: &Outcome) -> (bool, Option<String>) {
    (outcome.success(), None)
}

fn frr(verifier: &Verifier, vtysh: &Path, file: &Path, scratch: &Path) -> Verdict {
    // An empty vtysh.conf, so that /etc/frr/vtysh.conf is not read.
    if let Err(e) = fs::write(scratch.join("vtysh.conf"), "") {
        return Verdict::failed(String::new(), format!("cannot write vtysh.conf: {e}"));
    }
    let invocation = Invocation::new(vtysh, scratch)
        .arg("--config_dir")
        .arg(scratch)
        .args(["-C", "-f"])
        .arg(file);
    let command = invocation.display();
    execute(verifier, invocation, command, by_status)
}

/// A file name netplan will pick up: the original name, made safe, ending in `.yaml`.
fn netplan_name(file: &Path) -> String {
    let base = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut safe: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.is_empty() || safe.starts_with('.') {
        safe.insert_str(0, "strata");
    }
    if !safe.ends_with(".yaml") {
        safe.push_str(".yaml");
    }
    safe
}

fn netplan(verifier: &Verifier, netplan: &Path, file: &Path, scratch: &Path) -> Verdict {
    use std::os::unix::fs::PermissionsExt;
    let root = scratch.join("root");
    let dir = root.join("etc/netplan");
    let target = dir.join(netplan_name(file));
    let prepared = fs::create_dir_all(&dir)
        .and_then(|()| fs::copy(file, &target))
        .and_then(|_| fs::set_permissions(&target, fs::Permissions::from_mode(0o600)));
    if let Err(e) = prepared {
        return Verdict::failed(
            String::new(),
            format!(
                "cannot copy {} to {}: {e}",
                file.display(),
                target.display()
            ),
        );
    }
    let invocation = Invocation::new(netplan, scratch)
        .args(["generate", "--root-dir"])
        .arg(&root);
    let command = format!(
        "{}  # {} copied to {} (mode 0600)",
        invocation.display(),
        shell_quote(&file.to_string_lossy()),
        shell_quote(&target.to_string_lossy())
    );
    execute(verifier, invocation, command, |outcome| {
        let warnings = outcome
            .output
            .lines()
            .filter(|line| {
                line.contains("WARNING **")
                    || line.contains("CRITICAL **")
                    || line.contains("ERROR **")
            })
            .count();
        if outcome.success() && warnings > 0 {
            (
                false,
                Some(format!(
                    "netplan accepted the file but printed {warnings} warning(s)"
                )),
            )
        } else {
            (outcome.success(), None)
        }
    })
}

fn cloud_init(verifier: &Verifier, cloud_init: &Path, file: &Path, scratch: &Path) -> Verdict {
    let invocation = Invocation::new(cloud_init, scratch)
        .args(["schema", "--config-file"])
        .arg(file);
    let command = invocation.display();
    execute(verifier, invocation, command, |outcome| {
        let deprecated = outcome.output.lines().any(|line| {
            line.trim_start()
                .strip_prefix("Cloud config schema deprecations:")
                .is_some_and(|rest| !rest.trim().is_empty())
        });
        if outcome.success() && deprecated {
            (
                false,
                Some(
                    "cloud-init accepted the file but reported deprecated keys or values"
                        .to_string(),
                ),
            )
        } else {
            (outcome.success(), None)
        }
    })
}

/// ifupdown2's configuration for the check (replaces `/etc/network/ifupdown2/ifupdown2.conf`
/// inside the private mount namespace). See the module docs for why each value.
const IFUPDOWN2_CONF: &str = "\
use_daemon=no
template_enable=0
default_interfaces_configfile=/etc/network/interfaces
disable_cli_interfacesfile=0
addon_syntax_check=1
addon_scripts_support=0
addon_python_modules_support=1
multiple_vlan_aware_bridge_support=1
ifquery_check_success_str=pass
ifquery_check_error_str=fail
ifquery_check_unknown_str=
ifquery_ifacename_expand_range=0
link_master_slave=1
delay_admin_state_change=0
ifreload_down_changed=0
addr_config_squash=0
ifaceobj_squash=0
adjust_logical_dev_mtu=1
state_dir=/run/network/
";

/// Runs inside `unshare --mount`: `$1` is the config to bind over ifupdown2's, the
/// rest is the ifup command line.
const IFUPDOWN2_SANDBOX: &str = "\
set -e
conf=\"$1\"; shift
mount --bind \"$conf\" /etc/network/ifupdown2/ifupdown2.conf
mount -t tmpfs -o mode=0755,size=4m strata-verify /run
mkdir -p /run/network
for d in /etc/network/interfaces.d /etc/network/ifupdown2/policy.d /var/lib/ifupdown2/policy.d; do
  if [ -d \"$d\" ]; then mount -t tmpfs -o mode=0755,size=1m strata-verify \"$d\"; fi
done
exec \"$@\"
";

fn ifupdown2(verifier: &Verifier, file: &Path, scratch: &Path) -> Verdict {
    let (Some(ifup), Some(unshare)) = (&verifier.ifup, &verifier.unshare) else {
        return Verdict::failed(String::new(), "ifup or unshare not found".to_string());
    };
    let shown = format!(
        "{} -s -a -i - < {}",
        shell_quote(&ifup.to_string_lossy()),
        shell_quote(&file.to_string_lossy())
    );
    if !verifier.namespaces {
        return Verdict::failed(shown, crate::IFUPDOWN2_NEEDS_ROOT.to_string());
    }
    let conf = scratch.join("ifupdown2.conf");
    if let Err(e) = fs::write(&conf, IFUPDOWN2_CONF) {
        return Verdict::failed(shown, format!("cannot write {}: {e}", conf.display()));
    }
    let stdin = match File::open(file) {
        Ok(f) => f,
        Err(e) => return Verdict::failed(shown, format!("cannot open {}: {e}", file.display())),
    };
    let invocation = Invocation::new(unshare, scratch)
        .args([
            "--mount",
            "--propagation",
            "private",
            "--net",
            "--",
            "/bin/sh",
            "-c",
        ])
        .arg(IFUPDOWN2_SANDBOX)
        .arg("strata-verify-ifupdown2")
        .arg(&conf)
        .arg(ifup)
        .args(["-s", "-a", "-i", "-"])
        .stdin(stdin);
    let command = format!(
        "{} --mount --propagation private --net -- sh -c '<private /run, empty interfaces.d \
         and policy.d, strict ifupdown2.conf>' {shown}",
        shell_quote(&unshare.to_string_lossy())
    );
    execute(verifier, invocation, command, |outcome| {
        let complaints = outcome
            .output
            .lines()
            .filter(|line| {
                let line = line.trim_start().to_ascii_lowercase();
                line.starts_with("error:") || line.starts_with("warning:")
            })
            .count();
        if outcome.success() && complaints > 0 {
            (
                false,
                Some(format!(
                    "ifupdown2 exited 0 but logged {complaints} error/warning line(s)"
                )),
            )
        } else {
            (outcome.success(), None)
        }
    })
}

/// keepalived lines about interfaces the verifying host does not have.
fn is_absent_interface_line(line: &str) -> bool {
    let line = line.trim();
    line == "Non-existent interface specified in configuration"
        || (line.contains("WARNING - interface ") && line.ends_with("doesn't exist"))
}

fn keepalived(verifier: &Verifier, file: &Path, scratch: &Path) -> Verdict {
    let Some(keepalived) = &verifier.keepalived else {
        return Verdict::failed(String::new(), "keepalived not found".to_string());
    };
    let invocation = match (&verifier.unshare, verifier.namespaces) {
        (Some(unshare), true) => Invocation::new(unshare, scratch)
            .args(["--net", "--"])
            .arg(keepalived),
        _ => Invocation::new(keepalived, scratch),
    }
    .args(["--config-test", "-f"])
    .arg(file);
    let command = invocation.display();
    execute(verifier, invocation, command, |outcome| {
        let code = outcome.status.and_then(|s| s.code());
        let mut ignored = 0;
        let mut problems = 0;
        for line in outcome.output.lines().filter(|l| !l.trim().is_empty()) {
            if is_absent_interface_line(line) {
                ignored += 1;
            } else {
                problems += 1;
            }
        }
        match code {
            Some(0) if problems == 0 => (true, None),
            Some(5) if problems == 0 && ignored > 0 => (
                true,
                Some(format!(
                    "accepted: the {ignored} line(s) above only say that interfaces are absent \
                     on the verifying host, which is expected"
                )),
            ),
            Some(0) | Some(5) if problems > 0 => (
                false,
                Some(format!("keepalived reported {problems} problem line(s)")),
            ),
            _ => (false, None),
        }
    })
}

/// Settings shared by the Ansible checks: nothing read from or written to `~`, no
/// `ansible.cfg` from the host, no colour codes.
fn ansible_invocation(
    verifier: &Verifier,
    program: &Path,
    scratch: &Path,
) -> Result<Invocation, String> {
    let home = scratch.join("ansible");
    let config = scratch.join("ansible.cfg");
    fs::create_dir_all(home.join("tmp"))
        .and_then(|()| fs::write(&config, ""))
        .map_err(|e| {
            format!(
                "cannot prepare Ansible's directories in {}: {e}",
                scratch.display()
            )
        })?;
    Ok(Invocation::new(program, scratch)
        .path_prepend(&verifier.venv_bin)
        .env("ANSIBLE_CONFIG", &config)
        .env("ANSIBLE_HOME", &home)
        .env("ANSIBLE_LOCAL_TEMP", home.join("tmp"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "False"))
}

fn kolla_inventory(verifier: &Verifier, file: &Path, scratch: &Path) -> Verdict {
    let Some(program) = &verifier.ansible_inventory else {
        return Verdict::failed(String::new(), "ansible-inventory not found".to_string());
    };
    let json_path = scratch.join("inventory.json");
    let invocation = match ansible_invocation(verifier, program, scratch) {
        Ok(invocation) => invocation,
        Err(message) => return Verdict::failed(String::new(), message),
    }
    .env("ANSIBLE_INVENTORY_ENABLED", "ini")
    .env("ANSIBLE_INVENTORY_UNPARSED_FAILED", "True")
    .env("ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED", "True")
    .arg("-i")
    .arg(file)
    .args(["--list", "--output"])
    .arg(&json_path);
    let command = format!(
        "ANSIBLE_INVENTORY_ENABLED=ini ANSIBLE_INVENTORY_UNPARSED_FAILED=True \
         ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED=True {}",
        invocation.display()
    );
    execute(verifier, invocation, command, |outcome| {
        if !outcome.success() {
            return (false, None);
        }
        let parsed = fs::read_to_string(&json_path)
            .map_err(|e| e.to_string())
            .and_then(|text| {
                serde_json::from_str::<serde_json::Value>(&text).map_err(|e| e.to_string())
            });
        match parsed {
            Ok(value) if value.get("all").is_some() => (true, None),
            Ok(_) => (
                false,
                Some("ansible-inventory's JSON output has no `all` group".to_string()),
            ),
            Err(e) => (
                false,
                Some(format!("cannot read ansible-inventory's JSON output: {e}")),
            ),
        }
    })
}

fn kolla_globals(verifier: &Verifier, file: &Path, scratch: &Path) -> Verdict {
    let Some(program) = &verifier.ansible else {
        return Verdict::failed(String::new(), "ansible not found".to_string());
    };
    let mut extra_vars = std::ffi::OsString::from("@");
    extra_vars.push(file);
    let invocation = match ansible_invocation(verifier, program, scratch) {
        Ok(invocation) => invocation,
        Err(message) => return Verdict::failed(String::new(), message),
    }
    .env("ANSIBLE_DUPLICATE_YAML_DICT_KEY", "error")
    .args([
        "localhost",
        "-i",
        "localhost,",
        "-c",
        "local",
        "-m",
        "ansible.builtin.debug",
        "-a",
        "var=kolla_base_distro",
        "-e",
    ])
    .arg(extra_vars);
    let command = format!(
        "ANSIBLE_DUPLICATE_YAML_DICT_KEY=error {}",
        invocation.display()
    );
    execute(verifier, invocation, command, by_status)
}

/// The helper script, embedded so that the check works from any directory.
const NOVA_PCI_CHECK: &str = include_str!("../../../scripts/verify-helpers/nova_pci_check.py");

const NEUTRON_ML2_CHECK: &str =
    include_str!("../../../scripts/verify-helpers/neutron_ml2_check.py");

/// One of `scripts/verify-helpers/` (standard-library python), written to the scratch
/// directory and run on `file`.
fn helper(verifier: &Verifier, file: &Path, scratch: &Path, name: &str, source: &str) -> Verdict {
    let Some(python) = &verifier.python else {
        return Verdict::failed(String::new(), "python3 not found".to_string());
    };
    let script = scratch.join(name);
    if let Err(e) = fs::write(&script, source) {
        return Verdict::failed(
            String::new(),
            format!("cannot write {}: {e}", script.display()),
        );
    }
    let invocation = Invocation::new(python, scratch).arg(&script).arg(file);
    let command = format!(
        "{} scripts/verify-helpers/{name} {}",
        shell_quote(&python.to_string_lossy()),
        shell_quote(&file.to_string_lossy())
    );
    execute(verifier, invocation, command, by_status)
}

fn promtool(verifier: &Verifier, promtool: &Path, file: &Path, scratch: &Path) -> Verdict {
    let invocation = Invocation::new(promtool, scratch)
        .args(["check", "config"])
        .arg(file);
    let command = invocation.display();
    execute(verifier, invocation, command, by_status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netplan_names() {
        assert_eq!(
            netplan_name(Path::new("/o/50-strata.yaml")),
            "50-strata.yaml"
        );
        assert_eq!(
            netplan_name(Path::new("/o/net plan.yml")),
            "net_plan.yml.yaml"
        );
        assert_eq!(netplan_name(Path::new("/o/.hidden")), "strata.hidden.yaml");
    }

    #[test]
    fn keepalived_absent_interface_lines() {
        assert!(is_absent_interface_line(
            "(/x/k.conf: Line 17) WARNING - interface bond0.100 for vrrp_instance VI_API doesn't exist"
        ));
        assert!(is_absent_interface_line(
            "Non-existent interface specified in configuration"
        ));
        assert!(!is_absent_interface_line(
            "(/x/k.conf: Line 21) Unknown keyword 'bogus_keyword'"
        ));
    }
}
