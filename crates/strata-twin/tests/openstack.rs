//! The OpenStack region of the twin: Keystone, Nova, Neutron, Glance and Placement as
//! clients see them over HTTP.

#[path = "openstack_support.rs"]
mod support;

use serde_json::{Value, json};
use support::{Cloud, password_auth, send};

const UNAUTHORIZED: &str = r#"{"error":{"code":401,"message":"The request you have made requires authentication.","title":"Unauthorized"}}"#;

#[tokio::test]
async fn keystone_tokens_catalog_and_projects() {
    let twin = support::start(&["fra1"]).await;
    let c = Cloud::login(&twin, "fra1").await;
    let http = &c.http;

    // Version discovery.
    let r = send(http, "GET", &format!("{}/", c.identity), &[], None).await;
    assert_eq!(r.status, 300);
    assert_eq!(r.body["versions"]["values"][0]["id"], "v3.14");
    let r = send(http, "GET", &c.auth_url, &[], None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["version"]["media-types"][0]["type"],
        "application/vnd.openstack.identity-v3+json"
    );
    assert!(
        r.body["version"]["links"][0]["href"]
            .as_str()
            .is_some_and(|h| h.ends_with("/v3/"))
    );

    // The scoped token from login: catalog with every service, public and internal, in the DC's region.
    let t = &c.token_body["token"];
    assert_eq!(t["methods"], json!(["password"]));
    assert_eq!(t["project"]["name"], "admin");
    assert!(
        t["roles"]
            .as_array()
            .expect("roles")
            .iter()
            .any(|r| r["name"] == "admin")
    );
    assert!(
        t["expires_at"]
            .as_str()
            .is_some_and(|e| e.ends_with(".000000Z"))
    );
    let catalog = t["catalog"].as_array().expect("catalog");
    for kind in ["identity", "compute", "network", "image", "placement"] {
        let svc = catalog
            .iter()
            .find(|s| s["type"] == kind)
            .unwrap_or_else(|| panic!("{kind} in catalog"));
        let eps = svc["endpoints"].as_array().expect("endpoints");
        for iface in ["public", "internal"] {
            let e = eps
                .iter()
                .find(|e| e["interface"] == iface)
                .unwrap_or_else(|| panic!("{kind} {iface}"));
            assert_eq!(e["region_id"], "fra1");
            assert_eq!(e["region"], "fra1");
        }
    }
    assert!(
        c.compute.ends_with("/fra1/openstack/compute/v2.1"),
        "{}",
        c.compute
    );

    // Wrong password, unknown user, missing domain.
    let bad = password_auth(&c.username, "nope", Some("admin"));
    let r = send(
        http,
        "POST",
        &format!("{}/auth/tokens", c.auth_url),
        &[],
        Some(&bad),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.body,
        serde_json::from_str::<Value>(UNAUTHORIZED).expect("json")
    );
    assert!(
        r.header("www-authenticate")
            .is_some_and(|h| h.starts_with("Keystone uri="))
    );
    let r = send(
        http,
        "POST",
        &format!("{}/auth/tokens", c.auth_url),
        &[],
        Some(&password_auth("ghost", "x", None)),
    )
    .await;
    assert_eq!(r.status, 401);
    let nodomain = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "password": c.password}}}}});
    let r = send(
        http,
        "POST",
        &format!("{}/auth/tokens", c.auth_url),
        &[],
        Some(&nodomain),
    )
    .await;
    assert_eq!(r.status, 400);

    // Unscoped by user id, then re-scoped with the token method.
    let by_id = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"id": c.user_id, "password": c.password}}}}});
    let r = send(
        http,
        "POST",
        &format!("{}/auth/tokens", c.auth_url),
        &[],
        Some(&by_id),
    )
    .await;
    assert_eq!(r.status, 201);
    assert!(r.body["token"].get("catalog").is_none() && r.body["token"].get("project").is_none());
    let unscoped = r.header("x-subject-token").expect("token");
    let rescope = json!({"auth": {"identity": {"methods": ["token"], "token": {"id": unscoped}}, "scope": {"project": {"id": c.project_id}}}});
    let r = send(
        http,
        "POST",
        &format!("{}/auth/tokens", c.auth_url),
        &[],
        Some(&rescope),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["token"]["methods"], json!(["password", "token"]));
    assert_eq!(r.body["token"]["project"]["id"], c.project_id.as_str());
    assert!(
        r.body["token"]["catalog"]
            .as_array()
            .is_some_and(|a| a.len() == 5)
    );
    let rescoped = r.header("x-subject-token").expect("token");
    // An unscoped token is no good for Nova (it needs a project).
    let r = send(
        http,
        "GET",
        &format!("{}/flavors", c.compute),
        &[("x-auth-token", &unscoped)],
        None,
    )
    .await;
    assert_eq!(r.status, 403);

    // Validate and revoke.
    let r = send(
        http,
        "GET",
        &format!("{}/auth/tokens", c.auth_url),
        &[("x-auth-token", &c.token), ("x-subject-token", &rescoped)],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-subject-token").as_deref(),
        Some(rescoped.as_str())
    );
    let r = send(
        http,
        "GET",
        &format!("{}/auth/tokens", c.auth_url),
        &[("x-auth-token", &c.token)],
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    let r = send(
        http,
        "DELETE",
        &format!("{}/auth/tokens", c.auth_url),
        &[("x-auth-token", &c.token), ("x-subject-token", &rescoped)],
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    let r = send(
        http,
        "GET",
        &format!("{}/auth/tokens", c.auth_url),
        &[("x-auth-token", &c.token), ("x-subject-token", &rescoped)],
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    let r = send(
        http,
        "GET",
        &format!("{}/flavors", c.compute),
        &[("x-auth-token", &rescoped)],
        None,
    )
    .await;
    assert_eq!(r.status, 401);

    // Catalog-related lists.
    for (path, key) in [
        ("/regions", "regions"),
        ("/services", "services"),
        ("/endpoints", "endpoints"),
        ("/domains", "domains"),
        ("/users", "users"),
        ("/roles", "roles"),
        ("/auth/projects", "projects"),
    ] {
        let r = c.keystone("GET", path, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert!(
            r.body[key].as_array().is_some_and(|a| !a.is_empty()),
            "{path}: {}",
            r.body
        );
        assert!(r.body["links"]["self"].is_string());
    }
    let r = c.keystone("GET", "/regions", None).await;
    assert_eq!(r.body["regions"][0]["id"], "fra1");
    let r = c
        .keystone("GET", "/endpoints?interface=internal", None)
        .await;
    assert_eq!(r.body["endpoints"].as_array().map(Vec::len), Some(5));

    // Projects: create, conflict, read, update, assign a role, log in as a new user, delete.
    let r = c.keystone("GET", "/projects", None).await;
    let names: Vec<&str> = r.body["projects"]
        .as_array()
        .expect("projects")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(
        names.contains(&"admin") && names.contains(&"service"),
        "{names:?}"
    );
    let r = c.keystone("POST", "/projects", Some(json!({"project": {"name": "team-a", "domain_id": "default", "description": "A", "tags": ["gpu"]}}))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let pid = r.body["project"]["id"].as_str().expect("id").to_string();
    assert_eq!(r.body["project"]["tags"], json!(["gpu"]));
    let r = c
        .keystone(
            "POST",
            "/projects",
            Some(json!({"project": {"name": "team-a"}})),
        )
        .await;
    assert_eq!(r.status, 409);
    let r = c
        .keystone("POST", "/projects", Some(json!({"project": {}})))
        .await;
    assert_eq!(r.status, 400);
    let r = c
        .keystone(
            "PATCH",
            &format!("/projects/{pid}"),
            Some(json!({"project": {"description": "B"}})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["project"]["description"], "B");
    let r = c.keystone("GET", "/projects?tags=gpu", None).await;
    assert_eq!(r.body["projects"].as_array().map(Vec::len), Some(1));
    let r = c
        .keystone(
            "POST",
            "/users",
            Some(json!({"user": {"name": "alice", "password": "pw", "default_project_id": pid}})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let alice = r.body["user"]["id"].as_str().expect("id").to_string();
    let r = c.keystone("GET", "/roles?name=member", None).await;
    let member = r.body["roles"][0]["id"]
        .as_str()
        .expect("member")
        .to_string();
    let r = c
        .keystone(
            "PUT",
            &format!("/projects/{pid}/users/{alice}/roles/{member}"),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    let r = c
        .keystone(
            "PUT",
            &format!("/projects/{pid}/users/{alice}/roles/nope"),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    let r = send(
        http,
        "POST",
        &format!("{}/auth/tokens", c.auth_url),
        &[],
        Some(&password_auth("alice", "pw", Some("team-a"))),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let roles: Vec<&str> = r.body["token"]["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(
        roles.contains(&"member") && roles.contains(&"reader") && !roles.contains(&"admin"),
        "{roles:?}"
    );
    let alice_token = r.header("x-subject-token").expect("token");
    // A member cannot create projects or flavors.
    let r = send(
        http,
        "POST",
        &format!("{}/projects", c.auth_url),
        &[("x-auth-token", &alice_token)],
        Some(&json!({"project": {"name": "x"}})),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = send(
        http,
        "POST",
        &format!("{}/flavors", c.compute),
        &[("x-auth-token", &alice_token)],
        Some(&json!({"flavor": {"name": "x", "ram": 1, "vcpus": 1, "disk": 1}})),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["forbidden"]["code"], 403);
    // Without a scope, alice lands in her default project.
    let r = send(
        http,
        "POST",
        &format!("{}/auth/tokens", c.auth_url),
        &[],
        Some(&password_auth("alice", "pw", None)),
    )
    .await;
    assert_eq!(r.body["token"]["project"]["id"], pid.as_str());
    let r = c
        .keystone("DELETE", &format!("/projects/{pid}"), None)
        .await;
    assert_eq!(r.status, 204);
    let r = c.keystone("GET", &format!("/projects/{pid}"), None).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error"]["title"], "Not Found");
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn every_service_wants_a_token() {
    let twin = support::start(&["fra1"]).await;
    let c = Cloud::login(&twin, "fra1").await;
    let urls = [
        format!("{}/servers", c.compute),
        format!("{}/v2.0/networks", c.network),
        format!("{}/v2/images", c.image),
        format!("{}/resource_providers", c.placement),
        format!("{}/projects", c.auth_url),
    ];
    let want: Value = serde_json::from_str(UNAUTHORIZED).expect("json");
    for u in &urls {
        for token in [None, Some("bogus")] {
            let h: Vec<(&str, &str)> = token.map(|t| vec![("x-auth-token", t)]).unwrap_or_default();
            let r = send(&c.http, "GET", u, &h, None).await;
            assert_eq!(r.status, 401, "{u}");
            assert_eq!(r.body, want, "{u}");
            assert!(
                r.header("www-authenticate")
                    .is_some_and(|w| w.contains("/identity/v3")),
                "{u}"
            );
        }
    }
    // Version documents are public.
    for u in [
        format!("{}/", c.identity),
        c.compute.clone(),
        format!("{}/", c.network),
        format!("{}/", c.image),
        format!("{}/", c.placement),
    ] {
        let r = send(&c.http, "GET", &u, &[], None).await;
        assert!(r.status == 200 || r.status == 300, "{u}: {}", r.status);
    }
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn nova_microversions_and_flavors() {
    let twin = support::start(&["fra1"]).await;
    let c = Cloud::login(&twin, "fra1").await;
    let root = c.compute.trim_end_matches("/v2.1").to_string();
    let r = send(&c.http, "GET", &format!("{root}/"), &[], None).await;
    assert_eq!(r.body["versions"][1]["version"], "2.104");
    assert_eq!(r.body["versions"][1]["min_version"], "2.1");
    let r = send(&c.http, "GET", &c.compute, &[], None).await;
    assert_eq!(r.body["version"]["id"], "v2.1");
    assert_eq!(r.body["version"]["version"], "2.104");

    // Negotiation: echo both headers, latest, legacy header, errors.
    let r = c.nova("GET", "/flavors", "2.60", None).await;
    assert_eq!(
        r.header("openstack-api-version").as_deref(),
        Some("compute 2.60")
    );
    assert_eq!(
        r.header("x-openstack-nova-api-version").as_deref(),
        Some("2.60")
    );
    assert!(
        r.header("vary")
            .is_some_and(|v| v.contains("OpenStack-API-Version"))
    );
    let r = c.nova("GET", "/flavors", "latest", None).await;
    assert_eq!(
        r.header("openstack-api-version").as_deref(),
        Some("compute 2.104")
    );
    let r = send(
        &c.http,
        "GET",
        &format!("{}/flavors", c.compute),
        &[
            ("x-auth-token", &c.token),
            ("x-openstack-nova-api-version", "2.33"),
        ],
        None,
    )
    .await;
    assert_eq!(
        r.header("x-openstack-nova-api-version").as_deref(),
        Some("2.33")
    );
    let r = c
        .call("GET", &format!("{}/flavors", c.compute), None, None)
        .await;
    assert_eq!(
        r.header("openstack-api-version").as_deref(),
        Some("compute 2.1")
    );
    let r = c.nova("GET", "/flavors", "2.200", None).await;
    assert_eq!(r.status, 406);
    assert!(
        r.body["computeFault"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("maximum is 2.104")),
        "{}",
        r.body
    );
    let r = c.nova("GET", "/flavors", "2", None).await;
    assert_eq!(r.status, 400);

    // Flavors: seeded list, detail, shapes by microversion.
    let r = c.nova("GET", "/flavors", "2.1", None).await;
    let names: Vec<&str> = r.body["flavors"]
        .as_array()
        .expect("flavors")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert!(
        names.contains(&"m1.tiny") && names.contains(&"g1.h100.1"),
        "{names:?}"
    );
    let r = c
        .nova("GET", "/flavors/detail?minRam=8192", "2.1", None)
        .await;
    assert!(
        r.body["flavors"]
            .as_array()
            .expect("flavors")
            .iter()
            .all(|f| f["ram"].as_i64() >= Some(8192))
    );
    let r = c.nova("GET", "/flavors/1", "2.1", None).await;
    assert_eq!(r.body["flavor"]["swap"], "");
    assert!(r.body["flavor"].get("description").is_none());
    let r = c.nova("GET", "/flavors/1", "2.55", None).await;
    assert!(
        r.body["flavor"].get("description").is_some()
            && r.body["flavor"].get("extra_specs").is_none()
    );
    let r = c.nova("GET", "/flavors/6", "2.61", None).await;
    assert_eq!(
        r.body["flavor"]["extra_specs"]["pci_passthrough:alias"],
        "gpu-h100:1"
    );
    let r = c.nova("GET", "/flavors/1", "2.75", None).await;
    assert_eq!(r.body["flavor"]["swap"], 0);
    assert!(r.body["flavor"].get("rxtx_factor").is_some());
    let r = c.nova("GET", "/flavors/1", "2.102", None).await;
    assert!(
        r.body["flavor"].get("rxtx_factor").is_none()
            && r.body["flavor"].get("OS-FLV-DISABLED:disabled").is_none()
    );

    // Pagination of flavors.
    let r = c.nova("GET", "/flavors?limit=2", "2.1", None).await;
    assert_eq!(r.body["flavors"].as_array().map(Vec::len), Some(2));
    let next = r.body["flavors_links"][0]["href"]
        .as_str()
        .expect("next")
        .to_string();
    assert!(next.contains("marker=2"), "{next}");

    // Create, conflicts, extra specs, description update, delete.
    let body = json!({"flavor": {"name": "gpu.x1", "id": "gpu-x1", "vcpus": 8, "ram": 16384, "disk": 50, "os-flavor-access:is_public": true, "description": "one H100"}});
    let r = c.nova("POST", "/flavors", "2.55", Some(body.clone())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["flavor"]["description"], "one H100");
    let r = c.nova("POST", "/flavors", "2.55", Some(body)).await;
    assert_eq!(r.status, 409);
    assert!(
        r.body["conflictingRequest"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("gpu.x1"))
    );
    let r = c.nova("POST", "/flavors", "2.55", Some(json!({"flavor": {"name": "other", "id": "gpu-x1", "vcpus": 1, "ram": 1, "disk": 0}}))).await;
    assert_eq!(r.status, 409);
    let r = c
        .nova(
            "POST",
            "/flavors",
            "2.1",
            Some(json!({"flavor": {"name": "bad", "vcpus": 0, "ram": 1, "disk": 0}})),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = c.nova("POST", "/flavors/gpu-x1/os-extra_specs", "2.1", Some(json!({"extra_specs": {"pci_passthrough:alias": "gpu-h100:1", "hw:cpu_policy": "dedicated"}}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .nova("GET", "/flavors/gpu-x1/os-extra_specs", "2.1", None)
        .await;
    assert_eq!(r.body["extra_specs"]["hw:cpu_policy"], "dedicated");
    let r = c
        .nova(
            "GET",
            "/flavors/gpu-x1/os-extra_specs/pci_passthrough:alias",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.body, json!({"pci_passthrough:alias": "gpu-h100:1"}));
    let r = c
        .nova(
            "PUT",
            "/flavors/gpu-x1/os-extra_specs/hw:cpu_policy",
            "2.1",
            Some(json!({"hw:cpu_policy": "shared"})),
        )
        .await;
    assert_eq!(r.body, json!({"hw:cpu_policy": "shared"}));
    let r = c
        .nova(
            "PUT",
            "/flavors/gpu-x1/os-extra_specs/hw:cpu_policy",
            "2.1",
            Some(json!({"other": "x"})),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = c
        .nova(
            "DELETE",
            "/flavors/gpu-x1/os-extra_specs/hw:cpu_policy",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let r = c
        .nova(
            "GET",
            "/flavors/gpu-x1/os-extra_specs/hw:cpu_policy",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    let r = c
        .nova(
            "PUT",
            "/flavors/gpu-x1",
            "2.55",
            Some(json!({"flavor": {"description": "changed"}})),
        )
        .await;
    assert_eq!(r.body["flavor"]["description"], "changed");
    let r = c
        .nova(
            "PUT",
            "/flavors/gpu-x1",
            "2.54",
            Some(json!({"flavor": {"description": "changed"}})),
        )
        .await;
    assert_eq!(r.status, 404);
    let r = c.nova("DELETE", "/flavors/gpu-x1", "2.1", None).await;
    assert_eq!(r.status, 202);
    let r = c.nova("GET", "/flavors/gpu-x1", "2.1", None).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["itemNotFound"]["code"], 404);
    twin.shutdown().await.expect("shutdown");
}

async fn network_with_subnet(c: &Cloud, name: &str, seg: i64, cidr: &str) -> String {
    let r = c
        .neutron("POST", "/networks", Some(json!({"network": {"name": name, "provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": seg}})))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["network"]["id"].as_str().expect("id").to_string();
    let r = c.neutron("POST", "/subnets", Some(json!({"subnet": {"network_id": id, "ip_version": 4, "cidr": cidr, "name": format!("{name}-v4")}}))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    id
}

#[tokio::test]
async fn nova_servers_build_schedule_paginate_and_act() {
    let twin = support::start(&["fra1"]).await;
    let c = Cloud::login(&twin, "fra1").await;
    let net = network_with_subnet(&c, "tenant", 1200, "10.20.0.0/24").await;
    let r = c.glance("GET", "/images?name=cirros", None).await;
    let image = r.body["images"][0]["id"]
        .as_str()
        .expect("cirros")
        .to_string();

    // A GPU server lands on the GPU host and holds one GPU in Placement.
    let r = c
        .nova("POST", "/servers", "2.74", Some(json!({"server": {"name": "gpu-vm", "flavorRef": "6", "imageRef": image, "networks": [{"uuid": net}], "metadata": {"role": "ml"}}})))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(r.body["server"]["adminPass"].is_string());
    assert!(
        r.header("location")
            .is_some_and(|l| l.contains("/servers/"))
    );
    let gpu_vm = r.body["server"]["id"].as_str().expect("id").to_string();
    let r = c
        .nova("GET", &format!("/servers/{gpu_vm}"), "2.1", None)
        .await;
    assert_eq!(r.body["server"]["status"], "BUILD");
    let s = c.wait_server(&gpu_vm, &["ACTIVE", "ERROR"]).await;
    assert_eq!(s["status"], "ACTIVE", "{s}");
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], "fra1-gpu-01");
    assert_eq!(s["OS-EXT-STS:power_state"], 1);
    assert!(
        s["addresses"]["tenant"][0]["addr"]
            .as_str()
            .is_some_and(|a| a.starts_with("10.20.0.")),
        "{s}"
    );
    let r = c
        .neutron("GET", &format!("/ports?device_id={gpu_vm}"), None)
        .await;
    let ports = r.body["ports"].as_array().expect("ports");
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0]["status"], "ACTIVE");
    assert_eq!(ports[0]["device_owner"], "compute:nova");
    let r = c
        .placement("GET", &format!("/allocations/{gpu_vm}"), "1.39", None)
        .await;
    let allocs = r.body["allocations"].as_object().expect("allocations");
    assert_eq!(
        allocs.values().next().expect("one provider")["resources"]["CUSTOM_GPU_H100"],
        1
    );
    let r = c.nova("GET", "/os-hypervisors/detail", "2.1", None).await;
    let gpu_host = r.body["hypervisors"]
        .as_array()
        .expect("hyps")
        .iter()
        .find(|h| {
            h["hypervisor_hostname"]
                .as_str()
                .is_some_and(|n| n.contains("gpu"))
        })
        .expect("gpu hypervisor")
        .clone();
    assert_eq!(gpu_host["vcpus_used"], 8);
    assert_eq!(gpu_host["running_vms"], 1);
    // At 2.47+ the flavor is embedded, with its extra specs for admins.
    let r = c
        .nova("GET", &format!("/servers/{gpu_vm}"), "2.47", None)
        .await;
    assert_eq!(r.body["server"]["flavor"]["original_name"], "g1.h100.1");
    assert_eq!(
        r.body["server"]["flavor"]["extra_specs"]["pci_passthrough:alias"],
        "gpu-h100:1"
    );

    // Too many GPUs for any host: accepted, then ERROR with the scheduler's fault.
    let r = c
        .nova("POST", "/flavors", "2.1", Some(json!({"flavor": {"name": "gpu.x16", "id": "gpu-x16", "vcpus": 4, "ram": 4096, "disk": 10}})))
        .await;
    assert_eq!(r.status, 200);
    c.nova(
        "POST",
        "/flavors/gpu-x16/os-extra_specs",
        "2.1",
        Some(json!({"extra_specs": {"pci_passthrough:alias": "gpu-h100:16"}})),
    )
    .await;
    let r = c.nova("POST", "/servers", "2.37", Some(json!({"server": {"name": "too-big", "flavorRef": "gpu-x16", "imageRef": image, "networks": "none"}}))).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = c
        .wait_server(
            r.body["server"]["id"].as_str().expect("id"),
            &["ERROR", "ACTIVE"],
        )
        .await;
    assert_eq!(s["status"], "ERROR");
    assert!(
        s["fault"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("No valid host")),
        "{s}"
    );
    // An unknown PCI alias is refused up front.
    c.nova("POST", "/flavors", "2.1", Some(json!({"flavor": {"name": "bad.alias", "id": "bad-alias", "vcpus": 1, "ram": 512, "disk": 1}}))).await;
    c.nova(
        "POST",
        "/flavors/bad-alias/os-extra_specs",
        "2.1",
        Some(json!({"extra_specs": {"pci_passthrough:alias": "gpu-a100:1"}})),
    )
    .await;
    let r = c.nova("POST", "/servers", "2.37", Some(json!({"server": {"name": "x", "flavorRef": "bad-alias", "imageRef": image, "networks": "none"}}))).await;
    assert_eq!(r.status, 400);
    // networks is required from 2.37 on.
    let r = c
        .nova(
            "POST",
            "/servers",
            "2.37",
            Some(json!({"server": {"name": "x", "flavorRef": "1", "imageRef": image}})),
        )
        .await;
    assert_eq!(r.status, 400);

    // The build_fails per-object fault (by server name) ends a build in ERROR.
    let r = c.twin_admin("POST", "/faults/object", json!({"dc": "fra1", "service": "openstack", "id": "doomed", "fault": "build_fails", "times": 1})).await;
    assert_eq!(r.status, 204);
    let r = c.nova("POST", "/servers", "2.37", Some(json!({"server": {"name": "doomed", "flavorRef": "1", "imageRef": image, "networks": [{"uuid": net}]}}))).await;
    let doomed = r.body["server"]["id"].as_str().expect("id").to_string();
    let s = c.wait_server(&doomed, &["ERROR", "ACTIVE"]).await;
    assert_eq!(s["status"], "ERROR");
    assert!(
        s["fault"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Exceeded maximum number of retries")),
        "{s}"
    );
    let r = c
        .neutron("GET", &format!("/ports?device_id={doomed}"), None)
        .await;
    assert_eq!(r.body["ports"].as_array().map(Vec::len), Some(0));
    // Its create action failed, as `server event list` shows it.
    let r = c
        .nova(
            "GET",
            &format!("/servers/{doomed}/os-instance-actions"),
            "2.1",
            None,
        )
        .await;
    let acts = r.body["instanceActions"].as_array().expect("actions");
    assert_eq!(acts.len(), 1);
    assert_eq!(acts[0]["action"], "create");
    assert_eq!(acts[0]["message"], "Error");
    let rid = acts[0]["request_id"].as_str().expect("request id");
    let r = c
        .nova(
            "GET",
            &format!("/servers/{doomed}/os-instance-actions/{rid}"),
            "2.62",
            None,
        )
        .await;
    assert_eq!(r.body["instanceAction"]["events"][0]["result"], "Error");

    // Several small servers, then marker/limit pagination over list and detail.
    for i in 0..5 {
        let r = c.nova("POST", "/servers", "2.37", Some(json!({"server": {"name": format!("web-{i}"), "flavorRef": "1", "imageRef": image, "networks": "auto"}}))).await;
        assert_eq!(r.status, 202, "{}", r.body);
    }
    for detail in ["/servers", "/servers/detail"] {
        let mut seen = Vec::new();
        let mut url = format!("{}{detail}?limit=3", c.compute);
        loop {
            let r = c.call("GET", &url, Some("compute 2.1"), None).await;
            assert_eq!(r.status, 200, "{url}: {}", r.body);
            let page = r.body["servers"].as_array().expect("servers");
            assert!(page.len() <= 3);
            seen.extend(
                page.iter()
                    .map(|s| s["id"].as_str().expect("id").to_string()),
            );
            match r.body["servers_links"]
                .as_array()
                .and_then(|l| l.iter().find(|l| l["rel"] == "next"))
            {
                Some(n) => url = n["href"].as_str().expect("href").to_string(),
                None => break,
            }
            assert!(url.contains("marker="), "{url}");
        }
        let mut uniq = seen.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), seen.len());
        assert_eq!(seen.len(), 8, "{detail}: {seen:?}");
    }
    let r = c.nova("GET", "/servers?marker=nope", "2.1", None).await;
    assert_eq!(r.status, 400);
    // Filters: name regex, status, flavor, changes-since.
    let r = c
        .nova("GET", "/servers?name=^web-[0-2]$", "2.1", None)
        .await;
    assert_eq!(
        r.body["servers"].as_array().map(Vec::len),
        Some(3),
        "{}",
        r.body
    );
    let r = c
        .nova("GET", "/servers/detail?status=ERROR", "2.1", None)
        .await;
    assert_eq!(r.body["servers"].as_array().map(Vec::len), Some(2));
    let r = c.nova("GET", "/servers?flavor=6", "2.1", None).await;
    assert_eq!(r.body["servers"].as_array().map(Vec::len), Some(1));
    let r = c
        .nova(
            "GET",
            "/servers?changes-since=2000-01-01T00:00:00Z",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.body["servers"].as_array().map(Vec::len), Some(8));
    let r = c.nova("GET", "/servers?bogus=1", "2.75", None).await;
    assert_eq!(r.status, 400);

    // Actions.
    let id = gpu_vm.as_str();
    let r = c
        .nova(
            "POST",
            &format!("/servers/{id}/action"),
            "2.1",
            Some(json!({"os-stop": null})),
        )
        .await;
    assert_eq!(r.status, 202);
    let r = c
        .nova(
            "POST",
            &format!("/servers/{id}/action"),
            "2.1",
            Some(json!({"os-stop": null})),
        )
        .await;
    assert_eq!(r.status, 409, "a stop while powering off conflicts");
    let s = c.wait_server(id, &["SHUTOFF"]).await;
    assert_eq!(s["OS-EXT-STS:power_state"], 4);
    let r = c
        .nova(
            "POST",
            &format!("/servers/{id}/action"),
            "2.1",
            Some(json!({"os-stop": null})),
        )
        .await;
    assert_eq!(r.status, 409);
    assert!(
        r.body["conflictingRequest"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("vm_state stopped")),
        "{}",
        r.body
    );
    let r = c
        .nova(
            "POST",
            &format!("/servers/{id}/action"),
            "2.1",
            Some(json!({"reboot": {"type": "SOFT"}})),
        )
        .await;
    assert_eq!(r.status, 409);
    let r = c
        .nova(
            "POST",
            &format!("/servers/{id}/action"),
            "2.1",
            Some(json!({"os-start": null})),
        )
        .await;
    assert_eq!(r.status, 202);
    c.wait_server(id, &["ACTIVE"]).await;
    let r = c
        .nova(
            "POST",
            &format!("/servers/{id}/action"),
            "2.1",
            Some(json!({"reboot": {"type": "HARD"}})),
        )
        .await;
    assert_eq!(r.status, 202);
    let r = c.nova("GET", &format!("/servers/{id}"), "2.1", None).await;
    assert_eq!(r.body["server"]["status"], "HARD_REBOOT");
    c.wait_server(id, &["ACTIVE"]).await;
    let r = c
        .nova(
            "POST",
            &format!("/servers/{id}/action"),
            "2.73",
            Some(json!({"lock": {"locked_reason": "maintenance"}})),
        )
        .await;
    assert_eq!(r.status, 202);
    let r = c.nova("GET", &format!("/servers/{id}"), "2.73", None).await;
    assert_eq!(r.body["server"]["locked"], true);
    assert_eq!(r.body["server"]["locked_reason"], "maintenance");
    let r = c
        .nova(
            "POST",
            &format!("/servers/{id}/action"),
            "2.1",
            Some(json!({"frobnicate": null})),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = c
        .nova(
            "POST",
            &format!("/servers/{id}/action"),
            "2.1",
            Some(json!({"os-getConsoleOutput": {"length": 1}})),
        )
        .await;
    assert!(
        r.body["output"]
            .as_str()
            .is_some_and(|o| o.contains("login"))
    );
    let r = c
        .nova(
            "GET",
            &format!("/servers/{id}/os-instance-actions"),
            "2.58",
            None,
        )
        .await;
    let names: Vec<&str> = r.body["instanceActions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter_map(|a| a["action"].as_str())
        .collect();
    assert_eq!(
        names,
        ["lock", "reboot", "start", "stop", "create"],
        "newest first"
    );
    assert!(r.body["instanceActions"][0]["updated_at"].is_string());
    let r = c
        .nova(
            "PUT",
            &format!("/servers/{id}"),
            "2.19",
            Some(json!({"server": {"name": "gpu-vm-renamed", "description": "d"}})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["server"]["name"], "gpu-vm-renamed");
    assert_eq!(r.body["server"]["description"], "d");
    let r = c
        .nova(
            "POST",
            &format!("/servers/{id}/action"),
            "2.1",
            Some(json!({"resize": {"flavorRef": "5"}})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    c.wait_server(id, &["VERIFY_RESIZE"]).await;
    let r = c
        .nova(
            "POST",
            &format!("/servers/{id}/action"),
            "2.1",
            Some(json!({"confirmResize": null})),
        )
        .await;
    assert_eq!(r.status, 204);
    let r = c.nova("GET", &format!("/servers/{id}"), "2.1", None).await;
    assert_eq!(r.body["server"]["flavor"]["id"], "5");
    // Metadata and tags.
    let r = c
        .nova(
            "POST",
            &format!("/servers/{id}/metadata"),
            "2.1",
            Some(json!({"metadata": {"a": "1"}})),
        )
        .await;
    assert_eq!(r.body["metadata"], json!({"role": "ml", "a": "1"}));
    let r = c
        .nova("PUT", &format!("/servers/{id}/tags/blue"), "2.26", None)
        .await;
    assert_eq!(r.status, 201);
    let r = c.nova("GET", "/servers?tags=blue", "2.26", None).await;
    assert_eq!(r.body["servers"].as_array().map(Vec::len), Some(1));
    // Delete: 204, then gone, ports released.
    let r = c
        .nova("DELETE", &format!("/servers/{id}"), "2.1", None)
        .await;
    assert_eq!(r.status, 204);
    let r = c.nova("GET", &format!("/servers/{id}"), "2.1", None).await;
    assert_eq!(r.status, 404);
    let r = c
        .neutron("GET", &format!("/ports?device_id={id}"), None)
        .await;
    assert_eq!(r.body["ports"].as_array().map(Vec::len), Some(0));
    let r = c
        .placement("GET", &format!("/allocations/{id}"), "1.39", None)
        .await;
    assert_eq!(r.body["allocations"], json!({}));

    // Quota: instances capped at 10 by default; lower it and get a 403.
    let r = c
        .nova(
            "PUT",
            &format!("/os-quota-sets/{}", c.project_id),
            "2.1",
            Some(json!({"quota_set": {"instances": 7}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["quota_set"]["instances"], 7);
    let r = c.nova("POST", "/servers", "2.37", Some(json!({"server": {"name": "one-more", "flavorRef": "1", "imageRef": image, "networks": "none"}}))).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body["forbidden"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Quota exceeded for instances"))
    );
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn nova_azs_hypervisors_quotas_limits_keypairs() {
    let twin = support::start(&["fra1"]).await;
    let c = Cloud::login(&twin, "fra1").await;
    let r = c.nova("GET", "/os-availability-zone", "2.1", None).await;
    assert_eq!(r.body["availabilityZoneInfo"][0]["zoneName"], "nova");
    assert_eq!(r.body["availabilityZoneInfo"][0]["hosts"], Value::Null);
    let r = c
        .nova("GET", "/os-availability-zone/detail", "2.1", None)
        .await;
    let zones = r.body["availabilityZoneInfo"].as_array().expect("zones");
    assert!(zones.iter().any(|z| z["zoneName"] == "internal"));
    let nova = zones
        .iter()
        .find(|z| z["zoneName"] == "nova")
        .expect("nova");
    assert_eq!(nova["hosts"].as_object().map(|h| h.len()), Some(4));

    let r = c.nova("GET", "/os-hypervisors", "2.1", None).await;
    let hyps = r.body["hypervisors"].as_array().expect("hypervisors");
    assert_eq!(hyps.len(), 4);
    assert!(hyps[0]["id"].is_number());
    let r = c.nova("GET", "/os-hypervisors", "2.53", None).await;
    let first = r.body["hypervisors"][0]["id"]
        .as_str()
        .expect("uuid id")
        .to_string();
    let r = c.nova("GET", "/os-hypervisors?limit=2", "2.53", None).await;
    assert!(
        r.body["hypervisors_links"][0]["href"]
            .as_str()
            .is_some_and(|h| h.contains("marker="))
    );
    let r = c
        .nova("GET", &format!("/os-hypervisors/{first}"), "2.53", None)
        .await;
    assert_eq!(r.body["hypervisor"]["vcpus"], 64);
    assert!(r.body["hypervisor"]["cpu_info"].is_object());
    let r = c
        .nova("GET", &format!("/os-hypervisors/{first}"), "2.88", None)
        .await;
    assert!(
        r.body["hypervisor"].get("vcpus").is_none() && r.body["hypervisor"].get("uptime").is_some()
    );
    let r = c
        .nova("GET", "/os-hypervisors/statistics", "2.1", None)
        .await;
    assert_eq!(r.body["hypervisor_statistics"]["count"], 4);
    let r = c
        .nova("GET", "/os-hypervisors/statistics", "2.88", None)
        .await;
    assert_eq!(r.status, 404);
    let r = c
        .nova(
            "GET",
            "/os-hypervisors/detail?hypervisor_hostname_pattern=gpu",
            "2.53",
            None,
        )
        .await;
    assert_eq!(r.body["hypervisors"].as_array().map(Vec::len), Some(1));

    let p = &c.project_id;
    let r = c
        .nova("GET", &format!("/os-quota-sets/{p}"), "2.1", None)
        .await;
    assert_eq!(r.body["quota_set"]["id"], p.as_str());
    assert_eq!(r.body["quota_set"]["cores"], 20);
    assert!(r.body["quota_set"].get("floating_ips").is_some());
    let r = c
        .nova("GET", &format!("/os-quota-sets/{p}"), "2.57", None)
        .await;
    assert!(
        r.body["quota_set"].get("floating_ips").is_none()
            && r.body["quota_set"].get("injected_files").is_none()
    );
    let r = c
        .nova(
            "GET",
            &format!("/os-quota-sets/{p}?usage=true"),
            "2.57",
            None,
        )
        .await;
    assert_eq!(
        r.body["quota_set"]["cores"],
        json!({"in_use": 0, "limit": 20, "reserved": 0})
    );
    let r = c
        .nova("GET", &format!("/os-quota-sets/{p}/detail"), "2.57", None)
        .await;
    assert!(r.body["quota_set"]["ram"]["limit"].is_number());
    let r = c
        .nova(
            "PUT",
            &format!("/os-quota-sets/{p}"),
            "2.57",
            Some(json!({"quota_set": {"cores": 64, "ram": 262144}})),
        )
        .await;
    assert_eq!(r.body["quota_set"]["cores"], 64);
    assert!(r.body["quota_set"].get("id").is_none());
    let r = c
        .nova(
            "PUT",
            &format!("/os-quota-sets/{p}"),
            "2.57",
            Some(json!({"quota_set": {"floating_ips": 1}})),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = c
        .nova(
            "PUT",
            &format!("/os-quota-sets/{p}"),
            "2.57",
            Some(json!({"quota_set": {"cores": -2}})),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = c
        .nova("GET", &format!("/os-quota-sets/{p}/defaults"), "2.57", None)
        .await;
    assert_eq!(r.body["quota_set"]["cores"], 20);
    let r = c.nova("GET", "/limits", "2.1", None).await;
    assert_eq!(r.body["limits"]["absolute"]["maxTotalCores"], 64);
    assert!(r.body["limits"]["absolute"].get("maxImageMeta").is_some());
    let r = c.nova("GET", "/limits", "2.57", None).await;
    assert!(r.body["limits"]["absolute"].get("maxPersonality").is_none());
    assert_eq!(r.body["limits"]["rate"], json!([]));

    let r = c
        .nova(
            "POST",
            "/os-keypairs",
            "2.2",
            Some(json!({"keypair": {"name": "k1"}})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.body["keypair"]["private_key"].is_string());
    let r = c.nova("POST", "/os-keypairs", "2.92", Some(json!({"keypair": {"name": "k2", "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl k2"}}))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = c
        .nova(
            "POST",
            "/os-keypairs",
            "2.92",
            Some(json!({"keypair": {"name": "k2", "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl k2"}})),
        )
        .await;
    assert_eq!(r.status, 409);
    let r = c.nova("GET", "/os-keypairs", "2.35", None).await;
    assert_eq!(r.body["keypairs"].as_array().map(Vec::len), Some(2));
    let r = c.nova("DELETE", "/os-keypairs/k1", "2.2", None).await;
    assert_eq!(r.status, 204);
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn nova_aggregates_define_availability_zones() {
    let twin = support::start(&["fra1"]).await;
    let c = Cloud::login(&twin, "fra1").await;
    let r = c
        .nova(
            "POST",
            "/os-aggregates",
            "2.41",
            Some(json!({"aggregate": {"name": "gpu-hosts", "availability_zone": "az-gpu"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["aggregate"]["uuid"].is_string());
    let id = r.body["aggregate"]["id"].to_string();
    let r = c
        .nova(
            "POST",
            &format!("/os-aggregates/{id}/action"),
            "2.41",
            Some(json!({"add_host": {"host": "fra1-gpu-01"}})),
        )
        .await;
    assert_eq!(r.body["aggregate"]["hosts"], json!(["fra1-gpu-01"]));
    let r = c
        .nova(
            "POST",
            &format!("/os-aggregates/{id}/action"),
            "2.41",
            Some(json!({"add_host": {"host": "nope"}})),
        )
        .await;
    assert_eq!(r.status, 404);
    let r = c.nova("GET", "/os-availability-zone", "2.1", None).await;
    let zones: Vec<&str> = r.body["availabilityZoneInfo"]
        .as_array()
        .expect("zones")
        .iter()
        .filter_map(|z| z["zoneName"].as_str())
        .collect();
    assert!(
        zones.contains(&"az-gpu") && zones.contains(&"nova"),
        "{zones:?}"
    );
    // A small server asked into the GPU zone lands on the GPU host.
    let image = c.glance("GET", "/images?name=cirros", None).await.body["images"][0]["id"].clone();
    let r = c
        .nova("POST", "/servers", "2.37", Some(json!({"server": {"name": "in-zone", "flavorRef": "1", "imageRef": image, "networks": "none", "availability_zone": "az-gpu"}})))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = c
        .wait_server(r.body["server"]["id"].as_str().expect("id"), &["ACTIVE"])
        .await;
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], "fra1-gpu-01");
    assert_eq!(s["OS-EXT-AZ:availability_zone"], "az-gpu");
    let r = c
        .nova("POST", "/servers", "2.37", Some(json!({"server": {"name": "x", "flavorRef": "1", "imageRef": image, "networks": "none", "availability_zone": "mars"}})))
        .await;
    assert_eq!(r.status, 400);
    let r = c
        .nova("DELETE", &format!("/os-aggregates/{id}"), "2.41", None)
        .await;
    assert_eq!(r.status, 400, "a non-empty aggregate cannot be deleted");
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn neutron_networks_subnets_ports_quotas() {
    let twin = support::start(&["fra1"]).await;
    let c = Cloud::login(&twin, "fra1").await;
    let r = send(&c.http, "GET", &format!("{}/", c.network), &[], None).await;
    assert_eq!(r.body["versions"][0]["id"], "v2.0");

    let body = json!({"network": {"name": "prov", "provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 1001, "tags": ["a"], "description": "d"}});
    let r = c.neutron("POST", "/networks", Some(body.clone())).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let n = &r.body["network"];
    assert_eq!(n["provider:network_type"], "vlan");
    assert_eq!(n["provider:physical_network"], "physnet1");
    assert_eq!(n["provider:segmentation_id"], 1001);
    assert_eq!(n["mtu"], 1500);
    let prov = n["id"].as_str().expect("id").to_string();
    // Same VLAN on the same physnet: conflict; on another physnet: fine.
    let r = c.neutron("POST", "/networks", Some(body)).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.body["NeutronError"]["type"], "VlanIdInUse");
    let r = c.neutron("POST", "/networks", Some(json!({"network": {"name": "other", "provider:network_type": "vlan", "provider:physical_network": "physnet2", "provider:segmentation_id": 1001}}))).await;
    assert_eq!(r.status, 201);
    let r = c.neutron("POST", "/networks", Some(json!({"network": {"name": "x", "provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 5000}}))).await;
    assert_eq!(r.status, 400);
    let r = c.neutron("POST", "/networks", Some(json!({"network": {"name": "vx", "provider:network_type": "vxlan", "provider:segmentation_id": 5001}}))).await;
    assert_eq!(r.status, 201);
    let r = c.neutron("POST", "/networks", Some(json!({"network": {"name": "vx2", "provider:network_type": "vxlan", "provider:segmentation_id": 5001}}))).await;
    assert_eq!(r.body["NeutronError"]["type"], "TunnelIdInUse");
    let r = c.neutron("POST", "/networks", Some(json!({"network": {"name": "flat2", "provider:network_type": "flat", "provider:physical_network": "physnet1"}}))).await;
    assert_eq!(r.body["NeutronError"]["type"], "FlatNetworkInUse");
    let r = c
        .neutron(
            "POST",
            "/networks",
            Some(json!({"network": {"name": "tenant"}})),
        )
        .await;
    assert_eq!(r.body["network"]["provider:network_type"], "vxlan");
    assert_eq!(r.body["network"]["mtu"], 1450);

    // Subnets with pools, DHCP port, overlap.
    let r = c.neutron("POST", "/subnets", Some(json!({"subnet": {"network_id": prov, "ip_version": 4, "cidr": "192.168.50.0/24", "allocation_pools": [{"start": "192.168.50.10", "end": "192.168.50.20"}]}}))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["subnet"]["gateway_ip"], "192.168.50.1");
    let subnet = r.body["subnet"]["id"].as_str().expect("id").to_string();
    let r = c.neutron("POST", "/subnets", Some(json!({"subnet": {"network_id": prov, "ip_version": 4, "cidr": "192.168.50.128/25"}}))).await;
    assert_eq!(r.status, 400);
    let r = c
        .neutron(
            "POST",
            "/subnets",
            Some(
                json!({"subnet": {"network_id": prov, "ip_version": 4, "cidr": "192.168.51.7/24"}}),
            ),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = c
        .neutron(
            "GET",
            &format!("/ports?network_id={prov}&device_owner=network:dhcp"),
            None,
        )
        .await;
    assert_eq!(
        r.body["ports"][0]["fixed_ips"][0]["ip_address"],
        "192.168.50.10"
    );
    let r = c
        .neutron(
            "POST",
            "/ports",
            Some(json!({"port": {"network_id": prov, "name": "p1"}})),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        r.body["port"]["fixed_ips"][0]["ip_address"],
        "192.168.50.11"
    );
    assert_eq!(r.body["port"]["fixed_ips"][0]["subnet_id"], subnet.as_str());
    let port = r.body["port"]["id"].as_str().expect("id").to_string();
    let r = c.neutron("POST", "/ports", Some(json!({"port": {"network_id": prov, "fixed_ips": [{"ip_address": "192.168.50.11"}]}}))).await;
    assert_eq!(r.status, 409);
    let r = c
        .neutron("GET", "/ports?fixed_ips=ip_address%3D192.168.50.11", None)
        .await;
    assert_eq!(r.body["ports"][0]["id"], port.as_str());
    let r = c
        .neutron("DELETE", &format!("/networks/{prov}"), None)
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.body["NeutronError"]["type"], "NetworkInUse");
    let r = c.neutron("DELETE", &format!("/ports/{port}"), None).await;
    assert_eq!(r.status, 204);

    // Filters, fields, tags, pagination.
    let r = c.neutron("GET", "/networks?name=prov", None).await;
    assert_eq!(r.body["networks"].as_array().map(Vec::len), Some(1));
    let r = c
        .neutron("GET", "/networks?tags=a&fields=id&fields=name", None)
        .await;
    assert_eq!(r.body["networks"][0].as_object().map(|o| o.len()), Some(2));
    let r = c
        .neutron("PUT", &format!("/networks/{prov}/tags/b"), None)
        .await;
    assert_eq!(r.status, 201);
    let r = c
        .neutron("GET", &format!("/networks/{prov}/tags"), None)
        .await;
    assert_eq!(r.body["tags"], json!(["a", "b"]));
    let r = c.neutron("GET", "/networks?bogus=1", None).await;
    assert_eq!(r.status, 400);
    let mut seen = Vec::new();
    let mut url = format!("{}/v2.0/networks?limit=2", c.network);
    loop {
        let r = c.call("GET", &url, None, None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        seen.extend(
            r.body["networks"]
                .as_array()
                .expect("nets")
                .iter()
                .map(|n| n["id"].clone()),
        );
        match r.body["networks_links"]
            .as_array()
            .and_then(|l| l.iter().find(|l| l["rel"] == "next"))
        {
            Some(n) => url = n["href"].as_str().expect("href").to_string(),
            None => break,
        }
    }
    let all = c.neutron("GET", "/networks", None).await;
    assert_eq!(
        seen.len(),
        all.body["networks"].as_array().map(Vec::len).unwrap_or(0)
    );
    let r = c
        .neutron(
            "PUT",
            &format!("/networks/{prov}"),
            Some(json!({"network": {"name": "prov2", "provider:segmentation_id": 1002}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["network"]["provider:segmentation_id"], 1002);
    assert!(r.body["network"]["revision_number"].as_i64() > Some(1));

    // Quotas.
    let p = &c.project_id;
    let r = c.neutron("GET", &format!("/quotas/{p}"), None).await;
    assert_eq!(r.body["quota"]["network"], 100);
    let r = c
        .neutron(
            "PUT",
            &format!("/quotas/{p}"),
            Some(json!({"quota": {"network": 6}})),
        )
        .await;
    assert_eq!(r.body["quota"]["network"], 6);
    let r = c
        .neutron("GET", &format!("/quotas/{p}/details"), None)
        .await;
    assert_eq!(r.body["quota"]["network"]["used"], 5);
    c.neutron(
        "POST",
        "/networks",
        Some(json!({"network": {"name": "sixth"}})),
    )
    .await;
    let r = c
        .neutron(
            "POST",
            "/networks",
            Some(json!({"network": {"name": "seventh"}})),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.body["NeutronError"]["type"], "OverQuota");
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn glance_images_and_pagination() {
    let twin = support::start(&["fra1"]).await;
    let c = Cloud::login(&twin, "fra1").await;
    let r = send(&c.http, "GET", &format!("{}/", c.image), &[], None).await;
    assert_eq!(r.status, 300);
    assert_eq!(r.body["versions"][0]["status"], "CURRENT");
    let r = c.glance("GET", "/images", None).await;
    let names: Vec<&str> = r.body["images"]
        .as_array()
        .expect("images")
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    for n in ["debian-12", "ubuntu-24.04", "cirros"] {
        assert!(names.contains(&n), "{names:?}");
    }
    assert_eq!(r.body["first"], "/v2/images");
    assert!(r.body.get("next").is_none());
    let r = c.glance("GET", "/images?limit=1", None).await;
    let next = r.body["next"].as_str().expect("next").to_string();
    assert!(
        next.starts_with("/v2/images?") && next.contains("marker="),
        "{next}"
    );
    let mut seen = vec![r.body["images"][0]["id"].clone()];
    let mut next = Some(next);
    while let Some(n) = next {
        let r = c.call("GET", &format!("{}{n}", c.image), None, None).await;
        seen.extend(
            r.body["images"]
                .as_array()
                .expect("images")
                .iter()
                .map(|i| i["id"].clone()),
        );
        next = r.body["next"].as_str().map(str::to_string);
    }
    assert_eq!(seen.len(), 3);
    let id = seen[0].as_str().expect("id");
    let r = c.glance("GET", &format!("/images/{id}"), None).await;
    assert_eq!(r.body["status"], "active");
    assert_eq!(r.body["visibility"], "public");
    let r = c
        .glance("GET", "/images/00000000-0000-0000-0000-000000000000", None)
        .await;
    assert_eq!(r.status, 404);
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn placement_providers_inventories_classes_candidates() {
    let twin = support::start(&["fra1"]).await;
    let c = Cloud::login(&twin, "fra1").await;
    let r = send(&c.http, "GET", &format!("{}/", c.placement), &[], None).await;
    assert_eq!(r.body["versions"][0]["min_version"], "1.0");
    assert_eq!(r.body["versions"][0]["max_version"], "1.39");

    // The seeded providers: one per compute host; the GPU host with CUSTOM_GPU_H100.
    let r = c
        .placement("GET", "/resource_providers", "1.14", None)
        .await;
    assert_eq!(
        r.header("openstack-api-version").as_deref(),
        Some("placement 1.14")
    );
    let rps = r.body["resource_providers"].as_array().expect("rps");
    assert_eq!(rps.len(), 4);
    assert!(rps[0].get("root_provider_uuid").is_some());
    let r = c.placement("GET", "/resource_providers", "1.0", None).await;
    assert!(
        r.body["resource_providers"][0]
            .get("root_provider_uuid")
            .is_none()
    );
    let r = c
        .placement(
            "GET",
            "/resource_providers?resources=CUSTOM_GPU_H100:8",
            "1.4",
            None,
        )
        .await;
    assert_eq!(
        r.body["resource_providers"].as_array().map(Vec::len),
        Some(1)
    );

    // Version errors.
    let r = c
        .placement("GET", "/resource_providers", "1.99", None)
        .await;
    assert_eq!(r.status, 406);
    let r = c.placement("GET", "/resource_providers", "x", None).await;
    assert_eq!(r.status, 400);

    // Create (201 without body before 1.20, 200 with body since), conflict, update, delete.
    let r = c
        .placement(
            "POST",
            "/resource_providers",
            "1.0",
            Some(json!({"name": "old-style"})),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body, Value::Null);
    assert!(r.header("location").is_some());
    let r = c
        .placement(
            "POST",
            "/resource_providers",
            "1.20",
            Some(json!({"name": "rp-a"})),
        )
        .await;
    assert_eq!(r.status, 200);
    let rp = r.body["uuid"].as_str().expect("uuid").to_string();
    assert_eq!(r.body["generation"], 0);
    let r = c
        .placement(
            "POST",
            "/resource_providers",
            "1.20",
            Some(json!({"name": "rp-a"})),
        )
        .await;
    assert_eq!(r.status, 409);
    let r = c
        .placement(
            "PUT",
            &format!("/resource_providers/{rp}"),
            "1.20",
            Some(json!({"name": "rp-a2"})),
        )
        .await;
    assert_eq!(r.body["name"], "rp-a2");

    // Custom classes.
    let r = c
        .placement(
            "POST",
            "/resource_classes",
            "1.2",
            Some(json!({"name": "CUSTOM_FPGA_X"})),
        )
        .await;
    assert_eq!(r.status, 201);
    let r = c
        .placement(
            "POST",
            "/resource_classes",
            "1.2",
            Some(json!({"name": "CUSTOM_FPGA_X"})),
        )
        .await;
    assert_eq!(r.status, 409);
    let r = c
        .placement(
            "POST",
            "/resource_classes",
            "1.2",
            Some(json!({"name": "FPGA_X"})),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = c
        .placement("PUT", "/resource_classes/CUSTOM_NIC_Y", "1.7", None)
        .await;
    assert_eq!(r.status, 201);
    let r = c
        .placement("PUT", "/resource_classes/CUSTOM_NIC_Y", "1.7", None)
        .await;
    assert_eq!(r.status, 204);
    let r = c
        .placement("GET", "/resource_classes/CUSTOM_NIC_Y", "1.7", None)
        .await;
    assert_eq!(r.body["name"], "CUSTOM_NIC_Y");
    let r = c.placement("GET", "/resource_classes", "1.1", None).await;
    assert_eq!(r.status, 404);

    // Inventories with generations.
    let inv = json!({"resource_provider_generation": 0, "inventories": {"VCPU": {"total": 16, "allocation_ratio": 2.0}, "MEMORY_MB": {"total": 65536, "reserved": 1024}, "CUSTOM_FPGA_X": {"total": 2}}});
    let r = c
        .placement(
            "PUT",
            &format!("/resource_providers/{rp}/inventories"),
            "1.26",
            Some(inv.clone()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["resource_provider_generation"], 1);
    assert_eq!(r.body["inventories"]["VCPU"]["max_unit"], 2_147_483_647);
    let r = c
        .placement(
            "PUT",
            &format!("/resource_providers/{rp}/inventories"),
            "1.26",
            Some(inv),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.body["errors"][0]["code"], "placement.concurrent_update");
    let r = c.placement("PUT", &format!("/resource_providers/{rp}/inventories"), "1.26", Some(json!({"resource_provider_generation": 1, "inventories": {"CUSTOM_NOPE": {"total": 1}}}))).await;
    assert_eq!(r.status, 400);
    let r = c
        .placement(
            "PUT",
            &format!("/resource_providers/{rp}/inventories/VCPU"),
            "1.26",
            Some(json!({"resource_provider_generation": 1, "total": 32, "allocation_ratio": 2.0})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["total"], 32);
    assert_eq!(r.body["resource_provider_generation"], 2);
    let r = c
        .placement(
            "GET",
            &format!("/resource_providers/{rp}/inventories/VCPU"),
            "1.26",
            None,
        )
        .await;
    assert_eq!(r.body["allocation_ratio"], 2.0);
    let r = c
        .placement(
            "GET",
            &format!("/resource_providers/{rp}/inventories/DISK_GB"),
            "1.26",
            None,
        )
        .await;
    assert_eq!(r.status, 404);

    // Allocation candidates.
    let r = c
        .placement(
            "GET",
            "/allocation_candidates?resources=VCPU:2,MEMORY_MB:1024,CUSTOM_GPU_H100:1",
            "1.34",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let reqs = r.body["allocation_requests"].as_array().expect("requests");
    assert_eq!(reqs.len(), 1, "only the GPU host: {}", r.body);
    let gpu_rp = reqs[0]["allocations"]
        .as_object()
        .expect("allocs")
        .keys()
        .next()
        .expect("rp")
        .clone();
    assert_eq!(
        r.body["provider_summaries"][&gpu_rp]["resources"]["CUSTOM_GPU_H100"]["capacity"],
        8
    );
    assert!(reqs[0]["mappings"][""].is_array());
    let r = c
        .placement(
            "GET",
            "/allocation_candidates?resources=VCPU:2,CUSTOM_FPGA_X:1",
            "1.12",
            None,
        )
        .await;
    assert_eq!(
        r.body["allocation_requests"].as_array().map(Vec::len),
        Some(1)
    );
    let r = c
        .placement(
            "GET",
            "/allocation_candidates?resources=VCPU:1",
            "1.10",
            None,
        )
        .await;
    assert!(r.body["allocation_requests"][0]["allocations"].is_array());
    let r = c
        .placement(
            "GET",
            "/allocation_candidates?resources=VCPU:1,CUSTOM_UNKNOWN:1",
            "1.34",
            None,
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["errors"][0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("No such resource class CUSTOM_UNKNOWN")),
        "{}",
        r.body
    );
    let r = c
        .placement(
            "GET",
            "/allocation_candidates?resources=VCPU:1",
            "1.9",
            None,
        )
        .await;
    assert_eq!(r.status, 404);

    // Allocations and usages.
    let consumer = "7a0a5b2c-0a7a-4a3b-9b5c-1d2e3f405060";
    let body = json!({"allocations": {rp.clone(): {"resources": {"VCPU": 4, "CUSTOM_FPGA_X": 1}}}, "project_id": c.project_id, "user_id": c.user_id, "consumer_generation": null, "consumer_type": "INSTANCE"});
    let r = c
        .placement(
            "PUT",
            &format!("/allocations/{consumer}"),
            "1.38",
            Some(body.clone()),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = c
        .placement(
            "PUT",
            &format!("/allocations/{consumer}"),
            "1.38",
            Some(body),
        )
        .await;
    assert_eq!(r.status, 409);
    let r = c
        .placement(
            "GET",
            &format!("/resource_providers/{rp}/usages"),
            "1.38",
            None,
        )
        .await;
    assert_eq!(r.body["usages"]["CUSTOM_FPGA_X"], 1);
    let r = c
        .placement(
            "GET",
            &format!("/usages?project_id={}", c.project_id),
            "1.38",
            None,
        )
        .await;
    assert_eq!(r.body["usages"]["INSTANCE"]["VCPU"], 4);
    let r = c
        .placement("DELETE", &format!("/resource_providers/{rp}"), "1.38", None)
        .await;
    assert_eq!(r.status, 409);
    let r = c
        .placement("DELETE", "/resource_classes/CUSTOM_FPGA_X", "1.38", None)
        .await;
    assert_eq!(r.status, 409);
    let r = c
        .placement("DELETE", &format!("/allocations/{consumer}"), "1.38", None)
        .await;
    assert_eq!(r.status, 204);
    let r = c
        .placement("DELETE", &format!("/resource_providers/{rp}"), "1.38", None)
        .await;
    assert_eq!(r.status, 204);

    // Traits.
    let r = c
        .placement("PUT", "/traits/CUSTOM_RACK_A", "1.6", None)
        .await;
    assert_eq!(r.status, 201);
    let r = c
        .placement(
            "PUT",
            &format!("/resource_providers/{gpu_rp}/traits"),
            "1.6",
            Some(json!({"resource_provider_generation": 0, "traits": ["CUSTOM_RACK_A"]})),
        )
        .await;
    assert_eq!(r.status, 409, "stale generation");
    let g = c
        .placement("GET", &format!("/resource_providers/{gpu_rp}"), "1.6", None)
        .await
        .body["generation"]
        .clone();
    let r = c.placement("PUT", &format!("/resource_providers/{gpu_rp}/traits"), "1.6", Some(json!({"resource_provider_generation": g, "traits": ["CUSTOM_RACK_A", "COMPUTE_NODE"]}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .placement(
            "GET",
            "/allocation_candidates?resources=VCPU:1&required=CUSTOM_RACK_A",
            "1.17",
            None,
        )
        .await;
    assert_eq!(
        r.body["allocation_requests"].as_array().map(Vec::len),
        Some(1)
    );
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn mutate_summary_and_save_restore() {
    let dir = tempfile::tempdir().expect("tmp");
    let state = dir.path().join("state.json");
    let twin = strata_twin::start_with_clock(
        support::opts(&["fra1"], Some(state.clone())),
        strata_twin::Clock::virtual_now(),
    )
    .await
    .expect("start");
    let c = Cloud::login(&twin, "fra1").await;
    let mutate = |body: Value| {
        let c = &c;
        async move {
            c.twin_admin("POST", "/dcs/fra1/openstack/mutate", body)
                .await
        }
    };
    // Flavor by name: change its RAM behind the client's back.
    let r = mutate(json!({"kind": "flavor", "id": "m1.small", "set": {"ram": 3072}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c.nova("GET", "/flavors/2", "2.1", None).await;
    assert_eq!(r.body["flavor"]["ram"], 3072);
    let r = mutate(json!({"kind": "flavor", "id": "2", "set": {"bogus": 1}})).await;
    assert_eq!(r.status, 400);
    // Network by name.
    let r = mutate(json!({"kind": "network", "id": "public", "set": {"shared": true, "description": "changed"}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c.neutron("GET", "/networks?name=public", None).await;
    assert_eq!(r.body["networks"][0]["shared"], true);
    // Quota and project.
    let r =
        mutate(json!({"kind": "quota", "id": c.project_id, "set": {"cores": 99, "network": 3}}))
            .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .nova(
            "GET",
            &format!("/os-quota-sets/{}", c.project_id),
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.body["quota_set"]["cores"], 99);
    let r = c
        .neutron("GET", &format!("/quotas/{}", c.project_id), None)
        .await;
    assert_eq!(r.body["quota"]["network"], 3);
    let r =
        mutate(json!({"kind": "project", "id": "service", "set": {"description": "svc"}})).await;
    assert_eq!(r.status, 200);
    // A server: flip its status, then delete it behind the client's back.
    let image = c.glance("GET", "/images?name=cirros", None).await.body["images"][0]["id"].clone();
    let r = c.nova("POST", "/servers", "2.37", Some(json!({"server": {"name": "s1", "flavorRef": "1", "imageRef": image, "networks": "none"}}))).await;
    let sid = r.body["server"]["id"].as_str().expect("id").to_string();
    c.wait_server(&sid, &["ACTIVE"]).await;
    let r = mutate(json!({"kind": "server", "id": "s1", "set": {"status": "SHUTOFF"}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c.nova("GET", &format!("/servers/{sid}"), "2.1", None).await;
    assert_eq!(r.body["server"]["status"], "SHUTOFF");
    let r = c
        .twin_admin("GET", "/dcs/fra1/openstack/summary", Value::Null)
        .await;
    assert_eq!(r.body["servers"], 1);
    assert_eq!(r.body["hypervisors"], 4);
    assert_eq!(r.body["images"], 3);
    assert_eq!(r.body["servers_by_status"]["SHUTOFF"], 1);
    // Created objects survive a restart, and so does the token.
    c.nova(
        "POST",
        "/flavors",
        "2.1",
        Some(json!({"flavor": {"name": "kept", "id": "kept", "vcpus": 1, "ram": 256, "disk": 1}})),
    )
    .await;
    let token = c.token.clone();
    twin.shutdown().await.expect("shutdown");
    assert!(state.exists());

    let twin = strata_twin::start_with_clock(
        support::opts(&["fra1"], Some(state.clone())),
        strata_twin::Clock::virtual_now(),
    )
    .await
    .expect("restart");
    let c2 = Cloud::login(&twin, "fra1").await;
    let r = c2.nova("GET", "/flavors/kept", "2.1", None).await;
    assert_eq!(r.status, 200);
    let r = c2.nova("GET", "/flavors/2", "2.1", None).await;
    assert_eq!(r.body["flavor"]["ram"], 3072);
    let r = c2
        .nova("GET", &format!("/servers/{sid}"), "2.1", None)
        .await;
    assert_eq!(r.body["server"]["status"], "SHUTOFF");
    let r = send(
        &c2.http,
        "GET",
        &format!("{}/flavors/kept", c2.compute),
        &[("x-auth-token", &token)],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "the old token is still valid");
    // The catalog follows the new listener.
    assert_ne!(c2.compute, c.compute);
    let r = mutate_on(&c2, json!({"kind": "server", "id": sid, "delete": true})).await;
    assert_eq!(r.status, 200);
    let r = c2
        .nova("GET", &format!("/servers/{sid}"), "2.1", None)
        .await;
    assert_eq!(r.status, 404);
    twin.shutdown().await.expect("shutdown");
}

async fn mutate_on(c: &Cloud, body: Value) -> support::Resp {
    c.twin_admin("POST", "/dcs/fra1/openstack/mutate", body)
        .await
}
