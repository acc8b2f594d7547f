//! The MAAS provider: observes and changes one MAAS region (2.0 API) for one DC.
//!
//! - **Auth**: OAuth 1.0 PLAINTEXT from the API key, a fresh nonce and timestamp per
//!   request; bodies form-urlencoded, `op` in the query string ([`client`]).
//! - **observe**: a constant number of list calls per region, whatever the number of
//!   machines: fabrics (VLANs embedded), subnets, rack controllers, machines, the
//!   power parameters of all machines (`GET machines/?op=power_parameters`), DNS
//!   domains and DNS resources; one VLAN list per fabric only if a MAAS does not
//!   embed VLANs ([`observe`]).
//! - **Ownership**: VLANs and subnets whose description carries strata's mark
//!   (`<owner tag>: <role> VLAN, created by strata` / `adopted by strata`); MAAS's
//!   controllers make fabrics, VLANs and subnets when they register, and strata
//!   adopts those (matched by the design subnet's CIDR, or a tagged VLAN's VID on the
//!   fabric of the native VLAN) rather than making its own: adopted objects are
//!   managed and never deleted. An owned fabric named `strata` (made by earlier
//!   versions) is still recognised. Machines tagged with the owner tag. An untagged
//!   machine identified by serial (or, with [`MaasProvider::expect_machines`], by boot
//!   MAC) is returned with `owned: false` so the plan adopts it; everything else
//!   (other fabrics and subnets, other machines, the rack controllers) is listed as
//!   unowned and never modified. DNS domains and records carry no mark: the ones
//!   the desired state names are managed (as adopted), never deleted ([`dns`]). A machine strata enlisted itself carries
//!   `strata-serial=<serial>` in its description until its hardware reports that
//!   serial (and after a boot-MAC adoption, where it never will).
//! - **act**: VLAN/subnet adopt-create-or-update looked up by mark/CIDR/VID first
//!   ([`network`]); machines are tagged first, configured, then walked through MAAS's
//!   lifecycle to `Deployed` ([`machine`]).
//!
//! Secrets (the API key, BMC passwords) never appear in `Debug` output, logs or errors.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use strata_plan::{Kind, KindFields, MachineSpec, Observed, Platform, ResourceSet, Step};

use crate::http::EndpointConfig;
use crate::secrets::SecretResolver;
use crate::targets::MaasTarget;
use crate::{ActContext, Outcome, Provider, ProviderError};

pub mod allocate;
mod client;
mod dns;
mod hardware;
mod machine;
mod netconfig;
mod network;
mod observe;
pub mod retire;
mod storage;
mod tags;
mod wire;

use client::Client;

/// Tunables of a MAAS provider.
#[derive(Clone, Debug)]
pub struct MaasOptions {
    /// HTTP settings (TLS settings come from the target).
    pub endpoint: EndpointConfig,
    /// First interval between polls of a machine in transition (doubles up to
    /// `max_poll_interval`).
    pub poll_interval: Duration,
    pub max_poll_interval: Duration,
    /// How long commissioning (with its tests) may take.
    pub commission_timeout: Duration,
    /// How long a deployment may take.
    pub deploy_timeout: Duration,
    /// How long releasing (and disk erasing) may take.
    pub release_timeout: Duration,
}

impl Default for MaasOptions {
    fn default() -> Self {
        MaasOptions {
            endpoint: EndpointConfig {
                // Machine listings of big regions are slow to render.
                timeout: Duration::from_secs(120),
                ..EndpointConfig::default()
            },
            poll_interval: Duration::from_secs(2),
            max_poll_interval: Duration::from_secs(10),
            commission_timeout: Duration::from_secs(45 * 60),
            deploy_timeout: Duration::from_secs(90 * 60),
            release_timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// Machines the desired state expects in this DC: what untagged machines are matched
/// against (serial, else boot MAC).
#[derive(Debug, Default)]
struct Expectations {
    serials: HashSet<String>,
    /// Normalised PXE MAC → serial.
    by_mac: HashMap<String, String>,
    /// Design VLANs: role → (VID in MAAS, where to find it).
    vlans: Vec<(String, u16, strata_plan::VlanSpec)>,
    /// Design subnet CIDRs.
    subnets: Vec<String>,
    /// DNS domains and record FQDNs.
    domains: Vec<String>,
    records: Vec<String>,
}

/// One DC's MAAS region.
pub struct MaasProvider {
    dc: String,
    owner_tag: String,
    url: String,
    client: Client,
    opts: MaasOptions,
    /// Resolves the BMC password references of machines.
    secrets: Arc<dyn SecretResolver>,
    expected: RwLock<Option<Expectations>>,
    /// Tags and zones known to exist (created or seen), so concurrent steps don't ask.
    known_tags: Mutex<HashSet<String>>,
    known_zones: Mutex<HashSet<String>>,
    /// Ids of VLANs whose DHCP waits for a subnet (with a dynamic range) to exist:
    /// a VLAN step runs before its subnet's step, and MAAS serves DHCP only on a VLAN
    /// with a dynamic range, so the subnet step finishes the job.
    pending_dhcp: Mutex<HashSet<u64>>,
}

impl fmt::Debug for MaasProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaasProvider")
            .field("dc", &self.dc)
            .field("url", &self.url)
            .field("owner_tag", &self.owner_tag)
            .finish_non_exhaustive()
    }
}

impl MaasProvider {
    pub fn new(
        dc: &str,
        target: &MaasTarget,
        owner_tag: &str,
        secrets: Arc<dyn SecretResolver>,
    ) -> Result<Self, ProviderError> {
        let mut opts = MaasOptions::default();
        if let Some(p) = target.poll_interval {
            opts.poll_interval = p;
        }
        if let Some(p) = target.max_poll_interval {
            opts.max_poll_interval = p;
        }
        Self::with_options(dc, target, owner_tag, secrets, opts)
    }

    pub fn with_options(
        dc: &str,
        target: &MaasTarget,
        owner_tag: &str,
        secrets: Arc<dyn SecretResolver>,
        opts: MaasOptions,
    ) -> Result<Self, ProviderError> {
        if owner_tag.is_empty()
            || !owner_tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ProviderError::Refused(format!(
                "owner tag {owner_tag:?} is not a valid MAAS tag name (letters, digits, - and _)"
            )));
        }
        let mut endpoint = opts.endpoint.clone();
        endpoint.ca_pem = target.tls.ca_pem.clone();
        endpoint.insecure = target.tls.insecure;
        // Every provider of this MAAS in the process shares its request limit.
        endpoint.limit_key = Some(format!("maas {}", target.url));
        let client = Client::new(&target.url, target.api_key.expose(), endpoint)?;
        Ok(MaasProvider {
            dc: dc.to_string(),
            owner_tag: owner_tag.to_string(),
            url: target.url.clone(),
            client,
            opts,
            secrets,
            expected: RwLock::new(None),
            known_tags: Mutex::new(HashSet::new()),
            known_zones: Mutex::new(HashSet::new()),
            pending_dhcp: Mutex::new(HashSet::new()),
        })
    }

    /// Tell the provider which machines the desired state wants in its DC, so that
    /// `observe` can also match untagged machines by boot MAC (not only by serial) and
    /// list every other untagged machine as unowned. Without it, every untagged
    /// machine with a known serial is offered as adoptable (the plan adopts only those
    /// it wants).
    pub fn expect_machines(&self, desired: &ResourceSet) {
        let mut e = Expectations::default();
        for r in desired
            .iter()
            .filter(|r| r.id.dc == self.dc && r.id.kind == Kind::Machine)
        {
            e.serials.insert(r.id.name.clone());
            // A malformed spec is refused when the machine's step runs; here it only
            // means the machine cannot be matched by MAC.
            if let Some(mac) = r
                .spec_as::<MachineSpec>()
                .ok()
                .and_then(|s| s.pxe_mac)
                .as_deref()
                .and_then(wire::normalize_mac)
            {
                e.by_mac.insert(mac, r.id.name.clone());
            }
        }
        for r in desired.iter().filter(|r| r.id.dc == self.dc) {
            match r.id.kind {
                Kind::Vlan => {
                    if let (Ok(f), Ok(spec)) = (
                        r.fields_as::<strata_plan::VlanFields>(),
                        r.spec_as::<strata_plan::VlanSpec>(),
                    ) {
                        e.vlans.push((r.id.name.clone(), f.vid, spec));
                    }
                }
                Kind::MaasSubnet => e.subnets.push(r.id.name.clone()),
                Kind::DnsDomain => e.domains.push(r.id.name.clone()),
                Kind::DnsRecord => e.records.push(r.id.name.clone()),
                _ => {}
            }
        }
        *self.expected.write() = Some(e);
    }

    fn check_scope(&self, step: &Step, ctx: &ActContext<'_>) -> Result<(), ProviderError> {
        if step.id.dc != self.dc || step.id.platform() != Platform::Maas {
            return Err(ProviderError::Refused(format!(
                "{} is not a MAAS resource of {}",
                step.id, self.dc
            )));
        }
        if ctx.owner_tag != self.owner_tag {
            return Err(ProviderError::Refused(format!(
                "owner tag {} of this apply differs from the provider's {}",
                ctx.owner_tag, self.owner_tag
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for MaasProvider {
    fn platform(&self) -> Platform {
        Platform::Maas
    }

    fn expect(&self, desired: &ResourceSet) {
        self.expect_machines(desired);
    }

    fn dc(&self) -> &str {
        &self.dc
    }

    async fn observe(&self) -> Result<Observed, ProviderError> {
        observe::observe(self).await
    }

    async fn act(&self, step: &Step, ctx: &ActContext<'_>) -> Result<Outcome, ProviderError> {
        self.check_scope(step, ctx)?;
        match step.id.kind {
            Kind::Fabric => network::fabric(self, step).await,
            Kind::Vlan => network::vlan(self, step).await,
            Kind::MaasSubnet => network::subnet(self, step).await,
            Kind::DnsDomain => dns::domain(self, step).await,
            Kind::DnsRecord => dns::record(self, step).await,
            Kind::MaasTag => tags::act(self, step).await,
            Kind::Machine => machine::act(self, step, ctx).await,
            other => Err(ProviderError::Refused(format!(
                "the MAAS provider does not handle {other} resources"
            ))),
        }
    }

    fn secrets_needed(&self, step: &Step) -> Vec<crate::secrets::SecretNeed> {
        match step.id.kind {
            Kind::Machine => machine::secrets_needed(step),
            _ => Vec::new(),
        }
    }

    fn calls(&self) -> u64 {
        self.client.calls()
    }
}

/// The desired resource of a step, its fields read as kind `F`.
fn desired_fields<F: KindFields>(step: &Step) -> Result<F, ProviderError> {
    let d = step
        .desired
        .as_ref()
        .ok_or_else(|| ProviderError::Refused(format!("{}: no desired state", step.id)))?;
    Ok(d.fields_as()?)
}

/// The observed resource of a step, its fields read as kind `F` (`None` without one).
fn observed_fields<F: KindFields>(step: &Step) -> Result<Option<F>, ProviderError> {
    match &step.observed {
        Some(o) => Ok(Some(o.fields_as()?)),
        None => Ok(None),
    }
}
