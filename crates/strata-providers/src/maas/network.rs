//! Fabric, VLAN and subnet steps: looked up by name, VID and CIDR before anything is
//! created, so a step that is repeated (after a crash or an ambiguous failure) finds
//! what the first attempt made.

use std::collections::HashMap;
use std::net::IpAddr;

use reqwest::StatusCode;
use serde_json::Value;
use strata_plan::desired::FABRIC;
use strata_plan::{Action, FabricFields, MaasSubnetFields, Step, VlanFields};

use super::client::{CallError, Client, Form, form};
use super::observe::{fabric_vlans, owns_fabric, strata_fabric};
use super::wire::{Controller, Fabric, IpRange, Subnet, Unreserved, Vlan};
use super::{MaasProvider, desired_fields, observed_fields};
use crate::{Outcome, ProviderError};

/// Attempts at a create whose failure was ambiguous (each after a fresh look-up).
const CREATE_ATTEMPTS: u32 = 4;

fn outcome(id: impl ToString, note: impl Into<String>) -> Outcome {
    Outcome {
        external_id: Some(id.to_string()),
        note: note.into(),
    }
}

fn gone(note: &str) -> Outcome {
    Outcome {
        external_id: None,
        note: note.to_string(),
    }
}

/// Worth re-reading before a create is tried again: it may have happened (ambiguous)
/// or something of that name appeared meanwhile (400 "already exists").
fn reread(e: &CallError) -> bool {
    e.ambiguous() || e.is_status(StatusCode::BAD_REQUEST)
}

async fn find_fabric(c: &Client) -> Result<Option<Fabric>, CallError> {
    let fabrics: Vec<Fabric> = c.get("fabrics/", &[]).await?;
    Ok(strata_fabric(&fabrics).cloned())
}

/// The strata fabric, which must exist and be owned.
async fn owned_fabric(p: &MaasProvider) -> Result<Fabric, ProviderError> {
    match find_fabric(&p.client).await? {
        Some(f) if owns_fabric(&f, &p.owner_tag) => Ok(f),
        Some(f) => Err(ProviderError::Refused(format!(
            "fabric {FABRIC} (id {}) does not carry the owner tag {}",
            f.id, p.owner_tag
        ))),
        None => Err(ProviderError::Api(format!(
            "fabric {FABRIC} does not exist (its step must succeed first)"
        ))),
    }
}

// ---------------------------------------------------------------------------------
// Fabric

pub(super) async fn fabric(p: &MaasProvider, step: &Step) -> Result<Outcome, ProviderError> {
    let c = &p.client;
    if step.action == Action::Delete {
        let Some(f) = find_fabric(c).await? else {
            return Ok(gone("already gone"));
        };
        if !owns_fabric(&f, &p.owner_tag) {
            return Err(ProviderError::Refused(format!(
                "fabric {FABRIC} (id {}) is not owned by {}; not deleting it",
                f.id, p.owner_tag
            )));
        }
        c.delete(&format!("fabrics/{}/", f.id)).await?;
        return Ok(outcome(f.id, "deleted"));
    }
    let want = desired_fields::<FabricFields>(step)?.description;
    if !want.contains(&p.owner_tag) {
        return Err(ProviderError::Refused(format!(
            "the description of fabric {FABRIC} must carry the owner tag {} (it is how ownership is recognised)",
            p.owner_tag
        )));
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        match find_fabric(c).await? {
            Some(f) if owns_fabric(&f, &p.owner_tag) => {
                if f.description() == want {
                    return Ok(outcome(f.id, "already as desired"));
                }
                let _: Value = c
                    .put(
                        &format!("fabrics/{}/", f.id),
                        &form([("description", want.as_str())]),
                    )
                    .await?;
                return Ok(outcome(f.id, "description updated"));
            }
            Some(f) => {
                return Err(ProviderError::Refused(format!(
                    "a fabric named {FABRIC} (id {}) exists without the owner tag {} in its description; strata does not take it over",
                    f.id, p.owner_tag
                )));
            }
            None => {}
        }
        let body = form([("name", FABRIC), ("description", want.as_str())]);
        match c.post::<Fabric>("fabrics/", None, &body, false).await {
            Ok(f) => return Ok(outcome(f.id, "created")),
            Err(e) if reread(&e) && attempt < CREATE_ATTEMPTS => {
                tracing::warn!(error = %e, "creating the fabric failed; looking again");
            }
            Err(e) => return Err(e.into()),
        }
    }
}

// ---------------------------------------------------------------------------------
// VLAN

#[derive(Debug)]
struct VlanWant {
    vid: u16,
    name: String,
    mtu: Option<u32>,
    dhcp_on: bool,
    primary: Option<String>,
    secondary: Option<String>,
}

fn vlan_want(step: &Step) -> Result<VlanWant, ProviderError> {
    let d: VlanFields = desired_fields(step)?;
    let text = |s: Option<String>| s.filter(|s| !s.is_empty());
    if !(1..=4094).contains(&d.vid) {
        return Err(ProviderError::Refused(format!(
            "{}: vid must be 1-4094",
            step.id
        )));
    }
    let want = VlanWant {
        vid: d.vid,
        name: text(Some(d.name)).unwrap_or_else(|| step.id.name.clone()),
        mtu: Some(d.mtu),
        dhcp_on: d.dhcp_on,
        primary: text(d.primary_rack),
        secondary: text(d.secondary_rack),
    };
    if want.secondary.is_some() && want.primary.is_none() {
        return Err(ProviderError::Refused(format!(
            "{}: a secondary rack needs a primary rack",
            step.id
        )));
    }
    if want.secondary.is_some() && want.secondary == want.primary {
        return Err(ProviderError::Refused(format!(
            "{}: primary and secondary rack must differ",
            step.id
        )));
    }
    if want.dhcp_on && want.primary.is_none() {
        return Err(ProviderError::Refused(format!(
            "{}: DHCP needs a primary rack controller",
            step.id
        )));
    }
    Ok(want)
}

async fn list_vlans(c: &Client, fabric_id: u64) -> Result<Vec<Vlan>, CallError> {
    c.get(&format!("fabrics/{fabric_id}/vlans/"), &[]).await
}

/// Rack controller hostnames (or FQDNs, or system ids) → system ids.
async fn rack_ids(c: &Client) -> Result<HashMap<String, String>, CallError> {
    let racks: Vec<Controller> = c.get("rackcontrollers/", &[]).await?;
    let mut out = HashMap::new();
    for r in racks {
        out.insert(r.system_id.clone(), r.system_id.clone());
        if let Some(f) = &r.fqdn {
            out.insert(f.clone(), r.system_id.clone());
        }
        out.insert(r.hostname.clone(), r.system_id.clone());
    }
    Ok(out)
}

pub(super) async fn vlan(p: &MaasProvider, step: &Step) -> Result<Outcome, ProviderError> {
    let c = &p.client;
    let fab = owned_fabric(p).await?;
    if step.action == Action::Delete {
        let seen = observed_fields::<VlanFields>(step)?
            .ok_or_else(|| ProviderError::Refused(format!("{}: no observed VID", step.id)))?;
        let vid = u64::from(seen.vid);
        let vlans = fabric_vlans(c, &fab).await?;
        let Some(v) = vlans.iter().find(|v| u64::from(v.vid) == vid) else {
            return Ok(gone("already gone"));
        };
        if v.vid == 0 {
            return Err(ProviderError::Refused(
                "the fabric's default VLAN is never deleted".into(),
            ));
        }
        let seen = seen.name;
        if v.display_name() != seen {
            return Ok(outcome(
                v.id,
                format!(
                    "VLAN {} is now named {}; left alone",
                    v.vid,
                    v.display_name()
                ),
            ));
        }
        let path = format!("fabrics/{}/vlans/{}/", fab.id, v.vid);
        if v.dhcp_on {
            let _: Value = c.put(&path, &form([("dhcp_on", "false")])).await?;
        }
        c.delete(&path).await?;
        p.pending_dhcp.lock().remove(&v.vid);
        return Ok(outcome(v.id, "deleted"));
    }
    let want = vlan_want(step)?;
    let mut existing = fabric_vlans(c, &fab).await?;
    let mut attempt = 0;
    let (cur, created) = loop {
        if let Some(v) = existing.iter().find(|v| v.vid == want.vid) {
            break (v.clone(), attempt > 0);
        }
        attempt += 1;
        let mut body = form([("vid", want.vid.to_string()), ("name", want.name.clone())]);
        if let Some(m) = want.mtu {
            body.push(("mtu".into(), m.to_string()));
        }
        match c
            .post::<Vlan>(&format!("fabrics/{}/vlans/", fab.id), None, &body, false)
            .await
        {
            Ok(v) => break (v, true),
            Err(e) if reread(&e) && attempt < CREATE_ATTEMPTS => {
                tracing::warn!(vid = want.vid, error = %e, "creating the VLAN failed; looking again");
                existing = list_vlans(c, fab.id).await?;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let id = cur.id;
    let note = converge_vlan(p, &fab, cur, &want).await?;
    let verb = if created { "created" } else { "updated" };
    Ok(outcome(
        id,
        if note.is_empty() {
            verb.to_string()
        } else {
            format!("{verb}; {note}")
        },
    ))
}

/// Bring a VLAN to `want`. Racks change in an order MAAS's form accepts (secondary
/// cleared before it could clash with a new primary); DHCP goes on only with a
/// dynamic range on one of the VLAN's subnets, else it is left pending for the
/// subnet's step.
async fn converge_vlan(
    p: &MaasProvider,
    fab: &Fabric,
    mut cur: Vlan,
    want: &VlanWant,
) -> Result<String, ProviderError> {
    let c = &p.client;
    let path = format!("fabrics/{}/vlans/{}/", fab.id, cur.vid);
    let mut note = String::new();
    let mut basics: Form = Vec::new();
    if cur.display_name() != want.name {
        basics.push(("name".into(), want.name.clone()));
    }
    if let Some(m) = want.mtu
        && cur.mtu != Some(m)
    {
        basics.push(("mtu".into(), m.to_string()));
    }
    if cur.dhcp_on && !want.dhcp_on {
        basics.push(("dhcp_on".into(), "false".into()));
    }
    if !basics.is_empty() {
        cur = c.put(&path, &basics).await?;
    }
    let (want_p, want_s) = if want.primary.is_some() || want.secondary.is_some() {
        let ids = rack_ids(c).await?;
        let resolve = |h: &Option<String>| -> Result<Option<String>, ProviderError> {
            match h {
                None => Ok(None),
                Some(h) => ids.get(h).cloned().map(Some).ok_or_else(|| {
                    ProviderError::Api(format!("no rack controller named {h} in this MAAS"))
                }),
            }
        };
        (resolve(&want.primary)?, resolve(&want.secondary)?)
    } else {
        (None, None)
    };
    if cur.secondary_rack.is_some() && cur.secondary_rack != want_s {
        cur = c.put(&path, &form([("secondary_rack", "")])).await?;
    }
    if cur.primary_rack != want_p {
        let v = want_p.clone().unwrap_or_default();
        cur = c.put(&path, &form([("primary_rack", v)])).await?;
    }
    if want_s.is_some() && cur.secondary_rack != want_s {
        let v = want_s.clone().unwrap_or_default();
        cur = c.put(&path, &form([("secondary_rack", v)])).await?;
    }
    if want.dhcp_on && !cur.dhcp_on {
        if ensure_dynamic_range(c, cur.id, &p.owner_tag).await? {
            cur = c.put(&path, &form([("dhcp_on", "true")])).await?;
            p.pending_dhcp.lock().remove(&cur.vid);
        } else {
            p.pending_dhcp.lock().insert(cur.vid);
            note = "DHCP goes on when the VLAN's subnet is created".into();
        }
    } else {
        p.pending_dhcp.lock().remove(&cur.vid);
    }
    let pending = p.pending_dhcp.lock().contains(&cur.vid);
    let ok = cur.display_name() == want.name
        && want.mtu.is_none_or(|m| cur.mtu == Some(m))
        && (cur.dhcp_on == want.dhcp_on || pending)
        && cur.primary_rack == want_p
        && cur.secondary_rack == want_s;
    if !ok {
        return Err(ProviderError::Api(format!(
            "MAAS did not keep VLAN {} as asked: name {}, mtu {:?}, dhcp_on {}, racks {:?}/{:?}",
            cur.vid,
            cur.display_name(),
            cur.mtu,
            cur.dhcp_on,
            cur.primary_rack,
            cur.secondary_rack
        )));
    }
    Ok(note)
}

fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v) => u32::from(v) as u128,
        IpAddr::V6(v) => u128::from(v),
    }
}

fn u128_to_ip(v: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4((v as u32).into())
    } else {
        IpAddr::V6(v.into())
    }
}

/// The dynamic range strata asks for: the upper half of the largest free block
/// (the lower half stays for static assignments).
fn dynamic_range(free: &[Unreserved]) -> Option<(IpAddr, IpAddr)> {
    let blocks: Vec<(u128, u128, bool)> = free
        .iter()
        .filter_map(|u| {
            let a: IpAddr = u.start.parse().ok()?;
            let b: IpAddr = u.end.parse().ok()?;
            (a.is_ipv4() == b.is_ipv4() && ip_to_u128(a) <= ip_to_u128(b))
                .then(|| (ip_to_u128(a), ip_to_u128(b), a.is_ipv4()))
        })
        .collect();
    let (a, b, v4) = blocks.into_iter().max_by_key(|(a, b, _)| b - a)?;
    let size = b - a;
    let start = if size >= 3 { a + size / 2 } else { a };
    Some((u128_to_ip(start, v4), u128_to_ip(b, v4)))
}

/// Make sure one of the VLAN's subnets has a dynamic range; `false` when the VLAN has
/// no subnet yet.
async fn ensure_dynamic_range(
    c: &Client,
    vlan_id: u64,
    owner_tag: &str,
) -> Result<bool, ProviderError> {
    let subnets: Vec<Subnet> = c.get("subnets/", &[]).await?;
    let mut on: Vec<&Subnet> = subnets
        .iter()
        .filter(|s| s.vlan.as_ref().is_some_and(|v| v.id == vlan_id))
        .collect();
    if on.is_empty() {
        return Ok(false);
    }
    on.sort_by_key(|s| !s.cidr.contains('.'));
    let has_dynamic = |ranges: &[IpRange]| {
        ranges.iter().any(|r| {
            r.kind == "dynamic"
                && r.subnet
                    .as_ref()
                    .is_some_and(|s| on.iter().any(|x| x.id == s.id))
        })
    };
    let ranges: Vec<IpRange> = c.get("ipranges/", &[]).await?;
    if has_dynamic(&ranges) {
        return Ok(true);
    }
    let s = on[0];
    let free: Vec<Unreserved> = c
        .get(
            &format!("subnets/{}/", s.id),
            &[("op", "unreserved_ip_ranges")],
        )
        .await?;
    let Some((start, end)) = dynamic_range(&free) else {
        return Err(ProviderError::Api(format!(
            "subnet {} has no free addresses for a DHCP range",
            s.cidr
        )));
    };
    let body = form([
        ("type", "dynamic".to_string()),
        ("start_ip", start.to_string()),
        ("end_ip", end.to_string()),
        ("subnet", s.id.to_string()),
        ("comment", format!("DHCP range ({owner_tag})")),
    ]);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match c.post::<IpRange>("ipranges/", None, &body, false).await {
            Ok(_) => return Ok(true),
            Err(e) if reread(&e) && attempt < CREATE_ATTEMPTS => {
                let ranges: Vec<IpRange> = c.get("ipranges/", &[]).await?;
                if has_dynamic(&ranges) {
                    return Ok(true);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

// ---------------------------------------------------------------------------------
// Subnet

/// `(network, prefix, v4)` of a CIDR, host bits cleared.
fn cidr_key(s: &str) -> Option<(u128, u8, bool)> {
    let (ip, len) = s.trim().split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let bits: u8 = if ip.is_ipv4() { 32 } else { 128 };
    if len > bits {
        return None;
    }
    let v = ip_to_u128(ip);
    let host = u32::from(bits - len);
    let mask = if host >= 128 {
        0
    } else {
        !((1u128 << host) - 1)
    };
    Some((v & mask, len, ip.is_ipv4()))
}

fn same_cidr(a: &str, b: &str) -> bool {
    match (cidr_key(a), cidr_key(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a.trim().eq_ignore_ascii_case(b.trim()),
    }
}

fn on_fabric(s: &Subnet, fab: &Fabric) -> bool {
    s.vlan.as_ref().is_some_and(|v| {
        v.fabric_id == Some(fab.id)
            || (v.fabric_id.is_none() && v.fabric.as_deref() == Some(&fab.name))
    })
}

pub(super) async fn subnet(p: &MaasProvider, step: &Step) -> Result<Outcome, ProviderError> {
    let c = &p.client;
    if step.action == Action::Delete {
        let subnets: Vec<Subnet> = c.get("subnets/", &[]).await?;
        let Some(s) = subnets.iter().find(|s| same_cidr(&s.cidr, &step.id.name)) else {
            return Ok(gone("already gone"));
        };
        let owned = match find_fabric(c).await? {
            Some(f) if owns_fabric(&f, &p.owner_tag) => on_fabric(s, &f),
            _ => false,
        };
        if !owned {
            return Err(ProviderError::Refused(format!(
                "subnet {} is not on the owned fabric {FABRIC}; not deleting it",
                s.cidr
            )));
        }
        c.delete(&format!("subnets/{}/", s.id)).await?;
        return Ok(outcome(s.id, "deleted"));
    }
    let d: MaasSubnetFields = desired_fields(step)?;
    let cidr = Some(d.cidr)
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| step.id.name.clone());
    let name = Some(d.name)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| cidr.clone());
    let vid = u64::from(d.vid);
    let gateway = d.gateway_ip.filter(|g| !g.is_empty());
    let managed = d.managed;
    let fab = owned_fabric(p).await?;
    let vlans = fabric_vlans(c, &fab).await?;
    let Some(vlan) = vlans.iter().find(|v| u64::from(v.vid) == vid) else {
        return Err(ProviderError::Api(format!(
            "VLAN {vid} does not exist on fabric {FABRIC} (its step must succeed first)"
        )));
    };
    let mut attempt = 0;
    let (s, verb) = loop {
        attempt += 1;
        let subnets: Vec<Subnet> = c.get("subnets/", &[]).await?;
        match subnets.iter().find(|s| same_cidr(&s.cidr, &cidr)) {
            Some(s) if on_fabric(s, &fab) => {
                let mut body: Form = Vec::new();
                if s.name != name {
                    body.push(("name".into(), name.clone()));
                }
                if s.vlan.as_ref().map(|v| v.id) != Some(vlan.id) {
                    body.push(("vlan".into(), vlan.id.to_string()));
                }
                if s.gateway_ip.clone().filter(|g| !g.is_empty()) != gateway {
                    body.push(("gateway_ip".into(), gateway.clone().unwrap_or_default()));
                }
                if s.managed != managed {
                    body.push(("managed".into(), managed.to_string()));
                }
                if body.is_empty() {
                    break (s.clone(), "already as desired");
                }
                let updated: Subnet = c.put(&format!("subnets/{}/", s.id), &body).await?;
                break (updated, "updated");
            }
            Some(s) => {
                return Err(ProviderError::Refused(format!(
                    "subnet {} (id {}) exists outside fabric {FABRIC}; strata does not take it over",
                    s.cidr, s.id
                )));
            }
            None => {}
        }
        let mut body = form([
            ("cidr", cidr.clone()),
            ("name", name.clone()),
            ("vlan", vlan.id.to_string()),
            ("managed", managed.to_string()),
        ]);
        if let Some(g) = &gateway {
            body.push(("gateway_ip".into(), g.clone()));
        }
        match c.post::<Subnet>("subnets/", None, &body, false).await {
            Ok(s) => break (s, "created"),
            Err(e) if reread(&e) && attempt < CREATE_ATTEMPTS => {
                tracing::warn!(%cidr, error = %e, "creating the subnet failed; looking again");
            }
            Err(e) => return Err(e.into()),
        }
    };
    let mut note = verb.to_string();
    let pending = p.pending_dhcp.lock().contains(&vlan.vid);
    if pending {
        let path = format!("fabrics/{}/vlans/{}/", fab.id, vlan.vid);
        let cur: Vlan = c.get(&path, &[]).await?;
        if !cur.dhcp_on {
            if cur.primary_rack.is_none() {
                return Err(ProviderError::Api(format!(
                    "VLAN {} has no primary rack controller for DHCP",
                    vlan.vid
                )));
            }
            if ensure_dynamic_range(c, cur.id, &p.owner_tag).await? {
                let _: Value = c.put(&path, &form([("dhcp_on", "true")])).await?;
                note.push_str(&format!("; DHCP on VLAN {} turned on", vlan.vid));
            }
        }
        p.pending_dhcp.lock().remove(&vlan.vid);
    }
    Ok(outcome(s.id, note))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dynamic_range_is_the_upper_half_of_the_largest_free_block() {
        let free = vec![
            Unreserved {
                start: "10.0.0.2".into(),
                end: "10.0.0.9".into(),
            },
            Unreserved {
                start: "10.0.0.20".into(),
                end: "10.0.0.254".into(),
            },
        ];
        let (a, b) = dynamic_range(&free).expect("range");
        assert_eq!(
            (a.to_string(), b.to_string()),
            ("10.0.0.137".into(), "10.0.0.254".into())
        );
        assert!(dynamic_range(&[]).is_none());
    }

    #[test]
    fn cidrs_compare_by_network() {
        assert!(same_cidr("10.0.0.0/24", "10.0.0.7/24"));
        assert!(!same_cidr("10.0.0.0/24", "10.0.0.0/25"));
        assert!(same_cidr("fd00::/64", "FD00:0:0:0::/64"));
    }
}
