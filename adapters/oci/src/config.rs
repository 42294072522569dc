//! Which hosts the adapter treats as registries and token servers.

pub use btrfly_core::HostPattern;
use btrfly_core::HostPatternError;

/// The adapter's settings (`[adapters.oci]` in btrfly's config).
#[derive(Clone, Debug)]
pub struct OciConfig {
    /// Hosts (`name` or `name:port`) that are registries: every `GET`/`HEAD`
    /// under their `/v2/` belongs to this adapter, whatever its shape.
    pub registries: Vec<String>,
    /// Hosts (`name` or `name:port`) of token servers: every `GET`/`HEAD`
    /// there is a bearer-token request.
    pub auth_hosts: Vec<String>,
    /// Also recognise any host by the shape of its requests: the endpoints
    /// of the distribution API under `/v2/`, and token requests (a `scope`
    /// of `repository:…` or `registry:…` in the query).
    pub detect: bool,
}

impl Default for OciConfig {
    fn default() -> Self {
        OciConfig {
            registries: Vec::new(),
            auth_hosts: Vec::new(),
            detect: true,
        }
    }
}

/// An entry of `[adapters.oci]` that is not a host.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {source}")]
pub struct OciConfigError {
    /// `registries` or `auth_hosts`.
    pub key: &'static str,
    /// The entry and why it is not a host.
    pub source: HostPatternError,
}

/// Parses every entry of the list `key`, naming the first bad one.
///
/// # Errors
/// [`OciConfigError`] for the first entry that is not a host.
pub fn parse_hosts(key: &'static str, list: &[String]) -> Result<Vec<HostPattern>, OciConfigError> {
    HostPattern::parse_all(list).map_err(|source| OciConfigError { key, source })
}
