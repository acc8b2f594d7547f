//! What plan, apply and drift share: the fleet, the targets, the providers and a
//! concurrent observation of every platform.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use strata_apply::Planned;
use strata_fleet::Fleet;
use strata_plan::{Observed, Plan, Platform, ResourceSet};
use strata_providers::Provider;
use strata_providers::secrets::{SecretResolver, SystemSecrets};

use crate::output::print_diagnostics;
use crate::pipeline::analyze;
use crate::{Global, StateArgs};

/// The default state directory inside the spec directory.
pub const STATE_DIR: &str = ".strata";
/// The journal's file name inside the state directory (and, before state
/// directories, inside the spec directory).
pub const JOURNAL_FILE: &str = "fleet.journal";

/// The apply journal `--state-dir`/`--journal` point at. With neither, it lives in
/// `DIR/.strata/`, unless an older `DIR/fleet.journal` exists and the new one does
/// not: that one is kept in use (with a note) so that no apply history is lost.
pub fn journal_path(spec_dir: &Path, state: &StateArgs) -> PathBuf {
    if let Some(j) = &state.journal {
        return j.clone();
    }
    let dir = state
        .state_dir
        .clone()
        .unwrap_or_else(|| spec_dir.join(STATE_DIR));
    let journal = dir.join(JOURNAL_FILE);
    let legacy = spec_dir.join(JOURNAL_FILE);
    if state.state_dir.is_none() && !journal.exists() && legacy.exists() {
        eprintln!(
            "note: using the journal at {} (strata 0.1's place); to move it into the state directory: mkdir -p {dir} && mv {legacy}* {dir}/",
            legacy.display(),
            dir = dir.display(),
            legacy = legacy.display(),
        );
        return legacy;
    }
    journal
}

/// Create the journal's directory. The default state directory (`DIR/.strata`)
/// gets a `.gitignore` of `*`, so nothing in it ever shows up in the spec's
/// repository.
pub fn prepare_state_dir(spec_dir: &Path, journal: &Path) -> Result<()> {
    let Some(dir) = journal.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if dir == spec_dir.join(STATE_DIR) {
        let ignore = dir.join(".gitignore");
        if !ignore.exists() {
            std::fs::write(
                &ignore,
                "# strata's local state (the apply journal); never committed.\n*\n",
            )
            .with_context(|| format!("writing {}", ignore.display()))?;
        }
    }
    Ok(())
}

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

/// How plan, apply and drift resolve secret references: the process environment,
/// and files relative to the spec directory (as the spec documents).
pub fn system_secrets(spec_dir: &Path) -> Arc<dyn SecretResolver> {
    Arc::new(SystemSecrets::new(spec_dir))
}

/// Providers for every endpoint in the targets file (whose own secret references
/// are resolved now, relative to the targets file).
pub fn providers_for(
    targets: &Path,
    fleet: &Fleet,
    secrets: Arc<dyn SecretResolver>,
) -> Result<Vec<Arc<dyn Provider>>> {
    let dcs: Vec<String> = fleet.dcs.iter().map(|d| d.name.clone()).collect();
    let desired = strata_plan::desired(fleet)?;
    providers_for_dcs(
        targets,
        &dcs,
        &fleet.organisation.fleet_id,
        secrets,
        &desired,
    )
}

/// [`providers_for`] a fleet known by its DC names, id and desired state (a saved
/// plan's). The desired state says which DCs take team quotas as Keystone unified
/// limits (those with registered limits).
pub fn providers_for_dcs(
    targets: &Path,
    dcs: &[String],
    fleet_id: &str,
    secrets: Arc<dyn SecretResolver>,
    desired: &ResourceSet,
) -> Result<Vec<Arc<dyn Provider>>> {
    strata_providers::providers_for_fleet(targets, dcs, fleet_id, secrets, desired)
        .map_err(|e| anyhow!("{e}"))
}

/// Observe every provider concurrently (the library's loop does the work).
pub async fn observe_all(
    providers: &[Arc<dyn Provider>],
) -> Result<(Observed, Vec<(String, Platform)>)> {
    Ok(strata_apply::observe(providers).await?)
}

/// Plan `desired` against the live endpoints (through `strata_apply::plan`). Every
/// secret the plan's steps will need is resolved (and dropped) through `secrets`: a
/// missing one is an error naming the reference and the resources that need it, never
/// a plan `apply` cannot carry out.
pub async fn plan(
    desired: &ResourceSet,
    providers: &[Arc<dyn Provider>],
    secrets: &dyn SecretResolver,
    journal: &Path,
) -> Result<Planned> {
    let planned = strata_apply::plan(desired, providers, journal).await?;
    let unresolved = strata_providers::secrets::unresolved(&planned.plan, providers, secrets);
    if !unresolved.is_empty() {
        let lines: Vec<String> = unresolved.iter().map(ToString::to_string).collect();
        bail!(
            "{} secret reference(s) the plan needs cannot be resolved, so apply could not make these changes:\n  {}\nset the variables or create the files (file: paths are relative to the spec directory), then plan again",
            unresolved.len(),
            lines.join("\n  ")
        );
    }
    Ok(planned)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn state(state_dir: Option<&Path>, journal: Option<&Path>) -> StateArgs {
        StateArgs {
            state_dir: state_dir.map(Path::to_path_buf),
            journal: journal.map(Path::to_path_buf),
        }
    }

    #[test]
    fn the_journal_lives_in_the_state_dir_and_an_old_one_is_still_found() {
        let tmp = tempfile::tempdir().expect("tmp");
        let spec = tmp.path();
        let default = spec.join(".strata/fleet.journal");
        assert_eq!(journal_path(spec, &state(None, None)), default);
        // strata 0.1 kept it beside fleet.lock: used while the new one does not exist.
        std::fs::write(spec.join("fleet.journal"), "").expect("write");
        assert_eq!(
            journal_path(spec, &state(None, None)),
            spec.join("fleet.journal")
        );
        prepare_state_dir(spec, &default).expect("prepare");
        std::fs::write(&default, "").expect("write");
        assert_eq!(journal_path(spec, &state(None, None)), default);
        // Explicit choices win.
        let elsewhere = tmp.path().join("state");
        assert_eq!(
            journal_path(spec, &state(Some(&elsewhere), None)),
            elsewhere.join("fleet.journal")
        );
        let file = tmp.path().join("j.sqlite");
        assert_eq!(
            journal_path(spec, &state(Some(&elsewhere), Some(&file))),
            file
        );
    }

    #[test]
    fn the_default_state_dir_ignores_itself() {
        let tmp = tempfile::tempdir().expect("tmp");
        let spec = tmp.path();
        prepare_state_dir(spec, &spec.join(".strata/fleet.journal")).expect("prepare");
        let ignore = std::fs::read_to_string(spec.join(".strata/.gitignore")).expect("ignore");
        assert!(ignore.lines().any(|l| l == "*"), "{ignore}");
        // Another state directory is the operator's: created, nothing written into it.
        let other = tmp.path().join("var/state");
        prepare_state_dir(spec, &other.join("fleet.journal")).expect("prepare");
        assert!(other.is_dir() && !other.join(".gitignore").exists());
    }
}
