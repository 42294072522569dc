//! What a CONNECT established: the listener sets it as the stream's proxy
//! digest, the app reads it for every request inside the tunnel.

/// What a CONNECT established, carried to every request in the tunnel.
#[derive(Clone, Debug)]
pub struct Tunnel {
    /// The CONNECT target's host (lower case, IPv6 without brackets).
    pub host: String,
    /// The CONNECT target's port.
    pub port: u16,
    /// Whether the tunnel carries TLS (https) or plain HTTP.
    pub tls: bool,
    /// The `Proxy-Authorization` value the CONNECT presented (in
    /// transparent mode: the credential of the session bound to the
    /// client's address).
    pub credential: Option<Vec<u8>>,
    /// Transparent plain HTTP: each request's origin is its own `Host`
    /// (port: the `Host`'s, else `port`), not `host`.
    pub by_host: bool,
}
