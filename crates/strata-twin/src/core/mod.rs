//! What the three simulated services share: the injected [`Clock`].
//!
//! Architecture invariant: nothing here knows a vendor.

mod clock;

pub use clock::Clock;
