//! Forwarding an allow-list of names to real resolvers.
//!
//! In transparent mode every name resolves to the gateway, which is wrong for
//! the few names a build machine must reach directly: above all the control
//! API's own name (`btrfly start` and `btrfly stop` talk to it). Names on the
//! allow-list, and every name under them, are looked up with
//! [`hickory_resolver`] against real resolvers and answered with what those
//! return.

use std::net::SocketAddr;

use hickory_resolver::{
    config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig},
    net::{runtime::TokioRuntimeProvider, NetError},
    proto::{
        op::ResponseCode,
        rr::{Name, Record, RecordType},
    },
    Resolver, TokioResolver,
};
use tracing::debug;

use crate::DnsError;

/// How long one forwarded question may wait for the real resolvers.
const UPSTREAM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// An allow-list of names and the resolver their questions go to.
///
/// Cloning is cheap: the resolver (and its cache) is shared.
#[derive(Clone)]
pub struct Forward {
    names: Vec<Name>,
    resolver: TokioResolver,
}

impl std::fmt::Debug for Forward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forward")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

/// What the real resolvers said about one forwarded question.
pub(crate) enum Forwarded {
    /// The answer records (possibly a CNAME chain followed by addresses).
    Answers(Vec<Record>),
    /// `NOERROR` with no records, or `NXDOMAIN`: passed on as such.
    Empty(ResponseCode),
    /// No usable answer (timeout, refused, `SERVFAIL`): answered `SERVFAIL`.
    Failed,
}

impl Forward {
    /// Forwards `names` (each one and every name under it; relative names are
    /// taken as fully qualified) to `upstreams`, each queried over UDP with TCP
    /// on truncation. With no `upstreams`, the resolvers of this machine's
    /// `/etc/resolv.conf` at the time of the call are used: when btrfly's own
    /// DNS is this machine's resolver, give `upstreams` explicitly.
    ///
    /// # Errors
    /// [`DnsError::ForwardName`] for a name that is not a valid DNS name;
    /// [`DnsError::ForwardResolver`] when `/etc/resolv.conf` cannot be read.
    pub fn new(names: &[String], upstreams: &[SocketAddr]) -> Result<Forward, DnsError> {
        let names = names
            .iter()
            .map(|name| {
                let mut parsed =
                    Name::from_ascii(name).map_err(|source| DnsError::ForwardName {
                        name: name.clone(),
                        reason: source.to_string(),
                    })?;
                parsed.set_fqdn(true);
                Ok(parsed)
            })
            .collect::<Result<Vec<_>, DnsError>>()?;
        let mut builder = if upstreams.is_empty() {
            Resolver::builder_tokio().map_err(|source| DnsError::ForwardResolver { source })?
        } else {
            let servers = upstreams
                .iter()
                .map(|addr| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = addr.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = addr.port();
                    NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
                })
                .collect();
            Resolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            )
        };
        let options = builder.options_mut();
        // A DNS server answers from DNS, not from this machine's /etc/hosts.
        options.use_hosts_file = ResolveHosts::Never;
        // Answer SERVFAIL well before a stub resolver gives up on us (glibc
        // waits 5 s per try).
        options.timeout = UPSTREAM_TIMEOUT;
        options.attempts = 1;
        let resolver = builder
            .build()
            .map_err(|source| DnsError::ForwardResolver { source })?;
        Ok(Forward { names, resolver })
    }

    /// Whether questions about `name` are forwarded.
    pub fn covers(&self, name: &Name) -> bool {
        self.names.iter().any(|zone| zone.zone_of(name))
    }

    /// Asks the real resolvers.
    pub(crate) async fn ask(&self, name: &Name, record_type: RecordType) -> Forwarded {
        match self.resolver.lookup(name.clone(), record_type).await {
            Ok(lookup) => Forwarded::Answers(lookup.answers().to_vec()),
            Err(error) => forwarded_error(name, record_type, &error),
        }
    }
}

fn forwarded_error(name: &Name, record_type: RecordType, error: &NetError) -> Forwarded {
    if error.is_nx_domain() {
        Forwarded::Empty(ResponseCode::NXDomain)
    } else if error.is_no_records_found() {
        Forwarded::Empty(ResponseCode::NoError)
    } else {
        debug!(%name, %record_type, %error, "forwarded dns question failed");
        Forwarded::Failed
    }
}
