//! The diff: desired + observed → a plan of steps.
//!
//! Rules:
//! - desired, not observed → `create`;
//! - desired, observed but not owned (a machine MAAS enlisted, matched by serial) →
//!   `adopt`: take ownership and converge it;
//! - desired and owned, fields differ → `update` with field-level changes;
//! - owned, not desired → `delete`, unless strata adopted it (`Resource::adopted`):
//!   what existed before strata is left in place;
//! - never touch anything else.
//!
//! Steps are ordered so that dependencies come first (fabric, VLAN, subnet, machine;
//! project before quota; network before subnet) and deletions come last, in reverse.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{Kind, Observed, Platform, Resource, ResourceId, ResourceSet, UnownedObject};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Adopt,
    Update,
    Delete,
}

impl Action {
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Adopt => "@",
            Action::Update => "~",
            Action::Delete => "-",
        }
    }
}

/// One field that changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub field: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
}

/// One thing to do to one resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub id: ResourceId,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// What the resource should become (absent for deletes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<Resource>,
    /// What it is now (absent for creates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<Resource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<ResourceId>,
    /// A VM update that takes effect only when the VM boots again (see [`Reboot`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reboot: Option<Reboot>,
}

/// Why an update of a running VM needs a reboot, and whether apply may do it.
///
/// Proxmox VE applies a configuration change to a running guest at once only when it
/// can hot-plug it; the rest waits in the configuration's `[PENDING]` section until
/// the guest stops or starts (qemu-server `vmconfig_hotplug_pending`): `cores` always,
/// `memory` unless the VM's `hotplug` includes `memory`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reboot {
    /// The fields that wait for the reboot.
    pub fields: Vec<String>,
    /// Whether apply reboots the VM (false: apply writes the change and reports it
    /// pending; the blast-radius policy deferred the reboot).
    pub allowed: bool,
}

/// VM fields a running Proxmox guest cannot take without a reboot, given its observed
/// `hotplug` features (`None`: PVE's default `network,disk,usb`; `0`: none).
pub fn vm_fields_needing_reboot(hotplug: Option<&str>) -> Vec<&'static str> {
    let features: Vec<&str> = match hotplug {
        None | Some("1") => vec!["network", "disk", "usb"],
        Some(h) => h.split(',').map(str::trim).collect(),
    };
    let mut out = vec!["cores"];
    if !features.contains(&"memory") {
        out.push("memory");
    }
    if !features.contains(&"network") {
        out.push("nets");
    }
    out
}

/// The reboot VM `o` needs to become `d`: it runs and stays running, and a field
/// Proxmox cannot change live (or one already waiting in `[PENDING]`) differs from
/// what the VM runs with now (the observed value, or the running value the observed
/// spec lists for a pending field). A change that only undoes a pending one needs no
/// reboot.
fn vm_reboot(d: &Resource, o: &Resource) -> Option<Reboot> {
    if d.id.kind != Kind::Vm {
        return None;
    }
    let status = |r: &Resource| {
        r.fields
            .get("status")
            .and_then(Value::as_str)
            .map(String::from)
    };
    if status(o).as_deref() != Some("running") || status(d).as_deref() == Some("stopped") {
        return None;
    }
    let spec: crate::fields::VmSpec = o.spec_as().unwrap_or_default();
    let slow = vm_fields_needing_reboot(spec.hotplug.as_deref());
    let mut fields: Vec<String> = d
        .fields
        .iter()
        .filter(|(f, _)| slow.contains(&f.as_str()) || spec.pending.contains_key(*f))
        .filter(|(f, want)| {
            let running = spec.pending.get(*f).or_else(|| o.fields.get(*f));
            running != Some(*want)
        })
        .map(|(f, _)| f.clone())
        .collect();
    fields.sort();
    (!fields.is_empty()).then_some(Reboot {
        fields,
        allowed: true,
    })
}

impl Step {
    /// A key that identifies this step's intent: the same step planned twice (for
    /// the same desired state) has the same key. Used by the apply journal.
    pub fn idempotency_key(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.id.to_string().as_bytes());
        h.update([0]);
        h.update(format!("{:?}", self.action).as_bytes());
        h.update([0]);
        if let Some(d) = &self.desired {
            h.update(
                serde_json::to_string(&d.fields)
                    .unwrap_or_default()
                    .as_bytes(),
            );
            h.update(
                serde_json::to_string(&d.spec)
                    .unwrap_or_default()
                    .as_bytes(),
            );
        }
        hex::encode(&h.finalize()[..16])
    }
}

/// A desired object that cannot be created because an object strata does not own
/// already has its name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    pub id: ResourceId,
    pub external_id: String,
    pub message: String,
}

/// The whole plan.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Desired objects blocked by unowned objects of the same name: strata will not
    /// take them over and will not create a look-alike.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<Conflict>,
    /// Objects strata does not own, listed and never touched.
    pub unowned: Vec<UnownedObject>,
    /// How many owned objects each (DC, platform) has now (for the blast-radius guard).
    pub owned_counts: BTreeMap<String, usize>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub create: usize,
    pub adopt: usize,
    pub update: usize,
    pub delete: usize,
}

impl Counts {
    pub fn total(&self) -> usize {
        self.create + self.adopt + self.update + self.delete
    }
}

impl Plan {
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for s in &self.steps {
            match s.action {
                Action::Create => c.create += 1,
                Action::Adopt => c.adopt += 1,
                Action::Update => c.update += 1,
                Action::Delete => c.delete += 1,
            }
        }
        c
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// DCs in plan order.
    pub fn dcs(&self) -> Vec<String> {
        let mut v: Vec<String> = self.steps.iter().map(|s| s.id.dc.clone()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// Share (0-100) of a DC's owned objects this plan deletes.
    pub fn destroy_percent(&self, dc: &str) -> f64 {
        let owned: usize = self
            .owned_counts
            .iter()
            .filter(|(k, _)| k.split('/').next() == Some(dc))
            .map(|(_, v)| *v)
            .sum();
        let deletes = self
            .steps
            .iter()
            .filter(|s| s.id.dc == dc && s.action == Action::Delete)
            .count();
        if owned == 0 {
            0.0
        } else {
            100.0 * deletes as f64 / owned as f64
        }
    }

    /// Defer the reboots over the blast-radius budget: per DC, one apply reboots at
    /// most `max_percent` of its owned Proxmox objects (at least one VM), in plan
    /// order; the others keep `reboot.allowed = false` and are reported pending.
    pub fn limit_reboots(&mut self, max_percent: f64) {
        let mut used: BTreeMap<String, usize> = BTreeMap::new();
        let owned = self.owned_counts.clone();
        for s in &mut self.steps {
            let Some(r) = s.reboot.as_mut() else {
                continue;
            };
            let key = format!("{}/{}", s.id.dc, s.id.platform());
            let count = owned.get(&key).copied().unwrap_or(0) as f64;
            let budget = ((count * max_percent / 100.0).floor() as usize).max(1);
            let n = used.entry(key).or_insert(0);
            r.allowed = *n < budget;
            if r.allowed {
                *n += 1;
            }
        }
    }

    /// DCs whose deletions exceed `max_percent` of their owned objects.
    pub fn over_blast_radius(&self, max_percent: f64) -> Vec<(String, f64)> {
        self.dcs()
            .into_iter()
            .map(|dc| {
                let p = self.destroy_percent(&dc);
                (dc, p)
            })
            .filter(|(_, p)| *p > max_percent)
            .collect()
    }
}

/// The platform's own kind name for a resource kind, as providers list unowned
/// objects (`None` for kinds adopted rather than conflicted, such as machines).
fn platform_kind(k: Kind) -> Option<&'static str> {
    match k {
        Kind::Fabric => Some("fabric"),
        Kind::MaasSubnet | Kind::Subnet => Some("subnet"),
        Kind::Vm => Some("qemu"),
        Kind::Project => Some("project"),
        Kind::Flavor => Some("flavor"),
        Kind::Network => Some("network"),
        Kind::HaRule => Some("ha-rule"),
        Kind::MaasTag => Some("tag"),
        Kind::Vlan
        | Kind::DnsDomain
        | Kind::DnsRecord
        | Kind::Machine
        | Kind::NodeDns
        | Kind::Quota
        | Kind::RegisteredLimit
        | Kind::ProjectLimit
        | Kind::RoleAssignment
        | Kind::FlavorAccess
        | Kind::NetworkRbac => None,
    }
}

/// Fields whose value is a map of paths: a change is reported per path
/// (`network.bond0.mtu`, `storage.md0.level`), so a plan and drift name exactly what
/// differs.
pub(crate) const PATH_FIELDS: &[&str] = &["network", "storage"];

fn changes(desired: &Resource, observed: &Resource) -> Vec<Change> {
    let mut out = Vec::new();
    for (k, want) in &desired.fields {
        let have = observed.fields.get(k);
        if let (true, Some(Value::Object(w)), Some(Value::Object(h))) =
            (PATH_FIELDS.contains(&k.as_str()), Some(want), have)
        {
            let keys: BTreeSet<&String> = w.keys().chain(h.keys()).collect();
            for path in keys {
                if w.get(path) != h.get(path) {
                    out.push(Change {
                        field: format!("{k}.{path}"),
                        old: h.get(path).cloned(),
                        new: w.get(path).cloned(),
                        sensitive: desired.sensitive.contains(k),
                    });
                }
            }
            continue;
        }
        if have != Some(want) {
            out.push(Change {
                field: k.clone(),
                old: have.cloned(),
                new: Some(want.clone()),
                sensitive: desired.sensitive.contains(k),
            });
        }
    }
    out
}

/// Diff `desired` against `observed` for the given scopes.
///
/// `scopes` are the `(dc, platform)` pairs that were observed: resources outside them
/// are neither created nor deleted (a plan against one DC's endpoints leaves the
/// others alone).
pub fn diff(desired: &ResourceSet, observed: &Observed, scopes: &[(String, Platform)]) -> Plan {
    diff_resuming(desired, observed, scopes, &BTreeSet::new())
}

/// [`diff`], knowing which resources an interrupted apply was creating (the apply
/// journal holds their intents). A namesake of such a resource is not a conflict: it
/// is most likely what the interrupted call created, and the provider checks that
/// against the recorded intent before adopting it.
pub fn diff_resuming(
    desired: &ResourceSet,
    observed: &Observed,
    scopes: &[(String, Platform)],
    resuming: &BTreeSet<ResourceId>,
) -> Plan {
    let in_scope = |id: &ResourceId| {
        scopes
            .iter()
            .any(|(dc, p)| *dc == id.dc && *p == id.platform())
    };
    let mut steps = Vec::new();
    let mut conflicts = Vec::new();
    for d in desired.iter().filter(|d| in_scope(&d.id)) {
        match observed.resources.get(&d.id) {
            None if !resuming.contains(&d.id)
                && platform_kind(d.id.kind).is_some_and(|k| {
                    observed.unowned.iter().any(|u| {
                        u.dc == d.id.dc
                            && u.platform == d.id.platform()
                            && u.kind == k
                            && u.name == d.id.name
                    })
                }) =>
            {
                let u = observed.unowned.iter().find(|u| {
                    u.dc == d.id.dc && u.platform == d.id.platform() && u.name == d.id.name
                });
                conflicts.push(Conflict {
                    id: d.id.clone(),
                    external_id: u.map(|u| u.external_id.clone()).unwrap_or_default(),
                    message: format!(
                        "{} `{}` already exists in {} {} without this fleet's ownership tag; strata will neither take it over nor create a second one",
                        d.id.kind,
                        d.id.name,
                        d.id.dc,
                        d.id.platform()
                    ),
                });
            }
            None => steps.push(Step {
                id: d.id.clone(),
                action: Action::Create,
                changes: d
                    .fields
                    .iter()
                    .map(|(k, v)| Change {
                        field: k.clone(),
                        old: None,
                        new: Some(v.clone()),
                        sensitive: d.sensitive.contains(k),
                    })
                    .collect(),
                desired: Some(d.clone()),
                observed: None,
                depends_on: d.depends_on.clone(),
                reboot: None,
            }),
            Some(o) if !o.owned => steps.push(Step {
                id: d.id.clone(),
                action: Action::Adopt,
                changes: changes(d, o),
                desired: Some(d.clone()),
                observed: Some(o.clone()),
                depends_on: d.depends_on.clone(),
                reboot: None,
            }),
            Some(o) => {
                let c = changes(d, o);
                // A change written earlier may still wait for a reboot: an update
                // without field changes, only to reboot.
                let reboot = vm_reboot(d, o);
                if !c.is_empty() || reboot.is_some() {
                    steps.push(Step {
                        id: d.id.clone(),
                        action: Action::Update,
                        changes: c,
                        desired: Some(d.clone()),
                        observed: Some(o.clone()),
                        depends_on: d.depends_on.clone(),
                        reboot,
                    });
                }
            }
        }
    }
    let mut deletes: Vec<Step> = observed
        .resources
        .iter()
        .filter(|o| o.owned && !o.adopted && in_scope(&o.id) && desired.get(&o.id).is_none())
        .map(|o| Step {
            id: o.id.clone(),
            action: Action::Delete,
            changes: Vec::new(),
            desired: None,
            observed: Some(o.clone()),
            depends_on: Vec::new(),
            reboot: None,
        })
        .collect();
    steps.sort_by_key(order_key);
    deletes.sort_by_key(|s| std::cmp::Reverse(order_key(s)));
    steps.extend(deletes);

    let mut owned_counts = BTreeMap::new();
    for o in observed.resources.iter().filter(|o| o.owned) {
        *owned_counts
            .entry(format!("{}/{}", o.id.dc, o.id.platform()))
            .or_insert(0) += 1;
    }
    let mut unowned = observed.unowned.clone();
    unowned.sort();
    Plan {
        steps,
        conflicts,
        unowned,
        owned_counts,
    }
}

fn order_key(s: &Step) -> (String, Platform, Kind, String) {
    (
        s.id.dc.clone(),
        s.id.platform(),
        s.id.kind,
        s.id.name.clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(kind: Kind, name: &str, owned: bool, mem: u64) -> Resource {
        let mut r = Resource::new(ResourceId::new("fra1", kind, name)).field("memory", mem);
        r.owned = owned;
        r
    }

    #[test]
    fn what_strata_adopted_is_never_deleted() {
        let mut observed = Observed::default();
        let mut adopted = res(Kind::Vlan, "bmc", true, 0);
        adopted.adopted = true;
        observed.resources.insert(adopted);
        observed
            .resources
            .insert(res(Kind::Vlan, "storage", true, 0));
        let plan = diff(
            &ResourceSet::default(),
            &observed,
            &[("fra1".to_string(), Platform::Maas)],
        );
        let deletes: Vec<&str> = plan.steps.iter().map(|s| s.id.name.as_str()).collect();
        assert_eq!(deletes, ["storage"]);
    }

    #[test]
    fn creates_updates_adopts_and_deletes() {
        let mut desired = ResourceSet::default();
        desired.insert(res(Kind::Vm, "a", true, 1024));
        desired.insert(res(Kind::Vm, "b", true, 2048));
        desired.insert(res(Kind::Machine, "s1", true, 0));
        desired.insert(res(Kind::Vm, "other-dc", true, 1).tap_dc("ams1"));
        let mut observed = Observed::default();
        observed.resources.insert(res(Kind::Vm, "b", true, 4096));
        observed
            .resources
            .insert(res(Kind::Machine, "s1", false, 0));
        observed.resources.insert(res(Kind::Vm, "gone", true, 1));
        let scopes = vec![
            ("fra1".to_string(), Platform::Proxmox),
            ("fra1".to_string(), Platform::Maas),
        ];
        let plan = diff(&desired, &observed, &scopes);
        let actions: Vec<(Action, &str)> = plan
            .steps
            .iter()
            .map(|s| (s.action, s.id.name.as_str()))
            .collect();
        assert_eq!(
            actions,
            vec![
                (Action::Adopt, "s1"),
                (Action::Create, "a"),
                (Action::Update, "b"),
                (Action::Delete, "gone"),
            ]
        );
        let b = &plan.steps[2];
        assert_eq!(b.changes[0].old, Some(Value::from(4096)));
        assert_eq!(b.changes[0].new, Some(Value::from(2048)));
        assert_eq!(plan.counts().total(), 4);
        // 1 delete out of 2 owned proxmox objects in fra1 (+0 owned MAAS objects).
        assert_eq!(plan.destroy_percent("fra1"), 50.0);
        assert_eq!(plan.over_blast_radius(10.0).len(), 1);
    }

    #[test]
    fn an_unowned_namesake_is_a_conflict_not_a_create() {
        let mut desired = ResourceSet::default();
        desired.insert(res(Kind::Flavor, "m1.small", true, 1));
        let mut observed = Observed::default();
        observed.unowned.push(UnownedObject {
            dc: "fra1".into(),
            platform: Platform::Openstack,
            kind: "flavor".into(),
            name: "m1.small".into(),
            external_id: "2".into(),
        });
        let plan = diff(&desired, &observed, &[("fra1".into(), Platform::Openstack)]);
        assert!(plan.steps.is_empty());
        assert_eq!(plan.conflicts.len(), 1);
        assert_eq!(plan.conflicts[0].external_id, "2");
    }

    #[test]
    fn an_identical_world_is_an_empty_plan() {
        let mut desired = ResourceSet::default();
        desired.insert(res(Kind::Flavor, "m1", true, 1));
        let mut observed = Observed::default();
        observed.resources.insert(res(Kind::Flavor, "m1", true, 1));
        let plan = diff(&desired, &observed, &[("fra1".into(), Platform::Openstack)]);
        assert!(plan.is_empty());
    }

    trait TapDc {
        fn tap_dc(self, dc: &str) -> Self;
    }
    impl TapDc for Resource {
        fn tap_dc(mut self, dc: &str) -> Self {
            self.id.dc = dc.to_string();
            self
        }
    }
}
