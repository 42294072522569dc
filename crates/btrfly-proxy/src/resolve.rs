//! Resolving upstream names: static overrides first, then real DNS.
//!
//! Pingora's `HttpPeer::new` would resolve with a blocking call that panics
//! on failure, so the app resolves here, asynchronously, and hands Pingora
//! a socket address.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use hickory_resolver::TokioResolver;

/// Upstream name resolution.
pub struct UpstreamResolver {
    overrides: BTreeMap<String, IpAddr>,
    dns: Option<TokioResolver>,
}

/// A name that did not resolve.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Neither a resolver nor an override.
    #[error("resolving {host}: no DNS resolver configured and no upstream.resolve override")]
    NoResolver {
        /// The name.
        host: String,
    },
    /// The resolver failed.
    #[error("resolving {host}: {source}")]
    Lookup {
        /// The name.
        host: String,
        /// What the resolver said.
        source: hickory_resolver::net::NetError,
    },
    /// The answer held no address.
    #[error("resolving {host}: no addresses")]
    NoAddress {
        /// The name.
        host: String,
    },
}

impl UpstreamResolver {
    /// Uses the system's resolver configuration (`/etc/resolv.conf`) for
    /// names that have no override. Never btrfly's own DNS server: that
    /// would point every name back at the proxy.
    pub fn new(overrides: BTreeMap<String, IpAddr>) -> UpstreamResolver {
        let overrides = overrides
            .into_iter()
            .map(|(k, v)| (k.trim_end_matches('.').to_ascii_lowercase(), v))
            .collect();
        let dns = match TokioResolver::builder_tokio() {
            Ok(b) => match b.build() {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!("no system DNS resolver ({e}); only upstream.resolve overrides and IP addresses will work");
                    None
                }
            },
            Err(e) => {
                tracing::warn!("reading the system DNS configuration: {e}; only upstream.resolve overrides and IP addresses will work");
                None
            }
        };
        UpstreamResolver { overrides, dns }
    }

    /// `host:port` as a socket address: an IP address as it is, an
    /// override, else DNS.
    ///
    /// # Errors
    /// [`ResolveError`].
    pub async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, ResolveError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let name = bare.trim_end_matches('.').to_ascii_lowercase();
        if let Some(ip) = self.overrides.get(&name) {
            return Ok(SocketAddr::new(*ip, port));
        }
        let host = host.to_owned();
        let Some(dns) = self.dns.as_ref() else {
            return Err(ResolveError::NoResolver { host });
        };
        let answer = match dns.lookup_ip(format!("{name}.")).await {
            Ok(a) => a,
            Err(source) => return Err(ResolveError::Lookup { host, source }),
        };
        let ip = answer
            .iter()
            .next()
            .ok_or(ResolveError::NoAddress { host })?;
        Ok(SocketAddr::new(ip, port))
    }
}
