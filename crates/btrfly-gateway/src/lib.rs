//! The gateway's request path: the decision, from a request head, of what
//! to do with a request — answer it from the tag, refuse it, or send it
//! upstream with a plan to record its answer.
//!
//! The Pingora hooks in `btrfly-proxy` only translate: for every request
//! they build an [`http::Request`] of the head (absolute URI) with a lazily
//! pulled [`RequestBody`], call the service [`gateway`] builds, and carry
//! out its [`Decision`]. The path is a chain of typed stages ([`stage`]):
//!
//! ```text
//! Request<RequestBody> ─► Auth ─► Authenticated ─► Routing ─► Routed ─► Classify ─► Classified ─► ByMode
//!                          │                         │                     │                        ├─ playback: Replay ─► Respond (hit | counted miss)
//!                          └─ 407                    └─ counts it          └─ adapter: key,         └─ record: SingleFlight ─► Record ─► Forward(RecordPlan)
//!                                                                             digest, alias
//! ```
//!
//! Every stage rejects by returning a [`Decision::Respond`], never an
//! error, so the service's error type is [`std::convert::Infallible`].

pub mod adapters;
pub mod body;
pub mod coding;
pub mod decision;
pub mod log;
pub mod lookup;
pub mod pipeline;
pub mod reply;
pub mod stage;
pub mod stages;

pub use adapters::Adapters;
pub use body::{BodyFeeder, RequestBody};
pub use decision::{Decision, Forward, Part, Replayed, Reply, ReplyBody};
pub use pipeline::{gateway, gateway_with_mirror, GatewayService};
pub use reply::{MISS_HEADER, REPLAY_HEADER};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_adapter_hooks;
#[cfg(test)]
mod tests_scale;
