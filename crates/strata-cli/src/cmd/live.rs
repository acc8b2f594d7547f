//! What plan, apply and drift share: the fleet, the targets, the providers and a
//! concurrent observation of every platform.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Result, anyhow, bail};
use futures::future::join_all;
use strata_fleet::Fleet;
use strata_plan::{Kind, Observed, Plan, Platform, ResourceId, owner_tag};
use strata_providers::Provider;
use strata_providers::targets::Targets;

use crate::Global;
use crate::output::print_diagnostics;
use crate::pipeline::analyze;

/// Compile the spec; spec errors are printed and become an error.
pub fn fleet_of(dir: &Path, g: &Global) -> Result<Fleet> {
    let an = analyze(dir, false)?;
    if an.has_errors() {
        print_diagnostics(g, &an.diagnostics, an.sources());
        bail!(
            "{} has errors; fix them first (`strata validate {}`)",
            dir.display(),
            dir.display()
        );
    }
    an.fleet
        .ok_or_else(|| anyhow!("{} did not compile", dir.display()))
}

/// Providers for every endpoint in the targets file.
pub fn providers_for(targets: &Path, fleet: &Fleet) -> Result<Vec<Arc<dyn Provider>>> {
    let t = Targets::load(targets).map_err(|e| anyhow!("{e}"))?;
    let known: Vec<&str> = fleet.dcs.iter().map(|d| d.name.as_str()).collect();
    for d in &t.dcs {
        if !known.contains(&d.name.as_str()) {
            bail!(
                "the targets file names DC `{}`, which the fleet does not have (fleet DCs: {})",
                d.name,
                known.join(", ")
            );
        }
    }
    strata_providers::providers(&t, &owner_tag(&fleet.organisation.fleet_id))
        .map_err(|e| anyhow!("{e}"))
}

/// Observe every provider concurrently.
pub async fn observe_all(
    providers: &[Arc<dyn Provider>],
) -> Result<(Observed, Vec<(String, Platform)>)> {
    let results = join_all(
        providers
            .iter()
            .map(|p| async move { (p.dc().to_string(), p.platform(), p.observe().await) }),
    )
    .await;
    let mut observed = Observed::default();
    let mut scopes = Vec::new();
    let mut errors = Vec::new();
    for (dc, platform, r) in results {
        match r {
            Ok(o) => {
                observed.extend(o);
                scopes.push((dc, platform));
            }
            Err(e) => errors.push(format!("{dc} {platform}: {e}")),
        }
    }
    if !errors.is_empty() {
        bail!("could not observe:\n  {}", errors.join("\n  "));
    }
    Ok((observed, scopes))
}

/// Resources an interrupted apply was creating, from the journal (if there is one).
pub async fn resuming(journal: &Path) -> Result<BTreeSet<ResourceId>> {
    if !journal.exists() {
        return Ok(BTreeSet::new());
    }
    let j = strata_apply::Journal::inspect(journal).await?;
    let keys = j.resuming().await?;
    Ok(keys
        .iter()
        .filter_map(|k| {
            let mut it = k.splitn(3, '/');
            let (dc, kind, name) = (it.next()?, it.next()?, it.next()?);
            let kind = Kind::ALL.iter().find(|x| x.as_str() == kind)?;
            Some(ResourceId::new(dc, *kind, name))
        })
        .collect())
}

/// Plan `fleet` against the live endpoints.
pub async fn plan(fleet: &Fleet, providers: &[Arc<dyn Provider>], journal: &Path) -> Result<Plan> {
    let desired = strata_plan::desired(fleet);
    for p in providers {
        p.expect(&desired);
    }
    let resuming = resuming(journal).await?;
    let (observed, scopes) = observe_all(providers).await?;
    Ok(strata_plan::diff_resuming(
        &desired, &observed, &scopes, &resuming,
    ))
}

/// The plan as JSON for `-o json`.
pub fn plan_json(plan: &Plan) -> serde_json::Value {
    serde_json::json!({
        "changes": !plan.is_empty(),
        "counts": plan.counts(),
        "conflicts": plan.conflicts,
        "steps": plan.steps,
        "unowned": plan.unowned,
    })
}
