//! The fleet spec language.
//!
//! This crate owns what a user writes: the spec's types ([`model`]), the strict,
//! bounded YAML loader that turns `(path, text)` pairs into a [`Spec`] with source
//! spans ([`load`]), hostname templates ([`naming`]) and the JSON Schema editors use
//! ([`json_schema`]).
//!
//! Architecture invariant: no I/O. The loader takes text the caller read; it never
//! opens a file, reads the environment or looks at the clock. Secrets are only ever
//! *references* ([`values::SecretRef`]); this crate never resolves them.

pub mod load;
pub mod located;
pub mod model;
pub mod naming;
pub mod values;

pub use load::{Limits, Loaded, add_source, load, parse_file};
pub use located::{Located, from_spanned_json, to_spanned_json};
pub use model::*;
pub use values::{MacAddr, Name, NumRange, SecretRef, TimeOfDay, VlanId};

/// The JSON Schema of one spec file, pretty-printed (what `strata schema` prints).
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Spec);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn schema_lists_the_sections() {
        let s = super::json_schema();
        for section in [
            "organisation",
            "pools",
            "blueprint",
            "machines",
            "vms",
            "sites",
        ] {
            assert!(s.contains(&format!("\"{section}\"")), "{section} missing");
        }
    }
}
