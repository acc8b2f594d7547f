//! Property: allocations are stable and unique.
//!
//! For random sequences of additions and removals of sites, racks, spines, border
//! leaves, machines (compute, control and Proxmox nodes), VMs, VIPs and tenant
//! networks, compiling each step against the previous step's lock never moves an
//! allocation that both steps have, and no two objects share a value in one scope.
//! "Allocation" is read twice: from the lock (every pool) and from the compiled fleet
//! itself ([`allocated`]: switch ports of every link end, addresses, p2p subnets,
//! ASNs, VNIs, VLANs, VRRP ids and priorities, corosync node ids, and hostnames,
//! also with `{index}` naming), so a value the compiler derives without recording it
//! is caught too. A second property pins tenant VNIs onto values the lock already
//! records for other objects: the pin is reported (S0604) and nothing moves.

use std::collections::{BTreeMap, BTreeSet, HashMap};

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
    /// VIP numbers (blueprint-wide).
    vips: BTreeSet<u32>,
    /// Spines per DC (0 means the default of 2).
    spines: u32,
    /// Border leaves per DC (`None` means the default of 1).
    borders: Option<u32>,
    /// Hostnames carry `{index}` (recorded in the lock) instead of only `{slot}`.
    index_naming: bool,
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
    AddVip(u32),
    RemoveVip(u32),
    SetSpines(u32),
    SetBorders(u32),
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
        (1..5u32).prop_map(Op::AddVip),
        (1..5u32).prop_map(Op::RemoveVip),
        (1..5u32).prop_map(Op::SetSpines),
        (0..3u32).prop_map(Op::SetBorders),
    ]
}

/// The role of the machine in `slot`: fixed by the slot, so that removing and adding
/// a machine gives it the same role.
fn role_of(slot: u32) -> &'static str {
    match slot % 4 {
        0 => "proxmox",
        1 => "openstack-control",
        _ => "openstack-compute",
    }
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
            Op::AddVip(n) => {
                self.vips.insert(n);
            }
            Op::RemoveVip(n) => {
                self.vips.remove(&n);
            }
            Op::SetSpines(n) => self.spines = n,
            Op::SetBorders(n) => self.borders = Some(n),
        }
    }

    fn spec_text(&self) -> String {
        let spines = if self.spines == 0 { 2 } else { self.spines };
        let borders = self.borders.unwrap_or(1);
        let naming = if self.index_naming {
            "organisation: { name: x, fleet_id: x, domain: x.net, naming: { machine: \"{site}-{rack}-{role}{index:02}\", vm: \"{site}-{role}{index}-{name}\" } }"
        } else {
            "organisation: { name: x, fleet_id: x, domain: x.net }"
        };
        let mut s = BASE
            .replace(
                "organisation: { name: x, fleet_id: x, domain: x.net }",
                naming,
            )
            .replace(
                "fabric: { spines: 2, leaves_per_rack: 2, border_leaves: 1 }",
                &format!(
                    "fabric: {{ spines: {spines}, leaves_per_rack: 2, border_leaves: {borders} }}"
                ),
            );
        s.push_str("  vips:\n");
        s.push_str(
            "    - { name: maas-api, vlan: management, members: maas-region, port: 5240 }\n",
        );
        for n in &self.vips {
            let members = if n % 2 == 0 {
                "maas-region"
            } else {
                "openstack-control"
            };
            s.push_str(&format!(
                "    - {{ name: vip{n}, vlan: management, members: {members}, port: 443 }}\n"
            ));
        }
        s.push_str(PROFILES);
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
                        "  - {{ serial: {}-{r}-{slot}, site: {}, rack: r{r:02}, slot: {slot}, profile: p, role: {}, bmc: {{ credential: {{ env: X }} }} }}\n",
                        SITES[*si], SITES[*si], role_of(*slot)
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
"#;

const PROFILES: &str = r#"
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

/// Every value the compiler allocated in `fleet`, as `scope -> key -> value`. Within
/// one scope no two keys may share a value; a key present in two successive fleets
/// must keep its value.
fn allocated(fleet: &Fleet) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut put = |scope: String, key: String, value: String| {
        let previous = out
            .entry(scope.clone())
            .or_default()
            .insert(key.clone(), value);
        assert!(previous.is_none(), "{scope}: `{key}` listed twice");
    };
    for dc in &fleet.dcs {
        let d = &dc.name;
        for s in &dc.switches {
            put(
                format!("{d}/addresses"),
                format!("loopback {}", s.name),
                s.loopback.to_string(),
            );
            if let Some(v) = s.vtep {
                put(format!("{d}/vteps"), s.name.clone(), v.to_string());
            }
            if s.role != strata_fleet::SwitchRole::Spine {
                put(
                    "leaf asns".into(),
                    format!("{d}/{}", s.name),
                    s.asn.to_string(),
                );
            }
            for i in &s.interfaces {
                put(
                    format!("{d}/ports/{}", s.name),
                    format!("to {}", i.peer),
                    i.name.clone(),
                );
            }
        }
        for l in &dc.links {
            put(
                format!("{d}/p2p"),
                format!("{}--{}", l.a.device, l.b.device),
                l.subnet.to_string(),
            );
            // The link's ends agree with the switches' interfaces.
            for (end, peer) in [(&l.a, &l.b), (&l.b, &l.a)] {
                let sw = dc.switch(&end.device).expect("link end is a switch");
                let i = sw
                    .interfaces
                    .iter()
                    .find(|i| i.name == end.interface)
                    .expect("link end is an interface of its switch");
                assert_eq!(
                    (i.peer.as_str(), i.peer_interface.as_str()),
                    (peer.device.as_str(), peer.interface.as_str())
                );
            }
        }
        for (host, ifs) in dc.hosts() {
            for i in ifs {
                put(
                    format!("{d}/addresses"),
                    format!("{host} {}", i.vlan),
                    i.address.addr().to_string(),
                );
            }
        }
        for m in &dc.machines {
            put(
                format!("{d}/bmc"),
                m.serial.clone(),
                m.bmc.address.to_string(),
            );
        }
        for v in &dc.vips {
            put(
                format!("{d}/addresses"),
                format!("vip {}", v.name),
                v.address.to_string(),
            );
            put(format!("{d}/vrids"), v.name.clone(), v.vrid.to_string());
            for m in &v.members {
                put(
                    format!("{d}/vrrp/{}", v.name),
                    m.hostname.clone(),
                    m.priority.to_string(),
                );
            }
        }
        for c in &dc.proxmox {
            for n in &c.nodes {
                put(
                    format!("{d}/corosync/{}", c.name),
                    n.hostname.clone(),
                    n.nodeid.to_string(),
                );
            }
        }
        for t in &dc.tenant_subnets {
            put(
                "tenant subnets".into(),
                format!("{d}/{}/{}", t.tenant, t.network),
                t.subnet.to_string(),
            );
        }
    }
    for v in &fleet.infra_vnis {
        put(
            "vnis".into(),
            format!("infra/{}", v.vlan),
            v.vni.to_string(),
        );
    }
    for t in &fleet.tenants {
        put(
            "vnis".into(),
            format!("tenant/{}", t.name),
            t.l3_vni.to_string(),
        );
        for n in &t.networks {
            put(
                "vnis".into(),
                format!("tenant/{}/{}", t.name, n.name),
                n.vni.to_string(),
            );
            put(
                "vlans".into(),
                format!("{}/{}", t.name, n.name),
                n.vlan.to_string(),
            );
        }
    }
    out
}

/// No two objects share a value in one scope: a lock pool, or a scope of
/// [`allocated`] (VRRP priorities excepted: past the eleventh member they all bottom
/// out at 50, as keepalived allows).
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
        for (scope, entries) in allocated(f) {
            if scope.contains("/vrrp/") {
                continue;
            }
            let mut seen: HashMap<&str, &str> = HashMap::new();
            for (k, v) in &entries {
                if let Some(other) = seen.insert(v.as_str(), k.as_str()) {
                    panic!("{scope}: `{k}` and `{other}` share {v}");
                }
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

/// What both fleets allocated keeps its value.
fn assert_fleet_stable(old: &Option<Fleet>, new: &Option<Fleet>) {
    let (Some(old), Some(new)) = (old, new) else {
        return;
    };
    let (old, new) = (allocated(old), allocated(new));
    for (scope, entries) in &old {
        let Some(now) = new.get(scope) else { continue };
        for (k, v) in entries {
            if let Some(v2) = now.get(k) {
                assert_eq!(v, v2, "{scope}: `{k}` moved from {v} to {v2}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn allocations_never_move_and_never_collide(
        index_naming in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..14),
    ) {
        let mut world = World { index_naming, ..World::default() };
        world.apply(&Op::AddSite(0));
        world.apply(&Op::AddNet(1));
        // Machines high in two racks, so that additions below them are common: with
        // `{index}` naming those must not rename them.
        world.apply(&Op::AddRack(0, 2));
        for rack in [1, 2] {
            for slot in [10, 11] {
                world.apply(&Op::AddMachine(0, rack, slot));
            }
        }
        let (mut fleet, mut lock) = compile_world(&world, &Lock::new());
        assert_unique(&lock, &fleet);
        for op in &ops {
            world.apply(op);
            let (new_fleet, new_lock) = compile_world(&world, &lock);
            assert_unique(&new_lock, &new_fleet);
            assert_stable(&lock, &new_lock);
            assert_fleet_stable(&fleet, &new_fleet);
            lock = new_lock;
            fleet = new_fleet;
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
