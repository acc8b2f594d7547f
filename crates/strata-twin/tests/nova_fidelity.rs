//! Nova behaviour a new user notices (issue 13): server groups and the scheduler's group
//! filters, key pair fingerprints and generation, flavor access, and extra spec
//! validation from 2.86. Codes and messages are nova's, cited per assertion.

#[path = "openstack_support.rs"]
mod support;

use serde_json::{Value, json};
use support::Cloud;

fn message(body: &Value) -> String {
    body.as_object()
        .and_then(|m| m.values().next())
        .and_then(|v| v["message"].as_str())
        .unwrap_or_default()
        .to_string()
}

async fn image(c: &Cloud) -> Value {
    c.glance("GET", "/images?name=cirros", None).await.body["images"][0]["id"].clone()
}

/// Boot one server into `group`; the create response.
async fn boot_in(c: &Cloud, name: &str, group: &str) -> support::Resp {
    let image = image(c).await;
    c.nova(
        "POST",
        "/servers",
        "2.37",
        Some(json!({
            "server": {"name": name, "flavorRef": "1", "imageRef": image, "networks": "none"},
            "os:scheduler_hints": {"group": group},
        })),
    )
    .await
}

async fn boot_active(c: &Cloud, name: &str, group: &str) -> (String, Value) {
    let r = boot_in(c, name, group).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["server"]["id"].as_str().expect("id").to_string();
    let s = c.wait_server(&id, &["ACTIVE", "ERROR"]).await;
    (id, s)
}

async fn create_group(c: &Cloud, mv: &str, body: Value) -> support::Resp {
    c.nova(
        "POST",
        "/os-server-groups",
        mv,
        Some(json!({"server_group": body})),
    )
    .await
}

#[tokio::test]
async fn server_groups_crud_by_microversion() {
    let twin = support::start(&["fra1"]).await;
    let c = Cloud::login(&twin, "fra1").await;

    // Before 2.64: `policies` (one item), `metadata` {}; no project/user before 2.13
    // (server_groups.py `_format_server_group`; api sample server-groups-get-resp.json).
    let r = create_group(&c, "2.1", json!({"name": "old", "policies": ["affinity"]})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let g = &r.body["server_group"];
    assert_eq!(g["policies"], json!(["affinity"]));
    assert_eq!(g["metadata"], json!({}));
    assert_eq!(g["members"], json!([]));
    assert!(
        g.get("project_id").is_none() && g.get("policy").is_none(),
        "{g}"
    );
    let old = g["id"].as_str().unwrap().to_string();

    // 2.13 adds project_id/user_id.
    let r = c
        .nova("GET", &format!("/os-server-groups/{old}"), "2.13", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["server_group"]["project_id"], c.project_id.as_str());
    assert_eq!(r.body["server_group"]["user_id"], c.user_id.as_str());

    // The soft policies only from 2.15 (schemas/server_groups.py `create_v215`).
    let r = create_group(
        &c,
        "2.14",
        json!({"name": "s", "policies": ["soft-affinity"]}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        message(&r.body).contains("is not one of ['anti-affinity', 'affinity']"),
        "{}",
        r.body
    );
    let r = create_group(
        &c,
        "2.15",
        json!({"name": "s", "policies": ["soft-affinity"]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // `policy` is not accepted before 2.64 (additionalProperties: False).
    let r = create_group(&c, "2.63", json!({"name": "s", "policy": "affinity"})).await;
    assert_eq!(r.status, 400, "{}", r.body);

    // 2.64: `policy` + `rules`; `policies`/`metadata` gone (api sample
    // v2.64/server-groups-post-resp.json).
    let r = create_group(
        &c,
        "2.64",
        json!({"name": "test", "policy": "anti-affinity", "rules": {"max_server_per_host": 3}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let g = &r.body["server_group"];
    assert_eq!(g["policy"], "anti-affinity");
    assert_eq!(g["rules"], json!({"max_server_per_host": 3}));
    assert!(
        g.get("policies").is_none() && g.get("metadata").is_none(),
        "{g}"
    );
    // server_groups.py `create`: "Only anti-affinity policy supports rules."
    let r = create_group(
        &c,
        "2.64",
        json!({"name": "x", "policy": "affinity", "rules": {"max_server_per_host": 2}}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        message(&r.body),
        "Only anti-affinity policy supports rules."
    );
    // `positive_integer`: 0 is refused; an unknown rule too; `policies` at 2.64 too.
    for body in [
        json!({"name": "x", "policy": "anti-affinity", "rules": {"max_server_per_host": 0}}),
        json!({"name": "x", "policy": "anti-affinity", "rules": {"other": 1}}),
        json!({"name": "x", "policies": ["affinity"]}),
        json!({"name": "x", "policy": "best-effort"}),
        json!({"name": "", "policy": "affinity"}),
    ] {
        let r = create_group(&c, "2.64", body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
    }
    let r = c
        .nova("GET", &format!("/os-server-groups/{old}"), "2.64", None)
        .await;
    assert_eq!(r.body["server_group"]["rules"], json!({}), "{}", r.body);

    // List with limit/offset (`common.limited`).
    let r = c.nova("GET", "/os-server-groups", "2.64", None).await;
    assert_eq!(
        r.body["server_groups"].as_array().unwrap().len(),
        3,
        "{}",
        r.body
    );
    let r = c
        .nova("GET", "/os-server-groups?limit=1&offset=1", "2.64", None)
        .await;
    let page = r.body["server_groups"].as_array().unwrap();
    assert_eq!(page.len(), 1, "{}", r.body);
    assert_eq!(page[0]["name"], "s");
    let r = c
        .nova("GET", "/os-server-groups?limit=-1", "2.64", None)
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // 2.75 refuses unknown query parameters (`index_query_v275`).
    let r = c.nova("GET", "/os-server-groups?foo=1", "2.75", None).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = c.nova("GET", "/os-server-groups?foo=1", "2.74", None).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Delete: 204, then 404 "Instance group ... could not be found." (InstanceGroupNotFound).
    let r = c
        .nova("DELETE", &format!("/os-server-groups/{old}"), "2.64", None)
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = c
        .nova("GET", &format!("/os-server-groups/{old}"), "2.64", None)
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        message(&r.body),
        format!("Instance group {old} could not be found.")
    );

    // Quota `server_groups` (default 10): "Quota exceeded, too many server groups." (403).
    for i in 0..8 {
        let r = create_group(
            &c,
            "2.64",
            json!({"name": format!("g{i}"), "policy": "affinity"}),
        )
        .await;
        assert_eq!(r.status, 200, "{i}: {}", r.body);
    }
    let r = create_group(&c, "2.64", json!({"name": "over", "policy": "affinity"})).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(message(&r.body), "Quota exceeded, too many server groups.");
    let r = c.nova("GET", "/limits", "2.64", None).await;
    assert_eq!(
        r.body["limits"]["absolute"]["totalServerGroupsUsed"], 10,
        "{}",
        r.body
    );
}

#[tokio::test]
async fn anti_affinity_spreads_and_fails_as_nova_does() {
    let twin = support::start(&["fra1"]).await;
    let c = Cloud::login(&twin, "fra1").await;
    let r = create_group(
        &c,
        "2.64",
        json!({"name": "spread", "policy": "anti-affinity"}),
    )
    .await;
    let gid = r.body["server_group"]["id"].as_str().unwrap().to_string();
    let hosts = c.nova("GET", "/os-hypervisors", "2.53", None).await.body["hypervisors"]
        .as_array()
        .unwrap()
        .len();

    // One member per host (`_GroupAntiAffinityFilter`, max_server_per_host 1).
    let mut seen = std::collections::BTreeSet::new();
    let mut ids = vec![];
    for i in 0..hosts {
        let (id, s) = boot_active(&c, &format!("a{i}"), &gid).await;
        assert_eq!(s["status"], "ACTIVE", "{s}");
        assert!(
            seen.insert(s["OS-EXT-SRV-ATTR:host"].as_str().unwrap().to_string()),
            "{seen:?}"
        );
        ids.push(id);
    }
    let r = c
        .nova("GET", &format!("/os-server-groups/{gid}"), "2.64", None)
        .await;
    assert_eq!(
        r.body["server_group"]["members"].as_array().unwrap().len(),
        hosts
    );
    // `server_groups` of a server from 2.71.
    let r = c
        .nova("GET", &format!("/servers/{}", ids[0]), "2.71", None)
        .await;
    assert_eq!(
        r.body["server"]["server_groups"],
        json!([gid]),
        "{}",
        r.body
    );

    // No host left: ERROR with NoValidHost's fault (nova/exception.py NoValidHost,
    // "No valid host was found. %(reason)s").
    let (failed, s) = boot_active(&c, "extra", &gid).await;
    assert_eq!(s["status"], "ERROR", "{s}");
    assert!(
        s["fault"]["message"]
            .as_str()
            .unwrap()
            .starts_with("No valid host was found."),
        "{s}"
    );
    // Deleting a member frees its host and leaves the group's members.
    for id in [&failed, &ids[0]] {
        let r = c
            .nova("DELETE", &format!("/servers/{id}"), "2.64", None)
            .await;
        assert_eq!(r.status, 204, "{}", r.body);
    }
    let r = c
        .nova("GET", &format!("/os-server-groups/{gid}"), "2.64", None)
        .await;
    let members = r.body["server_group"]["members"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(members.len(), hosts - 1, "{}", r.body);
    assert!(!members.contains(&json!(ids[0])));
    let (_, s) = boot_active(&c, "again", &gid).await;
    assert_eq!(s["status"], "ACTIVE", "{s}");

    // The hint must be a uuid of an existing group (schemas/servers.py `_hints`;
    // InstanceGroupNotFound is a 400 from servers.py `create`).
    let r = boot_in(&c, "bad", "not-a-uuid").await;
    assert_eq!(r.status, 400, "{}", r.body);
    let missing = "8d9f7f8e-0d3a-4a51-9a43-3f6f8f2f3f3f";
    let r = boot_in(&c, "bad", missing).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        message(&r.body),
        format!("Instance group {missing} could not be found.")
    );
}

#[tokio::test]
async fn affinity_rules_and_soft_policies() {
    let twin = support::start(&["fra1"]).await;
    let c = Cloud::login(&twin, "fra1").await;
    let r = c
        .nova(
            "PUT",
            &format!("/os-quota-sets/{}", c.project_id),
            "2.64",
            Some(json!({"quota_set": {"instances": 100, "cores": 1000, "ram": 10000000}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Affinity: every member on the first member's host (`_GroupAffinityFilter`).
    let r = create_group(&c, "2.64", json!({"name": "pack", "policy": "affinity"})).await;
    let gid = r.body["server_group"]["id"].as_str().unwrap().to_string();
    let mut hosts = std::collections::BTreeSet::new();
    for i in 0..3 {
        let (_, s) = boot_active(&c, &format!("p{i}"), &gid).await;
        assert_eq!(s["status"], "ACTIVE", "{s}");
        hosts.insert(s["OS-EXT-SRV-ATTR:host"].as_str().unwrap().to_string());
    }
    assert_eq!(hosts.len(), 1, "{hosts:?}");

    // max_server_per_host 2: two per host at most.
    let r = create_group(
        &c,
        "2.64",
        json!({"name": "pairs", "policy": "anti-affinity", "rules": {"max_server_per_host": 2}}),
    )
    .await;
    let gid = r.body["server_group"]["id"].as_str().unwrap().to_string();
    let mut per_host = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..6 {
        let (_, s) = boot_active(&c, &format!("q{i}"), &gid).await;
        assert_eq!(s["status"], "ACTIVE", "{s}");
        *per_host
            .entry(s["OS-EXT-SRV-ATTR:host"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert!(per_host.values().all(|n| *n <= 2), "{per_host:?}");

    // soft-anti-affinity never fails: more members than hosts all go ACTIVE, spread
    // over the hosts (the GPU host is kept for PCI requests by the twin's PCI
    // preference, ranked above the group weigher, so it may stay empty).
    let r = create_group(
        &c,
        "2.64",
        json!({"name": "soft", "policy": "soft-anti-affinity"}),
    )
    .await;
    let gid = r.body["server_group"]["id"].as_str().unwrap().to_string();
    let n_hosts = c.nova("GET", "/os-hypervisors", "2.53", None).await.body["hypervisors"]
        .as_array()
        .unwrap()
        .len();
    let mut soft = std::collections::BTreeSet::new();
    for i in 0..=n_hosts {
        let (_, s) = boot_active(&c, &format!("s{i}"), &gid).await;
        assert_eq!(s["status"], "ACTIVE", "{s}");
        soft.insert(s["OS-EXT-SRV-ATTR:host"].as_str().unwrap().to_string());
    }
    assert!(soft.len() >= n_hosts - 1, "{soft:?}");

    // server_group_members quota (default 10): "Quota exceeded, too many servers in
    // group" (compute/api.py `_provision_instances`, a 403 from servers.py `create`).
    let r = c
        .nova(
            "PUT",
            &format!("/os-quota-sets/{}", c.project_id),
            "2.64",
            Some(json!({"quota_set": {"server_group_members": 3}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = create_group(
        &c,
        "2.64",
        json!({"name": "small", "policy": "soft-affinity"}),
    )
    .await;
    let gid = r.body["server_group"]["id"].as_str().unwrap().to_string();
    for i in 0..3 {
        let (_, s) = boot_active(&c, &format!("m{i}"), &gid).await;
        assert_eq!(s["status"], "ACTIVE", "{s}");
    }
    let r = boot_in(&c, "m3", &gid).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        message(&r.body),
        "Quota exceeded, too many servers in group"
    );
}

#[tokio::test]
async fn other_projects_groups() {
    let twin = support::start(&["fra1"]).await;
    let admin = Cloud::login(&twin, "fra1").await;
    // A second project with a member user.
    let r = admin
        .keystone(
            "POST",
            "/projects",
            Some(json!({"project": {"name": "team", "domain_id": "default"}})),
        )
        .await;
    let pid = r.body["project"]["id"].as_str().unwrap().to_string();
    let r = admin
        .keystone(
            "POST",
            "/users",
            Some(json!({"user": {"name": "erin", "password": "pw", "domain_id": "default"}})),
        )
        .await;
    let uid = r.body["user"]["id"].as_str().unwrap().to_string();
    let role = admin.keystone("GET", "/roles?name=member", None).await.body["roles"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    admin
        .keystone(
            "PUT",
            &format!("/projects/{pid}/users/{uid}/roles/{role}"),
            None,
        )
        .await;
    let erin = Cloud::login_as(&twin, "fra1", "erin", "pw", "team").await;
    let r = create_group(&erin, "2.64", json!({"name": "mine", "policy": "affinity"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let gid = r.body["server_group"]["id"].as_str().unwrap().to_string();
    create_group(
        &admin,
        "2.64",
        json!({"name": "admins", "policy": "affinity"}),
    )
    .await;

    // index: own project; `all_projects` only for an admin, ignored for others
    // (server_groups.py `index`).
    let names = |r: &support::Resp| -> Vec<String> {
        r.body["server_groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap().to_string())
            .collect()
    };
    let r = erin
        .nova("GET", "/os-server-groups?all_projects=True", "2.64", None)
        .await;
    assert_eq!(names(&r), vec!["mine"]);
    let r = admin.nova("GET", "/os-server-groups", "2.64", None).await;
    assert_eq!(names(&r), vec!["admins"]);
    let r = admin
        .nova("GET", "/os-server-groups?all_projects=True", "2.64", None)
        .await;
    assert_eq!(names(&r), vec!["mine", "admins"]);
    // The admin may show another project's group.
    let r = admin
        .nova("GET", &format!("/os-server-groups/{gid}"), "2.64", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn keypair_fingerprints_and_generation() {
    let twin = support::start(&["fra1"]).await;
    let c = Cloud::login(&twin, "fra1").await;
    // An ed25519 key whose `ssh-keygen -E md5 -l` fingerprint is known: nova/crypto.py
    // `generate_fingerprint` is the MD5 of the base64-decoded blob, colon-separated.
    let public = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host";
    let expected = {
        use base64::Engine;
        let blob = base64::engine::general_purpose::STANDARD
            .decode("AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl")
            .unwrap();
        md5_hex(&blob)
    };
    let r = c
        .nova(
            "POST",
            "/os-keypairs",
            "2.2",
            Some(json!({"keypair": {"name": "k1", "public_key": public}})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.body["keypair"]["fingerprint"],
        expected.as_str(),
        "{}",
        r.body
    );
    assert_eq!(r.body["keypair"]["type"], "ssh");

    // Malformed keys: InvalidKeypair, 400 "Keypair data is invalid: failed to
    // generate fingerprint" (keypairs.py `_create`).
    for bad in [
        "ssh-rsa notbase64!!!",
        "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
        "ssh-foo AAAA",
        "just-one-word",
    ] {
        let r = c
            .nova(
                "POST",
                "/os-keypairs",
                "2.2",
                Some(json!({"keypair": {"name": "bad", "public_key": bad}})),
            )
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert_eq!(
            message(&r.body),
            "Keypair data is invalid: failed to generate fingerprint"
        );
    }
    // `type` x509 from 2.2 takes a certificate; garbage is refused.
    let r = c
        .nova(
            "POST",
            "/os-keypairs",
            "2.2",
            Some(json!({"keypair": {"name": "x", "type": "x509", "public_key": "nope"}})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        message(&r.body)
            .starts_with("Keypair data is invalid: failed to generate X509 fingerprint"),
        "{}",
        r.body
    );

    // Generated (< 2.92): a real RSA key, PKCS#1 private key as paramiko writes it.
    let r = c
        .nova(
            "POST",
            "/os-keypairs",
            "2.2",
            Some(json!({"keypair": {"name": "gen"}})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let k = &r.body["keypair"];
    let public = k["public_key"].as_str().unwrap();
    assert!(
        public.starts_with("ssh-rsa AAAAB3NzaC1yc2E") && public.ends_with(" Generated-by-Nova"),
        "{k}"
    );
    assert!(
        k["private_key"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN RSA PRIVATE KEY-----\n")
    );
    let blob = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(public.split(' ').nth(1).unwrap())
            .unwrap()
    };
    // 2048-bit modulus: string "ssh-rsa" (11), mpint e (4+3), mpint n (4+257).
    assert_eq!(blob.len(), 11 + 7 + 261, "{public}");
    assert_eq!(k["fingerprint"], md5_hex(&blob).as_str());

    // 2.92 requires `public_key` (schemas/keypairs.py `create_v292`).
    let r = c
        .nova(
            "POST",
            "/os-keypairs",
            "2.92",
            Some(json!({"keypair": {"name": "gen2"}})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        message(&r.body).contains("'public_key' is a required property"),
        "{}",
        r.body
    );
}

fn md5_hex(b: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[tokio::test]
async fn flavor_access_follows_nova() {
    let twin = support::start(&["fra1"]).await;
    let c = Cloud::login(&twin, "fra1").await;
    let r = c
        .nova("POST", "/flavors", "2.1",
            Some(json!({"flavor": {"name": "priv", "ram": 512, "vcpus": 1, "disk": 1, "id": "priv", "os-flavor-access:is_public": false}})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // flavors.py `create`: "For backward compatibility, non public flavor access is not
    // being added for created tenant. Ref -bug/1209101" — the list starts empty.
    let r = c
        .nova("GET", "/flavors/priv/os-flavor-access", "2.1", None)
        .await;
    assert_eq!(r.body["flavor_access"], json!([]), "{}", r.body);

    // flavor_access.py `_add_tenant_access`: 409 on a public flavor from 2.7 only.
    let add = json!({"addTenantAccess": {"tenant": c.project_id}});
    let r = c
        .nova("POST", "/flavors/1/action", "2.7", Some(add.clone()))
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(message(&r.body), "Can not add access to a public flavor.");
    let r = c
        .nova("POST", "/flavors/1/action", "2.6", Some(add.clone()))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .nova("POST", "/flavors/priv/action", "2.7", Some(add.clone()))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["flavor_access"][0]["tenant_id"],
        c.project_id.as_str()
    );
    let r = c
        .nova("POST", "/flavors/priv/action", "2.7", Some(add))
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
}

#[tokio::test]
async fn extra_specs_are_validated_from_2_86() {
    let twin = support::start(&["fra1"]).await;
    let c = Cloud::login(&twin, "fra1").await;
    let put = |specs: Value, mv: &'static str| {
        let c = &c;
        async move {
            c.nova(
                "POST",
                "/flavors/1/os-extra_specs",
                mv,
                Some(json!({"extra_specs": specs})),
            )
            .await
        }
    };
    // nova/api/validation/extra_specs/{hw,pci_passthrough,resources,traits}.py and
    // base.py's messages.
    let cases = [
        (
            json!({"hw:cpu_policy": "pinned"}),
            "Validation failed; 'pinned' is not one of: dedicated, shared, mixed.",
        ),
        (
            json!({"hw:mem_page_size": "huge"}),
            "Validation failed; 'huge' is not of the format '(large|small|any|\\d+([kKMGT]i?)?(b|bit|B)?)'.",
        ),
        (
            json!({"hw:numa_nodes": "0"}),
            "Validation failed; '0' is less than the min value of '1'.",
        ),
        (
            json!({"hw:numa_nodes": "two"}),
            "Validation failed; 'two' is not a valid integer value.",
        ),
        (
            json!({"pci_passthrough:alias": "a100"}),
            "Validation failed; 'a100' is not of the format '[^:]+:\\d+(?:\\s*,\\s*[^:]+:\\d+)*'.",
        ),
        (
            json!({"resources:VCPU": "x"}),
            "Validation failed; 'x' is not a valid integer value.",
        ),
        (
            json!({"resources:NOT_A_CLASS": "1"}),
            "Validation failed; extra spec 'resources:NOT_A_CLASS' does not appear to be a valid extra spec.",
        ),
        (
            json!({"trait:HW_CPU_X86_AVX2": "yes"}),
            "Validation failed; 'yes' is not one of: required, forbidden.",
        ),
        (
            json!({"hw:no_such_key": "1"}),
            "Validation failed; extra spec 'hw:no_such_key' does not appear to be a valid extra spec.",
        ),
    ];
    for (specs, msg) in &cases {
        let r = put(specs.clone(), "2.86").await;
        assert_eq!(r.status, 400, "{specs}: {}", r.body);
        assert_eq!(message(&r.body), *msg, "{specs}");
        // Below 2.86 anything goes.
        let r = put(specs.clone(), "2.85").await;
        assert_eq!(r.status, 200, "{specs}: {}", r.body);
    }
    let ok = json!({
        "hw:cpu_policy": "dedicated", "hw:mem_page_size": "2MB", "hw:numa_nodes": "1",
        "pci_passthrough:alias": "a100:1", "resources:VCPU": "2", "resources1:CUSTOM_X": "1",
        "trait:HW_CPU_X86_AVX2": "required", "trait:CUSTOM_FAST": "forbidden",
        "mycompany:anything": "goes",
    });
    let r = put(ok.clone(), "2.86").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .nova(
            "PUT",
            "/flavors/1/os-extra_specs/hw:cpu_policy",
            "2.86",
            Some(json!({"hw:cpu_policy": "bogus"})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
}
