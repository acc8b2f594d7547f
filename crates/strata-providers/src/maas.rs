//! Placeholder: the maas provider is being written.

use async_trait::async_trait;
use strata_plan::{Observed, Platform, Step};

use crate::targets::MaasTarget;
use crate::{ActContext, Outcome, Provider, ProviderError};

pub struct MaasProvider {
    dc: String,
}

impl MaasProvider {
    pub fn new(dc: &str, _target: &MaasTarget, _owner_tag: &str) -> Result<Self, ProviderError> {
        Ok(MaasProvider { dc: dc.to_string() })
    }
}

#[async_trait]
impl Provider for MaasProvider {
    fn platform(&self) -> Platform {
        Platform::Maas
    }
    fn dc(&self) -> &str {
        &self.dc
    }
    async fn observe(&self) -> Result<Observed, ProviderError> {
        Err(ProviderError::Refused(
            "the maas provider is not written yet".into(),
        ))
    }
    async fn act(&self, _step: &Step, _ctx: &ActContext<'_>) -> Result<Outcome, ProviderError> {
        Err(ProviderError::Refused(
            "the maas provider is not written yet".into(),
        ))
    }
    fn calls(&self) -> u64 {
        0
    }
}
