//! btrfly's data plane, on Pingora.
//!
//! One listener serves an explicit proxy: `CONNECT host:port` tunnels are
//! answered here, their TLS terminated with a leaf minted by btrfly's CA,
//! and the decrypted HTTP/1.1 or HTTP/2 stream handed to Pingora's proxy
//! app; absolute-form plain HTTP requests go to the same app directly.
//! The app's hooks ([`app::GatewayApp`]) only translate: they ask the
//! gateway (`btrfly-gateway`) what to do with each request and hand every
//! phase of a forwarded one to its `btrfly_record::Exchange`.
//!
//! ```text
//! client ──CONNECT──► listener ──TLS (minted leaf)──► pingora HttpProxy ──► GatewayApp hooks
//!                                                                              │ request_filter: tower stack → Decision
//!                                                          replay/miss/407 ◄───┤ Respond: written from the store
//!                                                                              └ Forward: upstream (verified TLS), body teed into the store
//! ```

mod accept;
pub mod alpn;
pub mod app;
pub mod egress;
pub mod failure;
pub mod limits;
pub mod listener;
pub mod resolve;
mod respond;
mod target;
pub mod transparent;
pub mod tunnel;
mod verified;

pub use app::GatewayApp;
pub use egress::EgressPolicy;
pub use limits::Limits;
pub use listener::ProxyListener;
pub use resolve::UpstreamResolver;
pub use transparent::{Transparent, TransparentListener};
pub use tunnel::Tunnel;
