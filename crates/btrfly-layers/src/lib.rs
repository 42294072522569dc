//! The gateway's request path, as a stack of tower layers.
//!
//! The Pingora hooks in `btrfly-proxy` stay thin: for every request they
//! build an [`http::Request`] of the head (absolute URI) with a lazily
//! pulled [`RequestBody`], call the stack built by [`stack::gateway`], and
//! carry out its [`Decision`]:
//!
//! ```text
//!  request head ─► Auth ─► Route ─► Classify ─► Replay ─► Record ─► Forward
//!                   │        │         │           │          └─ record mode: go upstream, tee the body
//!                   │        │         │           └─ playback: answer from the tag (hit, or a counted miss)
//!                   │        │         └─ adapter: recording key, mutability, expected digest
//!                   │        └─ session → tag and mode
//!                   └─ proxy credential → session, else 407
//! ```
//!
//! Every layer rejects by returning a [`Decision::Respond`], never an error,
//! so the service's error type is [`std::convert::Infallible`].
//! Each step implements [`step::Step`]; [`step::StepLayer`] holds the tower
//! plumbing once for all of them.

pub mod auth;
pub mod body;
pub mod classify;
pub mod coding;
pub mod decision;
pub mod index_cache;
pub mod record;
pub mod replay;
pub mod route;
pub mod sessions;
pub mod single_flight;
pub mod stack;
pub mod step;

pub use body::{BodyFeeder, RequestBody};
pub use decision::{Decision, Forward, Part, Reply, ReplyBody};
pub use record::{RecordPlan, Recorder};
pub use sessions::{LiveSession, SessionError, SessionRegistry, Summary};
pub use stack::{gateway, GatewayService};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_adapter_hooks;
#[cfg(test)]
mod tests_scale;

/// Response header set on every answer btrfly makes itself during playback:
/// `hit`, or `miss`.
pub const REPLAY_HEADER: &str = "x-btrfly-replay";
/// Response header that marks a playback miss; its value is the tag.
pub const MISS_HEADER: &str = "x-btrfly-miss";
