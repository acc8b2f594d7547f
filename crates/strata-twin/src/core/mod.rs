//! What the three simulated services share: the injected [`Clock`] and the HTTP core
//! ([`ApiError`] with a vendor [`ErrorBody`] per service, the [`RouteTable`], the
//! [`Request`] read up front) and the object [`Table`] with its list pagination
//! ([`page`]).
//!
//! Architecture invariant: nothing here knows a vendor. The services bring their own
//! error bodies, handlers and path layouts; this module only carries them.

mod clock;
pub mod http;
pub mod table;

pub use clock::Clock;
pub use http::{ApiError, ErrorBody, Request, Route, RouteTable};
pub use table::{Direction, Keyed, MarkerNotFound, Page, Table, page};
