//! Which hosts the user told the adapter about (`[adapters.pip]`).
//!
//! No public host name is built in: an index host or a file host is only
//! ever one the configuration names. Everything else is recognised by the
//! shape of its path (see [`crate::key`]). Hosts are
//! [`btrfly_core::HostPattern`]s, the one parser every adapter and the
//! configuration share.

pub use btrfly_core::HostPattern;
use btrfly_core::HostPatternError;

/// An entry of `[adapters.pip]` that is not a host.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {source}")]
pub struct PipConfigError {
    /// `index_hosts` or `file_hosts`.
    pub key: &'static str,
    /// The entry and why it is not a host.
    pub source: HostPatternError,
}

/// The adapter's settings.
#[derive(Clone, Debug, Default)]
pub struct PipConfig {
    index_hosts: Vec<HostPattern>,
    file_hosts: Vec<HostPattern>,
}

impl PipConfig {
    /// From the `index_hosts` and `file_hosts` lists of `[adapters.pip]`.
    ///
    /// # Errors
    /// [`PipConfigError`] naming the list and the entry that is not a host.
    pub fn new<S: AsRef<str>>(
        index_hosts: &[S],
        file_hosts: &[S],
    ) -> Result<PipConfig, PipConfigError> {
        let parse = |key: &'static str, list: &[S]| {
            HostPattern::parse_all(list).map_err(|source| PipConfigError { key, source })
        };
        Ok(PipConfig {
            index_hosts: parse("index_hosts", index_hosts)?,
            file_hosts: parse("file_hosts", file_hosts)?,
        })
    }

    /// Whether `host` (as `Uri::host` gives it) and `port` are an index host.
    pub fn is_index_host(&self, host: &str, port: u16) -> bool {
        self.index_hosts.iter().any(|p| p.matches(host, port))
    }

    /// Whether `host` and `port` are a file host.
    pub fn is_file_host(&self, host: &str, port: u16) -> bool {
        self.file_hosts.iter().any(|p| p.matches(host, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        let p = HostPattern::parse("PyPI.example.test").expect("name");
        assert!(p.matches("pypi.example.test", 443));
        assert!(p.matches("pypi.example.test", 8443));
        assert!(!p.matches("files.example.test", 443));
        let p = HostPattern::parse("pypi.example.test:8443").expect("name:port");
        assert!(p.matches("pypi.example.test", 8443));
        assert!(!p.matches("pypi.example.test", 443));
        let p = HostPattern::parse("[::1]:8443").expect("v6");
        assert!(p.matches("[::1]", 8443));
        assert!(p.matches("::1", 8443));
        // One parser for every adapter: a bare IPv6 address is refused
        // (is `2001:db8::1:443` a port?); it is written `[::1]`.
        let p = HostPattern::parse("[::1]").expect("bracketed v6");
        assert!(p.matches("[::1]", 1));
        for bad in [
            "",
            "https://pypi.example.test",
            "pypi.example.test/simple",
            "pypi.example.test:http",
            "[::1",
            ":443",
            "::1",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn config_names_the_bad_list() {
        let err = PipConfig::new(&["ok.example.test"], &["bad/path"]).unwrap_err();
        assert!(err.to_string().starts_with("file_hosts:"), "{err}");
        let c = PipConfig::new(&["pypi.example.test"], &["files.example.test:443"]).expect("ok");
        assert!(c.is_index_host("pypi.example.test", 443));
        assert!(c.is_file_host("files.example.test", 443));
        assert!(!c.is_file_host("files.example.test", 80));
    }
}
