//! JSON renderings of the region's objects, field for field as MAAS's API emits them.
//! `api` is the API prefix (`/<dc>/MAAS/api/2.0/`) used in `resource_uri`s.

use serde_json::{Value, json};

use super::model::*;
use super::storage;

pub fn vlan(st: &State, api: &str, v: &Vlan) -> Value {
    let fabric = st
        .fabrics
        .get(&v.fabric_id)
        .map(|f| f.name.clone())
        .unwrap_or_default();
    let space = v
        .space_id
        .and_then(|s| st.spaces.get(&s))
        .map(|s| s.name.clone())
        .unwrap_or_else(|| "undefined".to_string());
    json!({
        "id": v.id,
        "name": v.display_name(),
        "description": v.description,
        "vid": v.vid,
        "fabric": fabric,
        "fabric_id": v.fabric_id,
        "mtu": v.mtu,
        "primary_rack": v.primary_rack,
        "secondary_rack": v.secondary_rack,
        "dhcp_on": v.dhcp_on,
        "external_dhcp": v.external_dhcp,
        "relay_vlan": v.relay_vlan.and_then(|r| st.vlans.get(&r)).map(|r| vlan_brief(st, api, r)),
        "space": space,
        "resource_uri": format!("{api}vlans/{}/", v.id),
    })
}

fn vlan_brief(st: &State, api: &str, v: &Vlan) -> Value {
    let mut x = vlan(st, api, v);
    if let Some(o) = x.as_object_mut() {
        o.insert("relay_vlan".into(), Value::Null);
    }
    x
}

pub fn fabric(st: &State, api: &str, f: &Fabric) -> Value {
    let vlans: Vec<Value> = st
        .vlans
        .values()
        .filter(|v| v.fabric_id == f.id)
        .map(|v| vlan(st, api, v))
        .collect();
    json!({
        "id": f.id,
        "name": f.name,
        "description": f.description,
        "class_type": f.class_type,
        "vlans": vlans,
        "resource_uri": format!("{api}fabrics/{}/", f.id),
    })
}

pub fn subnet(st: &State, api: &str, s: &Subnet) -> Value {
    let v = st.vlans.get(&s.vlan_id);
    let space = v
        .and_then(|v| v.space_id)
        .and_then(|id| st.spaces.get(&id))
        .map(|sp| sp.name.clone())
        .unwrap_or_else(|| "undefined".to_string());
    json!({
        "id": s.id,
        "name": s.name,
        "description": s.description,
        "vlan": v.map(|v| vlan(st, api, v)),
        "cidr": s.cidr,
        "rdns_mode": s.rdns_mode,
        "gateway_ip": s.gateway_ip,
        "dns_servers": s.dns_servers,
        "allow_dns": s.allow_dns,
        "allow_proxy": s.allow_proxy,
        "active_discovery": s.active_discovery,
        "managed": s.managed,
        "disabled_boot_architectures": s.disabled_boot_architectures,
        "space": space,
        "resource_uri": format!("{api}subnets/{}/", s.id),
    })
}

pub fn iprange(st: &State, api: &str, r: &IpRange) -> Value {
    json!({
        "id": r.id,
        "type": r.kind,
        "start_ip": r.start_ip,
        "end_ip": r.end_ip,
        "comment": r.comment,
        "subnet": st.subnets.get(&r.subnet_id).map(|s| subnet(st, api, s)),
        "user": API_USER,
        "resource_uri": format!("{api}ipranges/{}/", r.id),
    })
}

pub fn space(st: &State, api: &str, s: &Space) -> Value {
    let vlans: Vec<&Vlan> = st
        .vlans
        .values()
        .filter(|v| v.space_id == Some(s.id))
        .collect();
    let subnets: Vec<Value> = st
        .subnets
        .values()
        .filter(|sn| vlans.iter().any(|v| v.id == sn.vlan_id))
        .map(|sn| subnet(st, api, sn))
        .collect();
    json!({
        "id": s.id,
        "name": s.name,
        "description": s.description,
        "vlans": vlans.iter().map(|v| vlan(st, api, v)).collect::<Vec<_>>(),
        "subnets": subnets,
        "resource_uri": format!("{api}spaces/{}/", s.id),
    })
}

pub fn zone(api: &str, z: &Zone) -> Value {
    json!({
        "id": z.id,
        "name": z.name,
        "description": z.description,
        "resource_uri": format!("{api}zones/{}/", z.name),
    })
}

pub fn pool(api: &str, p: &Pool) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "description": p.description,
        "resource_uri": format!("{api}resourcepool/{}/", p.id),
    })
}

pub fn tag(api: &str, t: &Tag) -> Value {
    json!({
        "name": t.name,
        "definition": t.definition,
        "comment": t.comment,
        "kernel_opts": t.kernel_opts,
        "resource_uri": format!("{api}tags/{}/", t.name),
    })
}

/// A domain. `resource_record_count` counts DNS resources, which the twin doesn't
/// model (node A records are implicit), hence 0.
pub fn domain(_st: &State, api: &str, d: &Domain) -> Value {
    json!({
        "id": d.id,
        "name": d.name,
        "authoritative": d.authoritative,
        "ttl": d.ttl,
        "is_default": d.is_default,
        "resource_record_count": 0,
        "resource_uri": format!("{api}domains/{}/", d.id),
    })
}

pub fn boot_resource(api: &str, b: &BootResource) -> Value {
    let mut v = json!({
        "id": b.id,
        "type": b.kind,
        "name": b.name,
        "architecture": b.architecture,
        "resource_uri": format!("{api}boot-resources/{}/", b.id),
    });
    if let (Some(o), Some(sub)) = (v.as_object_mut(), &b.subarches) {
        o.insert("subarches".into(), json!(sub));
        o.insert("title".into(), json!(b.title));
    }
    v
}

pub fn interface(st: &State, api: &str, system_id: &str, i: &Interface) -> Value {
    let v = i.vlan_id.and_then(|id| st.vlans.get(&id));
    let links: Vec<Value> = i
        .links
        .iter()
        .map(|l| {
            let mut o = json!({"id": l.id, "mode": l.mode});
            if let Some(obj) = o.as_object_mut() {
                if let Some(s) = l.subnet_id.and_then(|s| st.subnets.get(&s)) {
                    obj.insert("subnet".into(), subnet(st, api, s));
                }
                if let Some(ip) = &l.ip_address {
                    obj.insert("ip_address".into(), json!(ip));
                }
            }
            o
        })
        .collect();
    let mtu = i.mtu.or(v.map(|v| v.mtu)).unwrap_or(1500);
    // Parents and children by name, as MAAS lists them, from the node's interfaces.
    let siblings: Vec<&Interface> = st
        .machine(system_id)
        .map(|m| m.interfaces.iter().collect())
        .unwrap_or_default();
    let parents: Vec<&str> = i
        .parents
        .iter()
        .filter_map(|p| {
            siblings
                .iter()
                .find(|x| x.id == *p)
                .map(|x| x.name.as_str())
        })
        .collect();
    let children: Vec<&str> = siblings
        .iter()
        .filter(|x| x.parents.contains(&i.id))
        .map(|x| x.name.as_str())
        .collect();
    let mut params = serde_json::Map::new();
    params.insert("mtu".into(), json!(mtu));
    for (k, v) in &i.params {
        params.insert(k.clone(), v.clone());
    }
    json!({
        "id": i.id,
        "name": i.name,
        "type": i.kind(),
        "vlan": v.map(|v| vlan(st, api, v)),
        "mac_address": i.mac_address,
        "parents": parents,
        "children": children,
        "tags": i.tags,
        "enabled": i.enabled,
        "links": links,
        "params": params,
        "discovered": null,
        "effective_mtu": mtu,
        "vendor": i.vendor,
        "product": i.product,
        "firmware_version": "1.0.0",
        "system_id": system_id,
        "link_connected": !i.link_down,
        "interface_speed": i.interface_speed,
        "link_speed": i.link_speed,
        "numa_node": i.numa_node,
        "sriov_max_vf": 0,
        "resource_uri": format!("{api}nodes/{system_id}/interfaces/{}/", i.id),
    })
}

/// The machine's IPv4 default gateway as (link id, gateway): the link chosen with
/// `set_default_gateway`, else (as MAAS's `get_default_gateways`) the first static or
/// DHCP link whose subnet has a gateway.
pub fn default_gateway_ipv4(st: &State, m: &Machine) -> Option<(u64, String)> {
    let links = m.interfaces.iter().flat_map(|i| i.links.iter());
    let with_gw = |l: &Link| {
        l.subnet_id
            .and_then(|s| st.subnets.get(&s))
            .and_then(|s| s.gateway_ip.clone())
            .filter(|g| !g.is_empty() && !g.contains(':'))
            .map(|g| (l.id, g))
    };
    match m.gateway_link_ipv4 {
        Some(id) => links.clone().find(|l| l.id == id).and_then(with_gw),
        None => links
            .filter(|l| matches!(l.mode.as_str(), "static" | "auto" | "dhcp"))
            .find_map(with_gw),
    }
}

pub fn disk_id(machine_id: u64, index: usize) -> u64 {
    machine_id * 100 + index as u64 + 1
}

/// A filesystem as the block device and partition handlers show it.
fn filesystem(fs: Option<&Filesystem>) -> Value {
    match fs {
        None => Value::Null,
        Some(f) => json!({
            "fstype": f.fstype,
            "label": f.label,
            "uuid": f.uuid,
            "mount_point": f.mount_point,
            "mount_options": f.mount_options,
        }),
    }
}

/// A partition (partitions.py `DISPLAYED_PARTITION_FIELDS`). Its resource URI has no
/// trailing slash, as MAAS's `partition_handler` route has none.
pub fn partition(api: &str, m: &Machine, p: &Partition) -> Value {
    let disk = storage::block_device(m, p.device_id)
        .map(|b| b.name.to_string())
        .unwrap_or_default();
    json!({
        "system_id": m.system_id,
        "device_id": p.device_id,
        "id": p.id,
        "uuid": p.uuid,
        "path": format!("/dev/disk/by-dname/{disk}-part{}", p.index),
        "type": "partition",
        "size": p.size,
        "bootable": p.bootable,
        "filesystem": filesystem(storage::effective_fs(m, Holder::Partition(p.id))),
        "used_for": storage::partition_used_for(m, p),
        "tags": p.tags,
        "resource_uri": format!("{api}nodes/{}/blockdevices/{}/partition/{}", m.system_id, p.device_id, p.id),
    })
}

/// A block device, physical or virtual (blockdevices.py
/// `DISPLAYED_BLOCKDEVICE_FIELDS`): physical ones carry model, serial, `id_path`
/// and firmware; virtual ones (a RAID's `md` device) their own uuid.
pub fn blockdevice(api: &str, m: &Machine, b: &storage::BlockDev) -> Value {
    let partitions: Vec<Value> = storage::partitions_of(m, b.id)
        .into_iter()
        .map(|p| partition(api, m, p))
        .collect();
    let mut v = json!({
        "id": b.id,
        "system_id": m.system_id,
        "name": b.name,
        "path": format!("/dev/disk/by-dname/{}", b.name),
        "size": b.size,
        "block_size": 512,
        "available_size": storage::available_size(m, b),
        "used_size": storage::used_size(m, b),
        "used_for": storage::device_used_for(m, b),
        "type": b.type_name(),
        "filesystem": filesystem(storage::effective_fs(m, Holder::BlockDevice(b.id))),
        "partition_table_type": if storage::has_table(m, b.id) { json!("GPT") } else { Value::Null },
        "partitions": partitions,
        "storage_pool": null,
        "resource_uri": format!("{api}nodes/{}/blockdevices/{}/", m.system_id, b.id),
    });
    let extra = match b.kind {
        storage::BdKind::Physical(d) => json!({
            "model": d.model,
            "serial": d.serial,
            "id_path": format!("/dev/disk/by-id/wwn-0x{}", &hex::encode(d.serial.as_bytes())[..16.min(d.serial.len() * 2)]),
            "tags": d.tags,
            "uuid": null,
            "numa_node": 0,
            "firmware_version": "1.0",
        }),
        storage::BdKind::Virtual(r) => json!({
            "model": null,
            "serial": null,
            "id_path": null,
            "tags": [],
            "uuid": r.device_uuid,
            "numa_node": null,
        }),
    };
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    v
}

fn storage_member(api: &str, m: &Machine, h: Holder) -> Value {
    match h {
        Holder::BlockDevice(id) => storage::block_device(m, id)
            .map(|b| blockdevice(api, m, &b))
            .unwrap_or(Value::Null),
        Holder::Partition(id) => m
            .storage
            .partitions
            .iter()
            .find(|p| p.id == id)
            .map(|p| partition(api, m, p))
            .unwrap_or(Value::Null),
    }
}

/// A RAID (raid.py `DISPLAYED_RAID_FIELDS`): members and spares as block devices or
/// partitions, and its virtual block device.
pub fn raid(api: &str, m: &Machine, r: &Raid) -> Value {
    let members = |spares| -> Vec<Value> {
        storage::raid_members(m, r.id, spares)
            .into_iter()
            .map(|h| storage_member(api, m, h))
            .collect()
    };
    json!({
        "system_id": m.system_id,
        "id": r.id,
        "uuid": r.uuid,
        "name": r.name,
        "level": r.level,
        "devices": members(false),
        "spare_devices": members(true),
        "size": r.size,
        "human_size": storage::human_size(r.size),
        "virtual_device": storage_member(api, m, Holder::BlockDevice(r.device_id)),
        "resource_uri": format!("{api}nodes/{}/raid/{}/", m.system_id, r.id),
    })
}

/// The machine's RAIDs as its read shows them (machines.py `raids`): references
/// (`system_id`, `id`, `__incomplete__`), in the order their first member appears
/// among the block devices and their partitions. What each RAID is, is in
/// `blockdevice_set`: its virtual device (with its filesystem) and its members'
/// `used_for` (`Active raid-1 device for md0`) and `filesystem` (`raid`).
fn raid_refs(m: &Machine) -> Vec<Value> {
    let mut order: Vec<u64> = Vec::new();
    for b in storage::block_devices(m) {
        let on_device = m
            .storage
            .filesystems
            .iter()
            .filter(|f| f.on == Holder::BlockDevice(b.id));
        let parts = storage::partitions_of(m, b.id);
        let on_parts =
            m.storage.filesystems.iter().filter(
                |f| matches!(f.on, Holder::Partition(p) if parts.iter().any(|x| x.id == p)),
            );
        for f in on_device.chain(on_parts) {
            if let Some(id) = f.raid
                && !order.contains(&id)
            {
                order.push(id);
            }
        }
    }
    order
        .into_iter()
        .map(|id| json!({"system_id": m.system_id, "id": id, "__incomplete__": true}))
        .collect()
}

fn unknown_hw_info() -> Value {
    let u = "Unknown";
    json!({
        "system_vendor": u, "system_product": u, "system_family": u, "system_version": u,
        "system_sku": u, "system_serial": u, "cpu_model": u, "mainboard_vendor": u,
        "mainboard_product": u, "mainboard_serial": u, "mainboard_version": u,
        "mainboard_firmware_vendor": u, "mainboard_firmware_date": u,
        "mainboard_firmware_version": u, "chassis_vendor": u, "chassis_type": u,
        "chassis_serial": u, "chassis_version": u,
    })
}

/// The DMI facts of reported hardware: the seed's, over the twin's defaults.
pub fn dmi(h: &Hardware) -> Vec<(&'static str, String)> {
    let v = |key: &str, default: &str| h.dmi(key).unwrap_or(default).to_string();
    vec![
        ("system_vendor", h.vendor.clone()),
        ("system_product", h.product.clone()),
        ("system_family", v("system_family", "Server")),
        ("system_version", v("system_version", "1.0")),
        ("system_sku", v("system_sku", "TWIN-1")),
        ("system_serial", h.serial.clone()),
        ("mainboard_vendor", v("mainboard_vendor", &h.vendor)),
        ("mainboard_product", v("mainboard_product", "Twin Board")),
        ("mainboard_serial", format!("{}-MB", h.serial)),
        ("mainboard_version", v("mainboard_version", "1.0")),
        (
            "mainboard_firmware_vendor",
            v("mainboard_firmware_vendor", &h.vendor),
        ),
        (
            "mainboard_firmware_date",
            v("mainboard_firmware_date", "01/15/2025"),
        ),
        (
            "mainboard_firmware_version",
            v("mainboard_firmware_version", "2.4.1"),
        ),
        ("chassis_vendor", v("chassis_vendor", &h.vendor)),
        ("chassis_type", v("chassis_type", "Rack Mount Chassis")),
        ("chassis_serial", h.serial.clone()),
        ("chassis_version", v("chassis_version", "1.0")),
    ]
}

/// The CPU model as MAAS stores it: the socket name up to its ` @ <speed>`
/// (canonical/maas src/provisioningserver/utils/lxd.py `parse_lxd_cpuinfo`).
pub fn cpu_model(h: &Hardware) -> &str {
    match h.cpu_model.split_once(" @") {
        Some((m, _)) => m,
        None => &h.cpu_model,
    }
}

/// `hardware_info` (canonical/maas src/maasserver/api/nodes.py `hardware_info`):
/// "Unknown" for every key commissioning did not report, empty values included
/// (hooks.py `_process_system_information` stores none for those).
pub fn hardware_info(h: Option<&Hardware>) -> Value {
    let mut out = unknown_hw_info();
    let Some(h) = h else { return out };
    if let Some(o) = out.as_object_mut() {
        let placeholder = |v: &str| {
            v.trim().is_empty() || ["0123456789", "none"].contains(&v.to_ascii_lowercase().as_str())
        };
        for (k, v) in dmi(h) {
            if !placeholder(&v) {
                o.insert(k.into(), json!(v));
            }
        }
        let model = cpu_model(h);
        if !model.is_empty() {
            o.insert("cpu_model".into(), json!(model));
        }
    }
    out
}

/// `numanode_set`: each node's index, CPU ids and memory (MiB), with no huge pages
/// (MAAS records those only for deployed machines).
pub fn numa_nodes(h: Option<&Hardware>) -> Value {
    let Some(h) = h else {
        return json!([{"index": 0, "memory": 0, "cores": [], "hugepages_set": []}]);
    };
    Value::Array(
        h.numa_layout()
            .into_iter()
            .map(|n| json!({"index": n.index, "memory": n.memory_mib, "cores": n.cores, "hugepages_set": []}))
            .collect(),
    )
}

fn test_status(set: Option<&ScriptSet>) -> (i32, &'static str) {
    match set {
        None => (-1, "Unknown"),
        Some(s) => {
            let st = s.status();
            (st as i32, script_status::name(st))
        }
    }
}

pub fn domain_of(st: &State, id: u64) -> Option<&Domain> {
    st.domains.get(&id)
}

/// The full machine object (MAAS's `DISPLAYED_MACHINE_FIELDS`).
pub fn machine(st: &State, api: &str, m: &Machine) -> Value {
    let dom = domain_of(st, m.domain_id);
    let fqdn = match dom {
        Some(d) => format!("{}.{}", m.hostname, d.name),
        None => m.hostname.clone(),
    };
    let ifaces: Vec<Value> = m
        .interfaces
        .iter()
        .map(|i| interface(st, api, &m.system_id, i))
        .collect();
    let hw = m.reported.as_ref();
    let devices = storage::block_devices(m);
    let render_all = |physical: Option<bool>| -> Vec<Value> {
        devices
            .iter()
            .filter(|b| physical.is_none_or(|p| b.is_physical() == p))
            .map(|b| blockdevice(api, m, b))
            .collect()
    };
    let boot_disk = storage::boot_disk(m)
        .map(|b| blockdevice(api, m, &b))
        .unwrap_or(Value::Null);
    let ips: Vec<String> = m
        .interfaces
        .iter()
        .flat_map(|i| i.links.iter().filter_map(|l| l.ip_address.clone()))
        .collect();
    let default_gateway = default_gateway_ipv4(st, m)
        .map(|(link, gw)| json!({"gateway_ip": gw, "link_id": link}))
        .unwrap_or_else(|| json!({"gateway_ip": null, "link_id": null}));
    let (cs, csn) = test_status(m.commissioning.as_ref());
    let (ts, tsn) = test_status(m.testing.as_ref());
    let zone = st.zones.get(&m.zone_id).map(|z| zone(api, z));
    let pool = st.pools.get(&m.pool_id).map(|p| pool(api, p));
    let mut v = json!({
        "system_id": m.system_id,
        "hostname": m.hostname,
        "description": m.description,
        "hardware_uuid": m.hardware_uuid,
        "domain": dom.map(|d| domain(st, api, d)),
        "fqdn": fqdn,
        "owner": m.owner,
        "owner_data": m.owner_data,
        "workload_annotations": m.owner_data,
        "locked": m.locked,
        "cache_sets": [],
        "bcaches": [],
        "bios_boot_method": "uefi",
        "boot_interface": ifaces.first().cloned(),
        "architecture": m.architecture,
        "min_hwe_kernel": m.min_hwe_kernel,
        "hwe_kernel": m.hwe_kernel,
        "cpu_count": hw.map(|h| h.cpu_count).unwrap_or(0),
        "cpu_speed": hw.map(|h| h.cpu_speed).unwrap_or(0),
        "memory": hw.map(|h| h.memory_mib).unwrap_or(0),
        "swap_size": m.swap_size,
        "storage": m.storage_bytes() as f64 / 1_000_000.0,
        "status": m.status,
        "status_name": status::name(m.status),
        "status_message": m.status_message,
        "status_action": "",
        "error_description": m.error_description,
        "osystem": m.osystem,
        "distro_series": m.distro_series,
        "netboot": m.netboot,
        "power_type": m.power_type,
        "power_state": m.power_state(),
    });
    let mid = json!({
        "tag_names": m.tags,
        "address_ttl": null,
        "ip_addresses": ips,
        "default_gateways": {"ipv4": default_gateway, "ipv6": {"gateway_ip": null, "link_id": null}},
        "interface_set": ifaces,
        "zone": zone,
        "pool": pool,
        "disable_ipv4": false,
        "boot_disk": boot_disk,
        "blockdevice_set": render_all(None),
        "physicalblockdevice_set": render_all(Some(true)),
        "virtualblockdevice_set": render_all(Some(false)),
        "volume_groups": [],
        "raids": raid_refs(m),
        "special_filesystems": [],
        "node_type": 0,
        "node_type_name": "Machine",
        "pod": null,
    });
    let rest = json!({
        "current_commissioning_result_id": m.commissioning.as_ref().map(|s| s.id),
        "current_testing_result_id": m.testing.as_ref().map(|s| s.id),
        "current_installation_result_id": m.installation.as_ref().map(|s| s.id),
        "commissioning_status": cs,
        "commissioning_status_name": csn,
        "testing_status": ts,
        "testing_status_name": tsn,
        "cpu_test_status": ts,
        "cpu_test_status_name": tsn,
        "memory_test_status": ts,
        "memory_test_status_name": tsn,
        "network_test_status": -1,
        "network_test_status_name": "Unknown",
        "storage_test_status": ts,
        "storage_test_status_name": tsn,
        "other_test_status": -1,
        "other_test_status_name": "Unknown",
        "interface_test_status": -1,
        "interface_test_status_name": "Unknown",
        "hardware_info": hardware_info(hw),
        "numanode_set": numa_nodes(hw),
        "virtualmachine_id": null,
        "enable_hw_sync": false,
        "last_sync": null,
        "is_dpu": false,
        "resource_uri": format!("{api}machines/{}/", m.system_id),
    });
    if let Some(a) = v.as_object_mut() {
        for part in [mid, rest] {
            if let Value::Object(b) = part {
                a.extend(b);
            }
        }
    }
    v
}

/// A rack or region controller.
pub fn controller(st: &State, api: &str, c: &Controller) -> Value {
    let dom = domain_of(st, c.domain_id);
    let fqdn = match dom {
        Some(d) => format!("{}.{}", c.hostname, d.name),
        None => c.hostname.clone(),
    };
    let (type_name, path) = match c.node_type {
        2 => ("Rack controller", "rackcontrollers"),
        3 => ("Region controller", "regioncontrollers"),
        _ => ("Region and rack controller", "regioncontrollers"),
    };
    let services: Vec<Value> = if c.is_rack() {
        [
            "rackd",
            "dhcpd",
            "dhcpd6",
            "tftp",
            "http",
            "ntp_rack",
            "dns_rack",
            "proxy_rack",
            "syslog_rack",
        ]
        .iter()
        .map(|s| {
            let off = (*s == "dhcpd" || *s == "dhcpd6")
                && !st.vlans.values().any(|v| {
                    v.dhcp_on
                        && (v.primary_rack.as_deref() == Some(&c.system_id)
                            || v.secondary_rack.as_deref() == Some(&c.system_id))
                });
            json!({"name": s, "status": if off { "off" } else { "running" }, "status_info": ""})
        })
        .collect()
    } else {
        [
            "regiond",
            "bind9",
            "ntp_region",
            "proxy",
            "syslog_region",
            "temporal",
            "temporal-worker",
            "http",
        ]
        .iter()
        .map(|s| json!({"name": s, "status": "running", "status_info": ""}))
        .collect()
    };
    json!({
        "system_id": c.system_id,
        "hostname": c.hostname,
        "description": "",
        "domain": dom.map(|d| domain(st, api, d)),
        "fqdn": fqdn,
        "architecture": "amd64/generic",
        "cpu_count": c.cpu_count,
        "cpu_speed": 2400,
        "memory": c.memory_mib,
        "swap_size": null,
        "storage": 480000.0,
        "osystem": "ubuntu",
        "distro_series": "noble",
        "power_type": "",
        "power_state": "unknown",
        "ip_addresses": c.interfaces.iter().flat_map(|i| i.links.iter().filter_map(|l| l.ip_address.clone())).collect::<Vec<_>>(),
        "interface_set": c.interfaces.iter().map(|i| interface(st, api, &c.system_id, i)).collect::<Vec<_>>(),
        "zone": st.zones.get(&c.zone_id).map(|z| zone(api, z)),
        "tag_names": c.tags,
        "status_action": "",
        "node_type": c.node_type,
        "node_type_name": type_name,
        "version": c.version,
        "service_set": services,
        "current_commissioning_result_id": null,
        "commissioning_status": -1,
        "commissioning_status_name": "Unknown",
        "hardware_info": unknown_hw_info(),
        "resource_uri": format!("{api}{path}/{}/", c.system_id),
    })
}

/// Node devices found by commissioning (canonical/maas
/// src/maasserver/api/nodedevices.py `NodeDeviceHandler.fields`, created by
/// src/metadataserver/builtin_scripts/hooks.py `update_node_devices` from LXD's
/// `pci.devices`): the NIC ports' functions (hardware type 4, with their interface)
/// and the GPUs (5). MAAS records no PCIe link state: negotiated generation and
/// width are only visible to a commissioning script reading sysfs (`sysfs.rs`).
pub fn node_devices(st: &State, api: &str, m: &Machine) -> Vec<Value> {
    if m.reported.is_none() {
        return vec![];
    }
    let mut out = Vec::new();
    let mut k = 0u64;
    let device = |k: u64, hw: (u8, &str), d: Value| -> Value {
        let id = m.id * 100 + k;
        let mut v = json!({
            "id": id,
            "bus": 1,
            "bus_name": "PCIE",
            "hardware_type": hw.0,
            "hardware_type_name": hw.1,
            "system_id": m.system_id,
            "physical_blockdevice": null,
            "bus_number": null,
            "device_number": null,
            "resource_uri": format!("{api}nodes/{}/devices/{id}/", m.system_id),
        });
        if let (Some(o), Value::Object(d)) = (v.as_object_mut(), d) {
            o.extend(d);
        }
        v
    };
    for i in &m.interfaces {
        let Some(addr) = &i.pci_address else { continue };
        if i.kind() != "physical" {
            continue;
        }
        k += 1;
        out.push(device(
            k,
            (4, "Network"),
            json!({
                "numa_node": i.numa_node,
                "physical_interface": interface(st, api, &m.system_id, i),
                "vendor_id": i.vendor_id.as_deref().unwrap_or("15b3"),
                "product_id": i.product_id.as_deref().unwrap_or("101d"),
                "vendor_name": i.vendor,
                "product_name": i.product,
                "commissioning_driver": i.driver.as_deref().unwrap_or("mlx5_core"),
                "pci_address": addr,
            }),
        ));
    }
    for g in m.reported.iter().flat_map(|h| h.gpus.iter()) {
        k += 1;
        out.push(device(
            k,
            (5, "GPU"),
            json!({
                "numa_node": g.numa_node,
                "physical_interface": null,
                "vendor_id": g.vendor_id,
                "product_id": g.product_id,
                "vendor_name": g.vendor_name,
                "product_name": g.model,
                "commissioning_driver": "",
                "pci_address": g.pci_address,
            }),
        ));
    }
    out
}
