//! End to end, as a user runs it: `strata twin` in the background, then `strata plan`,
//! `apply` and `drift` against it, with real third-party clients (proxmoxer, the
//! openstack CLI, python-libmaas) counting what exists.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;

fn python() -> Option<PathBuf> {
    let p = strata_testkit::venv_bin("python");
    p.exists().then_some(p)
}

fn skip_clients() -> bool {
    strata_testkit::OptOut::Clients.is_set()
}

/// Run a Python snippet with the tools venv; `ENDPOINTS` is set to the endpoints file.
fn py(code: &str, endpoints: &Path) -> Output {
    let python = python().expect("the tools venv (run scripts/install-test-deps.sh)");
    Command::new(python)
        .arg("-c")
        .arg(code)
        .env("ENDPOINTS", endpoints)
        .output()
        .expect("python")
}

const PVE_VMS: &str = r#"
import json, os, sys
from urllib.parse import urlparse
from proxmoxer import ProxmoxAPI
doc = json.load(open(os.environ["ENDPOINTS"]))
out = {}
for dc in doc["dcs"]:
    p = dc["proxmox"]; u = urlparse(p["url"])
    user, token = p["token_id"].split("!")
    api = ProxmoxAPI(u.hostname, port=u.port, user=user, token_name=token, token_value=p["token_secret"], verify_ssl=p["ca_file"])
    out[dc["name"]] = [v.get("name") for v in api.cluster.resources.get(type="vm")]
print(json.dumps(out))
"#;

fn vm_names(endpoints: &Path) -> serde_json::Value {
    let o = py(PVE_VMS, endpoints);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).expect("json")
}

/// Count with python-libmaas and the openstack CLI too: one machine per MAC and per
/// serial in MAAS, one flavor and one network per name in OpenStack.
const OTHER_CLIENTS: &str = r#"
import asyncio, collections, json, os, subprocess, sys
asyncio.set_event_loop(asyncio.new_event_loop())
import maas.client
doc = json.load(open(os.environ["ENDPOINTS"]))
out = {}
for dc in doc["dcs"]:
    c = maas.client.connect(dc["maas"]["url"], apikey=dc["maas"]["api_key"])
    macs = collections.Counter()
    for m in c.machines.list():
        if m.boot_interface is not None:
            macs[m.boot_interface.mac_address] += 1
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=os.path.join(os.path.dirname(os.environ["ENDPOINTS"]), "clouds.yaml"))
    osc = os.path.join(os.path.dirname(sys.executable), "openstack")
    def names(*args):
        r = subprocess.run([osc, "--os-cloud", dc["name"], *args, "-f", "json"], env=env, check=True, capture_output=True, text=True)
        return collections.Counter(x["Name"] for x in json.loads(r.stdout))
    flavors = names("flavor", "list", "--all")
    networks = names("network", "list")
    out[dc["name"]] = {
        "duplicate_macs": [k for k, v in macs.items() if v > 1],
        "machines": sum(macs.values()),
        "duplicate_flavors": [k for k, v in flavors.items() if v > 1],
        "duplicate_networks": [k for k, v in networks.items() if v > 1],
    }
print(json.dumps(out))
"#;

fn assert_no_duplicates_anywhere(endpoints: &Path) {
    assert_no_duplicate_vms(endpoints);
    let o = py(OTHER_CLIENTS, endpoints);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    for (dc, r) in v.as_object().expect("object") {
        assert_eq!(r["duplicate_macs"], serde_json::json!([]), "{dc}: {r}");
        assert_eq!(r["duplicate_flavors"], serde_json::json!([]), "{dc}: {r}");
        assert_eq!(r["duplicate_networks"], serde_json::json!([]), "{dc}: {r}");
        // The example inventory has 13 machines per DC; none was enlisted twice.
        assert_eq!(r["machines"], 13, "{dc}: {r}");
    }
}

fn assert_no_duplicate_vms(endpoints: &Path) {
    let names = vm_names(endpoints);
    for (dc, list) in names.as_object().expect("object") {
        let mut v: Vec<&str> = list
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|x| x.as_str())
            .collect();
        let n = v.len();
        v.sort();
        v.dedup();
        assert_eq!(n, v.len(), "duplicate VM names in {dc}: {list}");
    }
}

#[test]
fn plan_apply_converges_and_drift_names_the_changed_field() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fleet = fleet_copy(tmp.path());
    // The spec is a Git repository, as in real use: apply must leave it clean.
    git(&fleet, &["init", "-q"]);
    git(&fleet, &["add", "-A"]);
    git(&fleet, &["commit", "-q", "-m", "fleet"]);
    let twin = TwinProcess::start(tmp.path(), &[]);
    let ep = twin.endpoints.to_str().expect("utf8");
    let f = fleet.to_str().expect("utf8");

    let plan = run(&["plan", f, "--targets", ep, "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan));
    assert!(
        String::from_utf8_lossy(&plan.stdout).contains("to create"),
        "{}",
        text(&plan)
    );

    let apply = run(&["apply", f, "--targets", ep, "--auto-approve"]);
    assert!(apply.status.success(), "{}", text(&apply));
    assert!(fleet.join(".strata/fleet.journal").exists());
    assert!(!fleet.join("fleet.journal").exists());
    let status = git(&fleet, &["status", "--porcelain", "--untracked-files=all"]);
    assert_eq!(status, "", "apply left files in the spec's repository");

    let again = run(&[
        "plan",
        f,
        "--targets",
        ep,
        "--detailed-exitcode",
        "-o",
        "json",
    ]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));

    let drift = run(&["drift", f, "--targets", ep]);
    assert_eq!(drift.status.code(), Some(0), "{}", text(&drift));

    // The Proxmox nodes under MAAS and the control plane (preinstalled) and the
    // compute node already in production were registered as deployed: the twin's
    // BMCs saw no power action on them. The hosts MAAS deployed were driven through
    // their BMCs, at the addresses strata reserved for them.
    let summary: serde_json::Value = serde_json::from_slice(
        &Command::new("curl")
            .arg("-s")
            .arg(format!("{}dcs/fra1/maas/summary", twin.admin()))
            .output()
            .expect("curl")
            .stdout,
    )
    .expect("summary json");
    let actions = &summary["power_actions"];
    for running in ["FRA1R01U01", "FRA1R01U02", "FRA1R02U01", "FRA1R02U05"] {
        assert_eq!(actions[running], 0, "{running} was power-cycled: {summary}");
    }
    assert!(
        actions["FRA1R01U04"].as_u64().unwrap_or(0) >= 2,
        "{summary}"
    );
    assert!(
        summary["reserved_ips"].as_u64().unwrap_or(0) >= 13,
        "{summary}"
    );
    // The GPU host (and only it) booted its deployed OS with the kernel options of
    // its profile's tag: IOMMU in pass-through mode and its 1 GiB pages.
    let kernel = summary["kernel_opts"].as_object().expect("kernel_opts");
    assert_eq!(
        kernel.keys().collect::<Vec<_>>(),
        vec!["FRA1R02U20"],
        "{summary}"
    );
    let opts = kernel["FRA1R02U20"].as_str().unwrap_or("");
    assert!(
        opts.contains("iommu=pt") && opts.contains("hugepagesz=1G hugepages="),
        "{opts}"
    );

    if skip_clients() {
        strata_testkit::skip_note(
            strata_testkit::OptOut::Clients,
            "the proxmoxer part of the drift test",
        );
        return;
    }
    // The team quotas are Keystone unified limits (Kolla 2026.2), as the openstack CLI
    // lists them: ml-research's 16 GPUs of fra1's H100 class, and its 20 servers.
    if !skip_clients() {
        let limits = py(
            r#"
import json, os, subprocess, sys
env = dict(os.environ, OS_CLIENT_CONFIG_FILE=os.path.join(os.path.dirname(os.environ["ENDPOINTS"]), "clouds.yaml"))
osc = os.path.join(os.path.dirname(sys.executable), "openstack")
def run(*args):
    r = subprocess.run([osc, "--os-cloud", "fra1", *args, "-f", "json"], env=env, check=True, capture_output=True, text=True)
    return json.loads(r.stdout)
projects = {p["ID"]: p["Name"] for p in run("project", "list")}
out = {"registered": {r["Resource Name"]: r["Default Limit"] for r in run("registered", "limit", "list")},
       "limits": {projects.get(l["Project ID"], "?") + ":" + l["Resource Name"]: l["Resource Limit"] for l in run("limit", "list")},
       "nova_system_roles": sorted(a["Role"] for a in run("role", "assignment", "list", "--system", "all", "--user", "nova", "--user-domain", "Default", "--names"))}
print(json.dumps(out))
"#,
            &twin.endpoints,
        );
        assert!(limits.status.success(), "{}", text(&limits));
        let v: serde_json::Value = serde_json::from_slice(&limits.stdout).expect("json");
        assert_eq!(v["registered"]["class:CUSTOM_PCI_10DE_2330"], 8, "{v:#}");
        assert_eq!(
            v["limits"]["ml-research:class:CUSTOM_PCI_10DE_2330"], 16,
            "{v:#}"
        );
        assert_eq!(v["limits"]["ml-research:servers"], 20, "{v:#}");
        assert_eq!(
            v["limits"]["platform:class:CUSTOM_PCI_10DE_2330"], 8,
            "{v:#}"
        );
        // Nova can read them: its service user holds the system reader role.
        assert!(
            v["nova_system_roles"]
                .as_array()
                .is_some_and(|r| r.iter().any(|x| x == "reader")),
            "{v:#}"
        );
    }

    // Change a VM's memory through proxmoxer, behind strata's back.
    let change = py(
        r#"
import json, os
from urllib.parse import urlparse
from proxmoxer import ProxmoxAPI
doc = json.load(open(os.environ["ENDPOINTS"]))
p = doc["dcs"][0]["proxmox"]; u = urlparse(p["url"])
user, token = p["token_id"].split("!")
api = ProxmoxAPI(u.hostname, port=u.port, user=user, token_name=token, token_value=p["token_secret"], verify_ssl=p["ca_file"])
vm = next(v for v in api.cluster.resources.get(type="vm") if v.get("name") == doc["dcs"][0]["name"] + "-prometheus")
conf = api.nodes(vm["node"]).qemu(vm["vmid"]).config.get()
api.nodes(vm["node"]).qemu(vm["vmid"]).config.put(memory=4096)
print(json.dumps({"name": vm["name"], "ipconfig0": conf.get("ipconfig0"),
    "nameserver": conf.get("nameserver"), "searchdomain": conf.get("searchdomain")}))
"#,
        &twin.endpoints,
    );
    assert!(change.status.success(), "{}", text(&change));
    let seen: serde_json::Value = serde_json::from_slice(&change.stdout).expect("json");
    let vm = seen["name"].as_str().expect("name").to_string();
    // The VM got its address, default route and resolvers through cloud-init, as
    // proxmoxer reads them back (the monitoring VM sits on the management VLAN only).
    let ipconfig = seen["ipconfig0"].as_str().unwrap_or_default();
    assert!(
        ipconfig.starts_with("ip=10.") && ipconfig.contains("/22,gw=10."),
        "{seen}"
    );
    assert_eq!(
        seen["nameserver"]
            .as_str()
            .unwrap_or_default()
            .split(' ')
            .count(),
        3,
        "{seen}"
    );
    assert!(
        seen["searchdomain"]
            .as_str()
            .is_some_and(|d| d.ends_with(".dc.example.net")),
        "{seen}"
    );
    let drift = run(&["drift", f, "--targets", ep, "-o", "json"]);
    assert_eq!(drift.status.code(), Some(2), "{}", text(&drift));
    let v: serde_json::Value = serde_json::from_slice(&drift.stdout).expect("json");
    let changed = v["changed"].as_array().expect("changed");
    assert!(
        changed.iter().any(|c| c["resource"]
            .as_str()
            .is_some_and(|r| r.ends_with(&format!("/vm/{vm}")))
            && c["field"] == "memory"
            && c["actual"] == 4096),
        "{v:#}"
    );
    // The next apply puts it back.
    let fix = run(&["apply", f, "--targets", ep, "--auto-approve"]);
    assert!(fix.status.success(), "{}", text(&fix));
    assert_eq!(run(&["drift", f, "--targets", ep]).status.code(), Some(0));
    assert_no_duplicate_vms(&twin.endpoints);
}

#[test]
fn apply_killed_at_random_points_converges_without_duplicates() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fleet = fleet_copy(tmp.path());
    let twin = TwinProcess::start(tmp.path(), &["--latency-ms", "5"]);
    let ep = twin.endpoints.to_str().expect("utf8");
    let f = fleet.to_str().expect("utf8");
    // Deterministic "random" kill points spread over an apply.
    for (i, ms) in [700u64, 1900, 300, 3100].iter().enumerate() {
        let mut child = strata()
            .args(["apply", f, "--targets", ep, "--auto-approve"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn apply");
        std::thread::sleep(Duration::from_millis(*ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        eprintln!("killed apply #{i} after {ms} ms");
    }
    let apply = run(&["apply", f, "--targets", ep, "--auto-approve"]);
    assert!(apply.status.success(), "{}", text(&apply));
    let again = run(&["plan", f, "--targets", ep, "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    if skip_clients() {
        return;
    }
    assert_no_duplicates_anywhere(&twin.endpoints);
    let counters: serde_json::Value = serde_json::from_slice(
        &Command::new("curl")
            .arg("-s")
            .arg(format!("{}counters", twin.admin()))
            .output()
            .expect("curl")
            .stdout,
    )
    .unwrap_or_default();
    assert!(counters["total"].as_u64().unwrap_or(0) > 0);
}

#[test]
fn apply_converges_through_injected_faults() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fleet = fleet_copy(tmp.path());
    let twin = TwinProcess::start(
        tmp.path(),
        &[
            "--faults",
            "5xx=0.1,429=0.05,timeout=0.02,timeout_ms=3000",
            "--seed",
            "42",
        ],
    );
    let ep = twin.endpoints.to_str().expect("utf8");
    let f = fleet.to_str().expect("utf8");
    // Retries with backoff, and re-observing rounds for what an ambiguous answer left
    // failed (a controller's requeue), absorb the faults: one apply converges. At 10 %
    // 5xx on ~3,500 calls, three rounds were occasionally not enough for one step.
    let apply = run(&[
        "apply",
        f,
        "--targets",
        ep,
        "--auto-approve",
        "--max-rounds",
        "5",
    ]);
    assert!(
        apply.status.success(),
        "apply did not converge through faults:\n{}",
        text(&apply)
    );
    // Faults off for a clean final check.
    let status = Command::new("curl")
        .args([
            "-s",
            "-X",
            "PUT",
            "-H",
            "content-type: application/json",
            "-d",
            "{}",
        ])
        .arg(format!("{}faults", twin.admin()))
        .status()
        .expect("curl");
    assert!(status.success());
    let again = run(&["plan", f, "--targets", ep, "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    if !skip_clients() {
        assert_no_duplicates_anywhere(&twin.endpoints);
    }
}

#[test]
fn the_blast_radius_guard_refuses_mass_deletion() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fleet = fleet_copy(tmp.path());
    let twin = TwinProcess::start(tmp.path(), &[]);
    let ep = twin.endpoints.to_str().expect("utf8");
    let f = fleet.to_str().expect("utf8");
    let apply = run(&["apply", f, "--targets", ep, "--auto-approve"]);
    assert!(apply.status.success(), "{}", text(&apply));
    // Drop the CI runners, the monitoring VMs and every tenant network from the spec:
    // a plan that deletes a fifth of each DC's owned objects.
    let vms = std::fs::read_to_string(fleet.join("vms.yaml")).expect("vms.yaml");
    let kept: String = vms
        .lines()
        .filter(|l| !l.contains("role: ci-runner") && !l.contains("role: monitoring"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(fleet.join("vms.yaml"), kept).expect("write");
    std::fs::write(fleet.join("tenants.yaml"), "tenants: []\n").expect("write");
    let teams = std::fs::read_to_string(fleet.join("teams.yaml")).expect("teams.yaml");
    let teams: String = teams
        .lines()
        .filter(|l| !l.trim_start().starts_with("tenants:"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(fleet.join("teams.yaml"), teams).expect("write");
    let refused = run(&["apply", f, "--targets", ep, "--auto-approve"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("max-destroy-percent"),
        "{}",
        text(&refused)
    );
    let allowed = run(&[
        "apply",
        f,
        "--targets",
        ep,
        "--auto-approve",
        "--max-destroy-percent",
        "100",
    ]);
    assert!(allowed.status.success(), "{}", text(&allowed));
}

#[test]
fn plan_fails_on_a_secret_apply_would_need_and_reads_files_beside_the_spec() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fleet = fleet_copy(tmp.path());
    // fra1's BMC password from a file, relative to the spec directory.
    let inv = fleet.join("inventory/fra1.yaml");
    let text_before = std::fs::read_to_string(&inv).expect("inventory");
    std::fs::write(
        &inv,
        text_before.replace("{ env: BMC_PASSWORD_FRA1 }", "{ file: secrets/fra1-bmc }"),
    )
    .expect("write");
    let twin = TwinProcess::start(tmp.path(), &[]);
    let ep = twin.endpoints.to_str().expect("utf8");
    let f = fleet.to_str().expect("utf8");

    // Missing file and unset variable: plan fails, naming each reference and where
    // it is needed, and prints no plan.
    let plan = strata()
        .args(["plan", f, "--targets", ep])
        .env_remove("BMC_PASSWORD_AMS1")
        .output()
        .expect("run strata");
    let out = text(&plan);
    assert_eq!(plan.status.code(), Some(1), "{out}");
    assert!(out.contains("file:secrets/fra1-bmc"), "{out}");
    assert!(out.contains("env:BMC_PASSWORD_AMS1"), "{out}");
    assert!(
        out.contains("environment variable BMC_PASSWORD_AMS1 is not set"),
        "{out}"
    );
    assert!(
        out.contains("fra1/machine/") && out.contains("ams1/machine/"),
        "{out}"
    );
    assert!(!out.contains("waw1-bmc-secret"), "{out}");
    assert!(plan.stdout.is_empty(), "{out}");

    // With the file beside the spec (strata runs from elsewhere): the plan stands.
    std::fs::create_dir_all(fleet.join("secrets")).expect("mkdir");
    std::fs::write(fleet.join("secrets/fra1-bmc"), "fra1-from-file\n").expect("write");
    let plan = run(&["plan", f, "--targets", ep, "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan));
    assert!(!text(&plan).contains("fra1-from-file"));
}

#[test]
fn a_saved_plan_applies_exactly_and_is_refused_once_stale_or_edited() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fleet = fleet_copy(tmp.path());
    let twin = TwinProcess::start(tmp.path(), &[]);
    let ep = twin.endpoints.to_str().expect("utf8");
    let f = fleet.to_str().expect("utf8");
    let saved = tmp.path().join("fresh.plan.json");
    let s = saved.to_str().expect("utf8");
    let stale = tmp.path().join("stale.plan.json");
    let st = stale.to_str().expect("utf8");

    // Two plans of the fresh twin: same steps.
    for file in [s, st] {
        let plan = run(&[
            "plan",
            f,
            "--targets",
            ep,
            "--out",
            file,
            "--detailed-exitcode",
        ]);
        assert_eq!(plan.status.code(), Some(2), "{}", text(&plan));
    }
    // The file holds no secret value, only references, and says what it is.
    let body = std::fs::read_to_string(&saved).expect("plan file");
    assert!(body.contains("\"format\": \"strata-plan/1\""), "{body}");
    for secret in ["fra1-bmc-secret", "ams1-bmc-secret", "waw1-bmc-secret"] {
        assert!(!body.contains(secret), "the plan file holds {secret}");
    }

    // An edited plan file is refused before anything is observed.
    let edited = tmp.path().join("edited.plan.json");
    std::fs::write(&edited, body.replacen("\"memory\"", "\"memory_mb\"", 1)).expect("write");
    let out = run(&["apply", edited.to_str().expect("utf8"), "--targets", ep]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("changed after it was written"),
        "{}",
        text(&out)
    );

    // Applying the saved plan needs no confirmation (it was reviewed) and converges.
    let apply = run(&["apply", s, "--targets", ep]);
    assert!(apply.status.success(), "{}", text(&apply));
    let again = run(&["plan", f, "--targets", ep, "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));

    // The other plan was made before that apply: the world has changed since.
    let out = run(&["apply", st, "--targets", ep]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains("refusing to apply") && msg.contains("no longer planned"),
        "{msg}"
    );
    assert!(msg.contains("--out"), "says how to make a new plan: {msg}");
}

/// Through proxmoxer with the twin's administrator token, what the README's `pveum`
/// commands do in every DC: the StrataProvisioner role, a user and a
/// privilege-separated token with it on `/`. Writes an endpoints file that uses those
/// tokens and prints its path.
const MINIMAL_TOKENS: &str = r#"
import json, os
from urllib.parse import urlparse
from proxmoxer import ProxmoxAPI
ROLE = "Datastore.AllocateSpace,Datastore.Audit,SDN.Use,Sys.Audit,Sys.Console,Sys.Modify,VM.Allocate,VM.Audit,VM.Clone,VM.Config.CPU,VM.Config.Cloudinit,VM.Config.Disk,VM.Config.Memory,VM.Config.Network,VM.Config.Options,VM.PowerMgmt"
path = os.environ["ENDPOINTS"]
doc = json.load(open(path))
for dc in doc["dcs"]:
    p = dc["proxmox"]; u = urlparse(p["url"])
    user, token = p["token_id"].split("!")
    api = ProxmoxAPI(u.hostname, port=u.port, user=user, token_name=token, token_value=p["token_secret"], verify_ssl=p["ca_file"])
    api.access.roles.post(roleid="StrataProvisioner", privs=ROLE)
    api.access.users.post(userid="provisioner@pve")
    t = api.access.users("provisioner@pve").token("strata").post(privsep=1)
    api.access.acl.put(path="/", users="provisioner@pve", roles="StrataProvisioner")
    api.access.acl.put(path="/", tokens="provisioner@pve!strata", roles="StrataProvisioner")
    p["token_id"] = t["full-tokenid"]; p["token_secret"] = t["value"]
out = os.path.join(os.path.dirname(path), "endpoints-minimal.json")
json.dump(doc, open(out, "w"))
print(out)
"#;

#[test]
fn the_example_fleet_converges_with_the_documented_minimal_proxmox_role() {
    if skip_clients() {
        strata_testkit::skip_note(
            strata_testkit::OptOut::Clients,
            "the minimal Proxmox role test (its tokens are made with proxmoxer)",
        );
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let fleet = fleet_copy(tmp.path());
    let twin = TwinProcess::start(tmp.path(), &[]);
    let made = py(MINIMAL_TOKENS, &twin.endpoints);
    assert!(made.status.success(), "{}", text(&made));
    let ep = String::from_utf8_lossy(&made.stdout).trim().to_string();
    let f = fleet.to_str().expect("utf8");
    let apply = run(&["apply", f, "--targets", &ep, "--auto-approve"]);
    assert!(apply.status.success(), "{}", text(&apply));
    let again = run(&["plan", f, "--targets", &ep, "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_no_duplicate_vms(&twin.endpoints);
}

/// MAAS holds each deployed machine's network and disks (curtin wrote them at
/// deploy). A design change to either shows in the plan per path, and apply refuses to pretend it changed
/// the host: the step says it takes a redeploy, the rest of the apply goes on.
#[test]
fn a_deployed_machines_network_or_raid_change_is_planned_per_path_and_needs_a_redeploy() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fleet = fleet_copy(tmp.path());
    let twin = TwinProcess::start(tmp.path(), &[]);
    let ep = twin.endpoints.to_str().expect("utf8");
    let f = fleet.to_str().expect("utf8");
    let apply = run(&["apply", f, "--targets", ep, "--auto-approve"]);
    assert!(apply.status.success(), "{}", text(&apply));
    let again = run(&["plan", f, "--targets", ep, "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));

    let spec = std::fs::read_to_string(fleet.join("fleet.yaml")).expect("fleet.yaml");
    std::fs::write(
        fleet.join("fleet.yaml"),
        spec.replace("underlay: 9216", "underlay: 9100"),
    )
    .expect("write");
    // And the GPU hosts' root array becomes RAID-0.
    let hw = std::fs::read_to_string(fleet.join("hardware.yaml")).expect("hardware.yaml");
    let gpu_root = "{ name: md0, level: raid1, members: [nvme0n1, nvme1n1], mount: / }";
    assert!(hw.contains(gpu_root), "the example's GPU profile changed");
    std::fs::write(
        fleet.join("hardware.yaml"),
        hw.replace(gpu_root, &gpu_root.replace("raid1", "raid0")),
    )
    .expect("write");
    let plan = run(&["plan", f, "--targets", ep, "-o", "json"]);
    assert!(plan.status.success(), "{}", text(&plan));
    let v: serde_json::Value = serde_json::from_slice(&plan.stdout).expect("plan json");
    let steps = v["steps"].as_array().expect("steps");
    let mtu_changes: Vec<&serde_json::Value> = steps
        .iter()
        .filter(|s| {
            s["id"]["kind"] == "machine"
                || s["id"].as_str().is_some_and(|i| i.contains("/machine/"))
        })
        .flat_map(|s| s["changes"].as_array().into_iter().flatten())
        .filter(|c| {
            c["field"]
                .as_str()
                .is_some_and(|f| f.starts_with("network.") && f.ends_with(".mtu"))
        })
        .collect();
    assert!(!mtu_changes.is_empty(), "{v:#}");
    assert!(
        mtu_changes
            .iter()
            .all(|c| c["old"] == "9216" && c["new"] == "9100"),
        "{mtu_changes:#?}"
    );
    let level_changes: Vec<&serde_json::Value> = steps
        .iter()
        .flat_map(|s| s["changes"].as_array().into_iter().flatten())
        .filter(|c| c["field"] == "storage.md0.level")
        .collect();
    assert!(!level_changes.is_empty(), "{v:#}");
    assert!(
        level_changes
            .iter()
            .all(|c| c["old"] == "raid-1" && c["new"] == "raid-0"),
        "{level_changes:#?}"
    );
    let refused = run(&["apply", f, "--targets", ep, "--auto-approve"]);
    assert!(!refused.status.success(), "{}", text(&refused));
    let out = text(&refused);
    assert!(
        out.contains("redeploy") && out.contains(".mtu: 9216 → 9100"),
        "{out}"
    );
    assert!(
        out.contains("its storage (") && out.contains("md0.level: raid-1 → raid-0"),
        "{out}"
    );
}

/// Proof that a deployed machine comes up as designed: after apply, what MAAS holds
/// for each machine it deployed (read back through python-libmaas: what curtin gets)
/// has the same bond, VLAN devices, MTUs, addresses and default gateway as the netplan
/// file strata renders for it, for every role of the example fleet — including the
/// VLANs the MAAS controllers registered untagged on fabrics of their own, which the
/// VLAN steps moved onto the hosts' fabric.
#[test]
fn maas_holds_the_network_each_machine_netplan_describes() {
    if skip_clients() {
        strata_testkit::skip_note(
            strata_testkit::OptOut::Clients,
            "the MAAS/netplan comparison",
        );
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let fleet = fleet_copy(tmp.path());
    let twin = TwinProcess::start(tmp.path(), &[]);
    let ep = twin.endpoints.to_str().expect("utf8");
    let f = fleet.to_str().expect("utf8");
    let apply = run(&["apply", f, "--targets", ep, "--auto-approve"]);
    assert!(apply.status.success(), "{}", text(&apply));
    let out = tmp.path().join("render");
    let render = run(&["render", f, "--out", out.to_str().expect("utf8")]);
    assert!(render.status.success(), "{}", text(&render));
    let python = python().expect("the tools venv (run scripts/install-test-deps.sh)");
    let o = Command::new(python)
        .arg(root().join("scripts/clients/maas_netplan_compare.py"))
        .arg(&twin.endpoints)
        .arg(&out)
        .output()
        .expect("python");
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");

    let example = strata_testkit::example_fleet();
    let mut roles = std::collections::BTreeSet::new();
    for dc in &example.dcs {
        for m in dc
            .machines
            .iter()
            .filter(|m| !m.running && m.role != strata_spec::MachineRole::Proxmox)
        {
            let c = &v["compared"][&m.hostname];
            assert_eq!(c["status"], "Deployed", "{}: {c}", m.hostname);
            assert_eq!(c["mismatch"], serde_json::json!([]), "{}: {c}", m.hostname);
            assert_eq!(
                c["only_netplan"],
                serde_json::json!([]),
                "{}: {c}",
                m.hostname
            );
            let gw = &v["gateways"][&m.hostname];
            assert!(!gw[0].is_null(), "{}: {gw}", m.hostname);
            assert_eq!(gw[0], gw[1], "{}: {gw}", m.hostname);
            roles.insert(m.role.as_str());
        }
    }
    // Every role MAAS deploys with netplan was compared.
    assert!(roles.len() >= 3, "{roles:?}");
}

/// Raw MAAS API calls (python's standard library, OAuth 1 PLAINTEXT as MAAS takes it)
/// against the first DC: `call(method, path, form)`.
const MAAS_HTTP: &str = r#"
import json, os, time, uuid, urllib.parse, urllib.request
doc = json.load(open(os.environ["ENDPOINTS"]))
maas = doc["dcs"][0]["maas"]
ck, tk, ts = maas["api_key"].split(":")
base = maas["url"].rstrip("/") + "/api/2.0/"
def call(method, path, form=None):
    auth = ('OAuth oauth_version="1.0", oauth_signature_method="PLAINTEXT", '
            f'oauth_consumer_key="{ck}", oauth_token="{tk}", oauth_signature="&{ts}", '
            f'oauth_nonce="{uuid.uuid4().hex}", oauth_timestamp="{int(time.time())}"')
    data = urllib.parse.urlencode(form or {}, doseq=True).encode() if method != "GET" else None
    req = urllib.request.Request(base + path, data=data, method=method, headers={"Authorization": auth})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")
def machine(serial):
    for m in call("GET", "machines/"):
        if (m.get("hardware_info") or {}).get("system_serial") == serial:
            return m
    raise SystemExit(f"no machine {serial}")
"#;

/// Release a deployed machine, give it MAAS's flat layout and its bond another MTU,
/// as someone working around strata would; print its system id.
const MAAS_FLATTEN: &str = r#"
m = machine(os.environ["SERIAL"])
sid = m["system_id"]
call("POST", f"machines/{sid}/?op=release")
for _ in range(600):
    if call("GET", f"machines/{sid}/")["status_name"] == "Ready":
        break
    time.sleep(0.1)
call("POST", f"machines/{sid}/?op=set_storage_layout", {"storage_layout": "flat"})
bond = next(i for i in call("GET", f"nodes/{sid}/interfaces/") if i["type"] == "bond")
call("PUT", f"nodes/{sid}/interfaces/{bond['id']}/", {"mtu": "1500"})
print(sid)
"#;

/// What MAAS holds for the first DC's machines' storage, read through python-libmaas
/// (what curtin gets): per hostname, its RAIDs with their member disks and the
/// filesystem on each, and the boot disk.
const LIBMAAS_STORAGE: &str = r#"
import asyncio, json, os
asyncio.set_event_loop(asyncio.new_event_loop())
import maas.client
doc = json.load(open(os.environ["ENDPOINTS"]))
c = maas.client.connect(doc["dcs"][0]["maas"]["url"], apikey=doc["dcs"][0]["maas"]["api_key"])
out = {}
for m in c.machines.list():
    names = {d.id: d.name for d in m.block_devices}
    raids = []
    for r in m.raids:
        r.refresh()  # the machine listing holds references only
        members = []
        for d in r.devices:
            if type(d).__name__ == "Partition":
                members.append(names.get(d.block_device.id))
            else:
                members.append(d.name)
        fs = r.virtual_device.filesystem
        raids.append({
            "name": r.name,
            "level": r.level.value,
            "members": sorted(members),
            "fstype": fs.fstype if fs else None,
            "mount": fs.mount_point if fs else None,
        })
    boot = m.boot_disk.name if m.boot_disk else None
    efi = [
        p.filesystem.mount_point
        for d in m.block_devices if d.name == boot
        for p in d.partitions if p.filesystem and p.filesystem.fstype == "fat32"
    ]
    out[m.hostname] = {"status": m.status_name, "raids": raids, "boot_disk": boot, "efi": efi}
print(json.dumps(out))
"#;

fn libmaas_storage(endpoints: &Path) -> serde_json::Value {
    let o = py(LIBMAAS_STORAGE, endpoints);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).expect("json")
}

/// The RAIDs a machine's profile declares, as the libmaas read shows them.
fn profile_raids(m: &strata_fleet::Machine) -> serde_json::Value {
    let example = strata_testkit::example_fleet();
    let p = example.profile(&m.profile).expect("profile");
    serde_json::Value::Array(
        p.raid
            .iter()
            .map(|a| {
                let mut members: Vec<String> = a.members.iter().map(|m| m.value.clone()).collect();
                members.sort();
                serde_json::json!({
                    "name": a.name,
                    "level": a.level.maas_name(),
                    "members": members,
                    "fstype": a.filesystem().map(|f| f.as_str()),
                    "mount": a.mount.as_ref().map(|m| m.value.clone()),
                })
            })
            .collect(),
    )
}

/// Proof that a deployed machine's disks are as designed: after apply, every machine
/// MAAS deployed holds its profile's RAID arrays (members, level, filesystem, mount
/// point; the boot disk is the root array's first member), read back through
/// python-libmaas. A machine released and given another disk layout and bond MTU behind
/// strata's back is drift per path, and the next apply rebuilds the design and deploys
/// it again.
#[test]
fn maas_holds_each_machines_raid_and_a_changed_raid_is_drift_that_apply_repairs() {
    if skip_clients() {
        strata_testkit::skip_note(strata_testkit::OptOut::Clients, "the MAAS storage proof");
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let fleet = fleet_copy(tmp.path());
    let twin = TwinProcess::start(tmp.path(), &[]);
    let ep = twin.endpoints.to_str().expect("utf8");
    let f = fleet.to_str().expect("utf8");
    let apply = run(&["apply", f, "--targets", ep, "--auto-approve"]);
    assert!(apply.status.success(), "{}", text(&apply));

    let example = strata_testkit::example_fleet();
    let dc = &example.dcs[0];
    let held = libmaas_storage(&twin.endpoints);
    let mut checked = 0;
    for m in dc.machines.iter().filter(|m| !m.running) {
        let h = &held[&m.hostname];
        assert_eq!(h["status"], "Deployed", "{}: {h}", m.hostname);
        let want = profile_raids(m);
        assert_eq!(h["raids"], want, "{}: {h}", m.hostname);
        let root_first = want
            .as_array()
            .and_then(|a| a.iter().find(|r| r["mount"] == "/"))
            .map(|r| r["members"][0].clone());
        if let Some(first) = root_first {
            assert_eq!(h["boot_disk"], first, "{}: {h}", m.hostname);
            assert_eq!(
                h["efi"],
                serde_json::json!(["/boot/efi"]),
                "{}: {h}",
                m.hostname
            );
        }
        checked += 1;
    }
    assert!(checked >= 2, "{held:#}");

    // Someone releases a deployed machine and gives it MAAS's flat layout.
    let serial = dc
        .machines
        .iter()
        .find(|m| !m.running && m.role == strata_spec::MachineRole::OpenstackCompute)
        .map(|m| m.serial.clone())
        .expect("a compute machine MAAS deploys");
    let code = format!("{MAAS_HTTP}{MAAS_FLATTEN}");
    let o = Command::new(python().expect("venv"))
        .arg("-c")
        .arg(&code)
        .env("ENDPOINTS", &twin.endpoints)
        .env("SERIAL", &serial)
        .output()
        .expect("python");
    assert!(o.status.success(), "{}", text(&o));

    let drift = run(&["drift", f, "--targets", ep, "-o", "json"]);
    assert_eq!(drift.status.code(), Some(2), "{}", text(&drift));
    let v: serde_json::Value = serde_json::from_slice(&drift.stdout).expect("json");
    let fields: Vec<&str> = v["changed"]
        .as_array()
        .expect("changed")
        .iter()
        .filter(|c| c["resource"].as_str().is_some_and(|r| r.ends_with(&serial)))
        .filter_map(|c| c["field"].as_str())
        .collect();
    for path in [
        "storage.md0.level",
        "storage.md0.members",
        "storage.md0.mount",
        "network.bond0.mtu",
        "status",
    ] {
        assert!(fields.contains(&path), "{path} not in {fields:?}: {v:#}");
    }

    let fix = run(&["apply", f, "--targets", ep, "--auto-approve"]);
    assert!(fix.status.success(), "{}", text(&fix));
    assert_eq!(run(&["drift", f, "--targets", ep]).status.code(), Some(0));
    let again = libmaas_storage(&twin.endpoints);
    let m = dc
        .machines
        .iter()
        .find(|m| m.serial == serial)
        .expect("machine");
    assert_eq!(again[&m.hostname]["raids"], profile_raids(m), "{again:#}");
    assert_eq!(again[&m.hostname]["status"], "Deployed", "{again:#}");
}

/// Machines whose hardware differs from their profile are quarantined, never
/// deployed: a GPU that trained at x8, an old BIOS, a failed commissioning. The
/// apply names each deviation; MAAS holds the quarantine tag and the reason; every
/// other machine deploys.
#[test]
fn machines_that_differ_from_their_profile_are_quarantined_with_the_reason() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fleet = fleet_copy(tmp.path());
    let twin = TwinProcess::start(
        tmp.path(),
        &[
            "--hardware-fault",
            "FRA1R02U20=gpu-x8",
            "--hardware-fault",
            "FRA1R01U12=old-bios",
            "--hardware-fault",
            "FRA1R01U10=commissioning-fails",
        ],
    );
    let ep = twin.endpoints.to_str().expect("utf8");
    let f = fleet.to_str().expect("utf8");
    let apply = run(&[
        "apply",
        f,
        "--targets",
        ep,
        "--auto-approve",
        "--max-rounds",
        "1",
    ]);
    let out = text(&apply);
    assert_eq!(apply.status.code(), Some(1), "{out}");
    for needle in [
        "fra1/machine/FRA1R02U20: machine fra1-r02-cmp20",
        "link: expected PCIe Gen5 x16, found PCIe Gen5 x8",
        "fra1/machine/FRA1R01U12",
        "bios version: expected Dell Inc. 1.9.2, found Dell Inc. 0.9.0",
        "fra1/machine/FRA1R01U10",
        "commissioning: expected to pass",
        "is quarantined, not deployed (tagged strata-quarantine)",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    // Nothing else failed: the other DCs and the other machines went ahead.
    let failed: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("FAILED @") || l.contains("  FAILED "))
        .collect();
    assert_eq!(failed.len(), 3, "{failed:#?}");
    if python().is_none() || skip_clients() {
        return;
    }
    let o = py(
        r#"
import asyncio, json, os
asyncio.set_event_loop(asyncio.new_event_loop())
import maas.client
doc = json.load(open(os.environ["ENDPOINTS"]))
dc = next(d for d in doc["dcs"] if d["name"] == "fra1")
c = maas.client.connect(dc["maas"]["url"], apikey=dc["maas"]["api_key"])
out = {}
for m in c.machines.list():
    out[m.hostname] = {"tags": [t.name for t in m.tags], "status": m.status.name, "description": m._data.get("description")}
print(json.dumps(out))
"#,
        &twin.endpoints,
    );
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let gpu = &v["fra1-r02-cmp20"];
    assert!(
        gpu["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|x| x == "strata-quarantine")),
        "{gpu}"
    );
    assert!(
        gpu["description"]
            .as_str()
            .is_some_and(|d| d.contains("found PCIe Gen5 x8")),
        "{gpu}"
    );
    assert_ne!(gpu["status"], "DEPLOYED", "{gpu}");
    let ok = &v["fra1-r01-cmp04"];
    assert_eq!(ok["status"], "DEPLOYED", "{ok}");
    assert!(
        !ok["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|x| x == "strata-quarantine")),
        "{ok}"
    );
}
