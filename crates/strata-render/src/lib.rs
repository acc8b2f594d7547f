//! Renderers: a compiled fleet in, configuration files out.
//!
//! Architecture invariant: pure. Every renderer is a function of the compiled fleet
//! and returns [`RenderedFile`]s (a relative path, a kind and the text); writing them
//! to disk and validating them with the real tools happens at the edges
//! (`strata-cli`, `strata-verify`).

mod kind;

pub mod cloud_init;
pub mod frr;
pub mod keepalived;
pub mod kolla;
pub mod netplan;
pub mod nova_pci;
pub mod prometheus;
pub mod proxmox;
mod template;

pub use kind::FileKind;
use strata_fleet::Fleet;

/// The text of a file whose renderer hit an internal error (a template bug): one line
/// that is not a comment in any format strata renders (YAML, INI, FRR, keepalived,
/// ifupdown), so every validator rejects it and the bug cannot reach a machine.
pub fn failed_render_text(what: &str, reason: &str) -> String {
    let first = reason.lines().next().unwrap_or("");
    format!("%%% strata: {what} failed: {first}\n")
}

/// Render every file for the whole fleet, sorted by path.
pub fn render_all(fleet: &Fleet) -> Vec<RenderedFile> {
    let mut files = Vec::new();
    files.extend(frr::render(fleet));
    files.extend(netplan::render(fleet));
    files.extend(cloud_init::render(fleet));
    files.extend(proxmox::render(fleet));
    files.extend(keepalived::render(fleet));
    files.extend(kolla::render(fleet));
    files.extend(nova_pci::render(fleet));
    files.extend(prometheus::render(fleet));
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// One generated file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RenderedFile {
    /// Path relative to the output directory, with `/` separators.
    pub path: String,
    pub kind: FileKind,
    pub content: String,
}
