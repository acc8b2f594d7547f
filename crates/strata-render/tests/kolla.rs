//! The Kolla-Ansible renderer: snapshots, determinism, structure, and the real tools
//! (`ansible-inventory --list` for the inventory, `ansible -e @globals.yml` for the
//! globals).
//!
//! The tool tests need the Ansible venv (`scripts/install-test-deps.sh`); without it
//! they fail unless `STRATA_SKIP_TOOL_TESTS=1`, which turns them into a printed note.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use strata_fleet::Fleet;
use strata_render::{FileKind, RenderedFile, kolla};
use strata_spec::InfraVlan;
use strata_verify::{Check, Verifier};

const KINDS: [FileKind; 3] = [
    FileKind::KollaInventory,
    FileKind::KollaGlobals,
    FileKind::NeutronMl2,
];

fn file<'a>(files: &'a [RenderedFile], path: &str) -> &'a RenderedFile {
    files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no file {path}"))
}

fn skip_tool_tests() -> bool {
    strata_testkit::OptOut::Tools.is_set()
}

/// The verifier, or `None` (with a note) when a tool is missing and tool tests are
/// skipped; panics when one is missing otherwise.
fn verifier() -> Option<Verifier> {
    let verifier = Verifier::discover();
    for kind in KINDS {
        if let Some(message) = verifier.missing(kind) {
            if skip_tool_tests() {
                strata_testkit::skip_note(
                    strata_testkit::OptOut::Tools,
                    &format!("the Kolla tool test: {message}"),
                );
                return None;
            }
            panic!(
                "{message}\nrun scripts/install-test-deps.sh (or set STRATA_SKIP_TOOL_TESTS=1 to skip tool tests)"
            );
        }
    }
    Some(verifier)
}

fn write_all(root: &Path, files: &[RenderedFile]) {
    for f in files {
        let path = root.join(&f.path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, &f.content).expect("write");
    }
}

/// Write `files` under a fresh temporary directory and verify them all.
fn verify(verifier: &Verifier, files: &[RenderedFile]) -> Vec<Check> {
    let dir = tempfile::tempdir().expect("tempdir");
    write_all(dir.path(), files);
    let list: Vec<(String, FileKind)> = files.iter().map(|f| (f.path.clone(), f.kind)).collect();
    verifier.verify_dir(dir.path(), &list)
}

fn failures(checks: &[Check]) -> String {
    checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| {
            format!(
                "--- {} ({})\n$ {}\n{}\n",
                c.path, c.tool, c.command, c.output
            )
        })
        .collect()
}

/// Verify one file with content `content` as `kind`.
fn verify_text(verifier: &Verifier, name: &str, kind: FileKind, content: &str) -> Check {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    std::fs::write(&path, content).expect("write");
    verifier.verify_file(&path, kind)
}

/// `[section]` headers of an INI inventory with the lines under each.
fn sections(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            assert!(
                !out.contains_key(header),
                "section [{header}] appears twice"
            );
            out.insert(header.to_string(), Vec::new());
            current = Some(header.to_string());
            continue;
        }
        let section = current.as_ref().expect("line before any section");
        out.get_mut(section)
            .expect("section")
            .push(line.to_string());
    }
    out
}

/// The top-level `key: value` pairs of the flat globals.yml (values unparsed).
fn globals_pairs(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#') && *l != "---")
        .map(|l| {
            assert!(!l.starts_with(' '), "nested YAML in globals.yml: {l:?}");
            let (key, value) = l
                .split_once(": ")
                .unwrap_or_else(|| panic!("not `key: value`: {l:?}"));
            (key.to_string(), value.to_string())
        })
        .collect()
}

#[test]
fn snapshots() {
    let files = kolla::render(&strata_testkit::example_fleet()).expect("renders");
    insta::assert_snapshot!(
        "fra1_globals",
        file(&files, "fra1/kolla/globals.yml").content
    );
    insta::assert_snapshot!(
        "fra1_multinode",
        file(&files, "fra1/kolla/multinode").content
    );
    insta::assert_snapshot!(
        "fra1_ml2_conf",
        file(&files, "fra1/kolla/config/neutron/ml2_conf.ini").content
    );
}

/// Kolla leaves `network_vlan_ranges` empty; the override names the tenant VLAN range
/// on the physnet strata's tenant networks use, and globals.yml bridges that physnet.
#[test]
fn ml2_override_declares_the_tenant_vlan_range() {
    let fleet = strata_testkit::example_fleet();
    let files = kolla::render(&fleet).expect("renders");
    for dc in &fleet.dcs {
        let ml2 = file(
            &files,
            &format!("{}/kolla/config/neutron/ml2_conf.ini", dc.name),
        );
        let tenant = *dc.blueprint.vlans.tenant;
        let s = sections(&ml2.content);
        assert_eq!(
            s["ml2_type_vlan"],
            [format!(
                "network_vlan_ranges = {}:{}:{}",
                kolla::PHYSNET,
                tenant.first,
                tenant.last
            )]
        );
        for t in &fleet.tenants {
            for n in &t.networks {
                assert!(
                    (tenant.first..=tenant.last).contains(&u32::from(n.vlan)),
                    "{}-{}: VLAN {} outside the range",
                    t.name,
                    n.name,
                    n.vlan
                );
            }
        }
        let globals =
            globals_pairs(&file(&files, &format!("{}/kolla/globals.yml", dc.name)).content);
        assert!(globals.contains(&(
            "neutron_physical_networks".to_string(),
            format!("\"{}\"", kolla::PHYSNET)
        )));
    }
}

#[test]
fn deterministic() {
    let fleet = strata_testkit::example_fleet();
    let first = kolla::render(&fleet).expect("renders");
    assert_eq!(first, kolla::render(&fleet).expect("renders"));
    assert_eq!(
        first,
        kolla::render(&strata_testkit::example_fleet()).expect("renders")
    );
    let mut sorted = first.clone();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(first, sorted, "files are sorted by path");
}

#[test]
fn three_files_per_dc_of_the_right_kinds() {
    let fleet = strata_testkit::example_fleet();
    let files = kolla::render(&fleet).expect("renders");
    let expected: BTreeSet<(String, FileKind)> = fleet
        .dcs
        .iter()
        .flat_map(|dc| {
            [
                (
                    format!("{}/kolla/globals.yml", dc.name),
                    FileKind::KollaGlobals,
                ),
                (
                    format!("{}/kolla/multinode", dc.name),
                    FileKind::KollaInventory,
                ),
                (
                    format!("{}/kolla/config/neutron/ml2_conf.ini", dc.name),
                    FileKind::NeutronMl2,
                ),
            ]
        })
        .collect();
    let got: BTreeSet<(String, FileKind)> =
        files.iter().map(|f| (f.path.clone(), f.kind)).collect();
    assert_eq!(got, expected);
    assert_eq!(files.len(), expected.len());
}

#[test]
fn globals_settings() {
    let fleet = strata_testkit::example_fleet();
    let files = kolla::render(&fleet).expect("renders");
    for dc in &fleet.dcs {
        let path = format!("{}/kolla/globals.yml", dc.name);
        let pairs = globals_pairs(&file(&files, &path).content);
        let mut seen = BTreeSet::new();
        for (key, _) in &pairs {
            assert!(seen.insert(key.clone()), "{path}: duplicate key {key}");
            assert!(!key.contains("password"), "{path}: a secret key {key}");
        }
        let map: BTreeMap<&str, &str> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let os = &dc.openstack;
        let vip = os.internal_vip.expect("example DCs have an OpenStack VIP");
        let vip_name = &dc.vips.iter().find(|v| v.address == vip).expect("VIP").name;
        let expected = [
            ("kolla_base_distro", "\"ubuntu\"".to_string()),
            ("openstack_release", format!("\"{}\"", os.kolla_release)),
            ("openstack_region_name", format!("\"{}\"", os.region)),
            ("kolla_internal_vip_address", format!("\"{vip}\"")),
            (
                "kolla_internal_fqdn",
                format!("\"{vip_name}.{}.{}\"", dc.name, fleet.organisation.domain),
            ),
            ("enable_keepalived", "\"no\"".to_string()),
            ("enable_haproxy", "\"yes\"".to_string()),
            ("neutron_plugin_agent", "\"ovn\"".to_string()),
            ("enable_neutron_provider_networks", "\"yes\"".to_string()),
            ("nova_compute_virt_type", "\"kvm\"".to_string()),
            ("enable_cinder", "\"yes\"".to_string()),
            ("glance_backend_ceph", "\"yes\"".to_string()),
            ("cinder_backend_ceph", "\"yes\"".to_string()),
            ("nova_backend_ceph", "\"yes\"".to_string()),
            ("enable_prometheus", "\"no\"".to_string()),
        ];
        for (key, value) in expected {
            assert_eq!(map.get(key).copied(), Some(value.as_str()), "{path}: {key}");
        }
        // Extra vars override inventory variables: per-host interfaces must not be
        // shadowed from here.
        for key in [
            "network_interface",
            "api_interface",
            "neutron_external_interface",
            "tunnel_interface",
            "storage_interface",
        ] {
            assert!(
                !map.contains_key(key),
                "{path}: {key} would override the inventory"
            );
        }
    }
}

#[test]
fn inventory_structure() {
    let fleet = strata_testkit::example_fleet();
    let files = kolla::render(&fleet).expect("renders");
    for dc in &fleet.dcs {
        let path = format!("{}/kolla/multinode", dc.name);
        let text = &file(&files, &path).content;
        let sections = sections(text);
        let os = &dc.openstack;

        // Every group a `:children` section names is defined.
        let defined: BTreeSet<&str> = sections
            .keys()
            .map(|s| s.strip_suffix(":children").unwrap_or(s))
            .collect();
        for (section, lines) in &sections {
            if section.ends_with(":children") {
                for child in lines {
                    assert!(
                        defined.contains(child.as_str()),
                        "{path}: [{section}] names undefined group {child}"
                    );
                }
            }
        }
        for group in [
            "control",
            "network",
            "compute",
            "monitoring",
            "storage",
            "deployment",
        ] {
            assert!(sections.contains_key(group), "{path}: no [{group}]");
        }
        for group in [
            "baremetal",
            "tls-backend",
            "common",
            "loadbalancer",
            "mariadb",
            "rabbitmq",
            "memcached",
            "keystone",
            "glance",
            "nova",
            "neutron",
            "placement",
            "horizon",
            "cinder",
            "openvswitch",
            "ovn-controller",
            "ovn-database",
            "nova-api",
            "nova-conductor",
            "nova-scheduler",
            "nova-novncproxy",
            "neutron-server",
        ] {
            assert!(
                sections.contains_key(&format!("{group}:children")),
                "{path}: no [{group}:children]"
            );
        }
        assert_eq!(
            sections["loadbalancer:children"],
            ["control"],
            "{path}: HAProxy on the VIP holders"
        );
        assert_eq!(
            sections["deployment"],
            ["localhost ansible_connection=local"]
        );

        // Every host of the region's lists is in its group, by FQDN, with its
        // management address and interface.
        let groups: [(&str, Vec<&str>); 5] = [
            ("control", os.control.iter().map(String::as_str).collect()),
            ("network", os.network.iter().map(String::as_str).collect()),
            (
                "compute",
                os.compute.iter().map(|c| c.hostname.as_str()).collect(),
            ),
            ("storage", os.storage.iter().map(String::as_str).collect()),
            (
                "monitoring",
                os.monitoring.iter().map(String::as_str).collect(),
            ),
        ];
        for (group, hosts) in groups {
            assert_eq!(
                sections[group].len(),
                hosts.len(),
                "{path}: [{group}] host count"
            );
            for host in hosts {
                let (fqdn, interfaces, vm_index) =
                    match dc.machines.iter().find(|m| m.hostname == host) {
                        Some(m) => (&m.fqdn, &m.interfaces, None),
                        None => {
                            let vm = dc
                                .vms
                                .iter()
                                .find(|v| v.hostname == host)
                                .expect("host is a machine or VM");
                            let index = vm
                                .interfaces
                                .iter()
                                .position(|i| i.vlan == InfraVlan::Management);
                            (&vm.fqdn, &vm.interfaces, index)
                        }
                    };
                let line = sections[group]
                    .iter()
                    .find(|l| l.split_whitespace().next() == Some(fqdn.as_str()))
                    .unwrap_or_else(|| panic!("{path}: {fqdn} not in [{group}]"));
                let mgmt = interfaces
                    .iter()
                    .find(|i| i.vlan == InfraVlan::Management)
                    .expect("management interface");
                assert!(
                    line.contains(&format!(" ansible_host={} ", mgmt.address.addr())),
                    "{path}: {line}"
                );
                let interface = match vm_index {
                    Some(index) => format!("eth{index}"),
                    None => format!("bond0.{}", mgmt.vid),
                };
                assert_eq!(interface, mgmt.device, "the compiler's device name");
                assert!(
                    line.contains(&format!(
                        " network_interface={interface} api_interface={interface}"
                    )),
                    "{path}: {line}"
                );
                let external = matches!(group, "network" | "compute") && vm_index.is_none();
                assert_eq!(
                    line.contains(" neutron_external_interface=bond0"),
                    external,
                    "{path}: {line}"
                );
            }
        }
    }
}

/// The `ansible-inventory` program of the tools venv, if installed.
fn ansible_inventory() -> Option<PathBuf> {
    let venv = std::env::var_os("STRATA_TOOLS_VENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(strata_verify::DEFAULT_TOOLS_VENV));
    let program = venv.join("bin/ansible-inventory");
    program.is_file().then_some(program)
}

/// Every host of `group` in `ansible-inventory --list` JSON, through its children.
fn group_hosts(list: &serde_json::Value, group: &str) -> BTreeSet<String> {
    let mut hosts = BTreeSet::new();
    let Some(g) = list.get(group) else {
        return hosts;
    };
    for host in g
        .get("hosts")
        .and_then(|h| h.as_array())
        .into_iter()
        .flatten()
    {
        hosts.insert(host.as_str().expect("host name").to_string());
    }
    for child in g
        .get("children")
        .and_then(|h| h.as_array())
        .into_iter()
        .flatten()
    {
        hosts.extend(group_hosts(list, child.as_str().expect("group name")));
    }
    hosts
}

#[test]
fn ansible_inventory_sees_the_groups() {
    let Some(program) = ansible_inventory() else {
        if skip_tool_tests() {
            strata_testkit::skip_note(
                strata_testkit::OptOut::Tools,
                "the Kolla inventory tool test: ansible-inventory not found",
            );
            return;
        }
        panic!(
            "ansible-inventory not found; run scripts/install-test-deps.sh (or set STRATA_SKIP_TOOL_TESTS=1)"
        );
    };
    let fleet = strata_testkit::example_fleet();
    let files = kolla::render(&fleet).expect("renders");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ansible.cfg"), "").expect("ansible.cfg");
    for dc in &fleet.dcs {
        let inventory = dir.path().join(format!("{}.ini", dc.name));
        std::fs::write(
            &inventory,
            &file(&files, &format!("{}/kolla/multinode", dc.name)).content,
        )
        .expect("write");
        let output = std::process::Command::new(&program)
            .current_dir(dir.path())
            .env("ANSIBLE_CONFIG", dir.path().join("ansible.cfg"))
            .env("ANSIBLE_HOME", dir.path().join("home"))
            .env("ANSIBLE_LOCAL_TEMP", dir.path().join("tmp"))
            .env("ANSIBLE_INVENTORY_ENABLED", "ini")
            .env("ANSIBLE_INVENTORY_UNPARSED_FAILED", "True")
            .env("ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED", "True")
            .arg("-i")
            .arg(&inventory)
            .arg("--list")
            .output()
            .expect("run ansible-inventory");
        assert!(
            output.status.success(),
            "ansible-inventory failed for {}:\n{}",
            dc.name,
            String::from_utf8_lossy(&output.stderr)
        );
        let list: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
        let fqdn = |host: &str| {
            dc.machines
                .iter()
                .find(|m| m.hostname == host)
                .map(|m| m.fqdn.clone())
                .or_else(|| {
                    dc.vms
                        .iter()
                        .find(|v| v.hostname == host)
                        .map(|v| v.fqdn.clone())
                })
                .expect("machine or VM")
        };
        let os = &dc.openstack;
        let compute: BTreeSet<String> = os.compute.iter().map(|c| fqdn(&c.hostname)).collect();
        let control: BTreeSet<String> = os.control.iter().map(|h| fqdn(h)).collect();
        let network: BTreeSet<String> = os.network.iter().map(|h| fqdn(h)).collect();
        assert_eq!(group_hosts(&list, "compute"), compute, "{}", dc.name);
        assert_eq!(group_hosts(&list, "nova-api"), control, "{}", dc.name);
        assert_eq!(group_hosts(&list, "loadbalancer"), control, "{}", dc.name);
        assert_eq!(
            group_hosts(&list, "ovn-controller-network"),
            network,
            "{}",
            dc.name
        );
        assert_eq!(
            group_hosts(&list, "ovn-controller"),
            &compute | &network,
            "{}",
            dc.name
        );
        let hostvars = &list["_meta"]["hostvars"];
        for host in &compute {
            let vars = &hostvars[host.as_str()];
            assert_eq!(vars["neutron_external_interface"], "bond0", "{host}");
            assert!(
                vars["network_interface"]
                    .as_str()
                    .is_some_and(|i| i.starts_with("bond0.")),
                "{host}"
            );
        }
    }
}

#[test]
fn real_tools_accept_every_file() {
    let Some(verifier) = verifier() else { return };
    let files = kolla::render(&strata_testkit::example_fleet()).expect("renders");
    assert!(!files.is_empty());
    let checks = verify(&verifier, &files);
    assert_eq!(checks.len(), files.len());
    assert!(checks.iter().all(|c| c.ok), "{}", failures(&checks));
}

#[test]
fn real_tools_reject_broken_inventories() {
    let Some(verifier) = verifier() else { return };
    let files = kolla::render(&strata_testkit::example_fleet()).expect("renders");
    let good = &file(&files, "fra1/kolla/multinode").content;
    let broken = [
        (
            "children naming an undefined group",
            format!("{good}\n[compute:children]\nnosuchgroup\n"),
        ),
        (
            "malformed section header",
            good.replacen("[compute]", "[compute", 1),
        ),
        (
            "unknown section type",
            good.replacen("[nova-api:children]", "[nova-api:kids]", 1),
        ),
    ];
    for (what, text) in broken {
        assert_ne!(&text, good, "{what}: corruption did not apply");
        let check = verify_text(&verifier, "multinode", FileKind::KollaInventory, &text);
        assert!(!check.ok, "{what}: accepted:\n{}", check.output);
    }
}

#[test]
fn real_tools_reject_broken_globals() {
    let Some(verifier) = verifier() else { return };
    let files = kolla::render(&strata_testkit::example_fleet()).expect("renders");
    let good = &file(&files, "fra1/kolla/globals.yml").content;
    let as_list: String = good
        .lines()
        .map(|l| {
            if l.is_empty() || l.starts_with('#') || l == "---" {
                l.to_string()
            } else {
                format!("- {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let broken = [
        ("a list instead of a mapping", as_list),
        ("a duplicate key", format!("{good}enable_haproxy: \"no\"\n")),
        (
            "invalid YAML",
            good.replacen("enable_haproxy: \"yes\"", "enable_haproxy: \"yes", 1),
        ),
    ];
    for (what, text) in broken {
        assert_ne!(&text, good, "{what}: corruption did not apply");
        let check = verify_text(&verifier, "globals.yml", FileKind::KollaGlobals, &text);
        assert!(!check.ok, "{what}: accepted:\n{}", check.output);
    }
}

/// Odd but possible fleets: a DC without OpenStack hosts gets nothing; a VM in the
/// network group, a host without a management interface and a host in two groups
/// are written with explanatory comments and still parse.
#[test]
fn edge_cases() {
    let mut fleet: Fleet = strata_testkit::example_fleet();
    {
        let dc = &mut fleet.dcs[0];
        let os = &mut dc.openstack;
        os.control.clear();
        os.network.clear();
        os.compute.clear();
        os.storage.clear();
        os.monitoring.clear();
    }
    let empty = fleet.dcs[0].name.clone();
    {
        let dc = &mut fleet.dcs[1];
        let vm = dc.openstack.control[0].clone();
        dc.openstack.network.push(vm);
        let cmp = dc.openstack.compute[0].hostname.clone();
        let machine = dc
            .machines
            .iter_mut()
            .find(|m| m.hostname == cmp)
            .expect("machine");
        machine
            .interfaces
            .retain(|i| i.vlan != InfraVlan::Management);
        dc.openstack.internal_vip = None;
    }
    let files = kolla::render(&fleet).expect("renders");
    assert!(
        files
            .iter()
            .all(|f| !f.path.starts_with(&format!("{empty}/"))),
        "{empty} has no OpenStack"
    );
    let dc = &fleet.dcs[1];
    let inventory = &file(&files, &format!("{}/kolla/multinode", dc.name)).content;
    assert!(
        inventory.contains("a VM has no provider trunk NIC"),
        "{inventory}"
    );
    assert!(
        inventory.contains("no management VLAN interface"),
        "{inventory}"
    );
    let globals = &file(&files, &format!("{}/kolla/globals.yml", dc.name)).content;
    assert!(
        !globals.contains("kolla_internal_vip_address:"),
        "{globals}"
    );
    let Some(verifier) = verifier() else { return };
    let checks = verify(&verifier, &files);
    assert!(checks.iter().all(|c| c.ok), "{}", failures(&checks));
}
