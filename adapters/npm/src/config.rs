//! Which hosts the user told the adapter about (`[adapters.npm]`).
//!
//! No public host is built in. On a configured registry host every `GET`
//! and `HEAD` is the npm adapter's: a packument, a tarball, another
//! `.tgz` file, or another page of the registry (`/-/…`). Elsewhere
//! tarballs are recognised by their path alone and packuments by npm's
//! request headers with their path (see [`crate::key`]).

pub use btrfly_core::HostPattern;
use btrfly_core::HostPatternError;

/// An entry of `[adapters.npm] hosts` that is not a host.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {source}")]
pub struct NpmConfigError {
    /// The list: `hosts`.
    pub key: &'static str,
    /// The entry and why it is not a host.
    pub source: HostPatternError,
}

/// The adapter's settings.
#[derive(Clone, Debug, Default)]
pub struct NpmConfig {
    hosts: Vec<HostPattern>,
}

impl NpmConfig {
    /// From the `hosts` list of `[adapters.npm]` (`name` or `name:port`).
    ///
    /// # Errors
    /// [`NpmConfigError`] naming the entry that is not a host.
    pub fn new<S: AsRef<str>>(hosts: &[S]) -> Result<NpmConfig, NpmConfigError> {
        Ok(NpmConfig {
            hosts: HostPattern::parse_all(hosts).map_err(|source| NpmConfigError {
                key: "hosts",
                source,
            })?,
        })
    }

    /// Whether `host` and `port` serve an npm registry.
    pub fn is_registry_host(&self, host: &str, port: u16) -> bool {
        self.hosts.iter().any(|p| p.matches(host, port))
    }
}
