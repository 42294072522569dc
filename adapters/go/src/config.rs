//! Which hosts the user told the adapter about (`[adapters.go]`).
//!
//! No public host is built in. On a configured module proxy host every
//! request is the Go adapter's; on a configured checksum database host
//! too. Elsewhere requests are recognised by the shape of their path
//! (see [`crate::key`]).

pub use btrfly_core::HostPattern;
use btrfly_core::HostPatternError;

/// An entry of `[adapters.go]` that is not a host.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {source}")]
pub struct GoConfigError {
    /// `proxy_hosts` or `sumdb_hosts`.
    pub key: &'static str,
    /// The entry and why it is not a host.
    pub source: HostPatternError,
}

/// The adapter's settings.
#[derive(Clone, Debug, Default)]
pub struct GoConfig {
    proxy_hosts: Vec<HostPattern>,
    sumdb_hosts: Vec<HostPattern>,
}

impl GoConfig {
    /// From the `proxy_hosts` and `sumdb_hosts` lists of `[adapters.go]`.
    ///
    /// # Errors
    /// [`GoConfigError`] naming the list and the entry that is not a host.
    pub fn new<S: AsRef<str>>(
        proxy_hosts: &[S],
        sumdb_hosts: &[S],
    ) -> Result<GoConfig, GoConfigError> {
        let parse = |key: &'static str, list: &[S]| {
            HostPattern::parse_all(list).map_err(|source| GoConfigError { key, source })
        };
        Ok(GoConfig {
            proxy_hosts: parse("proxy_hosts", proxy_hosts)?,
            sumdb_hosts: parse("sumdb_hosts", sumdb_hosts)?,
        })
    }

    /// Whether `host` and `port` are a configured module proxy.
    pub fn is_proxy_host(&self, host: &str, port: u16) -> bool {
        self.proxy_hosts.iter().any(|p| p.matches(host, port))
    }

    /// Whether `host` and `port` are a configured checksum database.
    pub fn is_sumdb_host(&self, host: &str, port: u16) -> bool {
        self.sumdb_hosts.iter().any(|p| p.matches(host, port))
    }
}
