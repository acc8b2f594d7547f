//! Conformance ("zero snowflakes"): every way a DC differs from the blueprint.
//!
//! Two sources of difference: site overrides (declared when they carry a reason)
//! and reality that disagrees with the DC's effective blueprint (more Proxmox nodes
//! or OpenStack control nodes than the blueprint says), which is never declared.

use serde::Serialize;
use strata_diagnostics::{Diagnostic, Span, codes};
use strata_fleet::Fleet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DifferenceSource {
    /// A site override in the spec.
    Override,
    /// The DC's inventory disagrees with its blueprint.
    Inventory,
}

#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    pub path: String,
    pub blueprint: serde_json::Value,
    pub dc: serde_json::Value,
    pub declared: bool,
    pub reason: Option<String>,
    pub source: DifferenceSource,
    #[serde(skip)]
    pub span: Option<Span>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DcConformance {
    pub dc: String,
    pub conformant: bool,
    pub differences: Vec<Difference>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConformanceReport {
    pub conformant: bool,
    pub dcs: Vec<DcConformance>,
    /// Overrides that change nothing (stale), as warnings, and undeclared
    /// differences, as errors.
    #[serde(skip)]
    pub diagnostics: Vec<Diagnostic>,
}

/// Compare every DC with the blueprint.
pub fn conform(fleet: &Fleet) -> ConformanceReport {
    let mut dcs = Vec::new();
    let mut diagnostics = Vec::new();
    for dc in &fleet.dcs {
        let mut diffs = Vec::new();
        for o in &dc.overrides {
            if o.blueprint == o.value {
                diagnostics.push(
                    Diagnostic::new(
                        codes::S0502,
                        format!("override of `{}` in `{}` changes nothing: the blueprint already has {}", o.path, dc.name, o.value),
                    )
                    .at_opt(o.span)
                    .expected("an override that differs from the blueprint")
                    .help("delete the override"),
                );
                continue;
            }
            let declared = o.reason.as_deref().is_some_and(|r| !r.trim().is_empty());
            if !declared {
                diagnostics.push(
                    Diagnostic::new(
                        codes::S0501,
                        format!(
                            "`{}` differs from the blueprint at `{}` ({} instead of {}) without a declared reason",
                            dc.name, o.path, o.value, o.blueprint
                        ),
                    )
                    .at_opt(o.span)
                    .expected("a `reason:` explaining why this DC differs")
                    .help("add `reason: ...` (with a change or ticket reference), or remove the override so the DC matches the blueprint"),
                );
            }
            diffs.push(Difference {
                path: o.path.clone(),
                blueprint: o.blueprint.clone(),
                dc: o.value.clone(),
                declared,
                reason: o.reason.clone(),
                source: DifferenceSource::Override,
                span: o.span,
            });
        }
        // Reality against the effective blueprint.
        let mut inventory = Vec::new();
        for c in &dc.proxmox {
            let actual = c.nodes.len() as u32;
            if actual != c.expected_nodes {
                inventory.push((
                    format!("proxmox.clusters[{}].nodes", c.name),
                    c.expected_nodes,
                    actual,
                    "Proxmox nodes in the inventory",
                ));
            }
        }
        let os = &dc.openstack;
        let actual = os.control.len() as u32;
        if actual != os.expected_control {
            inventory.push((
                "openstack.control_nodes".to_string(),
                os.expected_control,
                actual,
                "OpenStack control nodes (VMs and machines)",
            ));
        }
        for (path, expected, actual, what) in inventory {
            diagnostics.push(
                Diagnostic::new(
                    codes::S0501,
                    format!("`{}` has {actual} {what}, the blueprint says {expected} (`{path}`)", dc.name),
                )
                .at_opt(dc.span)
                .expected(format!("{expected}, or an override of `{path}` with a reason"))
                .help(format!(
                    "make the inventory match, or declare it: overrides: [{{path: \"{path}\", value: {actual}, reason: ...}}]"
                )),
            );
            diffs.push(Difference {
                path,
                blueprint: serde_json::json!(expected),
                dc: serde_json::json!(actual),
                declared: false,
                reason: None,
                source: DifferenceSource::Inventory,
                span: dc.span,
            });
        }
        diffs.sort_by(|a, b| a.path.cmp(&b.path));
        dcs.push(DcConformance {
            dc: dc.name.clone(),
            conformant: diffs.iter().all(|d| d.declared),
            differences: diffs,
        });
    }
    ConformanceReport {
        conformant: dcs.iter().all(|d| d.conformant),
        dcs,
        diagnostics,
    }
}
