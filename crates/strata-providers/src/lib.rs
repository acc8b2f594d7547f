//! Providers: strata's own clients for MAAS, Proxmox VE and OpenStack.
//!
//! Each provider observes one platform of one DC in pages (list calls, never one call
//! per object when a list exists) and acts on one plan step at a time, idempotently.
//! Shared plumbing: [`http`] (TLS, retries with backoff and jitter honouring
//! `Retry-After`, per-endpoint concurrency limits, call counters) and [`targets`] (the
//! targets file: where the endpoints are and how to authenticate).
//!
//! Architecture invariants:
//! - everything strata creates carries the fleet's ownership tag
//!   ([`strata_plan::owner_tag`]); objects without it are never modified or deleted;
//! - secrets come from references (environment variables, files) through a
//!   [`secrets::SecretResolver`], never from the environment directly; they are
//!   never logged, returned in errors or written to the journal, and
//!   [`Provider::secrets_needed`] lets `plan` resolve every one `apply` will need;
//! - the providers share no request/response types with the twin (`strata-twin`).

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use strata_plan::{Observed, Platform, ResourceSet, Step};

mod create_once;
pub mod http;
pub mod maas;
pub mod openstack;
pub mod proxmox;
pub mod secrets;
pub mod targets;

/// How a step's progress is remembered across crashes (implemented by the apply
/// journal). A provider records its intent (e.g. the vmid it is about to create)
/// durably *before* the call that creates something, so a run killed right after
/// that call finds the object instead of creating a second one.
#[async_trait]
pub trait IntentLog: Send + Sync {
    /// Record (replace) the intent for `key`; returns once it is durable.
    async fn record(&self, key: &str, intent: &Value);
    /// The intent an earlier, unfinished attempt recorded for `key`.
    async fn previous(&self, key: &str) -> Option<Value>;
}

/// An intent log that remembers nothing (for plan-only runs and tests).
pub struct NoIntentLog;

#[async_trait]
impl IntentLog for NoIntentLog {
    async fn record(&self, _key: &str, _intent: &Value) {}
    async fn previous(&self, _key: &str) -> Option<Value> {
        None
    }
}

/// What a provider needs to act on a step.
pub struct ActContext<'a> {
    /// The key intents are recorded under: the resource and the action
    /// (`fra1/vm/fra1-ci-runner1#create`), stable across plans.
    pub key: &'a str,
    pub intents: &'a dyn IntentLog,
    /// The fleet's ownership tag.
    pub owner_tag: &'a str,
}

/// What came of a step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// The platform id of the object created or changed.
    pub external_id: Option<String>,
    /// A short human note ("cloned from 9000 on pve2", "adopted existing").
    pub note: String,
}

/// A provider failure. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error(transparent)]
    Http(#[from] http::HttpError),
    #[error("{0}")]
    Api(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("secret: {0}")]
    Secret(String),
}

/// How a failed call failed, the same way for every provider.
impl ProviderError {
    /// The HTTP status of a refused request.
    pub fn status(&self) -> Option<u16> {
        match self {
            ProviderError::Http(h) => h.status().map(|s| s.as_u16()),
            _ => None,
        }
    }

    /// The request may have reached the service (a dropped connection, a timeout, a
    /// 502/504): whether it took effect is unknown, so a create must look before
    /// trying again.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, ProviderError::Http(h) if h.is_ambiguous())
    }

    /// 409: the object (or something in its way) exists.
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    /// 404: no such object (already gone, for a delete).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

/// A step whose desired or observed state does not fit its kind's vocabulary: refused
/// before anything is sent.
impl From<strata_plan::FieldsError> for ProviderError {
    fn from(e: strata_plan::FieldsError) -> Self {
        ProviderError::Refused(e.to_string())
    }
}

/// One platform of one DC.
#[async_trait]
pub trait Provider: Send + Sync {
    fn platform(&self) -> Platform;
    fn dc(&self) -> &str;
    /// Tell the provider what the fleet wants before observing, so that it can
    /// recognise objects by more than their name (MAAS matches enlisted machines by
    /// boot MAC). Default: nothing.
    fn expect(&self, _desired: &ResourceSet) {}
    /// Everything strata can identify on the platform, plus unowned objects listed.
    async fn observe(&self) -> Result<Observed, ProviderError>;
    /// Carry out one step (create, adopt, update or delete), idempotently.
    async fn act(&self, step: &Step, ctx: &ActContext<'_>) -> Result<Outcome, ProviderError>;
    /// The secret references `act` will resolve for `step` (beyond the endpoint's
    /// own credentials, which the targets file resolved already), so that `plan` can
    /// resolve them first ([`secrets::unresolved`]). Default: none.
    fn secrets_needed(&self, _step: &Step) -> Vec<secrets::SecretNeed> {
        Vec::new()
    }
    /// Requests sent so far to this provider's endpoints.
    fn calls(&self) -> u64;
}

/// Providers for the targets file at `path`, for a fleet known by its DC names, id and
/// desired state: the targets file may name only the fleet's DCs, and the DCs whose
/// desired state has registered limits take team quotas as Keystone unified limits.
/// What the CLI's plan/apply/drift and the server share.
pub fn providers_for_fleet(
    path: &std::path::Path,
    dcs: &[String],
    fleet_id: &str,
    secrets: Arc<dyn secrets::SecretResolver>,
    desired: &strata_plan::ResourceSet,
) -> Result<Vec<Arc<dyn Provider>>, ProviderError> {
    let t = targets::Targets::load(path, secrets.as_ref())?;
    if let Some(d) = t.dcs.iter().find(|d| !dcs.contains(&d.name)) {
        return Err(ProviderError::Refused(format!(
            "the targets file names DC `{}`, which the fleet does not have (fleet DCs: {})",
            d.name,
            dcs.join(", ")
        )));
    }
    let mut unified: Vec<String> = desired
        .iter()
        .filter(|r| r.id.kind == strata_plan::Kind::RegisteredLimit)
        .map(|r| r.id.dc.clone())
        .collect();
    unified.sort();
    unified.dedup();
    providers(&t, &strata_plan::owner_tag(fleet_id), secrets, &unified)
}

/// Build every provider a targets file describes; `secrets` resolves the references
/// desired state carries (BMC passwords, relative to the spec directory);
/// `unified_limits` names the DCs whose Nova takes team quotas as Keystone unified
/// limits ([`openstack::QuotaModel`]).
pub fn providers(
    targets: &targets::Targets,
    owner_tag: &str,
    secrets: Arc<dyn secrets::SecretResolver>,
    unified_limits: &[String],
) -> Result<Vec<Arc<dyn Provider>>, ProviderError> {
    let mut out: Vec<Arc<dyn Provider>> = Vec::new();
    for dc in &targets.dcs {
        if let Some(m) = &dc.maas {
            out.push(Arc::new(maas::MaasProvider::new(
                &dc.name,
                m,
                owner_tag,
                secrets.clone(),
            )?));
        }
        if let Some(p) = &dc.proxmox {
            out.push(Arc::new(proxmox::ProxmoxProvider::new(
                &dc.name, p, owner_tag,
            )?));
        }
        if let Some(o) = &dc.openstack {
            let model = if unified_limits.contains(&dc.name) {
                openstack::QuotaModel::UnifiedLimits
            } else {
                openstack::QuotaModel::QuotaSets
            };
            out.push(Arc::new(
                openstack::OpenstackProvider::new(&dc.name, o, owner_tag)?.with_quota_model(model),
            ));
        }
    }
    Ok(out)
}
