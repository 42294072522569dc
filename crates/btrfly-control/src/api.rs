//! Request and response bodies of the control API.

use btrfly_core::{Entry, Mode, TagMeta};
use serde::{Deserialize, Serialize};

pub use btrfly_layers::Summary;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StartRequest {
    pub tag: String,
    pub mode: Mode,
    #[serde(default)]
    pub force: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StartResponse {
    pub id: String,
    /// The session's secret: the password of its proxy URL.
    pub secret: String,
    pub tag: String,
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
}

impl Default for StopRequest {
    fn default() -> Self {
        StopRequest { seal: true }
    }
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TagList {
    pub tags: Vec<TagMeta>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TagShow {
    #[serde(flatten)]
    pub meta: TagMeta,
    pub entries: Vec<Entry>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}
