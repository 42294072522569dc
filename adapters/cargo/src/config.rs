//! Which hosts the user told the adapter about (`[adapters.cargo]`).
//!
//! No public host is built in. On a configured index host every `GET` is
//! the cargo adapter's (an index file, `config.json`, or another page of
//! the index); on a configured download host every `GET` is a `.crate`
//! download. Elsewhere requests are recognised by cargo's
//! `cargo-protocol` request header and by path shape (see
//! [`crate::key`]).

pub use btrfly_core::HostPattern;
use btrfly_core::HostPatternError;

/// An entry of `[adapters.cargo]` that is not a host.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {source}")]
pub struct CargoConfigError {
    /// `index_hosts` or `download_hosts`.
    pub key: &'static str,
    /// The entry and why it is not a host.
    pub source: HostPatternError,
}

/// The adapter's settings.
#[derive(Clone, Debug, Default)]
pub struct CargoConfig {
    index_hosts: Vec<HostPattern>,
    download_hosts: Vec<HostPattern>,
}

impl CargoConfig {
    /// From the `index_hosts` and `download_hosts` lists of
    /// `[adapters.cargo]` (`name` or `name:port`).
    ///
    /// # Errors
    /// [`CargoConfigError`] naming the list and the entry that is not a
    /// host.
    pub fn new<S: AsRef<str>>(
        index_hosts: &[S],
        download_hosts: &[S],
    ) -> Result<CargoConfig, CargoConfigError> {
        let parse = |key: &'static str, list: &[S]| {
            HostPattern::parse_all(list).map_err(|source| CargoConfigError { key, source })
        };
        Ok(CargoConfig {
            index_hosts: parse("index_hosts", index_hosts)?,
            download_hosts: parse("download_hosts", download_hosts)?,
        })
    }

    /// Whether `host` and `port` serve a sparse index.
    pub fn is_index_host(&self, host: &str, port: u16) -> bool {
        self.index_hosts.iter().any(|p| p.matches(host, port))
    }

    /// Whether `host` and `port` serve `.crate` downloads.
    pub fn is_download_host(&self, host: &str, port: u16) -> bool {
        self.download_hosts.iter().any(|p| p.matches(host, port))
    }
}
