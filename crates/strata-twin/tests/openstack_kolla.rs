//! The OpenStack region configured from its Kolla files, as the services are after a
//! Kolla deploy: PCI aliases and device specs, pinning sets and reserved huge pages
//! (nova), physnets and VLAN ranges (neutron). What the files leave out, the region
//! refuses, with the vendor's answer.

#[path = "openstack_support.rs"]
mod support;

use serde_json::{Value, json};
use support::Cloud;

/// Reconfigure the region with these files (`kolla-ansible reconfigure`).
async fn reconfigure(c: &Cloud, files: Value) -> support::Resp {
    c.twin_admin(
        "POST",
        &format!("/dcs/{}/openstack/mutate", c.dc),
        json!({"kind": "kolla-config", "id": "", "set": files}),
    )
    .await
}

fn files_with(extra: &[(&str, &str)]) -> Value {
    let mut files: serde_json::Map<String, Value> = support::kolla_config("fra1")
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    for (k, v) in extra {
        files.insert((*k).to_string(), Value::String((*v).to_string()));
    }
    Value::Object(files)
}

async fn boot(c: &Cloud, name: &str, flavor: &str) -> Value {
    let image = c.glance("GET", "/images?name=cirros", None).await.body["images"][0]["id"].clone();
    let r = c
        .nova("POST", "/servers", "2.37", Some(json!({"server": {"name": name, "flavorRef": flavor, "imageRef": image, "networks": "none"}})))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    c.wait_server(
        r.body["server"]["id"].as_str().expect("id"),
        &["ACTIVE", "ERROR"],
    )
    .await
}

async fn flavor(c: &Cloud, id: &str, vcpus: i64, ram: i64, specs: Value) {
    let r = c
        .nova(
            "POST",
            "/flavors",
            "2.1",
            Some(json!({"flavor": {"name": id, "id": id, "vcpus": vcpus, "ram": ram, "disk": 10}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .nova(
            "POST",
            &format!("/flavors/{id}/os-extra_specs"),
            "2.1",
            Some(json!({"extra_specs": specs})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

fn no_valid_host(s: &Value) {
    assert_eq!(s["status"], "ERROR", "{s}");
    assert!(
        s["fault"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("No valid host was found")),
        "{s}"
    );
}

#[tokio::test]
async fn neutron_knows_only_the_physnets_ml2_conf_names() {
    let twin = support::start(&["fra1"]).await;
    let c = Cloud::login(&twin, "fra1").await;
    let vlan = |name: &str, physnet: &str, seg: Option<i64>| {
        let mut n = json!({"name": name, "provider:network_type": "vlan", "provider:physical_network": physnet});
        if let Some(s) = seg {
            n["provider:segmentation_id"] = json!(s);
        }
        json!({ "network": n })
    };
    // neutron type_vlan.py validate_provider_segment: an unknown physnet is a 400.
    let r = c
        .neutron("POST", "/networks", Some(vlan("a", "provider", Some(1001))))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["NeutronError"]["type"], "InvalidInput");
    assert_eq!(
        r.body["NeutronError"]["message"],
        "Invalid input for operation: physical_network 'provider' unknown for VLAN provider network."
    );
    // An admin may place a provider network outside the tenant range (only 1-4094 is
    // checked), and on a physnet listed without a range.
    let r = c
        .neutron("POST", "/networks", Some(vlan("b", "physnet1", Some(3500))))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = c
        .neutron("POST", "/networks", Some(vlan("c", "physnet2", Some(7))))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = c
        .neutron("POST", "/networks", Some(vlan("d", "physnet1", Some(4095))))
        .await;
    assert_eq!(
        r.body["NeutronError"]["message"],
        "Invalid input for operation: segmentation_id out of range (1 through 4094)."
    );
    // Without a segmentation id the VLAN comes from the physnet's range; a physnet
    // without one has nothing to allocate.
    let r = c
        .neutron("POST", "/networks", Some(vlan("e", "physnet1", None)))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["network"]["provider:segmentation_id"], 1000);
    let r = c
        .neutron("POST", "/networks", Some(vlan("f", "physnet2", None)))
        .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.body["NeutronError"]["type"], "NoNetworkAvailable");
    // type_flat.py: flat networks only on flat_networks' physnets.
    let r = c
        .neutron("POST", "/networks", Some(json!({"network": {"name": "g", "provider:network_type": "flat", "provider:physical_network": "physnet2"}})))
        .await;
    assert_eq!(
        r.body["NeutronError"]["message"],
        "Invalid input for operation: physical_network 'physnet2' unknown for flat provider network."
    );

    // Kolla's defaults (no ml2_conf.ini override): network_vlan_ranges is empty, so no
    // VLAN network at all.
    let r = reconfigure(&c, json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .neutron("POST", "/networks", Some(vlan("h", "physnet1", Some(1002))))
        .await;
    assert_eq!(
        r.body["NeutronError"]["message"],
        "Invalid input for operation: physical_network 'physnet1' unknown for VLAN provider network."
    );
    // A range neutron-server cannot parse stops it: the reconfigure fails.
    let r = reconfigure(
        &c,
        json!({"config/neutron/ml2_conf.ini": "[ml2_type_vlan]\nnetwork_vlan_ranges = physnet1:2000:1000\n"}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
}

#[tokio::test]
async fn the_gpu_alias_and_device_spec_come_from_nova_conf() {
    let twin = support::start(&["fra1"]).await;
    let c = Cloud::login(&twin, "fra1").await;
    // Configured: the seeded GPU flavor lands on the GPU host.
    let s = boot(&c, "gpu-ok", "6").await;
    assert_eq!(s["status"], "ACTIVE", "{s}");
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], "fra1-gpu-01");
    let r = c
        .nova(
            "DELETE",
            &format!("/servers/{}", s["id"].as_str().expect("id")),
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.status, 204);

    // The alias without the host's device_spec: nova-compute tracks no GPU, so no host.
    let mut files = files_with(&[]);
    files
        .as_object_mut()
        .expect("files")
        .retain(|k, _| !k.starts_with("config/nova/"));
    let r = reconfigure(&c, files).await;
    assert_eq!(r.status, 200, "{}", r.body);
    no_valid_host(&boot(&c, "gpu-no-spec", "6").await);

    // No alias at all (Kolla's default nova.conf): nova-api refuses the flavor's request.
    let r = reconfigure(&c, json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let image = c.glance("GET", "/images?name=cirros", None).await.body["images"][0]["id"].clone();
    let r = c
        .nova("POST", "/servers", "2.37", Some(json!({"server": {"name": "gpu-no-alias", "flavorRef": "6", "imageRef": image, "networks": "none"}})))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body["badRequest"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("PCI alias gpu-h100 is not defined")),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn pinned_huge_page_flavors_fit_numa_cells_or_get_no_valid_host() {
    let twin = support::start(&["fra1"]).await;
    let c = Cloud::login(&twin, "fra1").await;
    let project = c.token_body["token"]["project"]["id"]
        .as_str()
        .expect("project")
        .to_string();
    let r = c
        .nova(
            "PUT",
            &format!("/os-quota-sets/{project}"),
            "2.1",
            Some(json!({"quota_set": {"cores": -1, "ram": -1, "instances": -1}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // An 8-GPU flavor, pinned, on 1 GiB pages: 96 vCPUs and 768 GiB.
    let gpu8 = json!({"pci_passthrough:alias": "gpu-h100:8", "hw:cpu_policy": "dedicated", "hw:mem_page_size": "large", "hw:pci_numa_affinity_policy": "preferred"});
    flavor(&c, "gpu8-one-node", 96, 786_432, gpu8.clone()).await;
    let mut two = gpu8.clone();
    two["hw:numa_nodes"] = json!("2");
    flavor(&c, "gpu8-two-nodes", 96, 786_432, two).await;

    // No cpu_dedicated_set on the host: it reports no PCPU, and nothing pinned fits.
    no_valid_host(&boot(&c, "no-pcpu", "gpu8-two-nodes").await);

    // The GPU host's nova-compute override: 4 CPUs per cell for the host, the rest
    // pinned; two 1 GiB pages per cell kept back.
    let host_conf = "[DEFAULT]\nreserved_huge_pages = node:0,size:1GB,count:2\nreserved_huge_pages = node:1,size:1GB,count:2\n\n[compute]\ncpu_shared_set = 0-3,64-67\ncpu_dedicated_set = 4-63,68-127\n\n[pci]\ndevice_spec = {\"vendor_id\": \"10de\", \"product_id\": \"2330\"}\n";
    let r = reconfigure(
        &c,
        files_with(&[(
            "config/nova/fra1-gpu-01.fra1.example.net/nova.conf",
            host_conf,
        )]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .placement(
            "GET",
            "/resource_providers?name=fra1-gpu-01.fra1.twin",
            "1.39",
            None,
        )
        .await;
    let rp = r.body["resource_providers"][0]["uuid"]
        .as_str()
        .expect("rp")
        .to_string();
    let r = c
        .placement(
            "GET",
            &format!("/resource_providers/{rp}/inventories"),
            "1.39",
            None,
        )
        .await;
    assert_eq!(r.body["inventories"]["PCPU"]["total"], 120, "{}", r.body);
    assert_eq!(r.body["inventories"]["VCPU"]["total"], 8, "{}", r.body);

    // Pinned CPUs but the kernel set aside no huge pages: still no host.
    no_valid_host(&boot(&c, "no-pages", "gpu8-two-nodes").await);

    // The host rebooted with hugepagesz=1G hugepages=900 (450 per cell).
    let r = c
        .twin_admin(
            "POST",
            "/dcs/fra1/openstack/mutate",
            json!({"kind": "hypervisor", "id": "fra1-gpu-01", "set": {"hugepages_1g": 900}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // One NUMA node: 96 pinned vCPUs do not fit a cell of 60 dedicated CPUs.
    no_valid_host(&boot(&c, "one-node", "gpu8-one-node").await);
    // Two nodes: 48 vCPUs and 384 pages per cell fit.
    let s = boot(&c, "two-nodes", "gpu8-two-nodes").await;
    assert_eq!(s["status"], "ACTIVE", "{s}");
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], "fra1-gpu-01");
    // The cells are taken: a second one does not fit (GPUs aside).
    flavor(
        &c,
        "pinned-48",
        48,
        4096,
        json!({"hw:cpu_policy": "dedicated", "hw:mem_page_size": "large", "hw:numa_nodes": "2"}),
    )
    .await;
    no_valid_host(&boot(&c, "second", "pinned-48").await);
    // Asymmetric NUMA requests are refused up front.
    flavor(&c, "odd", 3, 4096, json!({"hw:numa_nodes": "2"})).await;
    let image = c.glance("GET", "/images?name=cirros", None).await.body["images"][0]["id"].clone();
    let r = c
        .nova("POST", "/servers", "2.37", Some(json!({"server": {"name": "odd", "flavorRef": "odd", "imageRef": image, "networks": "none"}})))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
}

/// `[quota] driver = nova.quota.UnifiedLimitsDriver`: Nova takes every limit from
/// Keystone (servers needs one; other resources are unlimited without), counts the
/// passthrough GPUs of a flavor's PCI alias by their Placement class, and the quota-set
/// API only reads. Keystone refuses what the real one does.
#[tokio::test]
async fn unified_limits_count_passthrough_gpus() {
    let twin = support::start(&["fra1"]).await;
    let c = Cloud::login(&twin, "fra1").await;
    let nova_conf = support::kolla_config("fra1")["config/nova.conf"].clone();

    // The driver without [oslo_limit]: nova-api could not tell whose limits to read.
    let r = reconfigure(
        &c,
        files_with(&[(
            "config/nova.conf",
            &format!("{nova_conf}\n[quota]\ndriver = nova.quota.UnifiedLimitsDriver\n"),
        )]),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.to_string().contains("oslo_limit"), "{}", r.body);
    let r = reconfigure(
        &c,
        files_with(&[(
            "config/nova.conf",
            &format!(
                "{nova_conf}\n[quota]\ndriver = nova.quota.UnifiedLimitsDriver\n\n[oslo_limit]\nendpoint_service_type = compute\nsystem_scope = all\n"
            ),
        )]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    let image = c.glance("GET", "/images?name=cirros", None).await.body["images"][0]["id"].clone();
    let try_boot = |name: &'static str| {
        let image = image.clone();
        let c = &c;
        async move {
            c.nova("POST", "/servers", "2.37", Some(json!({"server": {"name": name, "flavorRef": "6", "imageRef": image, "networks": "none"}})))
                .await
        }
    };
    // No limit registered for servers: nothing may boot (nova's require list).
    let r = try_boot("gpu-0").await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.to_string().contains("instances"), "{}", r.body);

    let svc = c.keystone("GET", "/services?type=compute", None).await;
    let service = svc.body["services"][0]["id"]
        .as_str()
        .expect("compute service")
        .to_string();
    // A project limit before its registered limit: Keystone's 403.
    let limit = |resource: &str, n: i64| json!({"limits": [{"service_id": service, "region_id": "fra1", "project_id": c.project_id, "resource_name": resource, "resource_limit": n}]});
    let r = c
        .keystone("POST", "/limits", Some(limit("class:CUSTOM_GPU_H100", 1)))
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let registered = |resource: &str, n: i64| json!({"service_id": service, "region_id": "fra1", "resource_name": resource, "default_limit": n});
    let r = c
        .keystone(
            "POST",
            "/registered_limits",
            Some(json!({"registered_limits": [
                registered("servers", 10),
                registered("class:VCPU", 1000),
                registered("class:PCPU", 1000),
                registered("class:MEMORY_MB", 10_000_000),
                registered("class:CUSTOM_GPU_H100", 0),
            ]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let gpu_registered = r.body["registered_limits"][4]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let r = c
        .keystone(
            "POST",
            "/registered_limits",
            Some(json!({"registered_limits": [registered("servers", 5)]})),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);

    // The default GPU limit is 0: the GPU flavor is refused, by its GPU class.
    let r = try_boot("gpu-0").await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body.to_string().contains("class:CUSTOM_GPU_H100"),
        "{}",
        r.body
    );

    // One GPU for this project: one server boots, the second is over the limit.
    let r = c
        .keystone("POST", "/limits", Some(limit("class:CUSTOM_GPU_H100", 1)))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = c
        .keystone("POST", "/limits", Some(limit("class:CUSTOM_GPU_H100", 2)))
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    let r = try_boot("gpu-1").await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = c
        .wait_server(
            r.body["server"]["id"].as_str().expect("id"),
            &["ACTIVE", "ERROR"],
        )
        .await;
    assert_eq!(s["status"], "ACTIVE", "{s}");
    let r = try_boot("gpu-2").await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body["forbidden"]["message"].as_str().is_some_and(
            |m| m.contains("Requested 1, but already used 1 of 1 class:CUSTOM_GPU_H100")
        ),
        "{}",
        r.body
    );

    // The registered limit cannot go while a project limit hangs on it.
    let r = c
        .keystone(
            "DELETE",
            &format!("/registered_limits/{gpu_registered}"),
            None,
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // The quota-set API reads Keystone's limits and ignores writes.
    let path = format!("/os-quota-sets/{}", c.project_id);
    let r = c
        .nova(
            "PUT",
            &path,
            "2.1",
            Some(json!({"quota_set": {"instances": 99}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["quota_set"]["instances"], 10, "{}", r.body);
    let r = c.nova("GET", &path, "2.1", None).await;
    assert_eq!(r.body["quota_set"]["instances"], 10, "{}", r.body);
    assert_eq!(r.body["quota_set"]["cores"], 1000, "{}", r.body);
}
