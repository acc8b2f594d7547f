//! Renderers: a compiled fleet in, configuration files out.
//!
//! Architecture invariant: pure. Every renderer is a function of the compiled fleet
//! and returns [`RenderedFile`]s (a relative path, a kind and the text); writing them
//! to disk and validating them with the real tools happens at the edges
//! (`strata-cli`, `strata-verify`).

mod kind;

pub use kind::FileKind;

/// One generated file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RenderedFile {
    /// Path relative to the output directory, with `/` separators.
    pub path: String,
    pub kind: FileKind,
    pub content: String,
}
