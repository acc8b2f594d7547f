//! Machine steps: find (or create) the machine, tag it with the owner tag first, set
//! hostname, power and zone, then walk MAAS's lifecycle to `Deployed`:
//!
//! ```text
//! New / Failed commissioning / Failed testing --commission--> Commissioning (Testing) --> Ready
//! Ready --allocate(system_id)--> Allocated --deploy(user_data, distro_series)--> Deploying --> Deployed
//! Failed deployment --release--> Ready ...
//! ```
//!
//! Every wait polls with a growing interval and has a timeout; a failure MAAS reports
//! while strata waits becomes an error carrying MAAS's status message. A create records
//! the PXE MAC as the step's intent before `POST /machines/`, so a retry after a crash
//! finds the machine by MAC instead of enlisting it twice. Delete releases, then
//! deletes, and only machines carrying the owner tag.
//!
//! A machine that already runs (spec `deployed`: a preinstalled hypervisor under the
//! control plane, a production host) is created with `deployed=true` and never sent
//! a lifecycle action: strata refuses to go on when MAAS has it in any other state.
//! Before MAAS gets a `power_address`, the address is reserved for the BMC's MAC in
//! MAAS's DHCP, so the BMC really answers there.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use strata_plan::{Action, MachineFields, MachineSpec, ResourceId, Step};

use super::client::{CallError, Form, form};
use super::observe::managed_tags;
use super::wire::{self, Machine, status as S};
use super::{MaasProvider, desired_fields, observed_fields};
use crate::secrets::{Secret, SecretNeed, SecretRef, SecretResolver};
use crate::{ActContext, Outcome, ProviderError};

const CREATE_ATTEMPTS: u32 = 4;
/// Lifecycle actions tried at most per step (guards against MAAS flapping).
const MAX_TRANSITIONS: u32 = 24;
/// Lifecycle actions (commission, allocate, deploy, release) sent at most per step.
const MAX_ACTIONS: u32 = 8;

/// What the desired machine is.
#[derive(Debug)]
struct Want {
    serial: String,
    hostname: Option<String>,
    power_type: Option<String>,
    power_address: Option<String>,
    power_user: Option<String>,
    power_pass: Option<String>,
    tags: Vec<String>,
    status: String,
    distro_series: Option<String>,
    zone: Option<String>,
    pxe_mac: Option<String>,
    user_data: Option<String>,
    /// Already runs: registered with `deployed=true`, never commissioned or powered.
    deployed: bool,
    /// What deploy asks MAAS for (`custom/debian-13-pve`); else `distro_series`.
    image: Option<String>,
    /// The BMC's MAC (normalised), for the DHCP reservation of `power_address`.
    bmc_mac: Option<String>,
    /// The network MAAS configures before deploy.
    network: Option<strata_plan::MachineNetwork>,
    /// The storage MAAS configures before allocation.
    storage: Option<strata_plan::MachineStorage>,
    /// What commissioning must find; a machine that differs is quarantined.
    hardware: Option<strata_plan::hardware::HardwareExpectation>,
}

impl Want {
    fn from(step: &Step) -> Result<Want, ProviderError> {
        let d: MachineFields = desired_fields(step)?;
        let spec = desired_spec(step)?;
        let text = |s: String| Some(s).filter(|s| !s.is_empty());
        let mut tags = d.tags;
        tags.sort();
        tags.dedup();
        let pxe_mac = match spec.pxe_mac {
            None => None,
            Some(m) => Some(wire::normalize_mac(&m).ok_or_else(|| {
                ProviderError::Refused(format!("{}: pxe_mac {m:?} is not a MAC address", step.id))
            })?),
        };
        let bmc_mac = match spec.bmc_mac {
            None => None,
            Some(m) => Some(wire::normalize_mac(&m).ok_or_else(|| {
                ProviderError::Refused(format!("{}: bmc_mac {m:?} is not a MAC address", step.id))
            })?),
        };
        Ok(Want {
            network: spec.network,
            storage: spec.storage,
            hardware: spec.hardware,
            deployed: spec.deployed,
            image: spec.image.and_then(text),
            bmc_mac,
            serial: step.id.name.clone(),
            hostname: text(d.hostname),
            power_type: text(d.power_type),
            power_address: d.power_address.and_then(text),
            power_user: d.power_user.and_then(text),
            power_pass: spec.power_pass.and_then(text),
            tags,
            status: text(d.status).unwrap_or_else(|| "Deployed".into()),
            distro_series: text(d.distro_series),
            zone: text(d.zone),
            pxe_mac,
            user_data: spec.user_data.and_then(text),
        })
    }
}

/// The desired machine's create-time parameters (none without desired state).
fn desired_spec(step: &Step) -> Result<MachineSpec, ProviderError> {
    match &step.desired {
        Some(d) => Ok(d.spec_as()?),
        None => Ok(MachineSpec::default()),
    }
}

/// Resolve the BMC password reference (`env:VAR`, `file:PATH` relative to the spec
/// directory) of `step` through the provider's resolver. Errors name the resource
/// and the reference, never a value.
fn resolve_secret(
    secrets: &dyn SecretResolver,
    resource: &ResourceId,
    reference: &str,
) -> Result<Secret, ProviderError> {
    let Some(r) = SecretRef::parse(reference) else {
        return Err(ProviderError::Secret(format!(
            "{resource}: the BMC credential (power_pass) must be a reference (env:VARIABLE or file:PATH), not a value"
        )));
    };
    secrets
        .resolve(&r)
        .map_err(|e| ProviderError::Secret(format!("{resource}: BMC credential {r}: {e}")))
}

/// Whether applying `step` writes the BMC password: every create and adoption (the
/// password cannot be compared, so it is always set), and updates that change a
/// power field.
fn writes_power(step: &Step) -> bool {
    match step.action {
        Action::Create | Action::Adopt => true,
        Action::Update => step.changes.iter().any(|c| c.field.starts_with("power_")),
        Action::Delete => false,
    }
}

/// The BMC password `act` will need for `step`, if any.
pub(super) fn secrets_needed(step: &Step) -> Vec<SecretNeed> {
    if !writes_power(step) {
        return Vec::new();
    }
    // A malformed spec is refused when the step runs.
    desired_spec(step)
        .ok()
        .and_then(|s| s.power_pass)
        .and_then(|r| SecretRef::parse(&r))
        .map(|reference| SecretNeed {
            reference,
            what: "BMC credential (power_pass)",
        })
        .into_iter()
        .collect()
}

/// One machine step.
struct Run<'a> {
    p: &'a MaasProvider,
    step: &'a Step,
    want: Option<Want>,
    /// The BMC password, once resolved (to scrub it from any error).
    secret: Option<Secret>,
    done: Vec<String>,
}

pub(super) async fn act(
    p: &MaasProvider,
    step: &Step,
    ctx: &ActContext<'_>,
) -> Result<Outcome, ProviderError> {
    let mut run = Run {
        p,
        step,
        want: None,
        secret: None,
        done: Vec::new(),
    };
    let r = match step.action {
        Action::Delete => run.delete().await,
        _ => run.converge(ctx).await,
    };
    r.map_err(|e| run.scrub(e))
}

impl Run<'_> {
    /// Remove the BMC password from an error message, wherever MAAS may have echoed it.
    fn scrub(&self, e: ProviderError) -> ProviderError {
        match &self.secret {
            Some(s) if !s.expose().is_empty() => {
                let msg = e.to_string();
                if msg.contains(s.expose()) {
                    ProviderError::Api(msg.replace(s.expose(), "***"))
                } else {
                    e
                }
            }
            _ => e,
        }
    }

    fn want(&self) -> &Want {
        self.want.as_ref().expect("desired state parsed")
    }

    fn password(&mut self) -> Result<Option<Secret>, ProviderError> {
        if self.secret.is_none()
            && let Some(r) = self.want().power_pass.clone()
        {
            self.secret = Some(resolve_secret(self.p.secrets.as_ref(), &self.step.id, &r)?);
        }
        Ok(self.secret.clone())
    }

    fn label(m: &Machine) -> String {
        format!("{} ({})", m.hostname, m.system_id)
    }

    async fn read(&self, sid: &str) -> Result<Option<Machine>, ProviderError> {
        match self
            .p
            .client
            .get::<Machine>(&format!("machines/{sid}/"), &[])
            .await
        {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.is_status(StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn by_mac(&self, mac: &str) -> Result<Option<Machine>, ProviderError> {
        let found: Vec<Machine> = self
            .p
            .client
            .get("machines/", &[("mac_address", mac)])
            .await?;
        Ok(found.into_iter().next())
    }

    // -----------------------------------------------------------------------------
    // Create / adopt / update

    async fn converge(&mut self, ctx: &ActContext<'_>) -> Result<Outcome, ProviderError> {
        self.want = Some(Want::from(self.step)?);
        if !matches!(self.want().status.as_str(), "Deployed" | "Ready") {
            return Err(ProviderError::Refused(format!(
                "{}: desired status {} is not one strata drives machines to (Deployed, Ready)",
                self.step.id,
                self.want().status
            )));
        }
        let (m, created) = self.locate(ctx).await?;
        // Nothing is written to a running host that MAAS holds in another state.
        self.refuse_if_running(&m)?;
        if !created {
            self.reserve_bmc_address().await?;
        }
        let m = self.claim(m, created, ctx).await?;
        let m = self.tag(m).await?;
        let m = self.configure(m, created).await?;
        let m = self.lifecycle(m).await?;
        let note = if self.done.is_empty() {
            "already as desired".to_string()
        } else {
            self.done.join(", ")
        };
        Ok(Outcome {
            external_id: Some(m.system_id),
            note,
        })
    }

    /// The machine this step is about: by the observed system id, by the intent of an
    /// earlier attempt, by PXE MAC; created when none exists (Create only).
    async fn locate(&mut self, ctx: &ActContext<'_>) -> Result<(Machine, bool), ProviderError> {
        let step = self.step;
        if let Some(sid) = step.observed.as_ref().and_then(|o| o.external_id.clone())
            && let Some(m) = self.read(&sid).await?
        {
            return Ok((m, false));
        }
        if step.action == Action::Create
            && let Some(sid) = ctx.intents.previous(ctx.key).await.and_then(|i| {
                i.get("system_id")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            && let Some(m) = self.read(&sid).await?
        {
            return Ok((m, false));
        }
        if let Some(mac) = self.want().pxe_mac.clone()
            && let Some(m) = self.by_mac(&mac).await?
        {
            return Ok((m, false));
        }
        if step.action != Action::Create {
            return Err(ProviderError::Api(format!(
                "{}: the machine is no longer in MAAS (neither its system id nor its MAC is known)",
                step.id
            )));
        }
        // The BMC must hold its address before MAAS first drives it (a create
        // commissions at once).
        self.reserve_bmc_address().await?;
        Ok((self.create(ctx).await?, true))
    }

    /// A machine that already runs is never commissioned, deployed or powered:
    /// refused unless MAAS has it as Deployed.
    fn refuse_if_running(&self, m: &Machine) -> Result<(), ProviderError> {
        if !self.want().deployed || m.code() == Some(S::DEPLOYED) {
            return Ok(());
        }
        Err(ProviderError::Refused(format!(
            "{}: machine {} already runs (preinstalled or in production) but MAAS has it as {}; strata never commissions, deploys or power-cycles a running host: delete it from MAAS so that strata registers it as deployed, or mark it deployed yourself",
            self.step.id,
            Self::label(m),
            m.failure()
        )))
    }

    async fn create(&mut self, ctx: &ActContext<'_>) -> Result<Machine, ProviderError> {
        let Some(mac) = self.want().pxe_mac.clone() else {
            return Err(ProviderError::Refused(format!(
                "{}: creating a machine needs its pxe_mac",
                self.step.id
            )));
        };
        let serial = self.want().serial.clone();
        let mut body = form([
            ("mac_addresses", mac.clone()),
            ("architecture", "amd64/generic".to_string()),
            ("description", wire::serial_marker(&serial)),
        ]);
        if let Some(h) = &self.want().hostname {
            body.push(("hostname".into(), h.clone()));
        }
        if self.want().deployed {
            // MAAS registers it as Deployed and does not commission (power-cycle) it
            // (canonical/maas src/maasserver/api/machines.py, `MachinesHandler.create`;
            // src/maasserver/forms/__init__.py, `AdminMachineForm`).
            body.push(("deployed".into(), "true".into()));
        }
        body.extend(self.power_form()?);
        // Durable before the call: a run killed after MAAS enlisted the machine finds it
        // by this MAC instead of enlisting it again.
        ctx.intents
            .record(ctx.key, &json!({"mac": mac, "serial": serial}))
            .await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .p
                .client
                .post::<Machine>("machines/", None, &body, false)
                .await;
            let m = match result {
                Ok(m) => m,
                // It may exist although the answer was lost, or an earlier ambiguous
                // attempt made it (MAAS then refuses the MAC as in use): look by MAC.
                Err(e) if e.ambiguous() || e.is_status(StatusCode::BAD_REQUEST) => {
                    let retry = e.ambiguous() && attempt < CREATE_ATTEMPTS;
                    let e = self.scrub(e.into());
                    tracing::warn!(serial = %serial, error = %e, "creating the machine failed; looking for it by MAC");
                    match self.by_mac(&mac).await? {
                        Some(m) => m,
                        None if retry => continue,
                        None => return Err(e),
                    }
                }
                Err(e) => return Err(e.into()),
            };
            ctx.intents
                .record(
                    ctx.key,
                    &json!({"mac": mac, "serial": serial, "system_id": m.system_id}),
                )
                .await;
            self.done.push(format!("enlisted as {}", m.system_id));
            return Ok(m);
        }
    }

    /// Is this machine ours to change? Tagged with the owner tag, or the plan adopts
    /// it, or an earlier attempt of this very create enlisted it.
    async fn claim(
        &mut self,
        m: Machine,
        created: bool,
        ctx: &ActContext<'_>,
    ) -> Result<Machine, ProviderError> {
        let owner = &self.p.owner_tag;
        if let Some(t) = m
            .tag_names
            .iter()
            .find(|t| t.starts_with("strata-") && *t != owner)
        {
            return Err(ProviderError::Refused(format!(
                "{}: machine {} carries another fleet's tag {t}",
                self.step.id,
                Self::label(&m)
            )));
        }
        if m.has_tag(owner) || created {
            return Ok(m);
        }
        let want = self.want();
        let same_mac = want
            .pxe_mac
            .as_ref()
            .is_some_and(|mac| m.macs().contains(mac));
        let same_serial = m.serial().as_deref() == Some(want.serial.as_str())
            || m.marked_serial().as_deref() == Some(want.serial.as_str());
        let observed_sid = self
            .step
            .observed
            .as_ref()
            .and_then(|o| o.external_id.as_deref());
        match self.step.action {
            Action::Adopt
                if same_mac || same_serial || observed_sid == Some(m.system_id.as_str()) =>
            {
                self.done.push("adopted".into());
                Ok(m)
            }
            Action::Create => {
                let previous = ctx.intents.previous(ctx.key).await;
                let ours = previous.as_ref().is_some_and(|i| {
                    i.get("system_id").and_then(Value::as_str) == Some(m.system_id.as_str())
                        || i.get("mac")
                            .and_then(Value::as_str)
                            .and_then(wire::normalize_mac)
                            .is_some_and(|mac| m.macs().contains(&mac))
                });
                if ours {
                    self.done
                        .push(format!("found {} from an interrupted create", m.system_id));
                    Ok(m)
                } else {
                    Err(ProviderError::Refused(format!(
                        "{}: MAAS already has an untagged machine {} with this MAC; strata adopts only machines the plan marks for adoption",
                        self.step.id,
                        Self::label(&m)
                    )))
                }
            }
            _ => Err(ProviderError::Refused(format!(
                "{}: machine {} does not carry the owner tag {owner} (anymore); re-plan",
                self.step.id,
                Self::label(&m)
            ))),
        }
    }

    /// The owner tag first, then the desired `role-*` tags; other roles removed.
    async fn tag(&mut self, mut m: Machine) -> Result<Machine, ProviderError> {
        let owner = self.p.owner_tag.clone();
        let mut wanted = vec![owner.clone()];
        wanted.extend(self.want().tags.iter().filter(|t| **t != owner).cloned());
        for t in &wanted {
            if m.has_tag(t) {
                continue;
            }
            self.p.ensure_tag(t).await?;
            self.p.tag_nodes(t, "add", &m.system_id).await?;
            m.tag_names.push(t.clone());
            if *t == owner {
                self.done.push(format!("tagged {owner}"));
            }
        }
        for t in managed_tags(&m, &owner) {
            if !wanted.contains(&t) {
                self.p.tag_nodes(&t, "remove", &m.system_id).await?;
                m.tag_names.retain(|x| *x != t);
            }
        }
        Ok(m)
    }

    /// Reserve the BMC's address for its MAC in MAAS's DHCP (`/reservedips/`, MAAS
    /// 3.6: canonical/maas src/maasserver/api/reservedip.py), so that the BMC holds
    /// the `power_address` strata gives MAAS. Idempotent: an existing reservation of
    /// this address for this MAC is kept; an older reservation of this MAC that
    /// strata made is replaced (MAAS never changes one in place); anything else is
    /// refused, not overwritten.
    async fn reserve_bmc_address(&mut self) -> Result<(), ProviderError> {
        let want = self.want();
        let (Some(ip), Some(mac)) = (want.power_address.clone(), want.bmc_mac.clone()) else {
            return Ok(());
        };
        let owner = self.p.owner_tag.clone();
        let comment = format!("{owner}: BMC of {}", want.serial);
        let listed: Vec<Value> = self.p.client.get("reservedips/", &[]).await?;
        let field = |r: &Value, k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
        for r in &listed {
            if field(r, "ip").as_deref() != Some(ip.as_str()) {
                continue;
            }
            let theirs = field(r, "mac_address").and_then(|m| wire::normalize_mac(&m));
            if theirs.as_deref() == Some(mac.as_str()) {
                return Ok(());
            }
            return Err(ProviderError::Refused(format!(
                "{}: MAAS reserves {ip} for MAC {} ({}), not for this BMC ({mac})",
                self.step.id,
                theirs.unwrap_or_default(),
                field(r, "comment").unwrap_or_default()
            )));
        }
        for r in &listed {
            let theirs = field(r, "mac_address").and_then(|m| wire::normalize_mac(&m));
            if theirs.as_deref() != Some(mac.as_str()) {
                continue;
            }
            let ours = field(r, "comment").is_some_and(|c| c.starts_with(&format!("{owner}:")));
            let old = field(r, "ip").unwrap_or_default();
            if !ours {
                return Err(ProviderError::Refused(format!(
                    "{}: MAAS reserves {old} for this BMC ({mac}), not the desired {ip}; the reservation is not strata's, so strata leaves it: delete it to move the BMC",
                    self.step.id
                )));
            }
            let id = r.get("id").and_then(Value::as_u64).unwrap_or_default();
            self.p.client.delete(&format!("reservedips/{id}/")).await?;
            self.done
                .push(format!("dropped the old BMC reservation {old}"));
        }
        let body = form([
            ("ip", ip.clone()),
            ("mac_address", mac.clone()),
            ("comment", comment),
        ]);
        // An ambiguous answer is settled by listing: made by that request if listed
        // now, else not made, and sending it again is safe (a few times).
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .p
                .client
                .post::<Value>("reservedips/", None, &body, false)
                .await
            {
                Ok(_) => break,
                Err(e) if e.ambiguous() => {
                    let listed: Vec<Value> = self.p.client.get("reservedips/", &[]).await?;
                    let made = listed.iter().any(|r| {
                        field(r, "ip").as_deref() == Some(ip.as_str())
                            && field(r, "mac_address").and_then(|m| wire::normalize_mac(&m))
                                == Some(mac.clone())
                    });
                    if made {
                        break;
                    }
                    if attempt >= 3 {
                        return Err(e.into());
                    }
                }
                Err(e) => {
                    return Err(ProviderError::Api(format!(
                        "{}: reserving the BMC address {ip} for {mac} refused: {}",
                        self.step.id,
                        maas_reason(&e)
                    )));
                }
            }
        }
        self.done.push(format!("reserved {ip} for the BMC"));
        Ok(())
    }

    fn power_form(&mut self) -> Result<Form, ProviderError> {
        let want = self.want();
        let mut f: Form = Vec::new();
        let Some(pt) = want.power_type.clone() else {
            return Ok(f);
        };
        let (addr, user) = (want.power_address.clone(), want.power_user.clone());
        f.push(("power_type".into(), pt));
        if let Some(a) = addr {
            f.push(("power_parameters_power_address".into(), a));
        }
        if let Some(u) = user {
            f.push(("power_parameters_power_user".into(), u));
        }
        if let Some(pass) = self.password()? {
            f.push((
                "power_parameters_power_pass".into(),
                pass.expose().to_string(),
            ));
        }
        Ok(f)
    }

    /// Hostname, power type and parameters, zone (and the serial marker when the
    /// hardware's serial is not the desired one).
    async fn configure(&mut self, m: Machine, created: bool) -> Result<Machine, ProviderError> {
        let step = self.step;
        let want = self.want();
        let mut body: Form = Vec::new();
        if let Some(h) = &want.hostname
            && *h != m.hostname
        {
            body.push(("hostname".into(), h.clone()));
        }
        if let Some(z) = &want.zone
            && *z != m.zone_name()
        {
            let z = z.clone();
            self.p.ensure_zone(&z).await?;
            body.push(("zone".into(), z));
        }
        let want = self.want();
        if m.serial().as_deref() != Some(want.serial.as_str())
            && m.marked_serial().as_deref() != Some(want.serial.as_str())
        {
            let kept: Vec<&str> = m
                .description()
                .split_whitespace()
                .filter(|w| !w.starts_with(wire::SERIAL_MARKER))
                .collect();
            let mut d = kept.join(" ");
            if !d.is_empty() {
                d.push(' ');
            }
            d.push_str(&wire::serial_marker(&want.serial));
            body.push(("description".into(), d));
        }
        // Power: always on adoption and on a found (not freshly created) create, since
        // the password cannot be compared; on updates when a power field differs.
        let seen = observed_fields::<MachineFields>(step)?;
        let power_differs = want.power_type.as_deref() != m.power_type.as_deref()
            || want.power_address != seen.as_ref().and_then(|o| o.power_address.clone())
            || want.power_user != seen.as_ref().and_then(|o| o.power_user.clone());
        let set_power = match step.action {
            Action::Create => !created,
            Action::Adopt => true,
            _ => power_differs,
        };
        if set_power && want.power_type.is_some() {
            body.extend(self.power_form()?);
        }
        if body.is_empty() {
            return Ok(m);
        }
        let changed: Vec<&str> = body
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !k.starts_with("power_parameters_"))
            .collect();
        let note = format!("set {}", changed.join(", "));
        let m: Machine = self
            .p
            .client
            .put(&format!("machines/{}/", m.system_id), &body)
            .await?;
        self.done.push(note);
        Ok(m)
    }

    // -----------------------------------------------------------------------------
    // Lifecycle

    async fn lifecycle(&mut self, mut m: Machine) -> Result<Machine, ProviderError> {
        let p = self.p;
        let sid = m.system_id.clone();
        let target_ready = self.want().status == "Ready";
        // Whether MAAS accepted our commission / deploy / release in this step (a
        // failure after that is the step's failure, not a state to start from), and
        // how often an action was sent at all (ambiguous answers are retried).
        let (mut commissioned, mut deployed, mut released) = (false, false, false);
        let mut sent = 0u32;
        // Commissioning or deploying it would power-cycle a host that runs (a
        // hypervisor under the control plane, or a production machine).
        self.refuse_if_running(&m)?;
        // A machine decommissioned (retired or sent for RMA) never comes back by
        // itself: the spec still naming it is the mistake.
        if let Some(t) = super::retire::RETIRED_TAGS.iter().find(|t| m.has_tag(t)) {
            return Err(ProviderError::Refused(format!(
                "{}: machine {} is decommissioned (tag {t}): remove it from the spec, or remove the tag in MAAS to bring it back",
                self.step.id,
                Self::label(&m)
            )));
        }
        for _ in 0..MAX_TRANSITIONS {
            let code = m.code().unwrap_or(-1);
            match code {
                S::DEPLOYED => {
                    if target_ready {
                        return Err(ProviderError::Refused(format!(
                            "{}: machine {} is Deployed; strata does not release it to reach Ready",
                            self.step.id,
                            Self::label(&m)
                        )));
                    }
                    let want = self.want();
                    if let Some(d) = &want.distro_series
                        && m.distro_series
                            .as_deref()
                            .is_some_and(|x| !x.is_empty() && x != d)
                    {
                        return Err(ProviderError::Refused(format!(
                            "{}: machine {} is deployed with {}, desired {d}: changing the OS needs a release and redeploy, which strata does not do on its own",
                            self.step.id,
                            Self::label(&m),
                            m.distro_series.as_deref().unwrap_or("")
                        )));
                    }
                    // A deployed machine's network and disks are what curtin wrote at
                    // deploy: changing MAAS's model now would change nothing on the host.
                    let changed = |what: &str| {
                        self.step
                            .changes
                            .iter()
                            .any(|c| c.field == what || c.field.starts_with(&format!("{what}.")))
                    };
                    let mut differs = Vec::new();
                    if let Some(net) = want.network.as_ref().filter(|_| changed("network")) {
                        let diff =
                            super::netconfig::differences(&net.summary(), &m.network_summary());
                        if !diff.is_empty() {
                            differs.push(format!("its network ({})", diff.join(", ")));
                        }
                    }
                    if let Some(st) = want.storage.as_ref().filter(|_| changed("storage")) {
                        let diff = super::storage::storage_differences(&m, st);
                        if !diff.is_empty() {
                            differs.push(format!(
                                "its storage ({}; a redeploy erases its disks)",
                                diff.join(", ")
                            ));
                        }
                    }
                    if !differs.is_empty() {
                        return Err(ProviderError::Refused(format!(
                            "{}: machine {} is deployed and {} differs from the design; the change takes a release and redeploy, which strata does not do on its own",
                            self.step.id,
                            Self::label(&m),
                            differs.join(" and ")
                        )));
                    }
                    return Ok(m);
                }
                S::READY if target_ready => {
                    self.validate(&m).await?;
                    self.storage(&m).await?;
                    return self.read_required(&sid).await;
                }
                S::NEW | S::FAILED_COMMISSIONING | S::FAILED_TESTING => {
                    if commissioned {
                        return Err(self.commissioning_failed(&m).await);
                    }
                    // The GPUs' PCIe links are read by a script commissioning runs.
                    if self
                        .want()
                        .hardware
                        .as_ref()
                        .is_some_and(|h| h.gpus.is_some())
                    {
                        p.ensure_pcie_script().await?;
                    }
                    sent += 1;
                    commissioned = self.transition(&sid, "commission", Vec::new()).await?;
                    if commissioned {
                        self.done.push("commissioned".into());
                    }
                    m = self
                        .wait(
                            &sid,
                            &[S::COMMISSIONING, S::TESTING],
                            p.opts.commission_timeout,
                        )
                        .await?;
                }
                S::COMMISSIONING | S::TESTING => {
                    commissioned = true;
                    m = self
                        .wait(
                            &sid,
                            &[S::COMMISSIONING, S::TESTING],
                            p.opts.commission_timeout,
                        )
                        .await?;
                }
                S::READY => {
                    // Only hardware built to its profile is deployed.
                    self.validate(&m).await?;
                    // Disks first: MAAS changes partitions and RAIDs only while Ready.
                    self.storage(&m).await?;
                    sent += 1;
                    self.allocate(&sid).await?;
                    m = self.read_required(&sid).await?;
                    if m.code() != Some(S::READY) {
                        self.done.push("allocated".into());
                    }
                }
                S::ALLOCATED => {
                    if deployed {
                        return Err(self.failed("deployment", &m));
                    }
                    // Allocated with other disks than the design (by an earlier run
                    // or by hand): MAAS builds RAIDs only on a Ready machine, so our
                    // allocation is released first and the loop comes back through
                    // Ready.
                    if let Some(st) = &self.want().storage {
                        let diff = super::storage::storage_differences(&m, st);
                        if !diff.is_empty() {
                            if released {
                                return Err(ProviderError::Api(format!(
                                    "{}: machine {} is allocated again with storage that differs from the design ({})",
                                    self.step.id,
                                    Self::label(&m),
                                    diff.join(", ")
                                )));
                            }
                            sent += 1;
                            p.release(&sid).await?;
                            released = true;
                            self.done.push(format!(
                                "released to rebuild its disks ({})",
                                diff.join(", ")
                            ));
                            m = self
                                .wait(
                                    &sid,
                                    &[S::RELEASING, S::DISK_ERASING],
                                    p.opts.release_timeout,
                                )
                                .await?;
                            continue;
                        }
                    }
                    // The network MAAS hands curtin: configured now, before deploy.
                    if let Some(net) = self.want().network.clone() {
                        let done = p.configure_network(&self.step.id, &m, &net).await?;
                        if !done.is_empty() {
                            self.done.push(format!("network: {}", done.join("; ")));
                        }
                    }
                    let mut body: Form = Vec::new();
                    let want = self.want();
                    if let Some(d) = want.image.as_ref().or(want.distro_series.as_ref()) {
                        body.push(("distro_series".into(), d.clone()));
                    }
                    if let Some(u) = &want.user_data {
                        body.push(("user_data".into(), u.clone()));
                    }
                    sent += 1;
                    deployed = self.transition(&sid, "deploy", body).await?;
                    if deployed {
                        self.done.push("deployed".into());
                    }
                    m = self
                        .wait(&sid, &[S::DEPLOYING], p.opts.deploy_timeout)
                        .await?;
                }
                S::DEPLOYING => {
                    deployed = true;
                    m = self
                        .wait(&sid, &[S::DEPLOYING], p.opts.deploy_timeout)
                        .await?;
                }
                S::FAILED_DEPLOYMENT => {
                    if deployed || released {
                        return Err(self.failed("deployment", &m));
                    }
                    sent += 1;
                    p.release(&sid).await?;
                    released = true;
                    self.done.push("released after a failed deployment".into());
                    m = self
                        .wait(
                            &sid,
                            &[S::RELEASING, S::DISK_ERASING],
                            p.opts.release_timeout,
                        )
                        .await?;
                }
                S::RELEASING | S::DISK_ERASING => {
                    released = true;
                    m = self
                        .wait(
                            &sid,
                            &[S::RELEASING, S::DISK_ERASING],
                            p.opts.release_timeout,
                        )
                        .await?;
                    if matches!(m.code(), Some(S::FAILED_RELEASING | S::FAILED_DISK_ERASING)) {
                        return Err(self.failed("releasing", &m));
                    }
                }
                _ => {
                    return Err(ProviderError::Refused(format!(
                        "{}: machine {} is {}; strata does not move machines out of that state on its own",
                        self.step.id,
                        Self::label(&m),
                        m.failure()
                    )));
                }
            }
            if sent > MAX_ACTIONS {
                break;
            }
        }
        Err(ProviderError::Api(format!(
            "{}: machine {} did not settle (now {}) after {sent} lifecycle actions",
            self.step.id,
            Self::label(&m),
            m.failure()
        )))
    }

    /// Configure the machine's disks (it is Ready) when the design names them.
    async fn storage(&mut self, m: &Machine) -> Result<(), ProviderError> {
        if let Some(st) = self.want().storage.clone() {
            let done = self.p.configure_storage(&self.step.id, m, &st).await?;
            if !done.is_empty() {
                self.done.push(format!("storage: {}", done.join("; ")));
            }
        }
        Ok(())
    }

    /// Compare what commissioning found with the profile (when the design names
    /// one); a machine that differs is quarantined and refused.
    async fn validate(&mut self, m: &Machine) -> Result<(), ProviderError> {
        let Some(want) = self.want().hardware.clone() else {
            return Ok(());
        };
        let tagged = m.has_tag(super::hardware::QUARANTINE_TAG);
        self.p
            .validate_hardware(&self.step.id, &m.system_id, &Self::label(m), tagged, &want)
            .await?;
        self.done
            .push(format!("hardware matches profile {}", want.profile));
        Ok(())
    }

    /// Commissioning that strata asked for failed: a machine with a hardware profile
    /// is quarantined with MAAS's reason; either way the step fails.
    async fn commissioning_failed(&self, m: &Machine) -> ProviderError {
        match &self.want().hardware {
            Some(want) => {
                let d = strata_plan::hardware::Deviation {
                    what: "commissioning".into(),
                    expected: "to pass".into(),
                    found: m.failure(),
                };
                self.p
                    .quarantine(
                        &self.step.id,
                        &m.system_id,
                        &Self::label(m),
                        &want.profile,
                        &[d],
                    )
                    .await
            }
            None => self.failed("commissioning", m),
        }
    }

    fn failed(&self, what: &str, m: &Machine) -> ProviderError {
        ProviderError::Api(format!(
            "{}: {what} of {} failed: {}",
            self.step.id,
            Self::label(m),
            m.failure()
        ))
    }

    async fn read_required(&self, sid: &str) -> Result<Machine, ProviderError> {
        self.read(sid).await?.ok_or_else(|| {
            ProviderError::Api(format!(
                "{}: machine {sid} disappeared from MAAS",
                self.step.id
            ))
        })
    }

    /// `POST machines/{sid}/?op=OP`: `true` when MAAS accepted it. An ambiguous
    /// failure is not an error (`false`): the lifecycle re-reads the machine and goes
    /// on from what it sees.
    async fn transition(&self, sid: &str, op: &str, body: Form) -> Result<bool, ProviderError> {
        match self
            .p
            .client
            .post::<Value>(&format!("machines/{sid}/"), Some(op), &body, false)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.ambiguous() => {
                tracing::warn!(system_id = sid, op, error = %e, "ambiguous answer; re-reading the machine");
                Ok(false)
            }
            Err(e) => Err(ProviderError::Api(format!(
                "{}: {op} of {sid} refused: {}",
                self.step.id,
                maas_reason(&e)
            ))),
        }
    }

    /// `POST machines/?op=allocate system_id=SID`; a refusal after an ambiguous first
    /// try is fine when the machine is allocated already.
    async fn allocate(&self, sid: &str) -> Result<(), ProviderError> {
        let body = form([("system_id", sid)]);
        match self
            .p
            .client
            .post::<Value>("machines/", Some("allocate"), &body, false)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.ambiguous() => Ok(()),
            Err(e) if e.is_status(StatusCode::CONFLICT) => {
                match self.read(sid).await?.and_then(|m| m.code()) {
                    Some(S::ALLOCATED | S::DEPLOYING | S::DEPLOYED) => Ok(()),
                    _ => Err(ProviderError::Api(format!(
                        "{}: allocating {sid} refused: {}",
                        self.step.id,
                        maas_reason(&e)
                    ))),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Poll until the machine leaves `during`; growing interval, bounded by `timeout`.
    async fn wait(
        &self,
        sid: &str,
        during: &[i64],
        timeout: Duration,
    ) -> Result<Machine, ProviderError> {
        wait_until(self.p, sid, during, timeout, &self.step.id.to_string()).await
    }

    // -----------------------------------------------------------------------------
    // Delete

    async fn delete(&mut self) -> Result<Outcome, ProviderError> {
        let step = self.step;
        let Some(sid) = step.observed.as_ref().and_then(|o| o.external_id.clone()) else {
            return Err(ProviderError::Refused(format!(
                "{}: no observed system id",
                step.id
            )));
        };
        let Some(m) = self.read(&sid).await? else {
            return Ok(Outcome {
                external_id: Some(sid),
                note: "already gone".into(),
            });
        };
        if !m.has_tag(&self.p.owner_tag) {
            return Err(ProviderError::Refused(format!(
                "{}: machine {} does not carry the owner tag {}; not deleting it",
                step.id,
                Self::label(&m),
                self.p.owner_tag
            )));
        }
        let mut code = m.code().unwrap_or(-1);
        if S::RELEASABLE.contains(&code) {
            self.p.release(&sid).await?;
            let m = wait_until(
                self.p,
                &sid,
                &[S::RELEASING, S::DISK_ERASING],
                self.p.opts.release_timeout,
                &step.id.to_string(),
            )
            .await?;
            code = m.code().unwrap_or(-1);
            if S::RELEASABLE.contains(&code) {
                return Err(self.failed("releasing", &m));
            }
        }
        if matches!(code, S::COMMISSIONING | S::TESTING) {
            // Best effort: MAAS deletes a commissioning machine anyway.
            let _ = self.transition(&sid, "abort", Vec::new()).await;
        }
        self.p.client.delete(&format!("machines/{sid}/")).await?;
        Ok(Outcome {
            external_id: Some(sid),
            note: "released and deleted".into(),
        })
    }
}

/// MAAS's reason for a refusal (the answer's body), else the whole error.
fn maas_reason(e: &CallError) -> String {
    let b = e.body().trim();
    if b.is_empty() {
        e.to_string()
    } else {
        b.to_string()
    }
}

pub(super) async fn wait_until(
    p: &MaasProvider,
    sid: &str,
    during: &[i64],
    timeout: Duration,
    what: &str,
) -> Result<Machine, ProviderError> {
    let start = Instant::now();
    let mut interval = p.opts.poll_interval.max(Duration::from_millis(10));
    loop {
        let m: Machine = match p.client.get(&format!("machines/{sid}/"), &[]).await {
            Ok(m) => m,
            Err(e) if e.is_status(StatusCode::NOT_FOUND) => {
                return Err(ProviderError::Api(format!(
                    "{what}: machine {sid} disappeared from MAAS"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let code = m.code().unwrap_or(-1);
        if !during.contains(&code) {
            return Ok(m);
        }
        if start.elapsed() >= timeout {
            return Err(ProviderError::Timeout(format!(
                "{what}: machine {} ({sid}) is still {} after {}s",
                m.hostname,
                m.status_name(),
                timeout.as_secs()
            )));
        }
        let left = timeout.saturating_sub(start.elapsed());
        tokio::time::sleep(interval.min(left)).await;
        interval = (interval * 2).min(p.opts.max_poll_interval.max(p.opts.poll_interval));
    }
}

impl MaasProvider {
    /// Make sure a tag exists (created when missing; a concurrent creation is fine).
    pub(super) async fn ensure_tag(&self, name: &str) -> Result<(), ProviderError> {
        if self.known_tags.lock().contains(name) {
            return Ok(());
        }
        let path = format!("tags/{}/", super::client::pct(name));
        match self.client.get::<Value>(&path, &[]).await {
            Ok(_) => {}
            // A kernel-option tag is made, with its options and mark, by its own
            // `maas-tag` step, which the machine depends on; never here without them.
            Err(e)
                if e.is_status(StatusCode::NOT_FOUND) && name.starts_with(super::tags::PREFIX) =>
            {
                return Err(ProviderError::Api(format!(
                    "MAAS tag {name} does not exist (its maas-tag step must succeed first)"
                )));
            }
            Err(e) if e.is_status(StatusCode::NOT_FOUND) => {
                let body = form([
                    ("name", name.to_string()),
                    ("comment", format!("managed by strata ({})", self.owner_tag)),
                ]);
                match self.client.post::<Value>("tags/", None, &body, false).await {
                    Ok(_) => {}
                    Err(e) if e.ambiguous() || e.is_status(StatusCode::BAD_REQUEST) => {
                        // Created by a concurrent step, or by this very request.
                        self.client.get::<Value>(&path, &[]).await?;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
        self.known_tags.lock().insert(name.to_string());
        Ok(())
    }

    /// `POST tags/{name}/?op=update_nodes add|remove=SID` (idempotent).
    pub(super) async fn tag_nodes(
        &self,
        name: &str,
        how: &str,
        sid: &str,
    ) -> Result<(), ProviderError> {
        let path = format!("tags/{}/", super::client::pct(name));
        self.client
            .post::<Value>(&path, Some("update_nodes"), &form([(how, sid)]), true)
            .await?;
        Ok(())
    }

    /// Make sure a zone exists (MAAS refuses machines in unknown zones).
    async fn ensure_zone(&self, name: &str) -> Result<(), ProviderError> {
        if self.known_zones.lock().contains(name) {
            return Ok(());
        }
        let path = format!("zones/{}/", super::client::pct(name));
        match self.client.get::<Value>(&path, &[]).await {
            Ok(_) => {}
            Err(e) if e.is_status(StatusCode::NOT_FOUND) => {
                let body = form([
                    ("name", name.to_string()),
                    (
                        "description",
                        format!("created by strata ({})", self.owner_tag),
                    ),
                ]);
                match self
                    .client
                    .post::<Value>("zones/", None, &body, false)
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.ambiguous() || e.is_status(StatusCode::BAD_REQUEST) => {
                        self.client.get::<Value>(&path, &[]).await?;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
        self.known_zones.lock().insert(name.to_string());
        Ok(())
    }

    /// `POST machines/{sid}/?op=release` (idempotent: releasing a released machine is
    /// a no-op).
    async fn release(&self, sid: &str) -> Result<(), ProviderError> {
        self.client
            .post::<Value>(
                &format!("machines/{sid}/"),
                Some("release"),
                &Vec::new(),
                true,
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_references_resolve_without_showing_values() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("pass"), "hunter2\n").expect("write");
        // Relative to the resolver's base: the spec directory.
        let secrets = crate::secrets::SystemSecrets::new(dir.path());
        let id = ResourceId::new("fra1", strata_plan::Kind::Machine, "SN1");
        let s = resolve_secret(&secrets, &id, "file:pass").expect("file");
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        let e = resolve_secret(&secrets, &id, "env:STRATA_MAAS_UNIT_TEST_UNSET_VARIABLE")
            .expect_err("unset");
        assert!(
            e.to_string()
                .contains("STRATA_MAAS_UNIT_TEST_UNSET_VARIABLE"),
            "{e}"
        );
        assert!(e.to_string().contains("fra1/machine/SN1"), "{e}");
        let e = resolve_secret(&secrets, &id, "hunter2").expect_err("literal");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
