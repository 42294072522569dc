//! Which hosts the adapter treats as registries and token servers.

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

/// `name` or `name:port` (`[v6]` or `[v6]:port`); no port matches any port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPattern {
    /// Lower case, IPv6 literals without brackets.
    host: String,
    port: Option<u16>,
}

impl HostPattern {
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let s = text.trim();
        let bad = || {
            format!("{text:?} is not a host (write `name` or `name:port`, without scheme or path)")
        };
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

    /// Whether a request's host (as `Uri::host` gives it) and port match.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.host.eq_ignore_ascii_case(host) && self.port.is_none_or(|p| p == port)
    }
}

/// Parses every entry, naming the first bad one.
pub fn parse_hosts(list: &[String]) -> Result<Vec<HostPattern>, String> {
    list.iter().map(|h| HostPattern::parse(h)).collect()
}
