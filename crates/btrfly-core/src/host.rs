//! Host patterns (`name` or `name:port`) and origins (scheme, host, port):
//! one parser for every adapter and every configuration key that names
//! hosts.

use std::fmt;

/// A host the configuration names: `name`, `name:port`, `[v6]` or
/// `[v6]:port`. Without a port it matches every port. Names are compared
/// case-insensitively; an IPv6 address must be written in brackets (a bare
/// `::1` would be ambiguous with a port).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPattern {
    /// Lower case, IPv6 literals without brackets.
    host: String,
    port: Option<u16>,
}

/// A text that is not a host pattern.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a host (write `name` or `name:port`, without scheme or path)")]
pub struct HostPatternError(pub String);

impl HostPattern {
    /// Parses `name`, `name:port`, `[v6]` or `[v6]:port` (port 1-65535).
    ///
    /// # Errors
    /// [`HostPatternError`] for an empty text, a scheme, a path, a user,
    /// a query or fragment, a port that is not 1-65535, a bare IPv6
    /// address, or an unclosed bracket.
    pub fn parse(text: &str) -> Result<HostPattern, HostPatternError> {
        let bad = || HostPatternError(text.to_owned());
        let s = text.trim();
        if s.is_empty() || s.contains(['/', ' ', '@', '#', '?', '\\']) {
            return Err(bad());
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(bad)?),
            };
            (host, port)
        } else {
            match s.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (s, None),
            }
        };
        let port = match port {
            Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?),
            None => None,
        };
        if host.is_empty() || host.contains(['[', ']']) {
            return Err(bad());
        }
        Ok(HostPattern {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// Parses every entry of a list.
    ///
    /// # Errors
    /// The first entry that is not a host pattern.
    pub fn parse_all<S: AsRef<str>>(list: &[S]) -> Result<Vec<HostPattern>, HostPatternError> {
        list.iter()
            .map(|h| HostPattern::parse(h.as_ref()))
            .collect()
    }

    /// Whether a request's host (as `Uri::host` gives it: IPv6 may come
    /// bracketed) and explicit port match.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.host.eq_ignore_ascii_case(host) && self.port.is_none_or(|p| p == port)
    }
}

/// Where a request goes: scheme (`https` or `http`), host and port. The
/// host is lower case, IPv6 literals without brackets.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    /// `https` (TLS) or `http`.
    pub https: bool,
    /// Lower case; an IPv6 literal without brackets.
    pub host: String,
    /// Explicit, or the scheme's default.
    pub port: u16,
}

impl Origin {
    /// An origin from its parts; the host is normalised (brackets removed,
    /// lower case).
    pub fn new(https: bool, host: &str, port: u16) -> Origin {
        Origin {
            https,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase(),
            port,
        }
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        if self.https {
            "https"
        } else {
            "http"
        }
    }

    /// The scheme's default port: 443 or 80.
    pub fn default_port(&self) -> u16 {
        if self.https {
            443
        } else {
            80
        }
    }

    /// The host as it goes into a URL or a `Host` header (IPv6 bracketed).
    pub fn url_host(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }

    /// `host:port`, the port always written.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.url_host(), self.port)
    }

    /// The `Host` header value (RFC 9110 §7.2): the port only when it is
    /// not the scheme's default.
    pub fn host_header(&self) -> String {
        if self.port == self.default_port() {
            self.url_host()
        } else {
            self.authority()
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme(), self.authority())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_host_pattern_for_every_list() {
        let p = HostPattern::parse("Registry.Example.Test").expect("name");
        assert!(p.matches("registry.example.test", 443) && p.matches("registry.example.test", 1));
        let p = HostPattern::parse("registry.example.test:5000").expect("name:port");
        assert!(p.matches("registry.example.test", 5000));
        assert!(!p.matches("registry.example.test", 5001));
        let p = HostPattern::parse("[::1]:8443").expect("v6");
        assert!(p.matches("[::1]", 8443) && p.matches("::1", 8443));
        for bad in [
            "",
            "https://a.example.test",
            "a.example.test/simple",
            "a.example.test:http",
            "a.example.test:0",
            "a.example.test:70000",
            "user@a.example.test",
            "[::1",
            "::1",
            ":443",
        ] {
            let err = HostPattern::parse(bad).expect_err(bad);
            assert!(err.to_string().contains("is not a host"), "{err}");
        }
    }

    #[test]
    fn origins_write_hosts_and_ports_as_http_does() {
        let o = Origin::new(true, "[::1]", 443);
        assert_eq!(
            (o.authority().as_str(), o.host_header().as_str()),
            ("[::1]:443", "[::1]")
        );
        let o = Origin::new(false, "A.Example.Test", 8080);
        assert_eq!(o.to_string(), "http://a.example.test:8080");
        assert_eq!(o.host_header(), "a.example.test:8080");
    }
}
