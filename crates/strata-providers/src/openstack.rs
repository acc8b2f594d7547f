//! Placeholder: the openstack provider is being written.

use async_trait::async_trait;
use strata_plan::{Observed, Platform, Step};

use crate::targets::OpenstackTarget;
use crate::{ActContext, Outcome, Provider, ProviderError};

pub struct OpenstackProvider {
    dc: String,
}

impl OpenstackProvider {
    pub fn new(
        dc: &str,
        _target: &OpenstackTarget,
        _owner_tag: &str,
    ) -> Result<Self, ProviderError> {
        Ok(OpenstackProvider { dc: dc.to_string() })
    }
}

#[async_trait]
impl Provider for OpenstackProvider {
    fn platform(&self) -> Platform {
        Platform::Openstack
    }
    fn dc(&self) -> &str {
        &self.dc
    }
    async fn observe(&self) -> Result<Observed, ProviderError> {
        Err(ProviderError::Refused(
            "the openstack provider is not written yet".into(),
        ))
    }
    async fn act(&self, _step: &Step, _ctx: &ActContext<'_>) -> Result<Outcome, ProviderError> {
        Err(ProviderError::Refused(
            "the openstack provider is not written yet".into(),
        ))
    }
    fn calls(&self) -> u64 {
        0
    }
}
