//! The fabric lab: proves on one machine that the rendered BGP EVPN-VXLAN fabric of a
//! DC works, with real FRR in Linux network namespaces.
//!
//! This crate owns the lab and nothing else: it reads the compiled fleet and the
//! rendered files (it never renders or changes them beyond pruning peers it does not
//! build, see [`frrconf`]), builds a scaled-down copy of a DC's fabric (spines, the
//! first K racks' leaves, test hosts, a keepalived VIP pair; with `--dci` a second DC
//! joined through the border leaves), runs the seven checks of `strata lab test`, and
//! takes everything down again.
//!
//! Layout:
//! * pure: [`plan`] (fleet + rendered files → [`topology::Lab`]), [`frrconf`] (pruning a
//!   rendered `frr.conf` to the built switches), [`script`] (the lab as `ip -batch`
//!   scripts), and the parsers and judges of [`checks`];
//! * I/O: [`exec`] (runs the scripts, starts FRR and keepalived, takes the lab down),
//!   [`state`] (the state file that lets `up`, `test` and `down` be separate
//!   processes), and the `check_*` collectors in [`checks`].
//!
//! Invariants:
//! * Everything the lab creates is findable from its name alone: network namespaces
//!   are named `sl.<name>.*` (a name has no dot, so one lab's prefix never matches
//!   another's), and every file, mount and socket lives under `<root>/<name>/`, which
//!   every process it starts names on its command line. `lab down` removes exactly
//!   that, is safe to run twice, and never touches another lab or the host's own
//!   namespaces, links or processes.
//! * The root namespace is never changed: veth pairs are created with each end
//!   directly in its lab namespace.
//! * The plan is a pure function of the fleet, the rendered files and the options, and
//!   is stored whole in the state file: `lab test` checks what `lab up` built.
//! * A check passes only on positive evidence, and what the machine cannot exercise
//!   is reported as such, never as passed.
//!
//! Realising the design on a kernel without VRF or bonding support: tenant VRFs use
//! FRR's netns VRF backend (`zebra -n`): each tenant VRF of a VTEP is a network
//! namespace that zebra, in a private mount namespace, sees under the VRF's name in
//! `/var/run/netns`. The VRF's VXLAN devices are created in the switch namespace (their
//! tunnel sockets and VTEP address stay in the underlay) and then moved into the VRF
//! namespace with their bridges and SVIs. Bonds and 802.1Q tags are not exercised
//! (see the notes the lab prints).

pub mod checks;
pub mod exec;
pub mod frrconf;
pub mod plan;
pub mod script;
pub mod state;
pub mod topology;

use std::path::Path;

pub use checks::{TestOptions, TestReport};
pub use exec::{DownReport, UpOptions, UpReport};
pub use plan::{PlanError, PlanOptions, plan};
pub use topology::Lab;

/// Anything that stops a lab command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The machine cannot run a lab (not root, tools missing, no lab to test).
    #[error("{0}")]
    Env(String),
    /// A lab of that name is already (or half) built.
    #[error("{0}")]
    Exists(String),
    #[error("`{command}` failed:\n{output}")]
    Command { command: String, output: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}
