//! Request and response bodies of the control API (JSON), shared by the
//! server (`btrfly-control`) and its client (`btrfly-client`). The routes
//! are listed in `btrfly-control`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::entry::{Entry, TagMeta};
use crate::session::Mode;
pub use crate::session::Summary;
use crate::token::{Scope, TokenId, TokenName};

/// Body of `POST /v1/sessions`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StartRequest {
    /// The tag (checked by the server).
    pub tag: String,
    /// Record or playback.
    pub mode: Mode,
    /// Record into a sealed tag again.
    #[serde(default)]
    pub force: bool,
}

/// Answer to `POST /v1/sessions`: what a client needs to use the session.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StartResponse {
    /// The session's id: the user of its proxy URL.
    pub id: String,
    /// The session's secret: the password of its proxy URL.
    pub secret: String,
    /// The tag.
    pub tag: String,
    /// Record or playback.
    pub mode: Mode,
    /// `host:port` of the explicit proxy, as clients should dial it.
    pub proxy: String,
    /// The CA certificate clients must trust, PEM.
    pub ca_pem: String,
    /// Things the user should know about the session (e.g. playback of a
    /// tag whose recording was never sealed); empty when all is well.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Body of `POST /v1/sessions/{id}/stop` (optional: no body seals).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StopRequest {
    /// Record sessions: seal the tag (when it has entries). `false` leaves
    /// it open, e.g. after the recorded command failed.
    #[serde(default = "yes")]
    pub seal: bool,
    /// The session's secret: proof that the caller started it, which a
    /// `record` token needs. Without it, stopping needs the `admin` scope
    /// (`btrfly stop --session ID`: ending someone else's session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl Default for StopRequest {
    fn default() -> Self {
        StopRequest {
            seal: true,
            secret: None,
        }
    }
}

/// One active session in `GET /v1/sessions`: counters summed over the
/// replicas (as last written by each, so up to a second old).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionListing {
    /// The session's id.
    pub id: String,
    /// Its tag.
    pub tag: String,
    /// Record or playback.
    pub mode: Mode,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When it was last heard of: a proxy request or a control call
    /// naming it (its start, when none since).
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    /// When its lease ends unless it is heard of again: `last_seen` plus
    /// the server's `[sessions] lease`.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// See [`Summary::requests`].
    pub requests: u64,
    /// See [`Summary::hits`].
    pub hits: u64,
    /// See [`Summary::misses`].
    pub misses: u64,
    /// See [`Summary::recorded`].
    pub recorded: u64,
    /// See [`Summary::bytes`].
    pub bytes: u64,
}

/// Answer to `GET /v1/sessions`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionList {
    /// The server's lease, in seconds.
    pub lease_secs: u64,
    /// Every active session, oldest first.
    pub sessions: Vec<SessionListing>,
}

fn yes() -> bool {
    true
}

/// Answer to `GET /v1/tags`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TagList {
    /// Every tag, sorted by name.
    pub tags: Vec<TagMeta>,
}

/// Answer to `GET /v1/tags/{tag}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TagShow {
    /// The tag's state.
    #[serde(flatten)]
    pub meta: TagMeta,
    /// Its entries, sorted by URL then method.
    pub entries: Vec<Entry>,
}

/// Every error answer: `{"error": "…"}`, with a status that says whose
/// fault it was.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
}

/// Body of `POST /v1/sessions/{id}/bind`: bind a session to a client
/// address for transparent mode.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BindRequest {
    /// The session's secret (as returned when it was started).
    pub secret: String,
    /// The client address; default: the address the control API sees the
    /// request come from (give it for a machine behind NAT).
    #[serde(default)]
    pub client_ip: Option<std::net::IpAddr>,
}

/// Answer to `POST /v1/sessions/{id}/bind`: what a build machine needs to
/// point itself at the gateway.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BindResponse {
    /// The address now bound to the session.
    pub client_ip: std::net::IpAddr,
    /// The address of btrfly's DNS server for the machine's resolver
    /// (`nameserver` in resolv.conf, port 53), or `None` when the gateway
    /// serves no DNS on port 53 at a concrete address.
    pub dns: Option<std::net::IpAddr>,
    /// The CA certificate, PEM, for the machine's trust store.
    pub ca_pem: String,
}

/// A control token as the API shows it: never its secret, never its
/// digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Its id (`btrfly token revoke ID`).
    pub id: TokenId,
    /// Who holds it; mirror entries it adds record this name.
    pub name: TokenName,
    /// What it may do.
    pub scope: Scope,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The name of the token that created it (`btrfly serve` for the
    /// token the server wrote to `<data_dir>/token`).
    pub created_by: String,
    /// When it was revoked; a revoked token is refused.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// Body of `POST /v1/tokens` (admin scope).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenCreateRequest {
    /// The new token's name (see [`TokenName`]); unique among tokens that
    /// are not revoked.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
}

/// Answer to `POST /v1/tokens`: the token itself, shown this once.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenCreated {
    /// The token's record.
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The secret to pass as `Authorization: Bearer TOKEN`; the server
    /// keeps only its sha256.
    pub token: String,
}

/// Answer to `GET /v1/tokens` (admin scope).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenList {
    /// Every token, revoked ones included, by creation time.
    pub tokens: Vec<TokenInfo>,
}

/// Answer to `GET /v1/whoami`: the token the request was made with.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WhoAmI {
    /// Its id.
    pub id: TokenId,
    /// Its name.
    pub name: TokenName,
    /// Its scope.
    pub scope: Scope,
}

/// Body of `POST /v1/mirror`: an artifact to declare.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MirrorAddRequest {
    /// An `http(s)://` URL, or an image `REGISTRY/REPOSITORY@sha256:HEX`
    /// (parsed by the server with [`crate::MirrorSource::parse`]).
    pub source: String,
    /// The sha256 a file's body must have (64 hex digits), when pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Why it is needed (mandatory, not blank).
    pub note: String,
}

/// Answer to `GET /v1/mirror`: every mirror entry, oldest first.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MirrorList {
    /// The entries.
    pub entries: Vec<crate::MirrorEntry>,
}
