//! The compiler: spec + `fleet.lock` in, a fully resolved, deterministic [`Fleet`] out.
//!
//! This crate owns the compiled fleet's types ([`model`]), stable allocation from
//! pools ([`alloc`]), the lock file format ([`lock`]), site overrides ([`overrides`])
//! and the compiler itself ([`compile()`]).
//!
//! Architecture invariants:
//! - pure: no I/O, no clock, no environment, no randomness. Same spec and lock give
//!   byte-identical output whatever the order of files or list items;
//! - stable: an allocation recorded in the lock never moves; adding or removing
//!   objects only adds or releases entries;
//! - a `Fleet` is only returned when every reference resolved and every allocation
//!   succeeded, so consumers never meet a half-built object.

pub mod alloc;
pub mod bootstrap;
pub mod compile;
pub mod lock;
pub mod model;
pub mod numa;
pub mod overrides;
pub mod quota;

pub use compile::{Compiled, compile};
pub use lock::{Lock, LockError};
pub use model::*;
