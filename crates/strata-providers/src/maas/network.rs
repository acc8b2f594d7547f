//! Fabric, VLAN and subnet steps: looked up by name, VID and CIDR before anything is
//! created, so a step that is repeated (after a crash or an ambiguous failure) finds
//! what the first attempt made.

use std::collections::HashMap;
use std::net::IpAddr;

use reqwest::StatusCode;
use serde_json::Value;
use strata_plan::desired::FABRIC;
use strata_plan::{
    Action, FabricFields, MaasSubnetFields, MaasSubnetSpec, Step, VlanFields, VlanSpec,
};

use super::client::{CallError, Client, Form, form};
use super::observe::{fabric_vlans, owns_fabric, strata_fabric};
use super::wire::{Controller, Fabric, IpRange, Subnet, Unreserved, Vlan};
use super::{MaasProvider, desired_fields};
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
// Ownership marks. MAAS VLANs and subnets carry no tags, so strata writes its mark in
// their description: which fleet, which design VLAN, and whether strata created the
// object or adopted one MAAS already had (a controller's registration makes fabrics,
// VLANs and subnets). Adopted objects are managed but never deleted.

const CREATED: &str = "created by strata";
const ADOPTED: &str = "adopted by strata";

pub(super) fn vlan_mark(owner: &str, role: &str, adopted: bool) -> String {
    format!(
        "{owner}: {role} VLAN, {}",
        if adopted { ADOPTED } else { CREATED }
    )
}

/// `(design VLAN, adopted)` of a VLAN description carrying this fleet's mark.
pub(super) fn read_vlan_mark(owner: &str, description: &str) -> Option<(String, bool)> {
    let rest = description.strip_prefix(owner)?.strip_prefix(": ")?;
    let (role, how) = rest.split_once(" VLAN, ")?;
    match how {
        CREATED => Some((role.to_string(), false)),
        ADOPTED => Some((role.to_string(), true)),
        _ => None,
    }
}

pub(super) fn subnet_mark(owner: &str, adopted: bool) -> String {
    format!("{owner}: {}", if adopted { ADOPTED } else { CREATED })
}

/// `Some(adopted)` for a subnet description carrying this fleet's mark.
pub(super) fn read_subnet_mark(owner: &str, description: &str) -> Option<bool> {
    match description.strip_prefix(owner)?.strip_prefix(": ")? {
        CREATED => Some(false),
        ADOPTED => Some(true),
        _ => None,
    }
}

/// Every fabric, VLAN and subnet of a region (two list calls, plus one per fabric
/// whose listing does not embed its VLANs).
pub(super) struct Net {
    pub fabrics: Vec<Fabric>,
    /// `(fabric id, VLAN)`.
    pub vlans: Vec<(u64, Vlan)>,
    pub subnets: Vec<Subnet>,
}

impl Net {
    pub(super) async fn read(c: &Client) -> Result<Net, CallError> {
        let (fabrics, subnets) = futures::try_join!(
            c.get::<Vec<Fabric>>("fabrics/", &[]),
            c.get::<Vec<Subnet>>("subnets/", &[]),
        )?;
        Net::from_lists(c, fabrics, subnets).await
    }

    pub(super) async fn from_lists(
        c: &Client,
        fabrics: Vec<Fabric>,
        subnets: Vec<Subnet>,
    ) -> Result<Net, CallError> {
        let mut vlans = Vec::new();
        for f in &fabrics {
            for v in fabric_vlans(c, f).await? {
                vlans.push((f.id, v));
            }
        }
        Ok(Net {
            fabrics,
            vlans,
            subnets,
        })
    }

    pub(super) fn subnet(&self, cidr: &str) -> Option<&Subnet> {
        self.subnets.iter().find(|s| same_cidr(&s.cidr, cidr))
    }

    pub(super) fn vlan_by_id(&self, id: u64) -> Option<&(u64, Vlan)> {
        self.vlans.iter().find(|(_, v)| v.id == id)
    }

    /// The VLAN a subnet is on.
    pub(super) fn vlan_of(&self, s: &Subnet) -> Option<&(u64, Vlan)> {
        s.vlan.as_ref().and_then(|v| self.vlan_by_id(v.id))
    }

    pub(super) fn marked(&self, owner: &str, role: &str) -> Option<&(u64, Vlan)> {
        self.vlans.iter().find(|(_, v)| {
            read_vlan_mark(owner, v.description.as_deref().unwrap_or(""))
                .is_some_and(|(r, _)| r == role)
        })
    }

    /// The fabric of the hosts' native VLAN: the one carrying its subnet, else the
    /// one whose VLAN carries its mark.
    pub(super) fn home_fabric(&self, owner: &str, spec: &VlanSpec) -> Option<u64> {
        self.subnet(&spec.home_cidr)
            .and_then(|s| self.vlan_of(s))
            .or_else(|| self.marked(owner, &spec.home))
            .map(|(f, _)| *f)
    }

    /// The MAAS VLAN a design VLAN attaches to. Untagged (the native VLAN): the one
    /// marked for it, else the one carrying its subnet (matched by CIDR). Tagged: a
    /// VLAN on the home fabric only — the one marked for it (whatever its VID, which
    /// the step corrects), else the one with its VID carrying its subnet, else the
    /// one with its VID. A VLAN elsewhere that carries its subnet (the untagged VLAN
    /// of the fabric a controller's registration made) is not it: the step moves
    /// the subnet from there.
    pub(super) fn find_vlan(
        &self,
        owner: &str,
        role: &str,
        vid: u16,
        spec: &VlanSpec,
    ) -> Option<&(u64, Vlan)> {
        if vid == 0 {
            return self
                .marked(owner, role)
                .or_else(|| self.subnet(&spec.cidr).and_then(|s| self.vlan_of(s)));
        }
        let home = self.home_fabric(owner, spec)?;
        let marked = self.vlans.iter().find(|(f, v)| {
            *f == home
                && read_vlan_mark(owner, v.description.as_deref().unwrap_or(""))
                    .is_some_and(|(r, _)| r == role)
        });
        marked
            .or_else(|| {
                self.subnet(&spec.cidr)
                    .and_then(|s| self.vlan_of(s))
                    .filter(|(f, v)| *f == home && v.vid == vid)
            })
            .or_else(|| self.vlans.iter().find(|(f, v)| *f == home && v.vid == vid))
    }

    /// VLANs other than `keep` that carry the mark of design VLAN `role` (where the
    /// design VLAN was before it moved).
    fn stale_marks(&self, owner: &str, role: &str, keep: u64) -> Vec<(u64, Vlan)> {
        self.vlans
            .iter()
            .filter(|(_, v)| {
                v.id != keep
                    && read_vlan_mark(owner, v.description.as_deref().unwrap_or(""))
                        .is_some_and(|(r, _)| r == role)
            })
            .cloned()
            .collect()
    }

    /// Whether anything (a subnet, another design VLAN's mark) already uses a VLAN.
    fn vlan_in_use(&self, owner: &str, id: u64) -> bool {
        self.subnets
            .iter()
            .any(|s| s.vlan.as_ref().is_some_and(|v| v.id == id))
            || self.vlans.iter().any(|(_, v)| {
                v.id == id
                    && read_vlan_mark(owner, v.description.as_deref().unwrap_or("")).is_some()
            })
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
    if d.vid > 4094 {
        return Err(ProviderError::Refused(format!(
            "{}: vid must be 0 (untagged) or 1-4094",
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

fn vlan_path(fabric: u64, v: &Vlan) -> String {
    format!("fabrics/{fabric}/vlans/{}/", v.vid)
}

pub(super) async fn vlan(p: &MaasProvider, step: &Step) -> Result<Outcome, ProviderError> {
    let c = &p.client;
    let owner = p.owner_tag.as_str();
    let role = step.id.name.as_str();
    if step.action == Action::Delete {
        let net = Net::read(c).await?;
        let Some((fab, v)) = net.marked(owner, role) else {
            return Ok(gone("already gone"));
        };
        let adopted =
            read_vlan_mark(owner, v.description.as_deref().unwrap_or("")).is_some_and(|(_, a)| a);
        if adopted || v.vid == 0 {
            return Err(ProviderError::Refused(format!(
                "VLAN {} (id {}) was not created by strata (adopted or a fabric's default); not deleting it",
                v.display_name(),
                v.id
            )));
        }
        let path = vlan_path(*fab, v);
        if v.dhcp_on {
            let _: Value = c.put(&path, &form([("dhcp_on", "false")])).await?;
        }
        c.delete(&path).await?;
        p.pending_dhcp.lock().remove(&v.id);
        return Ok(outcome(v.id, "deleted"));
    }
    let want = vlan_want(step)?;
    let spec: VlanSpec = step
        .desired
        .as_ref()
        .ok_or_else(|| ProviderError::Refused(format!("{}: no desired state", step.id)))?
        .spec_as()
        .map_err(|e| ProviderError::Refused(e.to_string()))?;
    let mut attempt = 0;
    let (fab, cur, adopted, verb) = loop {
        attempt += 1;
        let net = Net::read(c).await?;
        if let Some((fab, v)) = net.find_vlan(owner, role, want.vid, &spec) {
            let mark = read_vlan_mark(owner, v.description.as_deref().unwrap_or(""));
            let (adopted, verb) = match mark {
                Some((_, adopted)) => (adopted, "updated"),
                // Found unmarked: MAAS (a controller's registration, or an operator)
                // made it, unless an interrupted attempt of this step did.
                None if attempt > 1 => (false, "created"),
                None => (true, "adopted"),
            };
            break (*fab, v.clone(), adopted, verb);
        }
        if want.vid == 0 {
            // An untagged VLAN nothing registered: the default fabric's untagged VLAN
            // while unused (as MAAS places a first interface), else a new fabric's.
            let default = net
                .fabrics
                .iter()
                .map(|f| f.id)
                .min()
                .and_then(|f| net.vlans.iter().find(|(x, v)| *x == f && v.vid == 0))
                .filter(|(_, v)| !net.vlan_in_use(owner, v.id));
            if let Some((fab, v)) = default {
                break (*fab, v.clone(), true, "adopted");
            }
            match c
                .post::<Fabric>(
                    "fabrics/",
                    None,
                    &form([("description", vlan_mark(owner, role, false))]),
                    false,
                )
                .await
            {
                Ok(f) => {
                    let vlans = fabric_vlans(c, &f).await?;
                    let Some(v) = vlans.into_iter().find(|v| v.vid == 0) else {
                        return Err(ProviderError::Api(format!(
                            "fabric {} was created without its untagged VLAN",
                            f.id
                        )));
                    };
                    break (f.id, v, false, "created");
                }
                Err(e) if reread(&e) && attempt < CREATE_ATTEMPTS => {
                    tracing::warn!(error = %e, "creating a fabric failed; looking again");
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let Some(home) = net.home_fabric(owner, &spec) else {
            return Err(ProviderError::Api(format!(
                "no fabric carries {} yet (the native VLAN's subnet step must succeed first)",
                spec.home_cidr
            )));
        };
        let mut body = form([
            ("vid", want.vid.to_string()),
            ("name", want.name.clone()),
            ("description", vlan_mark(owner, role, false)),
        ]);
        if let Some(m) = want.mtu {
            body.push(("mtu".into(), m.to_string()));
        }
        match c
            .post::<Vlan>(&format!("fabrics/{home}/vlans/"), None, &body, false)
            .await
        {
            Ok(v) => break (home, v, false, "created"),
            Err(e) if reread(&e) && attempt < CREATE_ATTEMPTS => {
                tracing::warn!(vid = want.vid, error = %e, "creating the VLAN failed; looking again");
            }
            Err(e) => return Err(e.into()),
        }
    };
    let id = cur.id;
    // The controllers' NICs on the design VLAN's subnet belong on it (before a rack
    // can serve DHCP there); the subnet moves with them.
    let moved = if want.vid != 0 {
        move_controllers(c, &spec.cidr, &cur).await?
    } else {
        Vec::new()
    };
    // Where the design VLAN was before: its mark comes off (MAAS removes a fabric
    // that moving the NICs emptied; one that still holds something stays, unmarked).
    let net = Net::read(c).await?;
    for (f, old) in net.stale_marks(owner, role, id) {
        let path = vlan_path(f, &old);
        let mut body = form([("description", "")]);
        if old.dhcp_on {
            body.push(("dhcp_on".into(), "false".into()));
        }
        let _: Value = c.put(&path, &body).await?;
    }
    let note = converge_vlan(p, fab, cur, &want, &vlan_mark(owner, role, adopted)).await?;
    let mut notes = vec![verb.to_string()];
    notes.extend(moved);
    if !note.is_empty() {
        notes.push(note);
    }
    Ok(outcome(id, notes.join("; ")))
}

/// Put every controller (rack or region) interface with an address in `cidr` on VLAN
/// `to`. MAAS's `ControllerInterfaceForm` changes only a controller interface's VLAN,
/// and `interface_vlan_update` (`maasserver/models/signals/interfaces.py`) moves the
/// subnets linked to it along and deletes the fabric it leaves empty.
async fn move_controllers(c: &Client, cidr: &str, to: &Vlan) -> Result<Vec<String>, ProviderError> {
    let (racks, regions) = futures::try_join!(
        c.get::<Vec<Controller>>("rackcontrollers/", &[]),
        c.get::<Vec<Controller>>("regioncontrollers/", &[]),
    )?;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for ctl in racks.iter().chain(&regions) {
        if !seen.insert(ctl.system_id.clone()) {
            continue;
        }
        for i in &ctl.interface_set {
            let on_cidr = i
                .links
                .iter()
                .any(|l| l.subnet.as_ref().is_some_and(|s| same_cidr(&s.cidr, cidr)));
            if !on_cidr || i.vlan.as_ref().is_some_and(|v| v.id == to.id) {
                continue;
            }
            let _: Value = c
                .put(
                    &format!("nodes/{}/interfaces/{}/", ctl.system_id, i.id),
                    &form([("vlan", to.id.to_string())]),
                )
                .await?;
            out.push(format!(
                "{} {} moved onto VLAN {}",
                ctl.hostname, i.name, to.vid
            ));
        }
    }
    Ok(out)
}

/// Bring a VLAN to `want`. Racks change in an order MAAS's form accepts (secondary
/// cleared before it could clash with a new primary); DHCP goes on only with a
/// dynamic range on one of the VLAN's subnets, else it is left pending for the
/// subnet's step.
async fn converge_vlan(
    p: &MaasProvider,
    fab: u64,
    mut cur: Vlan,
    want: &VlanWant,
    mark: &str,
) -> Result<String, ProviderError> {
    let c = &p.client;
    let mut path = vlan_path(fab, &cur);
    let mut note = String::new();
    let mut basics: Form = Vec::new();
    // A tagged design VLAN whose VID changed: MAAS's VLAN form takes a new VID.
    if want.vid != 0 && cur.vid != want.vid {
        basics.push(("vid".into(), want.vid.to_string()));
    }
    if cur.display_name() != want.name {
        basics.push(("name".into(), want.name.clone()));
    }
    if cur.description.as_deref() != Some(mark) {
        basics.push(("description".into(), mark.to_string()));
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
        path = vlan_path(fab, &cur);
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
            p.pending_dhcp.lock().remove(&cur.id);
        } else {
            p.pending_dhcp.lock().insert(cur.id);
            note = "DHCP goes on when the VLAN's subnet is created".into();
        }
    } else {
        p.pending_dhcp.lock().remove(&cur.id);
    }
    let pending = p.pending_dhcp.lock().contains(&cur.id);
    let ok = (want.vid == 0 || cur.vid == want.vid)
        && cur.display_name() == want.name
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

pub(super) fn same_cidr(a: &str, b: &str) -> bool {
    match (cidr_key(a), cidr_key(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a.trim().eq_ignore_ascii_case(b.trim()),
    }
}

pub(super) async fn subnet(p: &MaasProvider, step: &Step) -> Result<Outcome, ProviderError> {
    let c = &p.client;
    let owner = p.owner_tag.as_str();
    if step.action == Action::Delete {
        let subnets: Vec<Subnet> = c.get("subnets/", &[]).await?;
        let Some(s) = subnets.iter().find(|s| same_cidr(&s.cidr, &step.id.name)) else {
            return Ok(gone("already gone"));
        };
        if read_subnet_mark(owner, s.description.as_deref().unwrap_or("")) != Some(false) {
            return Err(ProviderError::Refused(format!(
                "subnet {} (id {}) was not created by strata; not deleting it",
                s.cidr, s.id
            )));
        }
        c.delete(&format!("subnets/{}/", s.id)).await?;
        return Ok(outcome(s.id, "deleted"));
    }
    let d: MaasSubnetFields = desired_fields(step)?;
    let spec: MaasSubnetSpec = step
        .desired
        .as_ref()
        .ok_or_else(|| ProviderError::Refused(format!("{}: no desired state", step.id)))?
        .spec_as()
        .map_err(|e| ProviderError::Refused(e.to_string()))?;
    let cidr = Some(d.cidr)
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| step.id.name.clone());
    let name = Some(d.name)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| cidr.clone());
    let gateway = d.gateway_ip.filter(|g| !g.is_empty());
    let managed = d.managed;
    let mut attempt = 0;
    let (s, vlan_id, verb) = loop {
        attempt += 1;
        let net = Net::read(c).await?;
        // The VLAN the design puts this subnet on: the one marked for its design
        // VLAN (its step ran first).
        let target = spec
            .vlan
            .as_deref()
            .and_then(|role| net.marked(owner, role))
            .map(|(_, v)| v.id);
        if let Some(s) = net.subnet(&cidr) {
            let mark = read_subnet_mark(owner, s.description.as_deref().unwrap_or(""));
            let adopted = mark.unwrap_or(attempt == 1);
            let here = s.vlan.as_ref().map(|v| v.id);
            let mut body: Form = Vec::new();
            if s.name != name {
                body.push(("name".into(), name.clone()));
            }
            if let Some(t) = target
                && here != Some(t)
            {
                body.push(("vlan".into(), t.to_string()));
            }
            if s.gateway_ip.clone().filter(|g| !g.is_empty()) != gateway {
                body.push(("gateway_ip".into(), gateway.clone().unwrap_or_default()));
            }
            if s.managed != managed {
                body.push(("managed".into(), managed.to_string()));
            }
            let want_mark = subnet_mark(owner, adopted);
            if s.description.as_deref() != Some(want_mark.as_str()) {
                body.push(("description".into(), want_mark));
            }
            let verb = match mark {
                None if adopted => "adopted",
                None => "created",
                Some(_) if body.is_empty() => "already as desired",
                Some(_) => "updated",
            };
            let vlan_id = target.or(here);
            if body.is_empty() {
                break (s.clone(), vlan_id, verb);
            }
            let updated: Subnet = c.put(&format!("subnets/{}/", s.id), &body).await?;
            break (updated, vlan_id, verb);
        }
        let Some(t) = target else {
            return Err(ProviderError::Api(format!(
                "no VLAN carries the mark of {} yet (its step must succeed first)",
                spec.vlan.as_deref().unwrap_or("the subnet's VLAN")
            )));
        };
        let mut body = form([
            ("cidr", cidr.clone()),
            ("name", name.clone()),
            ("vlan", t.to_string()),
            ("managed", managed.to_string()),
            ("description", subnet_mark(owner, false)),
        ]);
        if let Some(g) = &gateway {
            body.push(("gateway_ip".into(), g.clone()));
        }
        match c.post::<Subnet>("subnets/", None, &body, false).await {
            Ok(s) => break (s, Some(t), "created"),
            Err(e) if reread(&e) && attempt < CREATE_ATTEMPTS => {
                tracing::warn!(%cidr, error = %e, "creating the subnet failed; looking again");
            }
            Err(e) => return Err(e.into()),
        }
    };
    let mut note = verb.to_string();
    let net = Net::read(c).await?;
    let Some((fab, vlan)) = vlan_id.and_then(|id| net.vlan_by_id(id)).cloned() else {
        return Ok(outcome(s.id, note));
    };
    let pending = p.pending_dhcp.lock().contains(&vlan.id);
    if pending {
        let path = vlan_path(fab, &vlan);
        let cur: Vlan = c.get(&path, &[]).await?;
        if !cur.dhcp_on {
            if cur.primary_rack.is_none() {
                return Err(ProviderError::Api(format!(
                    "VLAN {} has no primary rack controller for DHCP",
                    vlan.display_name()
                )));
            }
            if ensure_dynamic_range(c, cur.id, &p.owner_tag).await? {
                let _: Value = c.put(&path, &form([("dhcp_on", "true")])).await?;
                note.push_str(&format!("; DHCP on VLAN {} turned on", vlan.display_name()));
            }
        }
        p.pending_dhcp.lock().remove(&vlan.id);
    }
    Ok(outcome(s.id, note))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vlan(id: u64, vid: u16, description: &str) -> Vlan {
        serde_json::from_value(serde_json::json!({
            "id": id, "vid": vid, "description": description
        }))
        .expect("vlan")
    }

    fn subnet(id: u64, cidr: &str, on: &Vlan) -> Subnet {
        serde_json::from_value(serde_json::json!({
            "id": id, "cidr": cidr, "vlan": {"id": on.id, "vid": on.vid}
        }))
        .expect("subnet")
    }

    /// A MAAS as the controllers' registration leaves it: the provisioning subnet
    /// untagged on fabric 0, the BMC subnet untagged on fabric 2 (the rack's NIC).
    #[test]
    fn a_tagged_design_vlan_is_found_on_the_home_fabric_only() {
        let owner = "strata-acme";
        let prov = vlan(5001, 0, "");
        let bmc_untagged = vlan(5003, 0, "");
        let mut net = Net {
            fabrics: vec![],
            vlans: vec![(0, prov.clone()), (2, bmc_untagged.clone())],
            subnets: vec![
                subnet(1, "10.10.0.0/24", &prov),
                subnet(2, "10.11.0.0/24", &bmc_untagged),
            ],
        };
        let bmc = VlanSpec {
            cidr: "10.11.0.0/24".into(),
            home: "provisioning".into(),
            home_cidr: "10.10.0.0/24".into(),
        };
        // Not the untagged VLAN that carries its subnet on another fabric.
        assert!(net.find_vlan(owner, "bmc", 11, &bmc).is_none());
        // The native VLAN is found by its subnet.
        let prov_spec = VlanSpec {
            cidr: "10.10.0.0/24".into(),
            ..bmc.clone()
        };
        assert_eq!(
            net.find_vlan(owner, "provisioning", 0, &prov_spec)
                .map(|(_, v)| v.id),
            Some(5001)
        );
        // An unmarked VLAN with its VID on the home fabric is it.
        net.vlans.push((0, vlan(5010, 11, "")));
        assert_eq!(
            net.find_vlan(owner, "bmc", 11, &bmc).map(|(_, v)| v.id),
            Some(5010)
        );
        // The one marked for it on the home fabric wins, whatever its VID (the step
        // corrects the VID); a mark elsewhere is stale.
        net.vlans
            .push((0, vlan(5011, 12, &vlan_mark(owner, "bmc", false))));
        net.vlans
            .push((2, vlan(5012, 0, &vlan_mark(owner, "bmc", true))));
        assert_eq!(
            net.find_vlan(owner, "bmc", 11, &bmc).map(|(_, v)| v.id),
            Some(5011)
        );
        let stale: Vec<u64> = net
            .stale_marks(owner, "bmc", 5011)
            .iter()
            .map(|(_, v)| v.id)
            .collect();
        assert_eq!(stale, vec![5012]);
    }

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
