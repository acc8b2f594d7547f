//! The MAAS side of a decommission: find a machine by hostname, release it with a
//! disk erase and wait until MAAS has it Ready, then mark it retired (tag
//! `strata-retired`) or for RMA (tag `strata-rma`, allocated to strata and marked
//! broken with the reason — MAAS marks broken only what the caller owns — so nothing
//! else allocates it). Both tags make strata refuse to commission or deploy the
//! machine again ([`RETIRED_TAGS`]).

use std::time::Duration;

use serde_json::Value;

use super::client::form;
use super::wire::{Machine, status as S};
use super::{MaasProvider, machine};
use crate::ProviderError;

/// A machine retired for good.
pub const RETIRED_TAG: &str = "strata-retired";
/// A machine sent back to the vendor.
pub const RMA_TAG: &str = "strata-rma";
/// Tags that keep strata from ever deploying a machine again.
pub const RETIRED_TAGS: [&str; 2] = [RETIRED_TAG, RMA_TAG];

/// A machine as a decommission sees it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MachineState {
    pub system_id: String,
    pub hostname: String,
    pub status: String,
    pub tags: Vec<String>,
}

impl From<&Machine> for MachineState {
    fn from(m: &Machine) -> Self {
        MachineState {
            system_id: m.system_id.clone(),
            hostname: m.hostname.clone(),
            status: m.status_name(),
            tags: m.tag_names.clone(),
        }
    }
}

impl MaasProvider {
    /// The machine MAAS knows as `hostname`.
    pub async fn machine_named(
        &self,
        hostname: &str,
    ) -> Result<Option<MachineState>, ProviderError> {
        let list: Vec<Machine> = self
            .client
            .get("machines/", &[("hostname", hostname)])
            .await?;
        Ok(list
            .iter()
            .find(|m| m.hostname == hostname)
            .map(MachineState::from))
    }

    /// Release machine `sid` with a disk erase (quick unless `secure`) and wait until
    /// MAAS has it Ready. Idempotent: a Ready machine is left alone; one releasing or
    /// erasing is waited for.
    pub async fn release_erased(
        &self,
        sid: &str,
        secure: bool,
        within: Duration,
    ) -> Result<MachineState, ProviderError> {
        let m: Machine = self.client.get(&format!("machines/{sid}/"), &[]).await?;
        let code = m.code().unwrap_or(-1);
        if S::RELEASABLE.contains(&code) {
            let how = if secure {
                "secure_erase"
            } else {
                "quick_erase"
            };
            self.client
                .post::<Value>(
                    &format!("machines/{sid}/"),
                    Some("release"),
                    &form([
                        ("erase", "true".to_string()),
                        (how, "true".to_string()),
                        ("comment", "decommissioned by strata".to_string()),
                    ]),
                    true,
                )
                .await?;
        }
        let m = machine::wait_until(
            self,
            sid,
            &[S::RELEASING, S::DISK_ERASING],
            within,
            &format!("release of {sid}"),
        )
        .await?;
        match m.code() {
            Some(S::READY | S::BROKEN) => Ok(MachineState::from(&m)),
            _ => Err(ProviderError::Api(format!(
                "release with disk erase of {} ({sid}) ended {}: {}",
                m.hostname,
                m.status_name(),
                m.failure()
            ))),
        }
    }

    /// Tag machine `sid` retired or for RMA with `why` in its description; an RMA
    /// machine is also marked broken (MAAS allocates nothing broken). Idempotent.
    pub async fn mark_retired(
        &self,
        sid: &str,
        rma: bool,
        why: &str,
    ) -> Result<MachineState, ProviderError> {
        let tag = if rma { RMA_TAG } else { RETIRED_TAG };
        self.ensure_tag(tag).await?;
        self.tag_nodes(tag, "add", sid).await?;
        let note = format!(
            "{} by strata: {why}",
            if rma { "sent for RMA" } else { "retired" }
        );
        self.client
            .put::<Value>(
                &format!("machines/{sid}/"),
                &form([("description", note.clone())]),
            )
            .await?;
        let m: Machine = self.client.get(&format!("machines/{sid}/"), &[]).await?;
        if rma && m.code() != Some(S::BROKEN) {
            // MAAS marks broken only a machine the caller owns (machines.py
            // `mark_broken`): a released one is allocated to strata first.
            if m.code() == Some(S::READY) {
                self.client
                    .post::<Value>(
                        "machines/",
                        Some("allocate"),
                        &form([("system_id", sid.to_string())]),
                        false,
                    )
                    .await?;
            }
            self.client
                .post::<Value>(
                    &format!("machines/{sid}/"),
                    Some("mark_broken"),
                    &form([("comment", note)]),
                    true,
                )
                .await?;
        }
        let m: Machine = self.client.get(&format!("machines/{sid}/"), &[]).await?;
        Ok(MachineState::from(&m))
    }
}
