//! observe(): eight list calls per region, whatever its size.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use strata_plan::desired::FABRIC;
use strata_plan::{
    FabricFields, Kind, MaasSubnetFields, MachineFields, MachineSpec, Observed, Platform, Resource,
    ResourceId, UnownedObject, VlanFields,
};

use super::MaasProvider;
use super::client::{CallError, Client};
use super::network::{Net, read_subnet_mark, read_vlan_mark, same_cidr};
use super::wire::{Controller, Fabric, Machine, Subnet, Vlan};
use crate::ProviderError;

/// The power parameters strata compares. MAAS also returns the BMC password in this
/// answer; it is not deserialised and so never held.
#[derive(Deserialize)]
pub(super) struct PowerFields {
    #[serde(default)]
    power_address: Option<Value>,
    #[serde(default)]
    power_user: Option<Value>,
}

fn as_text(v: &Option<Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// `GET machines/?op=power_parameters` for every machine; `None` when this MAAS lacks
/// the collection operation (power fields are then not compared).
async fn power_parameters(c: &Client) -> Result<Option<HashMap<String, PowerFields>>, CallError> {
    match c
        .get::<HashMap<String, PowerFields>>("machines/", &[("op", "power_parameters")])
        .await
    {
        Ok(v) => Ok(Some(v)),
        Err(e)
            if matches!(
                e.status(),
                Some(
                    StatusCode::BAD_REQUEST
                        | StatusCode::NOT_FOUND
                        | StatusCode::METHOD_NOT_ALLOWED
                )
            ) =>
        {
            tracing::warn!(
                "this MAAS has no machines op=power_parameters: power fields are not compared"
            );
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The strata fabric of a listing, if any (owned or not).
pub(super) fn strata_fabric(fabrics: &[Fabric]) -> Option<&Fabric> {
    fabrics.iter().find(|f| f.name == FABRIC)
}

pub(super) fn owns_fabric(f: &Fabric, owner_tag: &str) -> bool {
    f.name == FABRIC && f.description().contains(owner_tag)
}

/// The VLAN list of a fabric: embedded, else one call.
pub(super) async fn fabric_vlans(c: &Client, f: &Fabric) -> Result<Vec<Vlan>, CallError> {
    match &f.vlans {
        Some(v) => Ok(v.clone()),
        None => c.get(&format!("fabrics/{}/vlans/", f.id), &[]).await,
    }
}

/// Rack controller system id → hostname.
pub(super) fn rack_names(racks: &[Controller]) -> HashMap<String, String> {
    racks
        .iter()
        .map(|r| (r.system_id.clone(), r.hostname.clone()))
        .collect()
}

fn rack_field(id: &Option<String>, names: &HashMap<String, String>) -> Option<String> {
    id.as_deref()
        .filter(|s| !s.is_empty())
        .map(|sid| names.get(sid).cloned().unwrap_or_else(|| sid.to_string()))
}

pub(super) fn vlan_fields(v: &Vlan, racks: &HashMap<String, String>) -> VlanFields {
    VlanFields {
        vid: v.vid,
        name: v.display_name(),
        mtu: v.mtu.unwrap_or(1500),
        dhcp_on: v.dhcp_on,
        primary_rack: rack_field(&v.primary_rack, racks),
        secondary_rack: rack_field(&v.secondary_rack, racks),
    }
}

/// The strata-managed tags of a machine (the owner tag, `role-*` and the kernel-option
/// tags `kernel-*`), sorted.
pub(super) fn managed_tags(m: &Machine, owner_tag: &str) -> Vec<String> {
    let mut t: Vec<String> = m
        .tag_names
        .iter()
        .filter(|t| *t == owner_tag || t.starts_with("role-") || t.starts_with(super::tags::PREFIX))
        .cloned()
        .collect();
    t.sort();
    t.dedup();
    t
}

pub(super) async fn observe(p: &MaasProvider) -> Result<Observed, ProviderError> {
    let c = &p.client;
    let (fabrics, subnets, racks, machines, power, (domains, records), tags) = futures::try_join!(
        c.get::<Vec<Fabric>>("fabrics/", &[]),
        c.get::<Vec<Subnet>>("subnets/", &[]),
        c.get::<Vec<Controller>>("rackcontrollers/", &[]),
        c.get::<Vec<Machine>>("machines/", &[]),
        power_parameters(c),
        super::dns::lists(c),
        super::tags::list(c),
    )?;
    let dc = p.dc.as_str();
    let mut out = Observed::default();
    super::tags::observe(dc, &p.owner_tag, &tags, &mut out);
    let unowned = |kind: &str, name: String, id: String| UnownedObject {
        dc: dc.to_string(),
        platform: Platform::Maas,
        kind: kind.to_string(),
        name,
        external_id: id,
    };
    let names = rack_names(&racks);
    for r in &racks {
        out.unowned.push(unowned(
            "rack-controller",
            r.hostname.clone(),
            r.system_id.clone(),
        ));
    }

    // Fabrics, VLANs, subnets. Only the fabric an earlier strata created is a
    // resource (so that it can go); VLANs and subnets are strata's when they carry
    // its mark (created or adopted), and adoptable when they match a design VLAN
    // (by CIDR, or by VID on the home fabric) or a design subnet (by CIDR).
    let net = Net::from_lists(c, fabrics, subnets).await?;
    let expected = p.expected.read();
    for f in &net.fabrics {
        if owns_fabric(f, &p.owner_tag) {
            let mut r = Resource::with_fields(
                ResourceId::new(dc, Kind::Fabric, FABRIC),
                &FabricFields {
                    description: f.description().to_string(),
                },
            );
            r.external_id = Some(f.id.to_string());
            out.resources.insert(r);
        } else {
            out.unowned
                .push(unowned("fabric", f.name.clone(), f.id.to_string()));
        }
    }
    let owner = p.owner_tag.as_str();
    let mut vlan_roles: HashMap<u64, String> = HashMap::new();
    for (_, v) in &net.vlans {
        if let Some((role, adopted)) = read_vlan_mark(owner, v.description.as_deref().unwrap_or(""))
        {
            let mut r = Resource::with_fields(
                ResourceId::new(dc, Kind::Vlan, role.clone()),
                &vlan_fields(v, &names),
            );
            r.adopted = adopted;
            r.external_id = Some(v.id.to_string());
            out.resources.insert(r);
            vlan_roles.insert(v.id, role);
        }
    }
    if let Some(e) = expected.as_ref() {
        for (role, vid, spec) in &e.vlans {
            if vlan_roles.values().any(|r| r == role) {
                continue;
            }
            let Some((_, v)) = net.find_vlan(owner, role, *vid, spec) else {
                continue;
            };
            if vlan_roles.contains_key(&v.id) {
                continue;
            }
            let mut r = Resource::with_fields(
                ResourceId::new(dc, Kind::Vlan, role.clone()),
                &vlan_fields(v, &names),
            );
            r.owned = false;
            r.external_id = Some(v.id.to_string());
            out.resources.insert(r);
            vlan_roles.insert(v.id, role.clone());
        }
    }
    for s in &net.subnets {
        let mark = read_subnet_mark(owner, s.description.as_deref().unwrap_or(""));
        let wanted = expected
            .as_ref()
            .is_some_and(|e| e.subnets.iter().any(|c| same_cidr(c, &s.cidr)));
        if mark.is_none() && !wanted {
            out.unowned
                .push(unowned("subnet", s.cidr.clone(), s.id.to_string()));
            continue;
        }
        let name = expected
            .as_ref()
            .and_then(|e| e.subnets.iter().find(|c| same_cidr(c, &s.cidr)).cloned())
            .unwrap_or_else(|| s.cidr.clone());
        let mut r = Resource::with_fields(
            ResourceId::new(dc, Kind::MaasSubnet, name),
            &MaasSubnetFields {
                cidr: s.cidr.clone(),
                name: s.name.clone(),
                vid: s.vlan.as_ref().map(|v| v.vid).unwrap_or(0),
                gateway_ip: s.gateway_ip.clone().filter(|g| !g.is_empty()),
                managed: s.managed,
            },
        );
        r.owned = mark.is_some();
        r.adopted = mark.unwrap_or(false);
        r.external_id = Some(s.id.to_string());
        out.resources.insert(r);
    }
    if let Some(e) = expected.as_ref() {
        super::dns::observe(dc, &domains, &records, &e.domains, &e.records, &mut out);
    }
    drop(expected);

    // Machines.
    let expected = p.expected.read();
    let expected = expected.as_ref();
    let mut taken: HashMap<String, String> = HashMap::new();
    // Owned machines first, so an untagged twin of an owned serial never shadows it.
    let mut order: Vec<&Machine> = machines.iter().collect();
    order.sort_by_key(|m| (!m.has_tag(&p.owner_tag), m.system_id.clone()));
    for m in order {
        let owned = m.has_tag(&p.owner_tag);
        let by_mac = || {
            let e = expected?;
            m.macs().iter().find_map(|mac| e.by_mac.get(mac).cloned())
        };
        let name = if owned {
            m.marked_serial().or_else(|| m.serial()).or_else(by_mac)
        } else if let Some(e) = expected {
            // Untagged: adoptable only when the desired state wants it.
            [m.marked_serial(), m.serial()]
                .into_iter()
                .flatten()
                .find(|s| e.serials.contains(s))
                .or_else(by_mac)
        } else {
            m.marked_serial().or_else(|| m.serial())
        };
        let foreign = m
            .tag_names
            .iter()
            .any(|t| t.starts_with("strata-") && *t != p.owner_tag);
        let Some(name) = name.filter(|_| owned || !foreign) else {
            out.unowned
                .push(unowned("machine", m.hostname.clone(), m.system_id.clone()));
            continue;
        };
        if let Some(first) = taken.get(&name) {
            tracing::warn!(serial = %name, system_id = %m.system_id, other = %first, "two MAAS machines claim one serial");
            out.unowned.push(unowned(
                "machine",
                format!("{} (serial {name} also on {first})", m.hostname),
                m.system_id.clone(),
            ));
            continue;
        }
        taken.insert(name.clone(), m.system_id.clone());
        // Power fields only when this MAAS lists them (otherwise not compared).
        let pf = power.as_ref().map(|pp| pp.get(&m.system_id));
        let mut r = Resource::with_fields(
            ResourceId::new(dc, Kind::Machine, name),
            &MachineFields {
                hostname: m.hostname.clone(),
                power_type: m.power_type.clone().unwrap_or_default(),
                power_address: pf.map(|f| as_text(&f.and_then(|f| f.power_address.clone()))),
                power_user: pf.map(|f| as_text(&f.and_then(|f| f.power_user.clone()))),
                tags: managed_tags(m, &p.owner_tag),
                status: m.status_name(),
                distro_series: m.distro_series.clone().unwrap_or_default(),
                zone: m.zone_name(),
                network: Some(m.network_summary()),
                storage: Some(m.storage_summary()),
            },
        )
        .with_spec(&MachineSpec {
            pxe_mac: m.boot_mac(),
            ..MachineSpec::default()
        });
        r.owned = owned;
        r.external_id = Some(m.system_id.clone());
        out.resources.insert(r);
    }
    Ok(out)
}
