//! The control API: what the `btrfly` CLI talks to.
//!
//! | method | path                      | what                                   |
//! |--------|---------------------------|----------------------------------------|
//! | GET    | /v1/health                | liveness (no token)                    |
//! | GET    | /v1/ca                    | the CA certificate, PEM (no token)     |
//! | GET    | /metrics                  | OpenMetrics text (no token)            |
//! | POST   | /v1/sessions              | start a session `{tag, mode, force}`   |
//! | GET    | /v1/sessions              | every active session: last seen, lease, counters |
//! | GET    | /v1/sessions/{id}         | a running session's summary so far     |
//! | POST   | /v1/sessions/{id}/stop    | stop it `{seal, secret?}`; seals the tag when recording; without the session's secret, admin only |
//! | POST   | /v1/sessions/{id}/bind    | bind it to a client address `{secret, client_ip?}` (transparent mode); answers `{client_ip, dns, ca_pem}` |
//! | GET    | /v1/tags                  | every tag                              |
//! | GET    | /v1/tags/{tag}            | a tag and its entries                  |
//! | GET    | /v1/tags/{tag}/export     | the tag as a WARC file ([`archive`])   |
//! | POST   | /v1/tags/{tag}/import     | a WARC file into a new sealed tag      |
//! | GET    | /v1/tags/{tag}/manifest   | its bill of materials                  |
//! | GET    | /v1/tags/{a}/diff/{b}     | what changed between two tags          |
//! | POST   | /v1/mirror                | declare an artifact `{source, sha256?, note}` (record) |
//! | GET    | /v1/mirror                | every mirror entry ([`mirror`])        |
//! | GET    | /v1/mirror/{id}           | one mirror entry                       |
//! | GET    | /v1/whoami                | the calling token: id, name, scope     |
//! | GET    | /v1/tokens                | every token (admin)                    |
//! | POST   | /v1/tokens                | create one `{name, scope}` (admin)     |
//! | POST   | /v1/tokens/{id}/revoke    | revoke one (admin)                     |
//!
//! Every other call needs `Authorization: Bearer TOKEN` of a live token
//! ([`tokens`]) whose scope covers the call: `read` for the `GET`s,
//! `record` for sessions, `admin` for tokens (401 without a token, 403
//! with too narrow a one). Errors are JSON
//! `{"error": "..."}` with a status that says whose fault it was. The
//! bodies are `btrfly_core::api`'s types; the client is `btrfly-client`.
//! New endpoints are routes of [`server::router`]. The web UI ([`ui`]:
//! `/` and `/ui/…`) is merged beside the API, outside its bearer-token
//! middleware: it signs browsers in with a session cookie of its own.

pub mod archive;
pub mod auth;
pub mod mirror;
pub mod server;
pub mod tokens;
mod transparent;
pub mod ui;

pub use server::{router, ControlLimits, ControlServer, ControlState};
pub use tokens::Tokens;
