//! Secrets: one [`Secret`] type whose value never prints, [`SecretRef`]erences to
//! where a secret lives, and the [`SecretResolver`] that reads them.
//!
//! Providers never read the environment or secret files themselves: they ask the
//! resolver they were built with. The CLI builds [`SystemSecrets`] (the process
//! environment, and files relative to the spec directory, as the spec documents);
//! the demo and tests inject values with [`StaticSecrets`] instead of changing the
//! process environment.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_plan::{Plan, ResourceId};

use crate::Provider;

/// A secret value. `Debug` and `Display` print `***`; only [`Secret::expose`] gives
/// the value, at the moment it is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where a secret lives: an environment variable, or a file (a relative path is
/// relative to the resolver's base: the spec directory).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
}

impl SecretRef {
    /// The `env:VARIABLE` / `file:PATH` form desired state carries (a
    /// `strata_spec::SecretRef` as text). `None` for anything else, such as a value.
    pub fn parse(text: &str) -> Option<SecretRef> {
        if let Some(var) = text.strip_prefix("env:").filter(|v| !v.is_empty()) {
            return Some(SecretRef::Env(var.to_string()));
        }
        text.strip_prefix("file:")
            .filter(|p| !p.is_empty())
            .map(|p| SecretRef::File(PathBuf::from(p)))
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(v) => write!(f, "env:{v}"),
            SecretRef::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

/// Why a reference could not be resolved. Names the reference, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    EnvNotSet(String),
    #[error("cannot read {path}: {reason}")]
    File { path: String, reason: String },
    #[error("{0} is empty")]
    Empty(String),
}

/// Resolves secret references. Implementations must be cheap to call more than once
/// (plan resolves every reference apply will need, then apply resolves them again).
pub trait SecretResolver: Send + Sync {
    fn resolve(&self, reference: &SecretRef) -> Result<Secret, SecretError>;
}

/// The process environment, and files (trailing newlines trimmed) with relative
/// paths taken from `base` (the spec directory).
#[derive(Clone, Debug)]
pub struct SystemSecrets {
    base: PathBuf,
}

impl SystemSecrets {
    pub fn new(base: impl Into<PathBuf>) -> SystemSecrets {
        SystemSecrets { base: base.into() }
    }
}

impl SecretResolver for SystemSecrets {
    fn resolve(&self, reference: &SecretRef) -> Result<Secret, SecretError> {
        let value = match reference {
            SecretRef::Env(var) => {
                std::env::var(var).map_err(|_| SecretError::EnvNotSet(var.clone()))?
            }
            SecretRef::File(p) => {
                let path = resolve_path(&self.base, p);
                std::fs::read_to_string(&path)
                    .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
                    .map_err(|e| SecretError::File {
                        path: path.display().to_string(),
                        reason: e.kind().to_string(),
                    })?
            }
        };
        if value.is_empty() {
            return Err(SecretError::Empty(reference.to_string()));
        }
        Ok(Secret(value))
    }
}

/// Fixed values by reference, for the demo and tests; anything else goes to the
/// fallback (or is "not set" without one).
#[derive(Clone, Default)]
pub struct StaticSecrets {
    values: BTreeMap<SecretRef, Secret>,
    fallback: Option<Arc<dyn SecretResolver>>,
}

impl StaticSecrets {
    pub fn new() -> StaticSecrets {
        StaticSecrets::default()
    }

    /// Answer `reference` with `value`.
    pub fn with(mut self, reference: SecretRef, value: impl Into<String>) -> StaticSecrets {
        self.values.insert(reference, Secret(value.into()));
        self
    }

    /// Ask `fallback` for references this map does not hold.
    pub fn or_else(mut self, fallback: Arc<dyn SecretResolver>) -> StaticSecrets {
        self.fallback = Some(fallback);
        self
    }
}

impl fmt::Debug for StaticSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticSecrets")
            .field("references", &self.values.keys().collect::<Vec<_>>())
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

impl SecretResolver for StaticSecrets {
    fn resolve(&self, reference: &SecretRef) -> Result<Secret, SecretError> {
        if let Some(v) = self.values.get(reference) {
            return Ok(v.clone());
        }
        match &self.fallback {
            Some(f) => f.resolve(reference),
            None => Err(match reference {
                SecretRef::Env(var) => SecretError::EnvNotSet(var.clone()),
                SecretRef::File(p) => SecretError::File {
                    path: p.display().to_string(),
                    reason: "not provided".into(),
                },
            }),
        }
    }
}

/// A secret a step needs: the reference, and what it is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretNeed {
    pub reference: SecretRef,
    /// What the secret is, for messages ("BMC credential (power_pass)").
    pub what: &'static str,
}

/// A reference that could not be resolved, and every step that needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unresolved {
    pub reference: SecretRef,
    pub what: &'static str,
    pub error: SecretError,
    /// The resources whose steps need it, sorted.
    pub needed_by: Vec<ResourceId>,
}

impl fmt::Display for Unresolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 3;
        let first: Vec<String> = self
            .needed_by
            .iter()
            .take(SHOWN)
            .map(ToString::to_string)
            .collect();
        let more = self.needed_by.len().saturating_sub(SHOWN);
        write!(
            f,
            "{} {}: {}; needed by {}{}",
            self.what,
            self.reference,
            self.error,
            first.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )
    }
}

/// Resolve (and drop at once) every secret the steps of `plan` need, through the
/// provider that will act on each step; what cannot be resolved, grouped by
/// reference. Empty when `apply` will find every secret it needs.
pub fn unresolved(
    plan: &Plan,
    providers: &[Arc<dyn Provider>],
    secrets: &dyn SecretResolver,
) -> Vec<Unresolved> {
    let mut needs: BTreeMap<SecretRef, (&'static str, Vec<ResourceId>)> = BTreeMap::new();
    for step in &plan.steps {
        let Some(p) = providers
            .iter()
            .find(|p| p.dc() == step.id.dc && p.platform() == step.id.platform())
        else {
            continue;
        };
        for need in p.secrets_needed(step) {
            needs
                .entry(need.reference)
                .or_insert_with(|| (need.what, Vec::new()))
                .1
                .push(step.id.clone());
        }
    }
    needs
        .into_iter()
        .filter_map(|(reference, (what, mut needed_by))| {
            let error = secrets.resolve(&reference).err()?;
            needed_by.sort();
            Some(Unresolved {
                reference,
                what,
                error,
                needed_by,
            })
        })
        .collect()
}

fn resolve_path(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn references_parse_from_their_text_form() {
        assert_eq!(
            SecretRef::parse("env:BMC_PASSWORD"),
            Some(SecretRef::Env("BMC_PASSWORD".into()))
        );
        assert_eq!(
            SecretRef::parse("file:secrets/bmc"),
            Some(SecretRef::File("secrets/bmc".into()))
        );
        assert_eq!(SecretRef::parse("hunter2"), None);
        assert_eq!(SecretRef::parse("env:"), None);
        assert_eq!(
            SecretRef::parse("file:secrets/bmc").map(|r| r.to_string()),
            Some("file:secrets/bmc".into())
        );
    }

    #[test]
    fn files_are_relative_to_the_base_and_errors_name_no_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("bmc"), "s3cret\n").expect("write");
        let r = SystemSecrets::new(dir.path());
        let s = r
            .resolve(&SecretRef::File("bmc".into()))
            .expect("relative to the base");
        assert_eq!(s.expose(), "s3cret");
        let e = r
            .resolve(&SecretRef::File("nosuch".into()))
            .expect_err("missing file");
        assert!(e.to_string().contains("nosuch"), "{e}");
        let e = r
            .resolve(&SecretRef::Env("STRATA_UNIT_TEST_UNSET_VARIABLE".into()))
            .expect_err("unset");
        assert_eq!(
            e.to_string(),
            "environment variable STRATA_UNIT_TEST_UNSET_VARIABLE is not set"
        );
        std::fs::write(dir.path().join("empty"), "\n").expect("write");
        let e = r
            .resolve(&SecretRef::File("empty".into()))
            .expect_err("empty");
        assert!(e.to_string().ends_with("is empty"), "{e}");
    }

    #[test]
    fn static_values_answer_first_then_the_fallback() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("bmc"), "from-file").expect("write");
        let r = StaticSecrets::new()
            .with(SecretRef::Env("BMC".into()), "from-map")
            .or_else(Arc::new(SystemSecrets::new(dir.path())));
        assert_eq!(
            r.resolve(&SecretRef::Env("BMC".into()))
                .expect("map")
                .expose(),
            "from-map"
        );
        assert_eq!(
            r.resolve(&SecretRef::File("bmc".into()))
                .expect("fallback")
                .expose(),
            "from-file"
        );
        let alone = StaticSecrets::new();
        assert!(alone.resolve(&SecretRef::Env("X".into())).is_err());
        assert!(!format!("{r:?}").contains("from-map"));
    }
}
