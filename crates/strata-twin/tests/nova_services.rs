//! Nova's side of a decommission: compute services disabled and enabled (the 2.53 form
//! and the older actions), forced down, what hypervisors and Placement then show, and
//! servers moved off a host by cold migration (confirmed or reverted) and live
//! migration, with their records (`os-migrations`, `servers/{id}/migrations`) and the
//! Placement allocations the source and the destination hold meanwhile.
//!
//! Messages and codes follow nova (`nova/api/openstack/compute/services.py`,
//! `migrate_server.py`, `server_migrations.py`, `schemas/*.py`, `compute/api.py`, the
//! conductor's migration tasks); response shapes follow its `doc/api_samples`
//! (`os-services/v2.53/service-disable-log-put-resp.json`,
//! `os-migrations/v2.80/migrations-get.json`).

#[path = "openstack_support.rs"]
mod support;

use serde_json::{Value, json};
use support::Cloud;

/// The keys of nova's `os-services/v2.53/service-disable-log-put-resp.json`.
const SERVICE_V253_KEYS: &[&str] = &[
    "binary",
    "disabled_reason",
    "forced_down",
    "host",
    "id",
    "state",
    "status",
    "updated_at",
    "zone",
];

/// The keys of nova's `os-migrations/v2.80/migrations-get.json` (an entry without
/// `links`).
const MIGRATION_V280_KEYS: &[&str] = &[
    "created_at",
    "dest_compute",
    "dest_host",
    "dest_node",
    "id",
    "instance_uuid",
    "migration_type",
    "new_instance_type_id",
    "old_instance_type_id",
    "project_id",
    "source_compute",
    "source_node",
    "status",
    "updated_at",
    "user_id",
    "uuid",
];

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

fn message(body: &Value) -> String {
    body.as_object()
        .and_then(|m| m.values().next())
        .and_then(|v| v["message"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// The nova-compute service of `host` at 2.53.
async fn service(c: &Cloud, host: &str) -> Value {
    let r = c
        .nova(
            "GET",
            &format!("/os-services?binary=nova-compute&host={host}"),
            "2.53",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["services"][0].clone()
}

async fn set_service(c: &Cloud, host: &str, body: Value) -> Value {
    let id = service(c, host).await["id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let r = c
        .nova("PUT", &format!("/os-services/{id}"), "2.53", Some(body))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["service"].clone()
}

async fn boot(c: &Cloud, name: &str, flavor: &str) -> (String, String) {
    let image = c.glance("GET", "/images?name=cirros", None).await.body["images"][0]["id"].clone();
    let r = c
        .nova(
            "POST",
            "/servers",
            "2.37",
            Some(json!({"server": {"name": name, "flavorRef": flavor, "imageRef": image, "networks": "none"}})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["server"]["id"].as_str().expect("id").to_string();
    let s = c.wait_server(&id, &["ACTIVE"]).await;
    let host = s["OS-EXT-SRV-ATTR:host"]
        .as_str()
        .expect("host")
        .to_string();
    (id, host)
}

async fn host_of(c: &Cloud, id: &str) -> String {
    let r = c.nova("GET", &format!("/servers/{id}"), "2.1", None).await;
    r.body["server"]["OS-EXT-SRV-ATTR:host"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

async fn action(c: &Cloud, id: &str, body: Value, mv: &str) -> support::Resp {
    c.nova("POST", &format!("/servers/{id}/action"), mv, Some(body))
        .await
}

/// The server's migrations, newest first.
async fn migrations(c: &Cloud, id: &str) -> Vec<Value> {
    let r = c
        .nova(
            "GET",
            &format!("/os-migrations?instance_uuid={id}"),
            "2.80",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["migrations"].as_array().expect("list").clone()
}

/// The compute node resource provider of a host.
async fn rp_of(c: &Cloud, host: &str) -> String {
    let r = c
        .placement(
            "GET",
            &format!("/resource_providers?name={host}.{}.twin", c.dc),
            "1.14",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["resource_providers"][0]["uuid"]
        .as_str()
        .expect("rp")
        .to_string()
}

/// The providers a consumer holds allocations on.
async fn allocated_on(c: &Cloud, consumer: &str) -> Vec<String> {
    let r = c
        .placement("GET", &format!("/allocations/{consumer}"), "1.28", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    keys(&r.body["allocations"])
}

/// The result of the last event of the server's newest action of this name.
async fn last_action(c: &Cloud, id: &str, name: &str) -> Value {
    let r = c
        .nova(
            "GET",
            &format!("/servers/{id}/os-instance-actions"),
            "2.62",
            None,
        )
        .await;
    let req = r.body["instanceActions"]
        .as_array()
        .expect("actions")
        .iter()
        .find(|a| a["action"] == name)
        .unwrap_or_else(|| panic!("no {name} action: {}", r.body))["request_id"]
        .as_str()
        .expect("request id")
        .to_string();
    let r = c
        .nova(
            "GET",
            &format!("/servers/{id}/os-instance-actions/{req}"),
            "2.62",
            None,
        )
        .await;
    r.body["instanceAction"].clone()
}

/// A member (not admin) of the admin's project.
async fn member(twin: &strata_twin::RunningTwin, admin: &Cloud) -> Cloud {
    let r = admin
        .keystone(
            "POST",
            "/users",
            Some(json!({"user": {"name": "erin", "password": "pw", "domain_id": "default"}})),
        )
        .await;
    let uid = r.body["user"]["id"].as_str().expect("user").to_string();
    let r = admin.keystone("GET", "/roles?name=member", None).await;
    let role = r.body["roles"][0]["id"].as_str().expect("role").to_string();
    let r = admin
        .keystone(
            "PUT",
            &format!("/projects/{}/users/{uid}/roles/{role}", admin.project_id),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let project = admin.token_body["token"]["project"]["name"]
        .as_str()
        .expect("project name")
        .to_string();
    Cloud::login_as(twin, "fra1", "erin", "pw", &project).await
}

#[tokio::test]
async fn compute_services_are_disabled_and_enabled_at_2_53() {
    let twin = support::start(&["fra1"]).await;
    let c = Cloud::login(&twin, "fra1").await;
    let before = service(&c, "fra1-cmp-01").await;
    assert_eq!(before["status"], "enabled");
    let id = before["id"].as_str().unwrap().to_string();
    assert!(id.len() == 36, "{before}");

    let s = set_service(
        &c,
        "fra1-cmp-01",
        json!({"status": "disabled", "disabled_reason": "decommission"}),
    )
    .await;
    assert_eq!(keys(&s), SERVICE_V253_KEYS, "{s}");
    assert_eq!(s["status"], "disabled");
    assert_eq!(s["disabled_reason"], "decommission");
    assert_eq!(s["state"], "up");
    assert_eq!(s["forced_down"], false);
    assert_eq!(s["id"], id.as_str());

    // Hypervisors and Placement see it: the compute node's provider has the trait the
    // scheduler's `compute_status_filter` forbids.
    let r = c.nova("GET", "/os-hypervisors/detail", "2.53", None).await;
    let hyp = r.body["hypervisors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["service"]["host"] == "fra1-cmp-01")
        .unwrap()
        .clone();
    assert_eq!(hyp["status"], "disabled", "{hyp}");
    assert_eq!(hyp["state"], "up");
    assert_eq!(hyp["service"]["disabled_reason"], "decommission");
    let rp = rp_of(&c, "fra1-cmp-01").await;
    let r = c
        .placement(
            "GET",
            &format!("/resource_providers/{rp}/traits"),
            "1.6",
            None,
        )
        .await;
    assert!(
        r.body["traits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "COMPUTE_STATUS_DISABLED"),
        "{}",
        r.body
    );

    // Refusals, in nova's order: schema, UUID, policy, lookup, binary, the body's sense.
    let put = |body: Value, id: String| {
        let c = &c;
        async move {
            c.nova("PUT", &format!("/os-services/{id}"), "2.53", Some(body))
                .await
        }
    };
    let r = put(json!({"status": "off"}), id.clone()).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        message(&r.body),
        "Invalid input for field/attribute status. Value: off. 'off' is not one of ['enabled', 'disabled']"
    );
    let r = put(json!({"status": "disabled", "host": "x"}), id.clone()).await;
    assert_eq!(
        (r.status, message(&r.body)),
        (
            400,
            "Additional properties are not allowed ('host' was unexpected)".to_string()
        )
    );
    let r = put(
        json!({"status": "disabled", "disabled_reason": ""}),
        id.clone(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = put(json!({"forced_down": "maybe"}), id.clone()).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = put(json!({"status": "enabled"}), "not-a-uuid".into()).await;
    assert_eq!(
        (r.status, message(&r.body)),
        (400, "Invalid uuid not-a-uuid".to_string())
    );
    let missing = "00000000-0000-4000-8000-000000000000".to_string();
    let r = put(json!({"status": "enabled"}), missing.clone()).await;
    assert_eq!(
        (r.status, message(&r.body)),
        (404, format!("Service {missing} could not be found."))
    );
    let r = c
        .nova("GET", "/os-services?binary=nova-scheduler", "2.53", None)
        .await;
    let sched = r.body["services"][0]["id"].as_str().unwrap().to_string();
    let r = put(json!({"status": "disabled"}), sched).await;
    assert_eq!(
        (r.status, message(&r.body)),
        (
            400,
            "Updating a nova-scheduler service is not supported. Only nova-compute services can be updated.".to_string()
        )
    );
    let r = put(
        json!({"status": "enabled", "disabled_reason": "x"}),
        id.clone(),
    )
    .await;
    assert_eq!(
        (r.status, message(&r.body)),
        (
            400,
            "Specifying 'disabled_reason' with status 'enabled' is invalid.".to_string()
        )
    );
    let r = put(json!({"disabled_reason": "only"}), id.clone()).await;
    assert_eq!(
        (r.status, message(&r.body)),
        (
            400,
            "No updates were requested. Fields 'status' or 'forced_down' should be specified."
                .to_string()
        )
    );
    let erin = member(&twin, &c).await;
    let r = erin
        .nova(
            "PUT",
            &format!("/os-services/{id}"),
            "2.53",
            Some(json!({"status": "enabled"})),
        )
        .await;
    assert_eq!(
        (r.status, message(&r.body)),
        (
            403,
            "Policy doesn't allow os_compute_api:os-services:update to be performed.".to_string()
        )
    );

    // Forced down: the service and its hypervisor are down; forced up, up again.
    let s = set_service(&c, "fra1-cmp-01", json!({"forced_down": true})).await;
    assert_eq!(
        (s["forced_down"].clone(), s["state"].clone()),
        (json!(true), json!("down"))
    );
    let r = c.nova("GET", "/os-hypervisors", "2.53", None).await;
    assert!(
        r.body["hypervisors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["hypervisor_hostname"] == "fra1-cmp-01.fra1.twin" && h["state"] == "down"),
        "{}",
        r.body
    );
    let s = set_service(&c, "fra1-cmp-01", json!({"forced_down": "false"})).await;
    assert_eq!(s["state"], "up");

    // Enabled again: no reason, no trait.
    let s = set_service(&c, "fra1-cmp-01", json!({"status": "enabled"})).await;
    assert_eq!(
        (s["status"].clone(), s["disabled_reason"].clone()),
        (json!("enabled"), Value::Null)
    );
    let r = c
        .placement(
            "GET",
            &format!("/resource_providers/{rp}/traits"),
            "1.6",
            None,
        )
        .await;
    assert!(
        !r.body["traits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "COMPUTE_STATUS_DISABLED"),
        "{}",
        r.body
    );
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn the_older_service_actions_before_2_53() {
    let twin = support::start(&["fra1"]).await;
    let c = Cloud::login(&twin, "fra1").await;
    let put = |action: &str, mv: &str, body: Value| {
        let c = &c;
        let path = format!("/os-services/{action}");
        let mv = mv.to_string();
        async move { c.nova("PUT", &path, &mv, Some(body)).await }
    };
    let host = json!({"host": "fra1-cmp-02", "binary": "nova-compute"});
    let r = put("disable", "2.1", host.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"service": {"host": "fra1-cmp-02", "binary": "nova-compute", "status": "disabled"}})
    );
    assert_eq!(service(&c, "fra1-cmp-02").await["status"], "disabled");
    let r = put("disable-log-reason", "2.1", host.clone()).await;
    assert_eq!(
        (r.status, message(&r.body)),
        (400, "Missing disabled reason field".to_string())
    );
    let r = put(
        "disable-log-reason",
        "2.1",
        json!({"host": "fra1-cmp-02", "binary": "nova-compute", "disabled_reason": "rma"}),
    )
    .await;
    assert_eq!(r.body["service"]["disabled_reason"], "rma", "{}", r.body);
    assert_eq!(service(&c, "fra1-cmp-02").await["disabled_reason"], "rma");
    let r = put("enable", "2.1", host.clone()).await;
    assert_eq!(r.body["service"]["status"], "enabled");
    assert!(r.body["service"].get("disabled_reason").is_none());

    // force-down exists from 2.11; `forced_down` is in the schema from then on.
    let r = put("force-down", "2.10", host.clone()).await;
    assert_eq!(
        (r.status, message(&r.body)),
        (404, "Unknown action".to_string())
    );
    let r = put(
        "force-down",
        "2.11",
        json!({"host": "fra1-cmp-02", "binary": "nova-compute", "forced_down": true}),
    )
    .await;
    assert_eq!(
        r.body,
        json!({"service": {"host": "fra1-cmp-02", "binary": "nova-compute", "forced_down": true}})
    );
    assert_eq!(service(&c, "fra1-cmp-02").await["state"], "down");
    let r = put(
        "force-down",
        "2.11",
        json!({"host": "fra1-cmp-02", "binary": "nova-compute", "forced_down": false}),
    )
    .await;
    assert_eq!(r.status, 200);

    let r = put("disable", "2.1", json!({"host": "fra1-cmp-02"})).await;
    assert_eq!(
        (r.status, message(&r.body)),
        (400, "'binary' is a required property".to_string())
    );
    let r = put(
        "disable",
        "2.1",
        json!({"host": "fra1-cmp-02", "binary": "nova-scheduler"}),
    )
    .await;
    assert_eq!(
        (r.status, message(&r.body)),
        (
            400,
            "Updating a nova-scheduler service is not supported. Only nova-compute services can be updated.".to_string()
        )
    );
    let r = put(
        "disable",
        "2.1",
        json!({"host": "nowhere", "binary": "nova-compute"}),
    )
    .await;
    assert_eq!(
        (r.status, message(&r.body)),
        (404, "Host 'nowhere' is not mapped to any cell".to_string())
    );
    let r = put("reboot", "2.1", host.clone()).await;
    assert_eq!(
        (r.status, message(&r.body)),
        (404, "Unknown action".to_string())
    );
    // A UUID before 2.53 is an unknown action too.
    let id = service(&c, "fra1-cmp-02").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = put(&id, "2.52", host).await;
    assert_eq!(
        (r.status, message(&r.body)),
        (404, "Unknown action".to_string())
    );
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn cold_migration_leaves_for_an_enabled_host_and_is_confirmed_or_reverted() {
    let twin = support::start(&["fra1"]).await;
    let c = Cloud::login(&twin, "fra1").await;
    let (id, source) = boot(&c, "app", "2").await;
    assert_eq!(source, "fra1-cmp-01");
    // The decommission: the host is disabled, so is another; the scheduler picks
    // neither.
    set_service(
        &c,
        "fra1-cmp-01",
        json!({"status": "disabled", "disabled_reason": "decommission"}),
    )
    .await;
    set_service(&c, "fra1-cmp-02", json!({"status": "disabled"})).await;

    let r = action(&c, &id, json!({"migrate": null}), "2.56").await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = c.wait_server(&id, &["VERIFY_RESIZE", "ACTIVE"]).await;
    assert_eq!(s["status"], "VERIFY_RESIZE", "{s}");
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], "fra1-cmp-03");
    let m = migrations(&c, &id).await;
    assert_eq!(m.len(), 1);
    assert_eq!(keys(&m[0]), MIGRATION_V280_KEYS, "{}", m[0]);
    assert_eq!(m[0]["migration_type"], "migration");
    assert_eq!(m[0]["status"], "finished");
    assert_eq!(m[0]["source_compute"], "fra1-cmp-01");
    assert_eq!(m[0]["dest_compute"], "fra1-cmp-03");
    assert_eq!(m[0]["dest_node"], "fra1-cmp-03.fra1.twin");
    assert_eq!(m[0]["old_instance_type_id"], 2);
    // Until confirmed, the source stays allocated to the migration.
    let (src_rp, dst_rp) = (
        rp_of(&c, "fra1-cmp-01").await,
        rp_of(&c, "fra1-cmp-03").await,
    );
    let mig = m[0]["uuid"].as_str().unwrap().to_string();
    assert_eq!(allocated_on(&c, &id).await, vec![dst_rp.clone()]);
    assert_eq!(allocated_on(&c, &mig).await, vec![src_rp.clone()]);
    let a = last_action(&c, &id, "migrate").await;
    assert_eq!(a["events"][0]["event"], "conductor_migrate_server");
    assert_eq!(a["events"][0]["result"], "Success");

    let r = action(&c, &id, json!({"confirmResize": null}), "2.1").await;
    assert_eq!(r.status, 204, "{}", r.body);
    let s = c.wait_server(&id, &["ACTIVE"]).await;
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], "fra1-cmp-03");
    assert_eq!(migrations(&c, &id).await[0]["status"], "confirmed");
    assert!(allocated_on(&c, &mig).await.is_empty());

    // Asked for a disabled host: accepted, then the conductor finds no valid host.
    let r = action(&c, &id, json!({"migrate": {"host": "fra1-cmp-02"}}), "2.56").await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = c.wait_server(&id, &["ACTIVE"]).await;
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], "fra1-cmp-03");
    let m = migrations(&c, &id).await;
    assert_eq!(m[0]["status"], "error", "{:?}", m);
    let a = last_action(&c, &id, "migrate").await;
    assert_eq!(a["events"][0]["result"], "Error", "{a}");
    assert_eq!(allocated_on(&c, &id).await, vec![dst_rp.clone()]);

    // Refused at once.
    let r = action(&c, &id, json!({"migrate": {"host": "fra1-cmp-03"}}), "2.56").await;
    assert_eq!(
        (r.status, message(&r.body)),
        (
            400,
            "Cannot migrate to the host where the server exists.".to_string()
        )
    );
    let r = action(&c, &id, json!({"migrate": {"host": "nope"}}), "2.56").await;
    assert_eq!(
        (r.status, message(&r.body)),
        (400, "Compute host nope could not be found.".to_string())
    );
    let r = action(&c, &id, json!({"migrate": {"hostname": "x"}}), "2.56").await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        message(&r.body)
            .contains("Additional properties are not allowed ('hostname' was unexpected)"),
        "{}",
        r.body
    );
    let erin = member(&twin, &c).await;
    let r = erin
        .nova(
            "POST",
            &format!("/servers/{id}/action"),
            "2.56",
            Some(json!({"migrate": null})),
        )
        .await;
    assert_eq!(
        (r.status, message(&r.body)),
        (
            403,
            "Policy doesn't allow os_compute_api:os-migrate-server:migrate to be performed."
                .to_string()
        )
    );

    // Reverted: back on the source, which holds the instance again.
    set_service(&c, "fra1-cmp-02", json!({"status": "enabled"})).await;
    let r = action(&c, &id, json!({"migrate": null}), "2.1").await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = c.wait_server(&id, &["VERIFY_RESIZE"]).await;
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], "fra1-cmp-02");
    let r = action(&c, &id, json!({"revertResize": null}), "2.1").await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = c.wait_server(&id, &["ACTIVE"]).await;
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], "fra1-cmp-03");
    let m = migrations(&c, &id).await;
    assert_eq!(m[0]["status"], "reverted");
    assert_eq!(allocated_on(&c, &id).await, vec![dst_rp]);
    assert!(
        allocated_on(&c, m[0]["uuid"].as_str().unwrap())
            .await
            .is_empty()
    );

    // A stopped server migrates stopped; a paused one may not cold-migrate.
    let r = action(&c, &id, json!({"os-stop": null}), "2.1").await;
    assert_eq!(r.status, 202);
    c.wait_server(&id, &["SHUTOFF"]).await;
    let r = action(&c, &id, json!({"migrate": null}), "2.1").await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = c.wait_server(&id, &["VERIFY_RESIZE"]).await;
    assert_eq!(s["OS-EXT-STS:power_state"], 4, "{s}");
    action(&c, &id, json!({"confirmResize": null}), "2.1").await;
    c.wait_server(&id, &["SHUTOFF"]).await;
    let (other, other_host) = boot(&c, "paused", "1").await;
    action(&c, &other, json!({"pause": null}), "2.1").await;
    c.wait_server(&other, &["PAUSED"]).await;
    let r = action(&c, &other, json!({"migrate": null}), "2.1").await;
    assert_eq!(
        (r.status, message(&r.body)),
        (
            409,
            format!("Cannot 'migrate' instance {other} while it is in vm_state paused")
        )
    );
    // A source whose compute service is down cannot be migrated from.
    action(&c, &other, json!({"unpause": null}), "2.1").await;
    c.wait_server(&other, &["ACTIVE"]).await;
    set_service(&c, &other_host, json!({"forced_down": true})).await;
    let r = action(&c, &other, json!({"migrate": null}), "2.1").await;
    assert_eq!(
        (r.status, message(&r.body)),
        (409, "Service is unavailable at this time.".to_string())
    );
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn live_migration_moves_to_an_enabled_host_or_fails_as_the_conductor_does() {
    let twin = support::start(&["fra1"]).await;
    let c = Cloud::login(&twin, "fra1").await;
    let (id, source) = boot(&c, "db", "2").await;
    assert_eq!(source, "fra1-cmp-01");

    // Schema per microversion.
    let r = action(&c, &id, json!({"os-migrateLive": {"host": null}}), "2.25").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        message(&r.body),
        "Invalid input for field/attribute os-migrateLive. Value: {'host': None}. 'block_migration' is a required property"
    );
    let r = action(
        &c,
        &id,
        json!({"os-migrateLive": {"block_migration": false, "host": null}}),
        "2.1",
    )
    .await;
    assert!(
        message(&r.body).ends_with("'disk_over_commit' is a required property"),
        "{}",
        r.body
    );
    let r = action(
        &c,
        &id,
        json!({"os-migrateLive": {"block_migration": "auto", "host": null}}),
        "2.24",
    )
    .await;
    assert_eq!(r.status, 400, "'auto' only from 2.25: {}", r.body);
    let r = action(&c, &id, json!({"os-migrateLive": {"block_migration": "auto", "host": "fra1-cmp-02", "force": true}}), "2.68").await;
    assert!(
        message(&r.body)
            .ends_with("Additional properties are not allowed ('force' was unexpected)"),
        "{}",
        r.body
    );
    let r = action(
        &c,
        &id,
        json!({"os-migrateLive": {"block_migration": "auto", "host": null, "force": true}}),
        "2.30",
    )
    .await;
    assert_eq!(
        (r.status, message(&r.body)),
        (400, "Can't force to a non-provided destination".to_string())
    );
    let r = action(
        &c,
        &id,
        json!({"os-migrateLive": {"block_migration": "auto", "host": "nope"}}),
        "2.30",
    )
    .await;
    assert_eq!(
        (r.status, message(&r.body)),
        (400, "Compute host nope could not be found.".to_string())
    );
    let r = action(
        &c,
        &id,
        json!({"os-migrateLive": {"block_migration": "auto", "host": source, "force": true}}),
        "2.30",
    )
    .await;
    assert_eq!(
        (r.status, message(&r.body)),
        (
            400,
            format!("Unable to migrate instance ({id}) to current host ({source}).")
        )
    );

    // A host asked for (not forced): the scheduler checks it; it runs, then lands.
    let r = action(&c, &id, json!({"os-migrateLive": {"block_migration": "auto", "host": "fra1-cmp-02", "force": false}}), "2.30").await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = c.nova("GET", &format!("/servers/{id}"), "2.1", None).await;
    assert_eq!(r.body["server"]["status"], "MIGRATING");
    let r = c
        .nova("GET", &format!("/servers/{id}/migrations"), "2.80", None)
        .await;
    let running = r.body["migrations"].as_array().unwrap().clone();
    assert_eq!(running.len(), 1, "{}", r.body);
    assert_eq!(running[0]["status"], "running");
    assert_eq!(running[0]["dest_compute"], "fra1-cmp-02");
    let mid = running[0]["id"].clone();
    let r = c
        .nova(
            "GET",
            &format!("/servers/{id}/migrations/{mid}"),
            "2.80",
            None,
        )
        .await;
    assert_eq!(
        r.body["migration"]["server_uuid"],
        id.as_str(),
        "{}",
        r.body
    );
    let s = c.wait_server(&id, &["ACTIVE"]).await;
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], "fra1-cmp-02");
    let m = migrations(&c, &id).await;
    assert_eq!(
        (m[0]["migration_type"].clone(), m[0]["status"].clone()),
        (json!("live-migration"), json!("completed"))
    );
    assert_eq!(
        allocated_on(&c, &id).await,
        vec![rp_of(&c, "fra1-cmp-02").await]
    );
    assert!(
        allocated_on(&c, m[0]["uuid"].as_str().unwrap())
            .await
            .is_empty()
    );
    let r = c
        .nova("GET", &format!("/servers/{id}/migrations"), "2.80", None)
        .await;
    assert_eq!(r.body["migrations"], json!([]));
    assert_eq!(
        last_action(&c, &id, "live-migration").await["events"][0]["event"],
        "conductor_live_migrate_instance"
    );

    // Every other host disabled: no valid host. Before 2.34 the API says so; from 2.34
    // it accepts, and the migration fails.
    for h in ["fra1-cmp-01", "fra1-cmp-03", "fra1-gpu-01"] {
        set_service(&c, h, json!({"status": "disabled"})).await;
    }
    let live = json!({"os-migrateLive": {"block_migration": "auto", "host": null}});
    let r = action(&c, &id, live.clone(), "2.33").await;
    assert_eq!(
        (r.status, message(&r.body)),
        (
            400,
            "No valid host was found. There are not enough hosts available.".to_string()
        )
    );
    let r = action(&c, &id, live.clone(), "2.60").await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = c.wait_server(&id, &["ACTIVE"]).await;
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], "fra1-cmp-02");
    assert_eq!(migrations(&c, &id).await[0]["status"], "error");
    assert_eq!(
        last_action(&c, &id, "live-migration").await["events"][0]["result"],
        "Error"
    );
    assert_eq!(host_of(&c, &id).await, "fra1-cmp-02");

    // Forced, the scheduler is bypassed: a disabled (but up) host takes it.
    let r = action(
        &c,
        &id,
        json!({"os-migrateLive": {"block_migration": false, "host": "fra1-cmp-03", "force": true}}),
        "2.30",
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = c.wait_server(&id, &["ACTIVE"]).await;
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], "fra1-cmp-03");

    // A server with a flavor's PCI device cannot live-migrate anywhere.
    for h in ["fra1-cmp-01", "fra1-gpu-01"] {
        set_service(&c, h, json!({"status": "enabled"})).await;
    }
    let (gpu, gpu_host) = boot(&c, "gpu", "6").await;
    assert_eq!(gpu_host, "fra1-gpu-01");
    let r = action(&c, &gpu, live.clone(), "2.60").await;
    assert_eq!(r.status, 202);
    c.wait_server(&gpu, &["ACTIVE"]).await;
    assert_eq!(host_of(&c, &gpu).await, "fra1-gpu-01");
    assert_eq!(migrations(&c, &gpu).await[0]["status"], "error");
    // Non-admins may not.
    let erin = member(&twin, &c).await;
    let r = erin.nova("GET", "/os-migrations", "2.80", None).await;
    assert_eq!(
        (r.status, message(&r.body)),
        (
            403,
            "Policy doesn't allow os_compute_api:os-migrations:index to be performed.".to_string()
        )
    );
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn placement_has_one_provider_per_compute_node_with_its_inventory() {
    let twin = support::start(&["fra1"]).await;
    let c = Cloud::login(&twin, "fra1").await;
    let r = c.nova("GET", "/os-hypervisors", "2.53", None).await;
    let hyps = r.body["hypervisors"].as_array().unwrap().clone();
    let r = c
        .placement("GET", "/resource_providers", "1.14", None)
        .await;
    let rps = r.body["resource_providers"].as_array().unwrap().clone();
    assert_eq!(rps.len(), hyps.len(), "{}", r.body);
    for h in &hyps {
        // The compute node's UUID (the hypervisor id at 2.53) is its provider's.
        let rp = rps
            .iter()
            .find(|p| p["uuid"] == h["id"])
            .unwrap_or_else(|| panic!("no provider for {h}"));
        assert_eq!(rp["name"], h["hypervisor_hostname"]);
        let uuid = rp["uuid"].as_str().unwrap();
        let inv = c
            .placement(
                "GET",
                &format!("/resource_providers/{uuid}/inventories"),
                "1.14",
                None,
            )
            .await
            .body["inventories"]
            .clone();
        for rc in ["VCPU", "MEMORY_MB", "DISK_GB"] {
            assert!(
                inv[rc]["total"].as_i64().unwrap() > 0,
                "{rc} of {uuid}: {inv}"
            );
        }
        let gpu = h["hypervisor_hostname"].as_str().unwrap().contains("gpu");
        assert_eq!(inv.get("CUSTOM_GPU_H100").is_some(), gpu, "{inv}");
        if gpu {
            assert_eq!(inv["CUSTOM_GPU_H100"]["total"], 8);
        }
    }
    twin.shutdown().await.expect("shutdown");
}
