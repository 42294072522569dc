//! The egress policy: which upstream addresses and ports a session's
//! requests may reach.
//!
//! A build's code decides which URLs go through btrfly, so without a policy
//! btrfly is a way out of the build's sandbox: to loopback (btrfly's own
//! control API), to link-local addresses (cloud instance metadata, where
//! the store's credentials come from) and to private networks. The policy
//! is checked on the *resolved* address of every upstream connection (after
//! `[upstream.resolve]` overrides and DNS), so a name that resolves to a
//! refused address is refused too, whatever it resolved to before (DNS
//! rebinding gains nothing).
//!
//! The rules, in order:
//! 1. btrfly's own listeners (proxy, control) are never an upstream.
//! 2. A host named in `policy.allow` (a host pattern, `name` or
//!    `name:port`) or in `[upstream.resolve]`, or a resolved address inside
//!    a CIDR (or equal to an address) of `policy.allow`, is allowed, on any
//!    port (a host pattern with a port: that port only).
//! 3. Other hosts are reached only on `policy.connect_ports` (default 443
//!    and 80).
//! 4. Other addresses are refused when they are loopback, link-local,
//!    private (RFC 1918, 100.64.0.0/10), unique-local (fc00::/7),
//!    multicast, unspecified (0.0.0.0/8, `::`), broadcast or reserved
//!    (240.0.0.0/4), also in their IPv4-mapped IPv6 form (`::ffff:a.b.c.d`).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::RwLock;

use btrfly_core::HostPattern;
use ipnet::IpNet;

/// Ports a CONNECT (or a plain request) may name when the host is not
/// allowed by name: HTTPS and HTTP.
pub const DEFAULT_PORTS: &[u16] = &[443, 80];

/// The egress policy of the proxy (see the module documentation).
#[derive(Debug)]
pub struct EgressPolicy {
    allow_nets: Vec<IpNet>,
    allow_hosts: Vec<HostPattern>,
    overrides: BTreeSet<String>,
    ports: Vec<u16>,
    own: RwLock<Vec<SocketAddr>>,
}

/// An entry of `policy.allow` that is neither a CIDR, an address nor a
/// host pattern.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is neither a CIDR (10.1.0.0/16), an address nor a host (`name` or `name:port`)")]
pub struct AllowEntryError(pub String);

/// Why a connection is refused; its `Display` is the message the client
/// reads (it names the rule and the config key that allows it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EgressRefusal {
    /// The address is one of btrfly's own listeners.
    #[error("btrfly: egress policy: {host}:{port} resolves to {addr}, which is btrfly's own listener (rule: own-listener); btrfly never proxies to itself")]
    OwnListener {
        /// The requested host.
        host: String,
        /// The requested port.
        port: u16,
        /// The address it resolved to.
        addr: SocketAddr,
    },
    /// The port is not an allowed port for a host the config does not name.
    #[error("btrfly: egress policy: port {port} of {host} is refused (rule: port; allowed ports: {allowed}). To allow it, add \"{port}\" to policy.connect_ports, or \"{host}:{port}\" to policy.allow, in the config file of `btrfly serve --config FILE`")]
    Port {
        /// The requested host.
        host: String,
        /// The requested port.
        port: u16,
        /// The allowed ports, comma-separated.
        allowed: String,
    },
    /// The address is in a refused class.
    #[error("btrfly: egress policy: {host}:{port} resolves to {ip}, a {rule} address (rule: {rule}). To allow it, add \"{host}\" (or the network, e.g. \"{ip}/32\") to policy.allow, or map the name in [upstream.resolve], in the config file of `btrfly serve --config FILE`")]
    Address {
        /// The requested host.
        host: String,
        /// The requested port.
        port: u16,
        /// The address it resolved to.
        ip: IpAddr,
        /// The class: `loopback`, `link-local`, `private`, …
        rule: &'static str,
    },
}

impl EgressRefusal {
    /// The rule's short name (`own-listener`, `port`, `loopback`, …).
    pub fn rule(&self) -> &'static str {
        match self {
            EgressRefusal::OwnListener { .. } => "own-listener",
            EgressRefusal::Port { .. } => "port",
            EgressRefusal::Address { rule, .. } => rule,
        }
    }
}

impl EgressPolicy {
    /// A policy from `policy.allow` entries (CIDRs, addresses or host
    /// patterns), the names of `[upstream.resolve]` and the allowed ports
    /// (empty: [`DEFAULT_PORTS`]).
    ///
    /// # Errors
    /// [`AllowEntryError`] for an entry that is none of those.
    pub fn new<S: AsRef<str>>(
        allow: &[S],
        overrides: impl IntoIterator<Item = String>,
        ports: &[u16],
    ) -> Result<EgressPolicy, AllowEntryError> {
        let mut allow_nets = Vec::new();
        let mut allow_hosts = Vec::new();
        for entry in allow {
            let text = entry.as_ref().trim();
            if let Ok(net) = text.parse::<IpNet>() {
                allow_nets.push(net.trunc());
            } else if let Ok(ip) = text.parse::<IpAddr>() {
                allow_nets.push(IpNet::from(ip));
            } else if let Ok(p) = HostPattern::parse(text) {
                allow_hosts.push(p);
            } else {
                return Err(AllowEntryError(text.to_owned()));
            }
        }
        Ok(EgressPolicy {
            allow_nets,
            allow_hosts,
            overrides: overrides
                .into_iter()
                .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
            ports: if ports.is_empty() {
                DEFAULT_PORTS.to_vec()
            } else {
                ports.to_vec()
            },
            own: RwLock::new(Vec::new()),
        })
    }

    /// Adds one of btrfly's own listening addresses (refused as upstream).
    pub fn add_own_listener(&self, addr: SocketAddr) {
        self.own
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(addr);
    }

    fn host_allowed(&self, host: &str, port: u16) -> bool {
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        self.overrides.contains(&bare) || self.allow_hosts.iter().any(|p| p.matches(&bare, port))
    }

    /// The check a CONNECT gets before its tunnel is answered: the port,
    /// and the address when the target is an IP literal.
    ///
    /// # Errors
    /// [`EgressRefusal`].
    pub fn check_target(&self, host: &str, port: u16) -> Result<(), EgressRefusal> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(ip) => self.check(host, SocketAddr::new(ip, port)),
            Err(_) => self.check_port(host, port),
        }
    }

    fn check_port(&self, host: &str, port: u16) -> Result<(), EgressRefusal> {
        if self.host_allowed(host, port) || self.ports.contains(&port) {
            return Ok(());
        }
        Err(EgressRefusal::Port {
            host: host.to_owned(),
            port,
            allowed: self
                .ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// The check of one upstream connection: `host` as the request named
    /// it, `addr` what it resolved to.
    ///
    /// # Errors
    /// [`EgressRefusal`] naming the rule.
    pub fn check(&self, host: &str, addr: SocketAddr) -> Result<(), EgressRefusal> {
        let ip = canonical(addr.ip());
        let own = self.own.read().unwrap_or_else(|p| p.into_inner());
        let is_own = own.iter().any(|l| {
            l.port() == addr.port()
                && (canonical(l.ip()) == ip
                    || (l.ip().is_unspecified() && (ip.is_loopback() || ip.is_unspecified())))
        });
        drop(own);
        if is_own {
            return Err(EgressRefusal::OwnListener {
                host: host.to_owned(),
                port: addr.port(),
                addr,
            });
        }
        if self.host_allowed(host, addr.port()) || self.allow_nets.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        self.check_port(host, addr.port())?;
        match class(ip) {
            Some(rule) => Err(EgressRefusal::Address {
                host: host.to_owned(),
                port: addr.port(),
                ip,
                rule,
            }),
            None => Ok(()),
        }
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address it
/// reaches; any other address as it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The refused class of an address (an IPv4-mapped IPv6 address as its
/// IPv4 address), if any: `loopback`, `link-local`, `private`, …
pub fn class(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if v4.is_private() || (a == 100 && (64..128).contains(&b)) {
                Some("private")
            } else if v4.is_multicast() {
                Some("multicast")
            } else if v4 == Ipv4Addr::BROADCAST {
                Some("broadcast")
            } else if a == 0 {
                Some("unspecified")
            } else if a >= 240 {
                Some("reserved")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_unicast_link_local() {
                Some("link-local")
            } else if v6.is_unique_local() {
                Some("unique-local")
            } else if v6.is_multicast() {
                Some("multicast")
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    #[test]
    fn classes() {
        let cases = [
            ("127.0.0.1", Some("loopback")),
            ("127.9.9.9", Some("loopback")),
            ("::1", Some("loopback")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("169.254.169.254", Some("link-local")),
            ("::ffff:169.254.169.254", Some("link-local")),
            ("fe80::1", Some("link-local")),
            ("10.1.2.3", Some("private")),
            ("172.16.0.1", Some("private")),
            ("172.31.255.255", Some("private")),
            ("192.168.1.1", Some("private")),
            ("100.64.0.1", Some("private")),
            ("100.127.255.255", Some("private")),
            ("fd00::1", Some("unique-local")),
            ("fc00::1", Some("unique-local")),
            ("224.0.0.1", Some("multicast")),
            ("ff02::1", Some("multicast")),
            ("0.0.0.0", Some("unspecified")),
            ("0.1.2.3", Some("unspecified")),
            ("::", Some("unspecified")),
            ("255.255.255.255", Some("broadcast")),
            ("240.0.0.1", Some("reserved")),
            ("93.184.216.34", None),
            ("100.128.0.1", None),
            ("172.32.0.1", None),
            ("2001:db8::1", None),
        ];
        for (ip, want) in cases {
            assert_eq!(class(ip.parse().expect("ip")), want, "{ip}");
        }
    }

    #[test]
    fn rules_in_order() {
        let p = EgressPolicy::new(
            &["10.1.0.0/16", "cache.example.test", "git.example.test:22"],
            ["files.example.test".to_owned()],
            &[],
        )
        .expect("policy");
        p.add_own_listener(addr("127.0.0.1:3129"));
        // configured names: any port, any address
        assert_eq!(
            p.check("files.example.test", addr("127.0.0.1:8443")),
            Ok(())
        );
        assert_eq!(
            p.check("Cache.Example.Test.", addr("192.168.0.5:9000")),
            Ok(())
        );
        // own listener, even through a configured name
        let own = p
            .check("files.example.test", addr("127.0.0.1:3129"))
            .unwrap_err();
        assert_eq!(own.rule(), "own-listener");
        // a pattern with a port allows that port only
        assert_eq!(p.check_target("git.example.test", 22), Ok(()));
        assert_eq!(
            p.check_target("git.example.test", 23).unwrap_err().rule(),
            "port"
        );
        // other names: ports 443 and 80 only
        assert_eq!(p.check_target("other.example.test", 443), Ok(()));
        let port = p.check_target("other.example.test", 22).unwrap_err();
        assert_eq!(port.rule(), "port");
        assert!(port.to_string().contains("policy.connect_ports"), "{port}");
        // addresses: an allowed network on any port
        assert_eq!(p.check("x.example.test", addr("10.1.200.1:443")), Ok(()));
        assert_eq!(p.check_target("10.1.200.1", 8443), Ok(()));
        assert_eq!(p.check("x.example.test", addr("93.184.216.34:443")), Ok(()));
        let meta = p.check_target("169.254.169.254", 80).unwrap_err();
        assert_eq!(meta.rule(), "link-local");
        assert!(meta.to_string().contains("policy.allow"), "{meta}");
        let private = p
            .check("rebind.example.test", addr("10.2.0.1:443"))
            .unwrap_err();
        assert_eq!(private.rule(), "private");
        let mapped = p
            .check("x.example.test", addr("[::ffff:127.0.0.1]:443"))
            .unwrap_err();
        assert_eq!(mapped.rule(), "loopback");
    }

    #[test]
    fn ports_and_bad_entries() {
        let p = EgressPolicy::new::<&str>(&[], [], &[8443]).expect("policy");
        assert_eq!(p.check_target("a.example.test", 8443), Ok(()));
        assert_eq!(
            p.check_target("a.example.test", 443).unwrap_err().rule(),
            "port"
        );
        assert!(EgressPolicy::new(&["http://x/"], [], &[]).is_err());
        assert!(EgressPolicy::new(&["10.0.0.0/33"], [], &[]).is_err());
    }
}
