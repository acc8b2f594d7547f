//! Renderers: a compiled fleet in, configuration files out.
//!
//! Architecture invariant: pure. Every renderer is a function of the compiled fleet
//! and returns [`RenderedFile`]s (a relative path, a kind and the text) or a
//! [`RenderError`] naming every file it could not render; a failure never becomes
//! file content. Writing files to disk and validating them with the real tools
//! happens at the edges (`strata-cli`, `strata-verify`).

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

use std::fmt;

pub use kind::FileKind;
use strata_fleet::Fleet;

/// One output's renderer.
pub type Renderer = fn(&Fleet) -> Result<Vec<RenderedFile>, RenderError>;

/// Render every file for the whole fleet, sorted by path; or every file that could not
/// be rendered, and why. There is no partial result: callers write all or nothing.
pub fn render_all(fleet: &Fleet) -> Result<Vec<RenderedFile>, RenderError> {
    let renderers: [Renderer; 8] = [
        frr::render,
        netplan::render,
        cloud_init::render,
        proxmox::render,
        keepalived::render,
        kolla::render,
        nova_pci::render,
        prometheus::render,
    ];
    let mut files = Vec::new();
    let mut failures = Vec::new();
    for render in renderers {
        match render(fleet) {
            Ok(f) => files.extend(f),
            Err(e) => failures.extend(e.failures),
        }
    }
    if !failures.is_empty() {
        failures.sort_by(|a, b| a.path.cmp(&b.path));
        return Err(RenderError { failures });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// Files a renderer could not produce: a template bug, or a fleet the output cannot
/// express (a VIP member with no interface on the VIP's VLAN). Never partial text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct RenderError {
    /// Sorted by path.
    pub failures: Vec<RenderFailure>,
}

/// One file that could not be rendered.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RenderFailure {
    /// The path the file would have had.
    pub path: String,
    pub reason: String,
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.failures.len();
        write!(
            f,
            "{n} file{} could not be rendered",
            if n == 1 { "" } else { "s" }
        )?;
        for failure in &self.failures {
            write!(f, "\n  {}: {}", failure.path, failure.reason)?;
        }
        Ok(())
    }
}

/// One file, or why it could not be rendered.
pub(crate) fn file(
    path: String,
    kind: FileKind,
    content: Result<String, String>,
) -> Result<RenderedFile, RenderFailure> {
    match content {
        Ok(content) => Ok(RenderedFile {
            path,
            kind,
            content,
        }),
        Err(reason) => Err(RenderFailure { path, reason }),
    }
}

/// Every file sorted by path, or every failure.
pub(crate) fn collect(
    results: impl IntoIterator<Item = Result<RenderedFile, RenderFailure>>,
) -> Result<Vec<RenderedFile>, RenderError> {
    let mut files = Vec::new();
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok(f) => files.push(f),
            Err(e) => failures.push(e),
        }
    }
    if !failures.is_empty() {
        failures.sort_by(|a, b| a.path.cmp(&b.path));
        return Err(RenderError { failures });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// One generated file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RenderedFile {
    /// Path relative to the output directory, with `/` separators.
    pub path: String,
    pub kind: FileKind,
    pub content: String,
}
