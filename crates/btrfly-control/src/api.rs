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
