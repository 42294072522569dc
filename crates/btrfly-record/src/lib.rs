//! btrfly-record: everything that turns an upstream answer into a tag
//! entry.
//!
//! - [`RecordPlan`]: what recording one exchange needs (the session, the
//!   adapter's verdict, the store), decided by the gateway before the
//!   request goes upstream;
//! - [`Exchange`]: one forwarded request's state from then on — the
//!   request body's digest, the response's framing, body completeness, the
//!   recorder — driven by the proxy's hooks, which only translate;
//! - [`Recorder`]: the tee into the store (bounded channel, writer task),
//!   digest verification, the commit (first good answer stands, `Vary`
//!   records, digest hints of inspected pages);
//! - [`flight`]: single flight, so that identical concurrent requests go
//!   upstream once.

pub mod exchange;
pub mod flight;
pub mod plan;
pub mod recorder;
pub mod secrets;
pub mod verify;

pub use exchange::{Ending, Exchange, Failure, RequestBodySource, ResponseHead};
pub use flight::{FlightGuard, Flights, Role};
pub use plan::{resolve_location, RecordPlan};
pub use recorder::{Mismatch, RecordError, Recorder};
