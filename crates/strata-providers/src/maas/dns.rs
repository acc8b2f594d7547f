//! MAAS DNS: the DC's domain (`/domains/`) and the names Kolla's endpoints use
//! (`/dnsresources/`). Neither carries an owner mark in MAAS, so strata manages
//! exactly the names its desired state lists (observed as adopted) and never deletes
//! one: a domain or record it no longer wants is left to the operator.

use serde::Deserialize;
use serde_json::Value;
use strata_plan::{
    Action, DnsDomainFields, DnsRecordFields, Kind, Observed, Resource, ResourceId, Step,
};

use super::client::{CallError, Client, form};
use super::{MaasProvider, desired_fields};
use crate::{Outcome, ProviderError};

#[derive(Clone, Debug, Deserialize)]
pub(super) struct Domain {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub authoritative: bool,
}

#[derive(Clone, Debug, Deserialize)]
pub(super) struct Address {
    #[serde(default)]
    pub ip: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub(super) struct DnsResource {
    pub id: i64,
    pub fqdn: String,
    #[serde(default)]
    pub ip_addresses: Option<Vec<Address>>,
}

impl DnsResource {
    fn addresses(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .ip_addresses
            .iter()
            .flatten()
            .filter_map(|a| a.ip.clone())
            .collect();
        v.sort();
        v
    }
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// The two list calls.
pub(super) async fn lists(c: &Client) -> Result<(Vec<Domain>, Vec<DnsResource>), CallError> {
    futures::try_join!(
        c.get::<Vec<Domain>>("domains/", &[]),
        c.get::<Vec<DnsResource>>("dnsresources/", &[]),
    )
}

/// The domains and records the desired state names, as adopted resources.
pub(super) fn observe(
    dc: &str,
    domains: &[Domain],
    records: &[DnsResource],
    want_domains: &[String],
    want_records: &[String],
    out: &mut Observed,
) {
    for d in domains {
        let Some(name) = want_domains.iter().find(|w| same_name(w, &d.name)) else {
            continue;
        };
        let mut r = Resource::with_fields(
            ResourceId::new(dc, Kind::DnsDomain, name.clone()),
            &DnsDomainFields {
                authoritative: d.authoritative,
            },
        );
        r.adopted = true;
        r.external_id = Some(d.id.to_string());
        out.resources.insert(r);
    }
    for x in records.iter().filter(|x| x.id >= 0) {
        let Some(name) = want_records.iter().find(|w| same_name(w, &x.fqdn)) else {
            continue;
        };
        let mut r = Resource::with_fields(
            ResourceId::new(dc, Kind::DnsRecord, name.clone()),
            &DnsRecordFields {
                fqdn: name.clone(),
                ip_addresses: x.addresses(),
            },
        );
        r.adopted = true;
        r.external_id = Some(x.id.to_string());
        out.resources.insert(r);
    }
}

fn outcome(id: impl ToString, note: &str) -> Outcome {
    Outcome {
        external_id: Some(id.to_string()),
        note: note.to_string(),
    }
}

fn never_deleted(step: &Step) -> ProviderError {
    ProviderError::Refused(format!(
        "{}: strata does not delete MAAS DNS names (they carry no owner mark)",
        step.id
    ))
}

pub(super) async fn domain(p: &MaasProvider, step: &Step) -> Result<Outcome, ProviderError> {
    if step.action == Action::Delete {
        return Err(never_deleted(step));
    }
    let c = &p.client;
    let want: DnsDomainFields = desired_fields(step)?;
    let authoritative = want.authoritative.to_string();
    for attempt in 1..=2 {
        let domains: Vec<Domain> = c.get("domains/", &[]).await?;
        if let Some(d) = domains.iter().find(|d| same_name(&d.name, &step.id.name)) {
            if d.authoritative == want.authoritative {
                return Ok(outcome(d.id, "already as desired"));
            }
            let _: Value = c
                .put(
                    &format!("domains/{}/", d.id),
                    &form([("authoritative", authoritative.as_str())]),
                )
                .await?;
            return Ok(outcome(d.id, "updated"));
        }
        let body = form([
            ("name", step.id.name.as_str()),
            ("authoritative", authoritative.as_str()),
        ]);
        match c.post::<Domain>("domains/", None, &body, false).await {
            Ok(d) => return Ok(outcome(d.id, "created")),
            // Made meanwhile (or by an interrupted attempt): look again once.
            Err(e)
                if attempt == 1
                    && (e.ambiguous() || e.is_status(reqwest::StatusCode::BAD_REQUEST)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(ProviderError::Api(format!(
        "domain {} could neither be found nor created",
        step.id.name
    )))
}

pub(super) async fn record(p: &MaasProvider, step: &Step) -> Result<Outcome, ProviderError> {
    if step.action == Action::Delete {
        return Err(never_deleted(step));
    }
    let c = &p.client;
    let want: DnsRecordFields = desired_fields(step)?;
    let mut ips = want.ip_addresses.clone();
    ips.sort();
    let ips_text = ips.join(" ");
    for attempt in 1..=2 {
        let records: Vec<DnsResource> = c.get("dnsresources/", &[]).await?;
        if let Some(x) = records
            .iter()
            .find(|x| x.id >= 0 && same_name(&x.fqdn, &want.fqdn))
        {
            if x.addresses() == ips {
                return Ok(outcome(x.id, "already as desired"));
            }
            let _: Value = c
                .put(
                    &format!("dnsresources/{}/", x.id),
                    &form([("ip_addresses", ips_text.as_str())]),
                )
                .await?;
            return Ok(outcome(x.id, "updated"));
        }
        let body = form([
            ("fqdn", want.fqdn.as_str()),
            ("ip_addresses", ips_text.as_str()),
        ]);
        match c
            .post::<DnsResource>("dnsresources/", None, &body, false)
            .await
        {
            Ok(x) => return Ok(outcome(x.id, "created")),
            Err(e)
                if attempt == 1
                    && (e.ambiguous() || e.is_status(reqwest::StatusCode::BAD_REQUEST)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(ProviderError::Api(format!(
        "DNS record {} could neither be found nor created",
        want.fqdn
    )))
}
