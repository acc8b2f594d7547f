//! The day-2 automation most teams run, against the twin: the Ansible collections that
//! the `ansible` package ships (`community.proxmox`, `openstack.cloud`), unmodified,
//! through the playbooks `scripts/clients/ansible/proxmox.yml` and `openstack.yml`.
//!
//! Each playbook runs twice against a fresh twin, as a team checks a playbook for
//! idempotency: the first run converges (creates, updates, starts, snapshots, ...), the
//! second run asserts that no converge task reported a change and then tears everything
//! down (twice, the repeat changing nothing). Between the two, day-2 operations run on
//! each pass. The playbooks assert on what the modules return; this test fails with
//! the playbook's output when any task fails.
//!
//! Needs the Ansible venv (`scripts/install-test-deps.sh`, default `/opt/strata-ansible`,
//! or `$STRATA_ANSIBLE_VENV`). Set `STRATA_SKIP_CLIENT_TESTS=1` to skip; otherwise a
//! missing tool is a failure.
//!
//! The last tests pin, over plain HTTP and without Ansible, what the twin had to learn
//! for these modules: Neutron's security group rule API (create, show, delete, with
//! Neutron's conversions, validation and duplicate check) and Nova's
//! `GET /servers/{id}/os-security-groups`.

#[path = "openstack_support.rs"]
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use strata_twin::{DcSeed, FaultSpec, RunningTwin, SeedStorage, TwinOptions};
use support::Cloud;

/// The venv with the full `ansible` package: `$STRATA_ANSIBLE_VENV`, default
/// `/opt/strata-ansible` (what `scripts/install-test-deps.sh` builds).
fn ansible_venv() -> PathBuf {
    std::env::var_os("STRATA_ANSIBLE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/strata-ansible"))
}

fn skip(what: &str) -> bool {
    strata_testkit::opted_out(strata_testkit::OptOut::Clients, what)
}

/// `ansible-playbook` of the venv, whose python imports both collections and their
/// client libraries (a failure naming the install command otherwise).
fn ansible_playbook() -> PathBuf {
    let venv = ansible_venv();
    let playbook = venv.join("bin/ansible-playbook");
    let probe = std::process::Command::new(venv.join("bin/python"))
        .args([
            "-c",
            "import proxmoxer, openstack, ansible_collections.community.proxmox, ansible_collections.openstack.cloud",
        ])
        .output();
    match probe {
        Ok(o) if o.status.success() && playbook.exists() => playbook,
        _ => panic!(
            "{} lacks ansible-playbook, community.proxmox, openstack.cloud, proxmoxer or openstacksdk: \
             run scripts/install-test-deps.sh (or set STRATA_SKIP_CLIENT_TESTS=1)",
            venv.display()
        ),
    }
}

/// A twin of one DC: a Proxmox VE cluster of two nodes with a shared Ceph storage (the
/// cloud-init template lives there) and an OpenStack region, on the system clock (the
/// modules poll in wall-clock time).
async fn start_twin(seed: u64) -> RunningTwin {
    strata_twin::start(TwinOptions {
        dcs: vec![DcSeed {
            name: "fra1".into(),
            proxmox_nodes: vec!["fra1-pve1".into(), "fra1-pve2".into()],
            proxmox_storages: vec![SeedStorage {
                name: "ceph-vm".into(),
                kind: "rbd".into(),
                content: vec!["images".into()],
            }],
            ..DcSeed::default()
        }],
        listen: "127.0.0.1:0".parse::<SocketAddr>().expect("addr"),
        faults: FaultSpec::default(),
        latency_ms: 0,
        state_file: None,
        seed,
        timing: Default::default(),
    })
    .await
    .expect("start twin")
}

/// A scratch directory for one playbook: the twin's endpoints document (with
/// `clouds.yaml` and the CA beside it), an inventory of localhost run with the venv's
/// python, and Ansible's own state.
struct Workdir {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    endpoints: Value,
}

impl Workdir {
    fn new(twin: &RunningTwin) -> Workdir {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().to_path_buf();
        let path = dir.join("endpoints.json");
        twin.write_endpoints(&path).expect("endpoints");
        let endpoints: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read endpoints"))
                .expect("endpoints JSON");
        let python = ansible_venv().join("bin/python");
        std::fs::write(
            dir.join("inventory.yml"),
            format!(
                "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n      ansible_python_interpreter: {}\n",
                python.display()
            ),
        )
        .expect("inventory");
        // An empty configuration, so that none from the user or the system applies.
        std::fs::write(dir.join("ansible.cfg"), "[defaults]\n").expect("ansible.cfg");
        Workdir {
            _tmp: tmp,
            dir,
            endpoints,
        }
    }

    fn dc(&self) -> &Value {
        &self.endpoints["dcs"][0]
    }

    fn write_json(&self, name: &str, v: &Value) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, serde_json::to_string_pretty(v).expect("json")).expect("write");
        p
    }

    /// Run `ansible-playbook` on one of the repository's playbooks with the given extra
    /// vars files; the play recap's counts, or a failure with the whole output.
    async fn run(&self, playbook: &str, vars: &[&Path], what: &str) -> Recap {
        let book = strata_testkit::script(&format!("clients/ansible/{playbook}"));
        let mut cmd = tokio::process::Command::new(ansible_playbook());
        cmd.arg("-i")
            .arg(self.dir.join("inventory.yml"))
            .arg(&book)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        for v in vars {
            cmd.arg("-e").arg(format!("@{}", v.display()));
        }
        // Only what this test sets: no ansible.cfg, clouds, OS_* or PROXMOX_* settings
        // from the environment, no collections but those the package ships.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("ANSIBLE_") || k.starts_with("OS_") || k.starts_with("PROXMOX_") {
                cmd.env_remove(&k);
            }
        }
        let home = self.dir.join("ansible-home");
        cmd.env("ANSIBLE_HOME", &home)
            .env("ANSIBLE_LOCAL_TEMP", home.join("tmp"))
            .env("ANSIBLE_REMOTE_TEMP", home.join("tmp"))
            .env("ANSIBLE_COLLECTIONS_PATH", home.join("collections"))
            .env("ANSIBLE_CONFIG", self.dir.join("ansible.cfg"))
            .env("ANSIBLE_NOCOLOR", "1")
            // ansible-core refuses to run under a locale whose encoding is not UTF-8.
            .env("LANG", "C.UTF-8")
            .env("LC_ALL", "C.UTF-8")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
            .env("OS_CLIENT_CONFIG_FILE", self.dir.join("clouds.yaml"));
        let out = tokio::time::timeout(Duration::from_secs(300), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("{what} timed out"))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{what} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            out.status
        );
        let recap = Recap::parse(&stdout)
            .unwrap_or_else(|| panic!("{what}: no play recap for localhost:\n{stdout}"));
        eprintln!("{what}: {recap:?}");
        recap
    }
}

/// The counts of the play recap line for localhost.
#[derive(Debug, Default)]
struct Recap {
    ok: u32,
    changed: u32,
    failed: u32,
    skipped: u32,
    unreachable: u32,
}

impl Recap {
    fn parse(stdout: &str) -> Option<Recap> {
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with("localhost") && l.contains(" ok="))?;
        let mut r = Recap::default();
        for field in line.split_whitespace() {
            let Some((k, v)) = field.split_once('=') else {
                continue;
            };
            let Ok(v) = v.parse() else { continue };
            match k {
                "ok" => r.ok = v,
                "changed" => r.changed = v,
                "failed" => r.failed = v,
                "skipped" => r.skipped = v,
                "unreachable" => r.unreachable = v,
                _ => {}
            }
        }
        Some(r)
    }

    /// A clean run: every task ran or was skipped, none failed.
    fn assert_clean(&self, what: &str) {
        assert!(self.ok > 0, "{what}: {self:?}");
        assert_eq!((self.failed, self.unreachable), (0, 0), "{what}: {self:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn community_proxmox_manages_vms_idempotently() {
    if skip("the community.proxmox playbook") {
        return;
    }
    ansible_playbook();
    let twin = start_twin(21).await;
    let work = Workdir::new(&twin);
    let pve = &work.dc()["proxmox"];
    let url = url::Url::parse(pve["url"].as_str().expect("proxmox url")).expect("url");
    let (user, token) = pve["token_id"]
        .as_str()
        .and_then(|t| t.split_once('!'))
        .expect("token id USER!NAME");
    let vars = work.write_json(
        "proxmox-vars.json",
        &json!({
            "pve_host": url.host_str(),
            "pve_port": url.port(),
            "pve_user": user,
            "pve_token_id": token,
            "pve_token_secret": pve["token_secret"],
            "pve_ca_file": pve["ca_file"],
            "pve_password_user": pve["user"],
            "pve_password": pve["password"],
        }),
    );
    let second = work.write_json("second-run.json", &json!({"second_run": true}));

    let first = work
        .run("proxmox.yml", &[&vars], "proxmox.yml (first run)")
        .await;
    first.assert_clean("first run");
    // The teardown is the only part the first run skips.
    assert!(first.changed >= 10 && first.skipped > 0, "{first:?}");

    let again = work
        .run("proxmox.yml", &[&vars, &second], "proxmox.yml (second run)")
        .await;
    again.assert_clean("second run");
    assert_eq!(again.skipped, 0, "the second run tears down: {again:?}");
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_cloud_manages_servers_idempotently() {
    if skip("the openstack.cloud playbook") {
        return;
    }
    ansible_playbook();
    let twin = start_twin(22).await;
    let work = Workdir::new(&twin);
    let cloud = work.dc()["name"].as_str().expect("dc name").to_string();
    let vars = work.write_json("openstack-vars.json", &json!({"os_cloud": cloud}));
    let second = work.write_json("second-run.json", &json!({"second_run": true}));

    let first = work
        .run("openstack.yml", &[&vars], "openstack.yml (first run)")
        .await;
    first.assert_clean("first run");
    assert!(first.changed >= 10 && first.skipped > 0, "{first:?}");

    let again = work
        .run(
            "openstack.yml",
            &[&vars, &second],
            "openstack.yml (second run)",
        )
        .await;
    again.assert_clean("second run");
    assert_eq!(again.skipped, 0, "the second run tears down: {again:?}");
    twin.shutdown().await.expect("shutdown");
}

// ---------------------------------------------------------------------------------------
// The twin's behaviour these modules rely on (no Ansible needed)

async fn security_group(c: &Cloud, name: &str) -> String {
    let r = c
        .neutron(
            "POST",
            "/security-groups",
            Some(json!({"security_group": {"name": name, "description": "d"}})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["security_group"]["id"]
        .as_str()
        .expect("id")
        .to_string()
}

async fn add_rule(c: &Cloud, rule: Value) -> support::Resp {
    c.neutron(
        "POST",
        "/security-group-rules",
        Some(json!({"security_group_rule": rule})),
    )
    .await
}

#[tokio::test]
async fn neutron_security_group_rules_are_created_checked_and_deleted() {
    let twin = support::start(&["fra1"]).await;
    let c = Cloud::login(&twin, "fra1").await;
    let sg = security_group(&c, "web").await;

    let r = add_rule(&c, json!({"security_group_id": sg, "direction": "ingress", "protocol": "TCP", "port_range_min": 22, "port_range_max": "22", "remote_ip_prefix": "0.0.0.0/0", "description": "ssh"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let ssh = r.body["security_group_rule"].clone();
    let ssh_id = ssh["id"].as_str().expect("id").to_string();
    assert_eq!(ssh["protocol"], "tcp");
    assert_eq!(ssh["ethertype"], "IPv4");
    assert_eq!(
        (ssh["port_range_min"].clone(), ssh["port_range_max"].clone()),
        (json!(22), json!(22))
    );
    assert_eq!(ssh["remote_ip_prefix"], "0.0.0.0/0");
    assert_eq!(ssh["normalized_cidr"], "0.0.0.0/0");
    assert_eq!(ssh["security_group_id"], sg.as_str());
    assert_eq!(ssh["project_id"], c.project_id.as_str());
    assert_eq!(ssh["description"], "ssh");

    // The same rule again, also when spelt differently (no prefix is any address, 6 is
    // TCP): Neutron's duplicate check names the existing rule.
    for dup in [
        json!({"security_group_id": sg, "direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22}),
        json!({"security_group_id": sg, "direction": "ingress", "protocol": "6", "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0"}),
    ] {
        let r = add_rule(&c, dup).await;
        assert_eq!(r.status, 409, "{}", r.body);
        assert_eq!(r.body["NeutronError"]["type"], "SecurityGroupRuleExists");
        assert_eq!(
            r.body["NeutronError"]["message"],
            format!("Security group rule already exists. Rule id is {ssh_id}.")
        );
    }

    // Addresses keep their host bits and get a netmask; the network is normalized_cidr.
    let r = add_rule(&c, json!({"security_group_id": sg, "direction": "ingress", "protocol": "udp", "port_range_min": 53, "port_range_max": 53, "remote_ip_prefix": "10.0.0.5/24"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.body["security_group_rule"]["remote_ip_prefix"],
        "10.0.0.5/24"
    );
    assert_eq!(
        r.body["security_group_rule"]["normalized_cidr"],
        "10.0.0.0/24"
    );
    let r = add_rule(&c, json!({"security_group_id": sg, "direction": "egress", "protocol": "tcp", "port_range_min": 1, "port_range_max": 65535, "remote_ip_prefix": "10.1.2.3"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let all_ports = &r.body["security_group_rule"];
    assert_eq!(all_ports["remote_ip_prefix"], "10.1.2.3/32");
    // The whole port range is stored as no range.
    assert!(
        all_ports["port_range_min"].is_null() && all_ports["port_range_max"].is_null(),
        "{all_ports}"
    );
    let r = add_rule(&c, json!({"security_group_id": sg, "direction": "ingress", "protocol": "icmp", "ethertype": "ipv6"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["security_group_rule"]["protocol"], "ipv6-icmp");
    assert_eq!(r.body["security_group_rule"]["ethertype"], "IPv6");

    // What Neutron refuses.
    for (rule, status, kind) in [
        (
            json!({"security_group_id": sg, "protocol": "tcp"}),
            400,
            "HTTPBadRequest",
        ),
        (json!({"direction": "ingress"}), 400, "HTTPBadRequest"),
        (
            json!({"security_group_id": sg, "direction": "in"}),
            400,
            "HTTPBadRequest",
        ),
        (
            json!({"security_group_id": sg, "direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 79}),
            400,
            "SecurityGroupInvalidPortRange",
        ),
        (
            json!({"security_group_id": sg, "direction": "ingress", "protocol": "tcp", "port_range_min": 80}),
            400,
            "SecurityGroupInvalidPortRange",
        ),
        (
            json!({"security_group_id": sg, "direction": "ingress", "protocol": "tcp", "port_range_min": 0, "port_range_max": 80}),
            400,
            "SecurityGroupInvalidPortValue",
        ),
        (
            json!({"security_group_id": sg, "direction": "ingress", "protocol": "tcp", "port_range_min": 70000, "port_range_max": 70000}),
            400,
            "SecurityGroupInvalidPortValue",
        ),
        (
            json!({"security_group_id": sg, "direction": "ingress", "port_range_min": 22, "port_range_max": 22}),
            400,
            "SecurityGroupProtocolRequiredWithPorts",
        ),
        (
            json!({"security_group_id": sg, "direction": "ingress", "protocol": "gre", "port_range_min": 22, "port_range_max": 22}),
            400,
            "SecurityGroupInvalidProtocolForPort",
        ),
        (
            json!({"security_group_id": sg, "direction": "ingress", "protocol": "icmp", "port_range_min": 300}),
            400,
            "SecurityGroupInvalidIcmpValue",
        ),
        (
            json!({"security_group_id": sg, "direction": "ingress", "protocol": "icmp", "port_range_max": 0}),
            400,
            "SecurityGroupMissingIcmpType",
        ),
        (
            json!({"security_group_id": sg, "direction": "ingress", "protocol": "bogus"}),
            400,
            "SecurityGroupRuleInvalidProtocol",
        ),
        (
            json!({"security_group_id": sg, "direction": "ingress", "protocol": "256"}),
            400,
            "SecurityGroupRuleInvalidProtocol",
        ),
        (
            json!({"security_group_id": sg, "direction": "ingress", "ethertype": "IPv5"}),
            400,
            "SecurityGroupRuleInvalidEtherType",
        ),
        (
            json!({"security_group_id": sg, "direction": "ingress", "ethertype": "IPv6", "remote_ip_prefix": "0.0.0.0/0"}),
            400,
            "SecurityGroupRuleParameterConflict",
        ),
        (
            json!({"security_group_id": sg, "direction": "ingress", "protocol": "ipv6-icmp"}),
            400,
            "SecurityGroupEthertypeConflictWithProtocol",
        ),
        (
            json!({"security_group_id": sg, "direction": "ingress", "remote_ip_prefix": "10.0.0.0/33"}),
            400,
            "InvalidCIDR",
        ),
        (
            json!({"security_group_id": sg, "direction": "ingress", "remote_ip_prefix": "10.0.0.0/8", "remote_group_id": sg}),
            400,
            "SecurityGroupMultipleRemoteEntites",
        ),
        (
            json!({"security_group_id": "no-such-group", "direction": "ingress"}),
            404,
            "SecurityGroupNotFound",
        ),
    ] {
        let r = add_rule(&c, rule.clone()).await;
        assert_eq!(r.status, status, "{rule} -> {}", r.body);
        assert_eq!(r.body["NeutronError"]["type"], kind, "{rule} -> {}", r.body);
    }

    // The group carries its rules (the two default egress rules and the four above).
    let r = c
        .neutron("GET", &format!("/security-groups/{sg}"), None)
        .await;
    let rules = r.body["security_group"]["security_group_rules"]
        .as_array()
        .expect("rules");
    assert_eq!(rules.len(), 6, "{}", r.body);
    assert!(rules.iter().any(|x| x["id"] == ssh_id.as_str()));
    let r = c
        .neutron(
            "GET",
            &format!("/security-group-rules?security_group_id={sg}&protocol=tcp&direction=ingress"),
            None,
        )
        .await;
    assert_eq!(
        r.body["security_group_rules"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.body
    );

    let r = c
        .neutron("GET", &format!("/security-group-rules/{ssh_id}"), None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["security_group_rule"], ssh);
    let r = c
        .neutron("DELETE", &format!("/security-group-rules/{ssh_id}"), None)
        .await;
    assert_eq!(r.status, 204);
    for method in ["GET", "DELETE"] {
        let r = c
            .neutron(method, &format!("/security-group-rules/{ssh_id}"), None)
            .await;
        assert_eq!(r.status, 404, "{method}");
        assert_eq!(r.body["NeutronError"]["type"], "SecurityGroupRuleNotFound");
    }
    // Deleted, the same rule can be added again.
    let r = add_rule(&c, json!({"security_group_id": sg, "direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn nova_lists_a_servers_security_groups() {
    let twin = support::start(&["fra1"]).await;
    let c = Cloud::login(&twin, "fra1").await;
    let sg = security_group(&c, "web").await;
    for rule in [
        json!({"security_group_id": sg, "direction": "ingress", "protocol": "tcp", "port_range_min": 443, "port_range_max": 443, "remote_ip_prefix": "10.0.0.0/8"}),
        json!({"security_group_id": sg, "direction": "ingress", "protocol": "udp"}),
        json!({"security_group_id": sg, "direction": "ingress", "protocol": "icmp", "remote_group_id": sg}),
    ] {
        let r = add_rule(&c, rule).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let r = c
        .neutron(
            "POST",
            "/networks",
            Some(json!({"network": {"name": "tenant"}})),
        )
        .await;
    let net = r.body["network"]["id"].as_str().expect("net").to_string();
    let r = c
        .neutron(
            "POST",
            "/subnets",
            Some(json!({"subnet": {"network_id": net, "ip_version": 4, "cidr": "10.30.0.0/24"}})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = c.glance("GET", "/images?name=cirros", None).await;
    let image = r.body["images"][0]["id"]
        .as_str()
        .expect("cirros")
        .to_string();
    let r = c
        .nova("POST", "/servers", "2.1", Some(json!({"server": {"name": "vm", "flavorRef": "1", "imageRef": image, "networks": [{"uuid": net}], "security_groups": [{"name": "web"}, {"name": "default"}]}})))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["server"]["id"].as_str().expect("id").to_string();
    c.wait_server(&id, &["ACTIVE"]).await;

    let r = c
        .nova(
            "GET",
            &format!("/servers/{id}/os-security-groups"),
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let groups = r.body["security_groups"].as_array().expect("groups");
    // Sorted by project and name.
    let names: Vec<&str> = groups.iter().filter_map(|g| g["name"].as_str()).collect();
    assert_eq!(names, ["default", "web"]);
    let web = &groups[1];
    assert_eq!(web["id"], sg.as_str());
    assert_eq!(web["tenant_id"], c.project_id.as_str());
    assert_eq!(web["description"], "d");
    // Ingress rules only, in Nova's proxy format.
    let rules = web["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 3, "{web}");
    let by_proto = |p: &str| {
        rules
            .iter()
            .find(|r| r["ip_protocol"] == p)
            .expect(p)
            .clone()
    };
    let https = by_proto("tcp");
    assert_eq!(
        (https["from_port"].clone(), https["to_port"].clone()),
        (json!(443), json!(443))
    );
    assert_eq!(https["ip_range"], json!({"cidr": "10.0.0.0/8"}));
    assert_eq!(https["group"], json!({}));
    assert_eq!(https["parent_group_id"], sg.as_str());
    let udp = by_proto("udp");
    assert_eq!(
        (udp["from_port"].clone(), udp["to_port"].clone()),
        (json!(1), json!(65535))
    );
    assert_eq!(udp["ip_range"], json!({"cidr": "0.0.0.0/0"}));
    let icmp = by_proto("icmp");
    assert_eq!(
        (icmp["from_port"].clone(), icmp["to_port"].clone()),
        (json!(-1), json!(-1))
    );
    assert_eq!(
        icmp["group"],
        json!({"name": "web", "tenant_id": c.project_id})
    );
    assert_eq!(icmp["ip_range"], json!({}));

    let r = c
        .nova(
            "GET",
            "/servers/00000000-0000-0000-0000-000000000000/os-security-groups",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    twin.shutdown().await.expect("shutdown");
}
