//! Property: allocations are stable and unique.
//!
//! For random sequences of additions and removals of sites, racks, machines, VMs and
//! tenant networks, compiling each step against the previous step's lock never moves
//! an allocation that both steps have, and no two objects share an address, ASN, VNI
//! or VLAN in one scope.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use proptest::prelude::*;
use strata_diagnostics::SourceMap;
use strata_fleet::{Fleet, Lock, compile};

const SITES: [&str; 4] = ["fra1", "ams1", "waw1", "lon1"];

#[derive(Clone, Debug, Default)]
struct World {
    /// site -> rack number -> occupied slots
    sites: BTreeMap<usize, BTreeMap<u32, BTreeSet<u32>>>,
    /// site -> VM numbers
    vms: BTreeMap<usize, BTreeSet<u32>>,
    tenant_nets: BTreeSet<u32>,
    /// tenant network -> pinned L2 VNI
    vni_pins: BTreeMap<u32, u32>,
}

#[derive(Clone, Debug)]
enum Op {
    AddSite(usize),
    RemoveSite(usize),
    AddRack(usize, u32),
    RemoveRack(usize, u32),
    AddMachine(usize, u32, u32),
    RemoveMachine(usize, u32, u32),
    AddVm(usize, u32),
    RemoveVm(usize, u32),
    AddNet(u32),
    RemoveNet(u32),
    PinVni(u32, u32),
    UnpinVni(u32),
}

/// The plain operations plus pinning tenant VNIs near the start of the pool, where
/// the infrastructure VNIs and earlier networks already hold recorded values.
fn op_with_pins() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => op(),
        1 => (1..8u32, 10000..10020u32).prop_map(|(n, v)| Op::PinVni(n, v)),
        1 => (1..8u32).prop_map(Op::UnpinVni),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let s = 0..SITES.len();
    prop_oneof![
        s.clone().prop_map(Op::AddSite),
        s.clone().prop_map(Op::RemoveSite),
        (s.clone(), 1..5u32).prop_map(|(a, b)| Op::AddRack(a, b)),
        (s.clone(), 1..5u32).prop_map(|(a, b)| Op::RemoveRack(a, b)),
        (s.clone(), 1..5u32, 1..12u32).prop_map(|(a, b, c)| Op::AddMachine(a, b, c)),
        (s.clone(), 1..5u32, 1..12u32).prop_map(|(a, b, c)| Op::AddMachine(a, b, c)),
        (s.clone(), 1..5u32, 1..12u32).prop_map(|(a, b, c)| Op::RemoveMachine(a, b, c)),
        (s.clone(), 1..20u32).prop_map(|(a, b)| Op::AddVm(a, b)),
        (s.clone(), 1..20u32).prop_map(|(a, b)| Op::RemoveVm(a, b)),
        (1..8u32).prop_map(Op::AddNet),
        (1..8u32).prop_map(Op::RemoveNet),
    ]
}

impl World {
    fn apply(&mut self, op: &Op) {
        match *op {
            Op::AddSite(s) => {
                self.sites.entry(s).or_default().entry(1).or_default();
            }
            Op::RemoveSite(s) => {
                self.sites.remove(&s);
                self.vms.remove(&s);
            }
            Op::AddRack(s, r) => {
                if let Some(site) = self.sites.get_mut(&s) {
                    site.entry(r).or_default();
                }
            }
            Op::RemoveRack(s, r) => {
                if let Some(site) = self.sites.get_mut(&s)
                    && site.len() > 1
                {
                    site.remove(&r);
                }
            }
            Op::AddMachine(s, r, slot) => {
                if let Some(rack) = self.sites.get_mut(&s).and_then(|x| x.get_mut(&r)) {
                    rack.insert(slot);
                }
            }
            Op::RemoveMachine(s, r, slot) => {
                if let Some(rack) = self.sites.get_mut(&s).and_then(|x| x.get_mut(&r)) {
                    rack.remove(&slot);
                }
            }
            Op::AddVm(s, n) => {
                if self.sites.contains_key(&s) {
                    self.vms.entry(s).or_default().insert(n);
                }
            }
            Op::RemoveVm(s, n) => {
                if let Some(v) = self.vms.get_mut(&s) {
                    v.remove(&n);
                }
            }
            Op::AddNet(n) => {
                self.tenant_nets.insert(n);
            }
            Op::RemoveNet(n) => {
                self.tenant_nets.remove(&n);
                self.vni_pins.remove(&n);
            }
            Op::PinVni(n, v) => {
                // Two pins on one VNI are a design error of their own (S0305).
                if self.tenant_nets.contains(&n) && !self.vni_pins.values().any(|p| *p == v) {
                    self.vni_pins.insert(n, v);
                }
            }
            Op::UnpinVni(n) => {
                self.vni_pins.remove(&n);
            }
        }
    }

    fn spec_text(&self) -> String {
        let mut s = String::from(BASE);
        s.push_str("sites:\n");
        for (si, racks) in &self.sites {
            s.push_str(&format!(
                "  - name: {}\n    region: r\n    racks:\n",
                SITES[*si]
            ));
            for r in racks.keys() {
                s.push_str(&format!("      - {{ name: r{r:02} }}\n"));
            }
        }
        if self.sites.is_empty() {
            s.push_str("  []\n");
        }
        s.push_str("machines:\n");
        let mut any = false;
        for (si, racks) in &self.sites {
            for (r, slots) in racks {
                for slot in slots {
                    any = true;
                    s.push_str(&format!(
                        "  - {{ serial: {}-{r}-{slot}, site: {}, rack: r{r:02}, slot: {slot}, profile: p, role: openstack-compute, bmc: {{ credential: {{ env: X }} }} }}\n",
                        SITES[*si], SITES[*si]
                    ));
                }
            }
        }
        if !any {
            s.push_str("  []\n");
        }
        s.push_str("vms:\n");
        let mut any = false;
        for (si, vms) in &self.vms {
            for n in vms {
                any = true;
                s.push_str(&format!(
                    "  - {{ name: vm{n}, site: {}, role: service, cores: 1, memory_mib: 512, disk_gb: 8, networks: [management] }}\n",
                    SITES[*si]
                ));
            }
        }
        if !any {
            s.push_str("  []\n");
        }
        s.push_str("tenants:\n  - name: t\n    networks:\n");
        for n in &self.tenant_nets {
            match self.vni_pins.get(n) {
                Some(v) => s.push_str(&format!("      - {{ name: n{n}, vni: {v} }}\n")),
                None => s.push_str(&format!("      - {{ name: n{n} }}\n")),
            }
        }
        if self.tenant_nets.is_empty() {
            s.push_str("      []\n");
        }
        s
    }
}

const BASE: &str = r#"
organisation: { name: x, fleet_id: x, domain: x.net }
mtu: { underlay: 9216, overlay: 9000 }
pools:
  site_supernets: { pool: 10.0.0.0/9, prefix_len: 16 }
  loopbacks: { pool: 10.255.0.0/16, prefix_len: 24 }
  vteps: { pool: 10.254.0.0/16, prefix_len: 24 }
  p2p: { pool: 10.253.0.0/16, prefix_len: 22 }
  interconnect: 172.31.255.0/24
  tenant_subnets: { pool: 100.64.0.0/10, prefix_len: 24 }
  vlan_subnets: { provisioning: 24, bmc: 24, management: 24, storage: 24, ceph_public: 24, ceph_cluster: 24, corosync: 26 }
  asns: { spines: 4200000000-4200000099, leaves: 4200001000-4200001999 }
  vnis: { l2: 10000-19999, l3: 50000-50999 }
blueprint:
  fabric: { spines: 2, leaves_per_rack: 2, border_leaves: 1 }
  vlans:
    provisioning: { vid: 10, mtu: 1500 }
    bmc: { vid: 11, mtu: 1500 }
    management: { vid: 12, mtu: 1500 }
    storage: { vid: 20, mtu: 9000 }
    ceph_public: { vid: 21, mtu: 9000 }
    ceph_cluster: { vid: 22, mtu: 9000 }
    corosync: { vid: 30, mtu: 1500 }
    tenant: 1000-1999
  host_networks:
    proxmox: [provisioning, management, corosync]
    openstack_control: [provisioning, management]
    openstack_network: [provisioning, management]
    openstack_compute: [provisioning, management, storage]
    openstack_storage: [provisioning, management]
  maas:
    region_controllers: 1
    rack_controllers: [{ name: a, dhcp: [provisioning] }, { name: b, dhcp: [provisioning] }]
  proxmox:
    clusters: [{ name: infra, nodes: 3, corosync_links: [corosync], storage: [{ name: s, kind: rbd, tier: ssd }] }]
  openstack:
    kolla_release: "2025.1"
    control_nodes: 0
    availability_zones: []
    default_quota: { instances: 1, cores: 1, ram_mib: 1 }
profiles:
  - name: p
    cpu: { model: x, sockets: 1, cores_per_socket: 8 }
    memory_gib: 64
    numa_nodes: 1
    disks: [{ name: sda, kind: ssd, size_gb: 100 }]
    nics: [{ name: eth0, speed_gbps: 25 }]
    bonds: [{ name: bond0, members: [eth0] }]
    bios: { vendor: x, version: "1" }
"#;

fn load_world(w: &World) -> strata_spec::Spec {
    let mut sources = SourceMap::new();
    sources.add("spec.yaml", w.spec_text());
    let loaded = strata_spec::load(&sources, &strata_spec::Limits::default());
    assert!(
        loaded.diagnostics.is_empty(),
        "{:#?}\n{}",
        loaded.diagnostics,
        w.spec_text()
    );
    loaded.spec
}

fn compile_world(w: &World, lock: &Lock) -> (Option<Fleet>, Lock) {
    let c = compile(&load_world(w), lock);
    assert!(
        c.diagnostics.iter().all(|d| !d.is_error()),
        "{:#?}",
        c.diagnostics
    );
    (c.fleet, c.lock)
}

fn assert_unique(lock: &Lock, fleet: &Option<Fleet>) {
    for (pool, entries) in &lock.pools {
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for (k, v) in entries {
            if let Some(other) = seen.insert(v.as_str(), k.as_str()) {
                panic!("pool {pool}: `{k}` and `{other}` share {v}");
            }
        }
    }
    if let Some(f) = fleet {
        let mut asns = HashSet::new();
        for dc in &f.dcs {
            let mut addrs = HashSet::new();
            for (host, ifs) in dc.hosts() {
                for i in ifs {
                    assert!(
                        addrs.insert(i.address.addr()),
                        "{host}: address {} reused in {}",
                        i.address,
                        dc.name
                    );
                }
            }
            for s in &dc.switches {
                assert!(addrs.insert(s.loopback), "{}: loopback reused", s.name);
                if s.role != strata_fleet::SwitchRole::Spine {
                    assert!(asns.insert(s.asn), "{}: ASN {} reused", s.name, s.asn);
                }
            }
        }
        let mut vnis = HashSet::new();
        let mut vlans = HashSet::new();
        for v in &f.infra_vnis {
            assert!(vnis.insert(v.vni));
        }
        for t in &f.tenants {
            assert!(vnis.insert(t.l3_vni));
            for n in &t.networks {
                assert!(vnis.insert(n.vni), "VNI {} reused", n.vni);
                assert!(vlans.insert(n.vlan), "VLAN {} reused", n.vlan);
            }
        }
    }
}

fn assert_stable(old: &Lock, new: &Lock) {
    for (pool, entries) in &old.pools {
        let Some(now) = new.pools.get(pool) else {
            continue;
        };
        for (k, v) in entries {
            if let Some(v2) = now.get(k) {
                assert_eq!(v, v2, "pool {pool}: `{k}` moved from {v} to {v2}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn allocations_never_move_and_never_collide(ops in proptest::collection::vec(op(), 1..14)) {
        let mut world = World::default();
        world.apply(&Op::AddSite(0));
        world.apply(&Op::AddNet(1));
        let (fleet, mut lock) = compile_world(&world, &Lock::new());
        assert_unique(&lock, &fleet);
        for op in &ops {
            world.apply(op);
            let (fleet, new_lock) = compile_world(&world, &lock);
            assert_unique(&new_lock, &fleet);
            assert_stable(&lock, &new_lock);
            lock = new_lock;
        }
        // Recompiling with the final lock changes nothing.
        let (_, again) = compile_world(&world, &lock);
        prop_assert_eq!(again, lock);
    }

    /// A pin on a value the lock records for another object never moves that object:
    /// the compile fails with S0604 naming the pin (and nothing else), and the lock
    /// stays as it was until the pin is changed.
    #[test]
    fn pins_never_move_recorded_allocations(ops in proptest::collection::vec(op_with_pins(), 1..14)) {
        let mut world = World::default();
        world.apply(&Op::AddSite(0));
        world.apply(&Op::AddNet(1));
        let (_, mut lock) = compile_world(&world, &Lock::new());
        for op in &ops {
            let before = world.clone();
            world.apply(op);
            let c = compile(&load_world(&world), &lock);
            let errors: Vec<_> = c.diagnostics.iter().filter(|d| d.is_error()).collect();
            if errors.is_empty() {
                assert_unique(&c.lock, &c.fleet);
                // A pinned network goes where its pin says; nothing else moves.
                let mut unpinned = lock.clone();
                if let Some(l2) = unpinned.pools.get_mut("vnis/l2") {
                    for n in world.vni_pins.keys() {
                        l2.remove(&format!("tenant/t/n{n}"));
                    }
                }
                assert_stable(&unpinned, &c.lock);
                lock = c.lock;
                continue;
            }
            prop_assert!(c.fleet.is_none());
            prop_assert_eq!(&c.lock, &lock, "a failed compile hands back the lock unchanged");
            for d in &errors {
                prop_assert_eq!(d.code, strata_diagnostics::codes::S0604, "{:#?}", d);
                let pinned = world.vni_pins.iter().any(|(n, v)| {
                    d.message.contains(&format!("`tenant/t/n{n}` pins `{v}`"))
                });
                prop_assert!(pinned, "names a pin of the spec: {}", d.message);
                prop_assert!(!d.help.as_deref().unwrap_or("").contains("delete"), "{:#?}", d);
            }
            // The user moves the pin away again.
            world = before;
        }
    }
}

#[test]
fn a_fresh_compile_and_a_compile_from_history_agree_on_kept_objects() {
    // Build up, tear half down, and check that a new object takes a freed slot
    // without disturbing the others.
    let mut w = World::default();
    w.apply(&Op::AddSite(0));
    for slot in 1..=6 {
        w.apply(&Op::AddMachine(0, 1, slot));
    }
    let (_, lock1) = compile_world(&w, &Lock::new());
    w.apply(&Op::RemoveMachine(0, 1, 2));
    let (_, lock2) = compile_world(&w, &lock1);
    assert_stable(&lock1, &lock2);
    w.apply(&Op::AddMachine(0, 1, 9));
    let (_, lock3) = compile_world(&w, &lock2);
    assert_stable(&lock2, &lock3);
    let pool = &lock3.pools["addresses/fra1/provisioning"];
    let freed = &lock1.pools["addresses/fra1/provisioning"]["m:fra1-1-2"];
    assert_eq!(
        &pool["m:fra1-1-9"], freed,
        "the new machine reuses the freed address"
    );
}
