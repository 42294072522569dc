//! Which hosts the user told the adapter about (`[adapters.pip]`).
//!
//! No public host name is built in: an index host or a file host is only
//! ever one the configuration names. Everything else is recognised by the
//! shape of its path (see [`crate::key`]).

/// `name` or `name:port`; without a port it matches every port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPattern {
    host: String,
    port: Option<u16>,
}

impl HostPattern {
    /// Parses `name`, `name:port`, `[v6]` or `[v6]:port`.
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let text = text.trim();
        let bad = || {
            format!("{text:?} is not a host (write `name` or `name:port`, without scheme or path)")
        };
        if text.is_empty() || text.contains(['/', ' ', '@', '#', '?']) {
            return Err(bad());
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            match after {
                "" => (host, None),
                p => (host, Some(p.strip_prefix(':').ok_or_else(bad)?)),
            }
        } else {
            match text.rsplit_once(':') {
                Some((h, _)) if h.contains(':') => (text, None), // a bare IPv6 address
                Some((h, p)) => (h, Some(p)),
                None => (text, None),
            }
        };
        let port = match port {
            Some(p) => Some(p.parse::<u16>().map_err(|_| bad())?),
            None => None,
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(HostPattern {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// `host` as [`btrfly_core::RequestHead::host`] gives it (IPv6 may come
    /// bracketed), `port` explicit.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case(&self.host) && self.port.is_none_or(|p| p == port)
    }
}

/// The adapter's settings.
#[derive(Clone, Debug, Default)]
pub struct PipConfig {
    index_hosts: Vec<HostPattern>,
    file_hosts: Vec<HostPattern>,
}

impl PipConfig {
    /// From the `index_hosts` and `file_hosts` lists of `[adapters.pip]`;
    /// the error names the entry that is not a host.
    pub fn new<S: AsRef<str>>(index_hosts: &[S], file_hosts: &[S]) -> Result<PipConfig, String> {
        let parse = |key: &str, list: &[S]| {
            list.iter()
                .map(|h| HostPattern::parse(h.as_ref()).map_err(|e| format!("{key}: {e}")))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(PipConfig {
            index_hosts: parse("index_hosts", index_hosts)?,
            file_hosts: parse("file_hosts", file_hosts)?,
        })
    }

    pub fn is_index_host(&self, host: &str, port: u16) -> bool {
        self.index_hosts.iter().any(|p| p.matches(host, port))
    }

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
        let p = HostPattern::parse("::1").expect("bare v6");
        assert!(p.matches("[::1]", 1));
        for bad in [
            "",
            "https://pypi.example.test",
            "pypi.example.test/simple",
            "pypi.example.test:http",
            "[::1",
            ":443",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn config_names_the_bad_list() {
        let err = PipConfig::new(&["ok.example.test"], &["bad/path"]).unwrap_err();
        assert!(err.starts_with("file_hosts:"), "{err}");
        let c = PipConfig::new(&["pypi.example.test"], &["files.example.test:443"]).expect("ok");
        assert!(c.is_index_host("pypi.example.test", 443));
        assert!(c.is_file_host("files.example.test", 443));
        assert!(!c.is_file_host("files.example.test", 80));
    }
}
