//! Tenancy in the twin's region, as a team project's member meets it: Keystone lets the
//! member in only with a role on the project, Neutron hides another project's network
//! until an RBAC policy shares it, and Nova refuses a private flavor without access.

#[path = "openstack_support.rs"]
mod support;

use serde_json::{Value, json};
use support::{Cloud, password_auth, send};

/// A team project and a user with a password, without any role yet.
async fn team_and_user(admin: &Cloud, project: &str, user: &str) -> (String, String) {
    let r = admin
        .keystone(
            "POST",
            "/projects",
            Some(json!({"project": {"name": project, "domain_id": "default"}})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let pid = r.body["project"]["id"].as_str().expect("id").to_string();
    let r = admin
        .keystone(
            "POST",
            "/users",
            Some(json!({"user": {"name": user, "password": "pw-team", "domain_id": "default"}})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let uid = r.body["user"]["id"].as_str().expect("id").to_string();
    (pid, uid)
}

fn error_type(body: &Value) -> &str {
    body["NeutronError"]["type"].as_str().unwrap_or("")
}

#[tokio::test]
async fn a_team_member_needs_a_role_a_shared_network_and_flavor_access() {
    let twin = support::start(&["fra1"]).await;
    let admin = Cloud::login(&twin, "fra1").await;
    let (team, user) = team_and_user(&admin, "team-a", "dana").await;

    // No role on the project: Keystone will not scope a token to it.
    let r = send(
        &admin.http,
        "POST",
        &format!("{}/auth/tokens", admin.auth_url),
        &[],
        Some(&password_auth("dana", "pw-team", Some("team-a"))),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = admin.keystone("GET", "/roles?name=member", None).await;
    let member = r.body["roles"][0]["id"]
        .as_str()
        .expect("member")
        .to_string();
    let grant = format!("/projects/{team}/users/{user}/roles/{member}");
    let r = admin.keystone("PUT", &grant, None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    // Granting again is not an error (what strata's idempotent step relies on).
    let r = admin.keystone("PUT", &grant, None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = admin
        .keystone(
            "GET",
            &format!("/role_assignments?scope.project.id={team}&include_names=true"),
            None,
        )
        .await;
    assert_eq!(r.body["role_assignments"][0]["user"]["name"], "dana");
    assert_eq!(r.body["role_assignments"][0]["role"]["name"], "member");
    let dana = Cloud::login_as(&twin, "fra1", "dana", "pw-team", "team-a").await;
    assert_eq!(dana.project_id, team);

    // The admin project's provider network: invisible to the team.
    let r = admin
        .neutron("POST", "/networks", Some(json!({"network": {"name": "ml-training", "provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 1310}})))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let net = r.body["network"]["id"].as_str().expect("id").to_string();
    let r = admin
        .neutron("POST", "/subnets", Some(json!({"subnet": {"network_id": net, "ip_version": 4, "cidr": "10.31.0.0/24", "name": "ml-training"}})))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = dana.neutron("GET", &format!("/networks/{net}"), None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(error_type(&r.body), "NetworkNotFound");
    let port = json!({"port": {"network_id": net}});
    let r = dana.neutron("POST", "/ports", Some(port.clone())).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(error_type(&r.body), "NetworkNotFound");
    let r = dana.neutron("GET", "/subnets?name=ml-training", None).await;
    assert_eq!(r.body["subnets"], json!([]), "{}", r.body);
    let image = dana.glance("GET", "/images?name=cirros", None).await.body["images"][0]["id"]
        .as_str()
        .expect("cirros")
        .to_string();
    let boot = |flavor: &str, networks: Value| json!({"server": {"name": "vm", "flavorRef": flavor, "imageRef": image, "networks": networks}});
    let r = dana
        .nova(
            "POST",
            "/servers",
            "2.74",
            Some(boot("1", json!([{"uuid": net}]))),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body["badRequest"]["message"],
        format!("Network {net} could not be found.")
    );
    // Nor may the team share it with itself.
    let share = json!({"rbac_policy": {"object_type": "network", "object_id": net, "action": "access_as_shared", "target_tenant": team}});
    let r = dana
        .neutron("POST", "/rbac-policies", Some(share.clone()))
        .await;
    assert_eq!(r.status, 404, "{}", r.body);

    // The admin shares it with the team: the team sees it as shared, with its subnet,
    // and attaches ports.
    let r = admin
        .neutron(
            "POST",
            "/rbac-policies",
            Some(json!({"rbac_policy": {"object_type": "network", "object_id": net, "action": "access_as_owner", "target_tenant": team}})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = admin
        .neutron("POST", "/rbac-policies", Some(share.clone()))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let policy = r.body["rbac_policy"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(r.body["rbac_policy"]["target_tenant"], team.as_str());
    let r = admin
        .neutron("POST", "/rbac-policies", Some(share.clone()))
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(error_type(&r.body), "DuplicateRbacPolicy");
    let r = admin
        .neutron("GET", "/rbac-policies?object_type=network", None)
        .await;
    assert_eq!(r.body["rbac_policies"].as_array().map(Vec::len), Some(1));
    let r = admin
        .neutron("GET", &format!("/networks/{net}"), None)
        .await;
    assert_eq!(
        r.body["network"]["shared"], false,
        "not shared with everyone"
    );
    let r = dana.neutron("GET", &format!("/networks/{net}"), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["network"]["shared"], true);
    let r = dana.neutron("GET", "/subnets?name=ml-training", None).await;
    assert_eq!(
        r.body["subnets"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.body
    );
    let r = dana.neutron("POST", "/ports", Some(port)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let port_id = r.body["port"]["id"].as_str().expect("id").to_string();
    assert_eq!(r.body["port"]["project_id"], team.as_str());

    // Access cannot be taken away while the team has ports there.
    let r = admin
        .neutron("DELETE", &format!("/rbac-policies/{policy}"), None)
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(error_type(&r.body), "RbacPolicyInUse");
    let r = dana
        .neutron("DELETE", &format!("/ports/{port_id}"), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = admin
        .neutron("DELETE", &format!("/rbac-policies/{policy}"), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = admin
        .neutron("DELETE", &format!("/rbac-policies/{policy}"), None)
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(error_type(&r.body), "RbacPolicyNotFound");
    let r = dana.neutron("GET", &format!("/networks/{net}"), None).await;
    assert_eq!(r.status, 404, "{}", r.body);

    // A private flavor: invisible and unbootable without access.
    let r = admin
        .nova("POST", "/flavors", "2.61", Some(json!({"flavor": {"name": "g1.private", "id": "g1-private", "ram": 512, "vcpus": 1, "disk": 1, "os-flavor-access:is_public": false}})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = dana.nova("GET", "/flavors/g1-private", "2.61", None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let none = json!("none");
    let r = dana
        .nova(
            "POST",
            "/servers",
            "2.74",
            Some(boot("g1-private", none.clone())),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body["badRequest"]["message"],
        "Flavor g1-private could not be found."
    );
    let add = |t: &str| json!({"addTenantAccess": {"tenant": t}});
    let r = admin
        .nova(
            "POST",
            "/flavors/g1-private/action",
            "2.61",
            Some(add("no-such-project")),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body["badRequest"]["message"],
        "Project ID no-such-project is not a valid project."
    );
    let r = admin
        .nova(
            "POST",
            "/flavors/g1-private/action",
            "2.61",
            Some(add(&team)),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = admin
        .nova(
            "POST",
            "/flavors/g1-private/action",
            "2.61",
            Some(add(&team)),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    let r = dana.nova("GET", "/flavors/g1-private", "2.61", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = dana
        .nova("POST", "/servers", "2.74", Some(boot("g1-private", none)))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
}
