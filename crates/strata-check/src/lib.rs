//! Design checks and conformance over a compiled fleet.
//!
//! [`check`] runs every design rule (MTU, jumbo frames, VNI/VLAN/router-id
//! uniqueness, BGP session agreement, DHCP coverage, quorum, AZ capacity, GPU
//! flavors, overlapping prefixes; the domains of VNIs, MACs, ASN pools, MTUs and
//! VLAN ranges; hardware references and addresses; Proxmox capacity; the bootstrap
//! order and each role's image) and returns
//! diagnostics with stable codes, one per root cause.
//! [`conform()`] compares each DC with the blueprint ("zero snowflakes").
//! [`analyze`] runs the whole pure pipeline (load, compile, check, conform) on
//! sources in memory, for the CLI and the server alike.
//!
//! Architecture invariant: pure functions of `(Spec, Fleet)`; no I/O. Every rule has
//! its own function and its own unit test.

mod analysis;
mod bootstrap;
mod capacity;
mod conform;
mod domains;
mod hardware;
mod policy;
mod rules;

pub use analysis::{Analysis, analyze};
pub use conform::{ConformanceReport, DcConformance, Difference, DifferenceSource, conform};
pub use rules::check;
