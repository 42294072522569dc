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
    /// The `Proxy-Authorization` value the CONNECT presented.
    pub credential: Option<Vec<u8>>,
}
