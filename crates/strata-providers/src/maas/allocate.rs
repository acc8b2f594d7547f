//! Bare-metal machines for self-service requests: read MAAS's machines as placement
//! needs them, allocate a Ready one, mark it with the request (MAAS owner data, which
//! MAAS clears on release), deploy it, and release it again.
//!
//! Every call re-reads first and does only what is left: a machine already
//! allocated to the request (its owner data says so) is not allocated again, one
//! deploying or deployed is not deployed again, one released is not released again.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::MaasProvider;
use super::client::form;
use super::wire::status as S;
use crate::ProviderError;

/// A machine as a request sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MachineInfo {
    pub system_id: String,
    pub hostname: String,
    pub fqdn: String,
    pub status: String,
    pub status_code: i64,
    pub cpu_count: u64,
    pub memory_mib: u64,
    pub tags: Vec<String>,
    pub zone: String,
    /// The user MAAS allocated it to (`None`: free).
    pub owner: Option<String>,
    /// What the owner recorded on it (cleared by MAAS on release).
    pub owner_data: BTreeMap<String, String>,
    /// The serial its hardware reported (empty when unknown).
    pub serial: String,
    pub locked: bool,
    pub ip_addresses: Vec<String>,
    /// Why the last action failed (MAAS's `error_description`).
    pub error: String,
}

impl MachineInfo {
    pub fn is(&self, code: i64) -> bool {
        self.status_code == code
    }

    /// Ready, unowned and unlocked: what MAAS would allocate.
    pub fn allocatable(&self) -> bool {
        self.is(S::READY) && self.owner.is_none() && !self.locked
    }

    pub fn deployed(&self) -> bool {
        self.is(S::DEPLOYED)
    }

    /// A deployment that failed (MAAS will not finish it on its own).
    pub fn failed(&self) -> bool {
        matches!(
            self.status_code,
            S::FAILED_DEPLOYMENT | S::BROKEN | S::FAILED_COMMISSIONING | S::FAILED_TESTING
        )
    }
}

#[derive(Deserialize)]
struct Named {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct Hw {
    #[serde(default)]
    system_serial: Option<String>,
}

#[derive(Deserialize)]
struct Wire {
    system_id: String,
    #[serde(default)]
    hostname: String,
    #[serde(default)]
    fqdn: Option<String>,
    #[serde(default)]
    status: Option<i64>,
    #[serde(default)]
    status_name: Option<String>,
    #[serde(default)]
    cpu_count: Option<u64>,
    #[serde(default)]
    memory: Option<u64>,
    #[serde(default)]
    tag_names: Vec<String>,
    #[serde(default)]
    zone: Option<Named>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    owner_data: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    hardware_info: Option<Hw>,
    #[serde(default)]
    locked: Option<bool>,
    #[serde(default)]
    ip_addresses: Vec<String>,
    #[serde(default)]
    error_description: Option<String>,
}

impl From<Wire> for MachineInfo {
    fn from(w: Wire) -> Self {
        let code = w
            .status
            .or_else(|| w.status_name.as_deref().and_then(S::parse))
            .unwrap_or(-1);
        MachineInfo {
            status: w
                .status_name
                .clone()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| S::name(code).to_string()),
            status_code: code,
            fqdn: w.fqdn.unwrap_or_else(|| w.hostname.clone()),
            system_id: w.system_id,
            hostname: w.hostname,
            cpu_count: w.cpu_count.unwrap_or(0),
            memory_mib: w.memory.unwrap_or(0),
            tags: w.tag_names,
            zone: w.zone.map(|z| z.name).unwrap_or_default(),
            owner: w.owner.filter(|o| !o.is_empty()),
            owner_data: w
                .owner_data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (k, v)
                })
                .collect(),
            serial: w
                .hardware_info
                .and_then(|h| h.system_serial)
                .and_then(|s| super::wire::known_serial(&s))
                .unwrap_or_default(),
            locked: w.locked.unwrap_or(false),
            ip_addresses: w.ip_addresses,
            error: w.error_description.unwrap_or_default(),
        }
    }
}

impl MaasProvider {
    /// Every machine MAAS knows (one list call).
    pub async fn machine_list(&self) -> Result<Vec<MachineInfo>, ProviderError> {
        let list: Vec<Wire> = self.client.get("machines/", &[]).await?;
        Ok(list.into_iter().map(MachineInfo::from).collect())
    }

    /// Machine `sid` now.
    pub async fn machine_info(&self, sid: &str) -> Result<MachineInfo, ProviderError> {
        let w: Wire = self.client.get(&format!("machines/{sid}/"), &[]).await?;
        Ok(w.into())
    }

    /// The machines whose owner data has `key` = `value` (a request's).
    pub async fn machines_marked(
        &self,
        key: &str,
        value: &str,
    ) -> Result<Vec<MachineInfo>, ProviderError> {
        Ok(self
            .machine_list()
            .await?
            .into_iter()
            .filter(|m| m.owner_data.get(key).map(String::as_str) == Some(value))
            .collect())
    }

    /// Allocate Ready machine `sid` and record `marks` in its owner data. A machine
    /// already carrying the marks is left as it is; an allocation whose answer was
    /// lost is recognised (allocated, with no other owner data) and marked.
    pub async fn allocate_marked(
        &self,
        sid: &str,
        marks: &[(&str, &str)],
        comment: &str,
    ) -> Result<MachineInfo, ProviderError> {
        let has_marks = |m: &MachineInfo| {
            marks
                .iter()
                .all(|(k, v)| m.owner_data.get(*k).map(String::as_str) == Some(*v))
        };
        let m = self.machine_info(sid).await?;
        if has_marks(&m) && m.owner.is_some() {
            return Ok(m);
        }
        if m.allocatable() {
            let r = self
                .client
                .post::<Value>(
                    "machines/",
                    Some("allocate"),
                    &form([
                        ("system_id", sid.to_string()),
                        ("comment", comment.to_string()),
                    ]),
                    false,
                )
                .await;
            if let Err(e) = r {
                let again = self.machine_info(sid).await?;
                if !(again.is(S::ALLOCATED) && again.owner_data.is_empty()) {
                    return Err(ProviderError::Api(format!(
                        "{}: allocating {} ({sid}) failed: {e}",
                        self.dc, m.hostname
                    )));
                }
            }
        } else if !(m.is(S::ALLOCATED) && m.owner_data.is_empty()) {
            return Err(ProviderError::Refused(format!(
                "{}: machine {} ({sid}) is {} and cannot be allocated",
                self.dc, m.hostname, m.status
            )));
        }
        let data = form(marks.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self.client
            .post::<Value>(
                &format!("machines/{sid}/"),
                Some("set_owner_data"),
                &data,
                true,
            )
            .await?;
        self.machine_info(sid).await
    }

    /// Deploy allocated machine `sid` (`distro_series` or MAAS's default; optional
    /// cloud-init user data). A machine deploying or deployed is left alone.
    pub async fn deploy_allocated(
        &self,
        sid: &str,
        distro_series: Option<&str>,
        user_data: Option<&str>,
    ) -> Result<MachineInfo, ProviderError> {
        let m = self.machine_info(sid).await?;
        if m.is(S::DEPLOYING) || m.is(S::DEPLOYED) {
            return Ok(m);
        }
        if !m.is(S::ALLOCATED) {
            return Err(ProviderError::Refused(format!(
                "{}: machine {} ({sid}) is {}, not Allocated: it cannot be deployed",
                self.dc, m.hostname, m.status
            )));
        }
        let mut f = Vec::new();
        if let Some(d) = distro_series {
            f.push(("distro_series".to_string(), d.to_string()));
        }
        if let Some(u) = user_data {
            use base64::Engine;
            f.push((
                "user_data".to_string(),
                base64::engine::general_purpose::STANDARD.encode(u),
            ));
        }
        if let Err(e) = self
            .client
            .post::<Value>(&format!("machines/{sid}/"), Some("deploy"), &f, false)
            .await
        {
            let again = self.machine_info(sid).await?;
            if !(again.is(S::DEPLOYING) || again.is(S::DEPLOYED)) {
                return Err(ProviderError::Api(format!(
                    "{}: deploying {} ({sid}) failed: {e}",
                    self.dc, m.hostname
                )));
            }
        }
        self.machine_info(sid).await
    }

    /// Release machine `sid` back to the pool (with a quick disk erase when `erase`),
    /// if it is still `marks`'s: a machine released already, or allocated to something
    /// else since, is left alone (`false`).
    pub async fn release_marked(
        &self,
        sid: &str,
        marks: &[(&str, &str)],
        erase: bool,
        comment: &str,
    ) -> Result<bool, ProviderError> {
        let m = self.machine_info(sid).await?;
        let ours = marks
            .iter()
            .all(|(k, v)| m.owner_data.get(*k).map(String::as_str) == Some(*v));
        if !ours {
            return Ok(false);
        }
        if !S::RELEASABLE.contains(&m.status_code) {
            return Err(ProviderError::Api(format!(
                "{}: machine {} ({sid}) is {}; it cannot be released now",
                self.dc, m.hostname, m.status
            )));
        }
        let mut f = vec![("comment".to_string(), comment.to_string())];
        if erase {
            f.push(("erase".into(), "true".into()));
            f.push(("quick_erase".into(), "true".into()));
        }
        self.client
            .post::<Value>(&format!("machines/{sid}/"), Some("release"), &f, true)
            .await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn machines_read_leniently() {
        let w: Wire = serde_json::from_value(json!({
            "system_id": "abc123", "hostname": "spare1", "status": 4, "status_name": "Ready",
            "cpu_count": 128, "memory": 786432, "tag_names": ["hv-std"],
            "zone": {"name": "az1"}, "owner": null, "owner_data": {"strata-request": "req-1"},
            "hardware_info": {"system_serial": "SN1"}, "locked": false,
        }))
        .expect("wire");
        let m = MachineInfo::from(w);
        assert!(m.allocatable());
        assert_eq!(
            (m.cpu_count, m.memory_mib, m.zone.as_str()),
            (128, 786432, "az1")
        );
        assert_eq!(m.owner_data["strata-request"], "req-1");
        assert_eq!(m.serial, "SN1");
        let bare: Wire =
            serde_json::from_value(json!({"system_id": "x", "status_name": "Deployed"}))
                .expect("wire");
        let m = MachineInfo::from(bare);
        assert!(m.deployed() && !m.allocatable());
    }
}
