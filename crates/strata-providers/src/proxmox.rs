//! Placeholder: the proxmox provider is being written.

use async_trait::async_trait;
use strata_plan::{Observed, Platform, Step};

use crate::targets::ProxmoxTarget;
use crate::{ActContext, Outcome, Provider, ProviderError};

pub struct ProxmoxProvider {
    dc: String,
}

impl ProxmoxProvider {
    pub fn new(dc: &str, _target: &ProxmoxTarget, _owner_tag: &str) -> Result<Self, ProviderError> {
        Ok(ProxmoxProvider { dc: dc.to_string() })
    }
}

#[async_trait]
impl Provider for ProxmoxProvider {
    fn platform(&self) -> Platform {
        Platform::Proxmox
    }
    fn dc(&self) -> &str {
        &self.dc
    }
    async fn observe(&self) -> Result<Observed, ProviderError> {
        Err(ProviderError::Refused(
            "the proxmox provider is not written yet".into(),
        ))
    }
    async fn act(&self, _step: &Step, _ctx: &ActContext<'_>) -> Result<Outcome, ProviderError> {
        Err(ProviderError::Refused(
            "the proxmox provider is not written yet".into(),
        ))
    }
    fn calls(&self) -> u64 {
        0
    }
}
