//! Phase `requests`: self-service as a team meets it, on the demo's twin.
//!
//! A member's VM request becomes a running VM on the twin's Proxmox (seen through the
//! Proxmox API with the twin's own credentials), a GPU request a server ACTIVE in the
//! team's project whose port's security group admits exactly the team's tenant
//! subnets (seen through Nova and Neutron), a metal request a Deployed spare (one the
//! test enlists in MAAS and tags with the profile's name, as a DC team would); the
//! quota refusal says what is left; a large GPU request waits for an operator's
//! approval; a viewer cannot request, another team neither sees nor releases; the
//! releases remove everything; `strata request vm --wait` works and its expiry
//! releases it; every mutation is in the audit log.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Demo;
use super::common::{strata, text};

/// The twin's endpoints file the demo wrote.
fn endpoints(d: &Demo) -> Value {
    let path = d.dir.path().join("twin").join("endpoints.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("endpoints.json")).expect("json")
}

fn dc_of<'a>(ep: &'a Value, dc: &str) -> &'a Value {
    ep["dcs"]
        .as_array()
        .expect("dcs")
        .iter()
        .find(|x| x["name"] == dc)
        .unwrap_or_else(|| panic!("no {dc} in the endpoints file"))
}

/// curl with `args`: (status, body).
fn curl(args: &[String]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "30", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or(Value::Null)
}

/// The VMs of a DC's Proxmox cluster, through its API with the twin's token.
fn proxmox_vms(ep: &Value, dc: &str) -> Vec<Value> {
    let p = &dc_of(ep, dc)["proxmox"];
    let (code, body) = curl(&[
        "--cacert".into(),
        p["ca_file"].as_str().expect("ca_file").into(),
        "-H".into(),
        format!(
            "Authorization: PVEAPIToken={}={}",
            p["token_id"].as_str().expect("token_id"),
            p["token_secret"].as_str().expect("token_secret")
        ),
        format!(
            "{}/api2/json/cluster/resources?type=vm",
            p["url"].as_str().expect("url")
        ),
    ]);
    assert_eq!(code, 200, "Proxmox /cluster/resources: {body}");
    json_of(&body)["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A MAAS API call (OAuth 1.0 PLAINTEXT with the twin's key): (status, JSON).
fn maas(ep: &Value, dc: &str, method: &str, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let m = &dc_of(ep, dc)["maas"];
    let key = m["api_key"].as_str().expect("api_key");
    let mut parts = key.splitn(3, ':');
    let (ck, tk, secret) = (
        parts.next().expect("ck"),
        parts.next().expect("tk"),
        parts.next().expect("secret"),
    );
    let nonce = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_nanos()
    );
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    let mut args: Vec<String> = vec![
        "-X".into(),
        method.into(),
        "-H".into(),
        format!(
            "Authorization: OAuth oauth_version=\"1.0\", oauth_signature_method=\"PLAINTEXT\", oauth_consumer_key=\"{ck}\", oauth_token=\"{tk}\", oauth_signature=\"%26{secret}\", oauth_nonce=\"{nonce}\", oauth_timestamp=\"{ts}\""
        ),
    ];
    for (k, v) in form {
        args.push("--data-urlencode".into());
        args.push(format!("{k}={v}"));
    }
    args.push(format!("{}api/2.0/{path}", m["url"].as_str().expect("url")));
    let (code, body) = curl(&args);
    (code, json_of(&body))
}

/// An admin session on a DC's OpenStack: (token, compute URL, network URL).
fn openstack(ep: &Value, dc: &str) -> (String, String, String) {
    let o = &dc_of(ep, dc)["openstack"];
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": o["username"], "domain": {"name": o["user_domain"]}, "password": o["password"]}}},
        "scope": {"project": {"name": o["project"], "domain": {"name": o["project_domain"]}}},
    }});
    let out = Command::new("curl")
        .args([
            "-s",
            "-i",
            "--max-time",
            "30",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
        ])
        .arg(body.to_string())
        .arg(format!(
            "{}/auth/tokens",
            o["auth_url"].as_str().expect("auth_url")
        ))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("a response");
    let token = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("x-subject-token")
                .then(|| v.trim().to_string())
        })
        .expect("X-Subject-Token");
    let catalog = json_of(rest)["token"]["catalog"].clone();
    let url = |kind: &str| {
        catalog
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["type"] == kind)
            .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
            .find(|e| e["interface"] == "public")
            .and_then(|e| {
                e["url"]
                    .as_str()
                    .map(|u| u.trim_end_matches('/').to_string())
            })
            .unwrap_or_else(|| panic!("no {kind} endpoint"))
    };
    (token, url("compute"), url("network"))
}

fn os_get(token: &str, url: &str) -> (u16, Value) {
    let (code, body) = curl(&[
        "-H".into(),
        format!("X-Auth-Token: {token}"),
        "-H".into(),
        "OpenStack-API-Version: compute 2.61".into(),
        url.into(),
    ]);
    (code, json_of(&body))
}

/// Poll request `id` (as `token`) until its state is `want` and the workflow that
/// brought it there has finished (`ready`: its workflow, `released`: its release
/// workflow); the request.
fn wait_state(d: &Demo, token: &str, id: &str, want: &str, within: Duration) -> Value {
    let start = Instant::now();
    let workflow = if want == "released" {
        "release_workflow"
    } else {
        "workflow"
    };
    loop {
        let (code, v) = d.call("GET", &format!("/api/v1/requests/{id}"), Some(token), None);
        assert_eq!(code, 200, "{v}");
        if v["state"] == want && (want == "approval" || v[workflow]["state"] == "done") {
            return v;
        }
        assert!(
            !matches!(v["state"].as_str(), Some("failed" | "release-failed")),
            "request {id} failed while waiting for {want}: {v}"
        );
        assert!(
            start.elapsed() < within,
            "request {id} is not {want} after {within:?}: {v}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn post(d: &Demo, token: &str, body: Value) -> (u16, Value) {
    d.call("POST", "/api/v1/requests", Some(token), Some(body))
}

fn accepted(d: &Demo, token: &str, body: Value) -> String {
    let (code, v) = post(d, token, body.clone());
    assert_eq!(code, 202, "{body} → {v}");
    assert!(v["workflow"].as_str().is_some_and(|w| !w.is_empty()), "{v}");
    v["id"].as_str().expect("id").to_string()
}

pub fn run(d: &mut Demo) {
    let started = Instant::now();
    let admin = d.admin.clone();
    let ep = endpoints(d);
    let member = d.token(&admin, "ml-research", "member", None).0;
    let operator = d.token(&admin, "ml-research", "operator", None).0;
    let viewer = d.token(&admin, "ml-research", "viewer", None).0;
    let other = d.token(&admin, "platform", "member", None).0;

    // --- Refusals before anything is made.
    let vm_body = json!({"kind": "vm", "team": "ml-research", "name": "notebook", "cores": 2, "memory_mib": 2048, "disk_gb": 8});
    let (code, v) = post(d, &viewer, vm_body.clone());
    assert_eq!(
        (code, v["code"].as_str()),
        (403, Some("forbidden")),
        "a viewer cannot request: {v}"
    );
    let (code, v) = post(d, &other, vm_body.clone());
    assert_eq!(
        code, 403,
        "another team's member cannot request for ml-research: {v}"
    );
    for (bad, why) in [
        (
            json!({"kind": "vm", "team": "ml-research", "name": "x", "cores": 2}),
            "memory_mib",
        ),
        (
            json!({"kind": "gpu", "team": "ml-research", "name": "x", "flavor": "gp1.small"}),
            "not a GPU flavor",
        ),
        (
            json!({"kind": "metal", "team": "ml-research", "name": "x", "profile": "nope"}),
            "hv-std",
        ),
        (
            json!({"kind": "vm", "team": "ml-research", "name": "x", "cores": 1, "memory_mib": 512, "networks": ["prod-web"]}),
            "not one of team ml-research's",
        ),
        (
            json!({"kind": "vm", "team": "ml-research", "name": "x", "cores": 1, "memory_mib": 512, "expires_in_s": 5, "expires_at": "2099-01-01T00:00:00Z"}),
            "not both",
        ),
    ] {
        let (code, v) = post(d, &member, bad.clone());
        assert_eq!(
            (code, v["code"].as_str()),
            (422, Some("invalid-request")),
            "{bad}: {v}"
        );
        assert!(
            v["detail"].as_str().is_some_and(|x| x.contains(why)),
            "{bad}: {v}"
        );
    }
    let (code, v) = post(
        d,
        &member,
        json!({"kind": "vm", "team": "ml-research", "name": "x", "cpus": 1}),
    );
    assert_eq!((code, v["code"].as_str()), (400, Some("bad-body")), "{v}");

    // --- A spare machine: enlisted in waw1's MAAS, commissioned, tagged hv-std.
    let (code, m) = maas(
        &ep,
        "waw1",
        "POST",
        "machines/",
        &[
            ("mac_addresses", "52:54:ee:00:00:01"),
            ("power_type", "manual"),
            ("hostname", "spare-hv1"),
        ],
    );
    assert_eq!(code, 200, "enlist a spare: {m}");
    let spare = m["system_id"].as_str().expect("system_id").to_string();
    let (code, t) = maas(&ep, "waw1", "POST", "tags/", &[("name", "hv-std")]);
    assert_eq!(code, 200, "tag: {t}");
    let start = Instant::now();
    loop {
        let (_, m) = maas(&ep, "waw1", "GET", &format!("machines/{spare}/"), &[]);
        if m["status_name"] == "Ready" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the spare did not commission: {m}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, t) = maas(
        &ep,
        "waw1",
        "POST",
        "tags/hv-std/?op=update_nodes",
        &[("add", &spare)],
    );
    assert_eq!(code, 200, "{t}");

    // --- The approval threshold is the fleet admins' (a member may read it).
    let (code, p) = d.call("GET", "/api/v1/requests/policy", Some(&member), None);
    assert_eq!((code, p["approval_gpus"].as_i64()), (200, Some(8)), "{p}");
    let (code, _) = d.call(
        "PUT",
        "/api/v1/requests/policy",
        Some(&operator),
        Some(json!({"approval_gpus": 4})),
    );
    assert_eq!(code, 403);
    let (code, p) = d.call(
        "PUT",
        "/api/v1/requests/policy",
        Some(&admin),
        Some(json!({"approval_gpus": 4})),
    );
    assert_eq!(code, 200, "{p}");

    // --- Four requests at once: a VM, a GPU instance, a machine, and 8 GPUs that wait.
    let vm = accepted(d, &member, vm_body);
    let gpu = accepted(
        d,
        &member,
        json!({"kind": "gpu", "team": "ml-research", "name": "train", "flavor": "g1.h100x1"}),
    );
    let metal = accepted(
        d,
        &other,
        json!({"kind": "metal", "team": "platform", "name": "bench", "profile": "hv-std"}),
    );
    let (code, big) = post(
        d,
        &member,
        json!({"kind": "gpu", "team": "ml-research", "name": "big", "gpu_model": "NVIDIA H100 SXM5 80GB", "gpus": 8}),
    );
    assert_eq!(code, 202, "{big}");
    assert_eq!(
        (big["state"].as_str(), big["approval_required"].as_bool()),
        (Some("approval"), Some(true)),
        "{big}"
    );
    let big = big["id"].as_str().expect("id").to_string();

    // The quota counts every live request, the waiting one too: 1 + 8 of 16 GPUs.
    let (code, v) = post(
        d,
        &member,
        json!({"kind": "gpu", "team": "ml-research", "name": "more", "flavor": "g1.h100x8"}),
    );
    assert_eq!(
        (code, v["code"].as_str()),
        (422, Some("quota-exceeded")),
        "{v}"
    );
    assert_eq!(
        v["detail"].as_str(),
        Some("team ml-research has 7 of 16 GPUs left; the request needs 8"),
        "{v}"
    );

    // The large one waits: its first step is held; a member cannot approve it.
    std::thread::sleep(Duration::from_millis(600));
    let (_, w) = d.call(
        "GET",
        &format!("/api/v1/requests/{big}"),
        Some(&member),
        None,
    );
    assert_eq!(w["state"], "approval", "{w}");
    assert_eq!(
        w["workflow"]["steps"][0],
        json!({"name": "approve", "state": "pending", "attempts": 0, "error": null}),
        "{w}"
    );
    let (code, _) = d.call(
        "POST",
        &format!("/api/v1/requests/{big}/approve"),
        Some(&member),
        None,
    );
    assert_eq!(code, 403);
    let (code, v) = d.call(
        "POST",
        &format!("/api/v1/requests/{big}/approve"),
        Some(&operator),
        None,
    );
    assert_eq!(code, 202, "{v}");
    let (code, v) = d.call(
        "POST",
        &format!("/api/v1/requests/{big}/approve"),
        Some(&operator),
        None,
    );
    assert_eq!(
        (code, v["code"].as_str()),
        (409, Some("request-not-waiting")),
        "{v}"
    );

    // --- Another team sees none of it (404 as for a missing one), nor its workflow.
    let (_, vmv) = d.call(
        "GET",
        &format!("/api/v1/requests/{vm}"),
        Some(&member),
        None,
    );
    let vm_wf = vmv["workflow"]["id"]
        .as_str()
        .expect("workflow")
        .to_string();
    for (m, p) in [
        ("GET", format!("/api/v1/requests/{vm}")),
        ("DELETE", format!("/api/v1/requests/{vm}")),
        ("POST", format!("/api/v1/requests/{big}/approve")),
        ("GET", format!("/api/v1/workflows/{vm_wf}")),
        ("GET", "/api/v1/requests/req-000000000000".to_string()),
    ] {
        let (code, v) = d.call(m, &p, Some(&other), None);
        assert_eq!(code, 404, "platform member: {m} {p}: {v}");
        assert!(!v.to_string().contains("notebook"), "{v}");
    }
    let (_, list) = d.call("GET", "/api/v1/requests", Some(&other), None);
    let ids: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|x| x["id"].as_str())
        .collect();
    assert_eq!(ids, [metal.as_str()], "platform sees only its own: {list}");
    assert_eq!(
        d.call(
            "GET",
            &format!("/api/v1/workflows/{vm_wf}"),
            Some(&member),
            None
        )
        .0,
        200
    );

    // --- Ready, each on its platform.
    let vmv = wait_state(d, &member, &vm, "ready", Duration::from_secs(60));
    let gpuv = wait_state(d, &member, &gpu, "ready", Duration::from_secs(60));
    let metalv = wait_state(d, &other, &metal, "ready", Duration::from_secs(60));
    let bigv = wait_state(d, &member, &big, "ready", Duration::from_secs(60));
    for (v, steps) in [(&vmv, 3), (&gpuv, 3), (&metalv, 3), (&bigv, 4)] {
        let wf = &v["workflow"];
        assert_eq!(wf["state"], "done", "{v}");
        assert_eq!(wf["steps"].as_array().map(Vec::len), Some(steps), "{v}");
    }
    assert!(
        bigv["approval"]["approved_by"]
            .as_str()
            .is_some_and(|a| a.starts_with("token:")),
        "{bigv}"
    );

    // The VM runs on the twin's Proxmox, with the request's tags.
    let vm_dc = vmv["dc"].as_str().expect("dc").to_string();
    let vm_name = format!("{vm}-0");
    let found = proxmox_vms(&ep, &vm_dc)
        .into_iter()
        .find(|g| g["name"] == vm_name.as_str());
    let found = found.unwrap_or_else(|| panic!("{vm_name} is not in {vm_dc}'s cluster"));
    assert_eq!(found["status"], "running", "{found}");
    assert_eq!(found["maxcpu"], 2, "{found}");
    let tags = found["tags"].as_str().unwrap_or("");
    assert!(
        tags.contains("team-ml-research") && tags.contains("-req"),
        "{found}"
    );

    // The GPU server is ACTIVE in the team's project; its port's security group
    // admits exactly ml's tenant subnets in that DC.
    let gpu_dc = gpuv["dc"].as_str().expect("dc").to_string();
    let server = &gpuv["resources"]["servers"][0];
    let (token, compute, network) = openstack(&ep, &gpu_dc);
    let (code, s) = os_get(
        &token,
        &format!(
            "{compute}/servers/{}",
            server["id"].as_str().expect("server id")
        ),
    );
    assert_eq!(code, 200, "{s}");
    assert_eq!(s["server"]["status"], "ACTIVE", "{s}");
    assert_eq!(s["server"]["flavor"]["original_name"], "g1.h100x1", "{s}");
    let sg = gpuv["resources"]["security_group"]["id"]
        .as_str()
        .expect("security group")
        .to_string();
    let (_, ports) = os_get(
        &token,
        &format!(
            "{network}/v2.0/ports?device_id={}",
            server["id"].as_str().unwrap_or("")
        ),
    );
    let port_groups: Vec<&str> = ports["ports"][0]["security_groups"]
        .as_array()
        .expect("ports")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(port_groups, [sg.as_str()], "{ports}");
    let (_, rules) = os_get(
        &token,
        &format!("{network}/v2.0/security-group-rules?security_group_id={sg}"),
    );
    let mut ingress: Vec<String> = rules["security_group_rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter(|r| r["direction"] == "ingress")
        .map(|r| {
            r["remote_ip_prefix"]
                .as_str()
                .unwrap_or("(any)")
                .to_string()
        })
        .collect();
    ingress.sort();
    let (_, prefixes) = d.call(
        "GET",
        &format!("/api/v1/prefixes?dc={gpu_dc}&limit=500"),
        Some(&admin),
        None,
    );
    let mut ml: Vec<String> = prefixes["items"]
        .as_array()
        .expect("prefixes")
        .iter()
        .filter(|p| p["kind"] == "tenant" && p["tenant"] == "ml")
        .filter_map(|p| {
            p["subnet"]
                .as_str()
                .or(p["prefix"].as_str())
                .map(str::to_string)
        })
        .collect();
    ml.sort();
    assert!(!ml.is_empty(), "{prefixes}");
    assert_eq!(
        ingress, ml,
        "the security group admits the team's networks only: {rules}"
    );

    // The machine is Deployed, marked with the request.
    assert_eq!(metalv["dc"], "waw1", "{metalv}");
    let (_, m) = maas(&ep, "waw1", "GET", &format!("machines/{spare}/"), &[]);
    assert_eq!(m["status_name"], "Deployed", "{m}");
    assert_eq!(m["owner_data"]["strata-request"], metal.as_str(), "{m}");

    // --- Releases: another team cannot, the team can, once; everything goes.
    let (code, _) = d.call(
        "DELETE",
        &format!("/api/v1/requests/{gpu}"),
        Some(&other),
        None,
    );
    assert_eq!(code, 404);
    for (id, tok) in [
        (&vm, &member),
        (&gpu, &member),
        (&big, &member),
        (&metal, &other),
    ] {
        let (code, v) = d.call("DELETE", &format!("/api/v1/requests/{id}"), Some(tok), None);
        assert_eq!(code, 202, "release {id}: {v}");
    }
    let (code, v) = d.call(
        "DELETE",
        &format!("/api/v1/requests/{vm}"),
        Some(&member),
        None,
    );
    assert_eq!(
        (code, v["code"].as_str()),
        (409, Some("request-released")),
        "{v}"
    );
    for (id, tok) in [
        (&vm, &member),
        (&gpu, &member),
        (&big, &member),
        (&metal, &other),
    ] {
        wait_state(d, tok, id, "released", Duration::from_secs(60));
    }
    assert!(
        !proxmox_vms(&ep, &vm_dc)
            .iter()
            .any(|g| g["name"] == vm_name.as_str()),
        "{vm_name} is gone from the cluster"
    );
    let (code, s) = os_get(
        &token,
        &format!("{compute}/servers/{}", server["id"].as_str().unwrap_or("")),
    );
    assert_eq!(code, 404, "the server is deleted: {s}");
    let (code, g) = os_get(&token, &format!("{network}/v2.0/security-groups/{sg}"));
    assert_eq!(code, 404, "the security group is deleted: {g}");
    let (_, m) = maas(&ep, "waw1", "GET", &format!("machines/{spare}/"), &[]);
    assert_eq!(
        (m["status_name"].as_str(), m["owner"].as_str()),
        (Some("Ready"), None),
        "the machine is back in the pool: {m}"
    );
    // Released requests no longer count: 16 GPUs are there again.
    let (code, p) = d.call(
        "PUT",
        "/api/v1/requests/policy",
        Some(&admin),
        Some(json!({"approval_gpus": 8})),
    );
    assert_eq!(code, 200, "{p}");

    // --- The command line: a VM with --wait (exit 0, ready), released when it expires.
    let token_file: PathBuf = d.dir.path().join("ml-member.token");
    std::fs::write(&token_file, &member).expect("token file");
    let out = strata()
        .args(["request", "vm", "--server", &d.base, "--token-file"])
        .arg(&token_file)
        .args([
            "--team",
            "ml-research",
            "--name",
            "cli",
            "--cores",
            "1",
            "--memory-mib",
            "1024",
            "--disk-gb",
            "4",
            "--expires-in",
            "3s",
            "--wait",
            "--timeout",
            "60",
            "-o",
            "json",
        ])
        .output()
        .expect("strata request vm");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let cli: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(cli["state"], "ready", "{cli}");
    let cli_id = cli["id"].as_str().expect("id").to_string();
    let released = wait_state(d, &member, &cli_id, "released", Duration::from_secs(30));
    assert!(
        released["detail"]
            .as_str()
            .is_some_and(|x| x.starts_with("expired at")),
        "{released}"
    );
    // A refusal shows the API's code and detail, exit 1.
    let out = strata()
        .args(["request", "gpu", "--server", &d.base, "--token-file"])
        .arg(&token_file)
        .args([
            "--team",
            "ml-research",
            "--name",
            "x",
            "--flavor",
            "g1.h100x8",
            "--count",
            "3",
        ])
        .output()
        .expect("strata request gpu");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("quota-exceeded") && err.contains("16 of 16 GPUs left; the request needs 24"),
        "{err}"
    );
    let out = strata()
        .args(["request", "vm", "--help"])
        .output()
        .expect("help");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Examples:"),
        "{}",
        text(&out)
    );

    // --- Every mutation is in the team's audit log.
    let (_, audit) = d.call(
        "GET",
        "/api/v1/audit?team=ml-research&limit=500",
        Some(&admin),
        None,
    );
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|a| a["action"].as_str())
        .collect();
    for a in [
        "request.create",
        "request.approve",
        "request.release",
        "request.expire",
    ] {
        assert!(actions.contains(&a), "{a} not audited: {actions:?}");
    }
    eprintln!(
        "api phase requests: {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
