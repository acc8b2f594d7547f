//! Desired state of the example fleet.

use std::path::Path;

use strata_diagnostics::SourceMap;
use strata_plan::{Kind, Platform, desired};

fn example() -> strata_fleet::Fleet {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fleet");
    let mut sources = SourceMap::new();
    fn walk(d: &Path, s: &mut SourceMap) {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .expect("dir")
            .map(|e| e.expect("e").path())
            .collect();
        v.sort();
        for p in v {
            if p.is_dir() {
                walk(&p, s);
            } else if p.extension().is_some_and(|e| e == "yaml") {
                s.add(
                    p.display().to_string(),
                    std::fs::read_to_string(&p).expect("read"),
                );
            }
        }
    }
    walk(&dir, &mut sources);
    let loaded = strata_spec::load(&sources, &strata_spec::Limits::default());
    let lock =
        strata_fleet::Lock::parse(&std::fs::read_to_string(dir.join("fleet.lock")).expect("lock"))
            .expect("lock");
    strata_fleet::compile(&loaded.spec, &lock)
        .fleet
        .expect("fleet")
}

#[test]
fn every_dc_gets_its_maas_proxmox_and_openstack_objects() {
    let fleet = example();
    let d = desired(&fleet).expect("desired");
    for dc in ["fra1", "ams1", "waw1"] {
        let count = |k: Kind| d.iter().filter(|r| r.id.dc == dc && r.id.kind == k).count();
        assert_eq!(count(Kind::Fabric), 1);
        assert_eq!(count(Kind::Vlan), 7);
        assert_eq!(count(Kind::MaasSubnet), 7);
        assert_eq!(count(Kind::Machine), 13);
        assert_eq!(count(Kind::Vm), 11);
        assert_eq!(count(Kind::Project), 2);
        assert_eq!(count(Kind::Quota), 2);
        assert_eq!(count(Kind::Flavor), 4);
        assert_eq!(count(Kind::Network), 4);
        assert_eq!(count(Kind::Subnet), 4);
        assert!(d.scope(dc, Platform::Proxmox).all(|r| {
            r.fields["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|x| x == "strata-example-prod"))
        }));
    }
}

#[test]
fn secrets_are_references_in_spec_never_fields() {
    let fleet = example();
    let d = desired(&fleet).expect("desired");
    for m in d.iter().filter(|r| r.id.kind == Kind::Machine) {
        assert!(!m.fields.contains_key("power_pass"));
        let p = m.spec["power_pass"].as_str().expect("reference");
        assert!(p.starts_with("env:") || p.starts_with("file:"), "{p}");
        assert!(m.sensitive.contains("power_pass"));
    }
    // GPU flavors carry the PCI alias; every flavor carries the owner marker.
    let gpu = d
        .iter()
        .find(|r| r.id.kind == Kind::Flavor && r.id.name == "g1.h100x1")
        .expect("gpu flavor");
    assert_eq!(
        gpu.fields["extra_specs"]["pci_passthrough:alias"],
        "gpu-h100:1"
    );
    assert_eq!(
        gpu.fields["extra_specs"]["strata:owner"],
        "strata-example-prod"
    );
}

#[test]
fn dhcp_subnets_get_a_dynamic_range_above_every_allocated_address() {
    let fleet = example();
    let d = desired(&fleet).expect("desired");
    let fra1 = fleet.dc("fra1").expect("fra1");
    let prov = fra1
        .vlan(strata_spec::InfraVlan::Provisioning)
        .expect("provisioning");
    let s = d
        .iter()
        .find(|r| r.id.kind == Kind::MaasSubnet && r.id.name == prov.subnet.to_string())
        .expect("subnet");
    let start: std::net::IpAddr = s.spec["dynamic_range"]["start"]
        .as_str()
        .expect("start")
        .parse()
        .expect("ip");
    let end: std::net::IpAddr = s.spec["dynamic_range"]["end"]
        .as_str()
        .expect("end")
        .parse()
        .expect("ip");
    assert!(prov.subnet.contains(&start) && prov.subnet.contains(&end) && start < end);
    for (_, ifs) in fra1.hosts() {
        for i in ifs
            .iter()
            .filter(|i| i.vlan == strata_spec::InfraVlan::Provisioning)
        {
            assert!(
                i.address.addr() < start,
                "{} inside the DHCP range",
                i.address
            );
        }
    }
    // VLANs without DHCP have none.
    let storage = fra1.vlan(strata_spec::InfraVlan::Storage).expect("storage");
    let s = d
        .iter()
        .find(|r| r.id.kind == Kind::MaasSubnet && r.id.name == storage.subnet.to_string())
        .expect("subnet");
    assert!(s.spec["dynamic_range"].is_null());
}
