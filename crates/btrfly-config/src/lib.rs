//! btrfly's configuration file.
//!
//! Every table rejects unknown keys (`deny_unknown_fields`) so a typo is an
//! error naming the key, never a silently ignored setting. Every key has a
//! default: an empty file (or no file at all) is a working configuration
//! with fs storage under the data directory. `config/btrfly.example.toml`
//! documents every key and is checked by a test to parse.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
/// A configuration file that cannot be used.
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    /// The file cannot be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    /// Not TOML, or not btrfly's schema.
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said (it names the key).
        message: String,
    },
    #[error("config file {path}: {message}")]
    /// A value breaks a rule; `message` names the key.
    Invalid {
        /// The file.
        path: PathBuf,
        /// Which key, and what to write instead.
        message: String,
    },
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
/// The whole configuration file.
pub struct Config {
    /// Where the server keeps its own state: the CA, the admin token and
    /// (with the default fs storage) the recordings.
    /// Default: `$BTRFLY_DATA_DIR`, else `$XDG_DATA_HOME/btrfly`, else
    /// `~/.local/share/btrfly`.
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    /// `[storage]`: where recordings are kept.
    pub storage: StorageConfig,
    #[serde(default)]
    /// `[proxy]`: the explicit proxy listener.
    pub proxy: ProxyConfig,
    #[serde(default)]
    /// `[control]`: the control API listener.
    pub control: ControlConfig,
    #[serde(default)]
    /// `[dns]`: btrfly's DNS server (off unless given).
    pub dns: Option<DnsConfig>,
    #[serde(default)]
    /// `[transparent]`: listeners for clients btrfly's DNS sends here (off
    /// unless given).
    pub transparent: Option<TransparentConfig>,
    #[serde(default)]
    /// `[upstream]`: how upstreams are reached and trusted.
    pub upstream: UpstreamConfig,
    #[serde(default)]
    /// `[adapters]`: the ecosystems btrfly understands.
    pub adapters: AdaptersConfig,
    #[serde(default)]
    /// `[policy]`: which upstream addresses and ports sessions may reach.
    pub policy: PolicyConfig,
    #[serde(default)]
    /// `[limits]`: connections, request heads, timeouts.
    pub limits: LimitsConfig,
    #[serde(default)]
    /// `[mirror]`: the explicit mirror's fetcher and playback fallback.
    pub mirror: MirrorConfig,
    #[serde(default)]
    /// `[sessions]`: how long an abandoned session lives.
    pub sessions: SessionsConfig,
}

/// `[mirror]`: the explicit mirror (`btrfly mirror add`). Absent keys take
/// the defaults given here.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorConfig {
    /// Whether playback answers a request its tag does not have from the
    /// mirror. Default true.
    pub serve_in_playback: Option<bool>,
    /// Attempts per entry before it ends `failed` (failures worth
    /// retrying: an unreachable upstream, a 5xx, 408, 429). Default 5.
    pub attempts: Option<u32>,
    /// The delay before the second attempt, in seconds; it doubles after
    /// each attempt, up to 60. Default 1.
    pub retry_delay_secs: Option<u64>,
    /// How often the store is looked at for entries declared through
    /// other replicas, in seconds. Default 5.
    pub poll_secs: Option<u64>,
}

impl MirrorConfig {
    /// `serve_in_playback`, default true.
    pub fn serve_in_playback(&self) -> bool {
        self.serve_in_playback.unwrap_or(true)
    }
}

/// `[sessions]`: sessions' leases.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsConfig {
    /// How long a session may go unheard of (no proxy request, no control
    /// call naming it) before btrfly ends it: a duration such as `"24h"`,
    /// `"90m"`, `"2h 30m"` or `"45s"` (jiff's friendly format, or ISO 8601
    /// `PT24H`). Default `"24h"`. See [`SessionsConfig::lease`].
    pub lease: Option<String>,
}

/// The default session lease: 24 hours.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(24 * 60 * 60);

impl SessionsConfig {
    /// The lease: `lease` parsed, else [`DEFAULT_LEASE`].
    ///
    /// # Errors
    /// `lease` is not a positive duration; the message names the key.
    pub fn lease(&self) -> Result<Duration, String> {
        let Some(text) = &self.lease else {
            return Ok(DEFAULT_LEASE);
        };
        let parsed: jiff::SignedDuration = text.trim().parse().map_err(|e| {
            format!(
                "sessions.lease: {text:?} is not a duration like \"24h\", \"90m\" or \"45s\": {e}"
            )
        })?;
        match Duration::try_from(parsed) {
            Ok(d) if !d.is_zero() => Ok(d),
            _ => Err(format!(
                "sessions.lease: {text:?} must be longer than zero (remove the key for the default, 24h)"
            )),
        }
    }
}

/// `[limits]`: every limit that is hit answers a clear error naming its
/// key. Absent keys take the defaults given here.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Connections each listener (the proxy, each transparent listener,
    /// the control listener) serves at once; one more is refused (`503`
    /// where the listener speaks plain HTTP first) and closed. Default
    /// 4096.
    pub max_connections: Option<usize>,
    /// Longest request URL in bytes; longer gets `414 URI Too Long`.
    /// Default 8192.
    pub max_url_bytes: Option<usize>,
    /// Largest request header section in bytes; larger gets `431 Request
    /// Header Fields Too Large`. Default 65536.
    pub max_header_bytes: Option<usize>,
    /// Seconds to wait for the next bytes from an upstream (its head or
    /// more of its body); then `504`. Default 60.
    pub upstream_read_timeout_secs: Option<u64>,
    /// Seconds a new client connection may take for its opening: the
    /// CONNECT head and the TLS handshake in the tunnel, the transparent
    /// ClientHello and handshake, or the first plain-HTTP request head;
    /// on the control listener, every request head. Then the connection
    /// is closed. Default 10.
    pub tls_handshake_timeout_secs: Option<u64>,
}

/// `[policy]`: the egress policy. Upstream connections to loopback,
/// link-local, private (RFC 1918, 100.64.0.0/10), unique-local, multicast,
/// unspecified, broadcast and reserved addresses, to btrfly's own
/// listeners, and to ports other than `connect_ports` are refused with a
/// 403, unless the host is named in `allow` or in `[upstream.resolve]`, or
/// its resolved address is inside a network of `allow` (then on any port).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// CIDRs (`10.1.0.0/16`), addresses (`192.168.1.10`) and hosts
    /// (`name` or `name:port`, any port when none is given) that are
    /// allowed although they are internal. Default: none.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Ports (of CONNECT and of plain requests) allowed for hosts and
    /// addresses not allowed by `allow` or `[upstream.resolve]`. Default
    /// `[443, 80]`.
    pub connect_ports: Option<Vec<u16>>,
}

impl PolicyConfig {
    /// The allowed ports: `connect_ports`, else 443 and 80.
    pub fn ports(&self) -> Vec<u16> {
        self.connect_ports.clone().unwrap_or_else(|| vec![443, 80])
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
/// `storage.backend`.
pub enum Backend {
    /// A directory (`storage.root`).
    Fs,
    /// Process memory.
    Memory,
    /// An S3 bucket (`[storage.s3]`).
    S3,
    /// A GCS bucket (`[storage.gcs]`).
    Gcs,
}

impl Backend {
    /// The name as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Fs => "fs",
            Backend::Memory => "memory",
            Backend::S3 => "s3",
            Backend::Gcs => "gcs",
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
/// `[storage]`.
pub struct StorageConfig {
    #[serde(default = "default_backend")]
    /// `fs` (default), `memory`, `s3` or `gcs`.
    pub backend: Backend,
    /// fs: the directory holding blobs and tag indexes.
    /// Default: `<data_dir>/store`.
    pub root: Option<PathBuf>,
    /// `backend = "s3"`: the bucket and how to reach it.
    pub s3: Option<S3Config>,
    /// `backend = "gcs"`: the bucket and how to reach it.
    pub gcs: Option<GcsConfig>,
    /// S3 and GCS: seconds an object-store operation without a body
    /// (`stat`, `delete`) may take per attempt. Default 30.
    pub timeout_secs: Option<u64>,
    /// S3 and GCS: seconds opening a read, write or listing, and each
    /// chunk of it, may take per attempt (a large blob that keeps moving is
    /// never cut). Default 10. An attempt past its deadline is retried (5
    /// times, with backoff), then the request fails with a clear `503`.
    pub io_timeout_secs: Option<u64>,
}

/// An S3 (or S3-compatible) bucket. Credentials and region left out here
/// come from the usual AWS environment: `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` (or
/// `AWS_DEFAULT_REGION`), `AWS_ENDPOINT_URL`, the shared config files,
/// then instance metadata.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// `http(s)://host:port` of the S3 API. Default: `AWS_ENDPOINT_URL`,
    /// else AWS itself (derived from the region).
    pub endpoint: Option<String>,
    /// Signing region. Default: `AWS_REGION`, else `AWS_DEFAULT_REGION`.
    pub region: Option<String>,
    /// Key prefix inside the bucket, so several deployments can share one.
    pub prefix: Option<String>,
    /// Access key id (with `secret_access_key`).
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Session token (temporary credentials).
    pub session_token: Option<String>,
    /// `bucket.host/key` requests instead of `host/bucket/key`.
    #[serde(default)]
    pub virtual_host_style: bool,
}

/// A Google Cloud Storage bucket. Credentials left out here come from
/// `GOOGLE_APPLICATION_CREDENTIALS`, the gcloud well-known file, then the
/// VM metadata server.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcsConfig {
    /// The bucket.
    pub bucket: String,
    /// `http(s)://host:port` of the JSON API. Default: Google's.
    pub endpoint: Option<String>,
    /// Key prefix inside the bucket.
    pub prefix: Option<String>,
    /// A service-account (or authorized-user) JSON key file.
    pub credential_path: Option<PathBuf>,
    /// Send unsigned requests (an emulator); no credential is looked up.
    #[serde(default)]
    pub allow_anonymous: bool,
}

fn default_backend() -> Backend {
    Backend::Fs
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: Backend::Fs,
            root: None,
            s3: None,
            gcs: None,
            timeout_secs: None,
            io_timeout_secs: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
/// `[proxy]`.
pub struct ProxyConfig {
    /// The explicit proxy: CONNECT (intercepted TLS) and absolute-form plain
    /// HTTP on one port.
    #[serde(default = "default_proxy_listen")]
    pub listen: SocketAddr,
    /// The `host:port` clients use to reach the proxy, when it differs from
    /// the listen address (a wildcard listen, a remote server).
    pub advertise: Option<String>,
}

fn default_proxy_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 3128))
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: default_proxy_listen(),
            advertise: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
/// `[control]`.
pub struct ControlConfig {
    /// The HTTP API the CLI talks to.
    #[serde(default = "default_control_listen")]
    pub listen: SocketAddr,
    /// Accept a `listen` address that is not loopback although the API
    /// speaks plain HTTP (its token then crosses the network in clear).
    /// Default false: such an address is refused at start.
    #[serde(default)]
    pub insecure_plain_http: bool,
}

fn default_control_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 3129))
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            listen: default_control_listen(),
            insecure_plain_http: false,
        }
    }
}

/// btrfly's DNS server, which answers every name with the proxy's address.
/// Absent by default.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// The address the DNS server listens on (UDP and TCP).
    pub listen: SocketAddr,
    /// Address given for A queries. Default: the proxy's listen address when
    /// it is IPv4 and not a wildcard, else 127.0.0.1.
    pub answer_v4: Option<std::net::Ipv4Addr>,
    /// Address given for AAAA queries. Default: none (empty answer).
    pub answer_v6: Option<std::net::Ipv6Addr>,
    #[serde(default = "default_dns_ttl")]
    /// TTL of the answers, seconds. Default 5.
    pub ttl: u32,
    /// Names (each with every name under it) that are forwarded to real
    /// resolvers instead of answered with the gateway's address, e.g. the
    /// control API's own name. Default: none.
    #[serde(default)]
    pub forward: Vec<String>,
    /// The real resolvers for `forward` (`ADDR:PORT`, UDP with TCP on
    /// truncation). Default: the ones in the gateway's `/etc/resolv.conf`.
    #[serde(default)]
    pub forward_to: Vec<SocketAddr>,
}

/// `[transparent]`: plain TLS and HTTP listeners for clients that know no
/// proxy (btrfly's DNS points every name here). A connection is served only
/// for a client address a session is bound to (`btrfly start --system`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransparentConfig {
    /// TLS, terminated with a leaf minted for the ClientHello's SNI; the
    /// upstream is that name on this listener's port (`ADDR:443`).
    pub listen_tls: Option<SocketAddr>,
    /// Plain HTTP, routed by `Host` (`ADDR:80`).
    pub listen_http: Option<SocketAddr>,
}

fn default_dns_ttl() -> u32 {
    5
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
/// `[upstream]`.
pub struct UpstreamConfig {
    /// PEM certificates trusted for upstreams in addition to the OS store.
    pub ca_file: Option<PathBuf>,
    /// Static name → address overrides, like `curl --resolve`, used before
    /// real DNS.
    #[serde(default)]
    pub resolve: BTreeMap<String, IpAddr>,
    /// Seconds to wait for an upstream TCP+TLS connection. Default 10.
    pub connect_timeout_secs: Option<u64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
/// `[adapters]`.
pub struct AdaptersConfig {
    #[serde(default)]
    /// `[adapters.files]`.
    pub files: FilesAdapterConfig,
    #[serde(default)]
    /// `[adapters.pip]`.
    pub pip: PipAdapterConfig,
    #[serde(default)]
    /// `[adapters.oci]`.
    pub oci: OciAdapterConfig,
    #[serde(default)]
    /// `[adapters.go]`.
    pub go: GoAdapterConfig,
    #[serde(default)]
    /// `[adapters.cargo]`.
    pub cargo: CargoAdapterConfig,
    #[serde(default)]
    /// `[adapters.npm]`.
    pub npm: NpmAdapterConfig,
}

/// npm registries: packuments and tarballs. Without hosts it still
/// recognises tarballs by their `…/{name}/-/{name}-{version}.tgz` paths
/// anywhere, and packuments by npm's request headers (`npm-command`, an
/// `Accept` naming the abbreviated form); listing hosts makes every
/// request to them npm's.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NpmAdapterConfig {
    #[serde(default = "yes")]
    /// Default true.
    pub enabled: bool,
    /// Hosts (`name` or `name:port`) serving an npm registry.
    #[serde(default)]
    pub hosts: Vec<String>,
}

impl Default for NpmAdapterConfig {
    fn default() -> Self {
        NpmAdapterConfig {
            enabled: true,
            hosts: Vec::new(),
        }
    }
}

/// cargo's sparse registries: `config.json`, index files, `.crate`
/// downloads. Without hosts it still recognises index requests by cargo's
/// `cargo-protocol` request header and downloads by their
/// `…/{crate}/{version}/download` or `{crate}-{version}.crate` paths;
/// listing hosts makes every request to them cargo's.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CargoAdapterConfig {
    #[serde(default = "yes")]
    /// Default true.
    pub enabled: bool,
    /// Hosts (`name` or `name:port`) serving a sparse index.
    #[serde(default)]
    pub index_hosts: Vec<String>,
    /// Hosts (`name` or `name:port`) serving `.crate` downloads.
    #[serde(default)]
    pub download_hosts: Vec<String>,
}

impl Default for CargoAdapterConfig {
    fn default() -> Self {
        CargoAdapterConfig {
            enabled: true,
            index_hosts: Vec::new(),
            download_hosts: Vec::new(),
        }
    }
}

/// Go modules: the module proxy protocol, the checksum database, direct
/// mode (go-get pages, git over HTTP). Without hosts it still recognises
/// proxy requests by their `/@v/` and `/@latest` paths and checksum
/// database requests by `/lookup/` and `/tile/`; listing hosts makes every
/// request to them Go's.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoAdapterConfig {
    #[serde(default = "yes")]
    /// Default true.
    pub enabled: bool,
    /// Hosts (`name` or `name:port`) serving the module proxy protocol.
    #[serde(default)]
    pub proxy_hosts: Vec<String>,
    /// Hosts (`name` or `name:port`) serving a checksum database.
    #[serde(default)]
    pub sumdb_hosts: Vec<String>,
}

impl Default for GoAdapterConfig {
    fn default() -> Self {
        GoAdapterConfig {
            enabled: true,
            proxy_hosts: Vec::new(),
            sumdb_hosts: Vec::new(),
        }
    }
}

/// The Python package index protocol (simple API in HTML and JSON, the
/// JSON API, metadata files, wheels and sdists). Without hosts it still
/// recognises index pages under a `simple` path segment and wheels
/// anywhere; listing hosts makes every page of an index host an index page
/// and every file of a file host an immutable file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipAdapterConfig {
    #[serde(default = "yes")]
    /// Default true.
    pub enabled: bool,
    /// Hosts (`name` or `name:port`) serving a package index.
    #[serde(default)]
    pub index_hosts: Vec<String>,
    /// Hosts (`name` or `name:port`) serving distribution files.
    #[serde(default)]
    pub file_hosts: Vec<String>,
}

impl Default for PipAdapterConfig {
    fn default() -> Self {
        PipAdapterConfig {
            enabled: true,
            index_hosts: Vec::new(),
            file_hosts: Vec::new(),
        }
    }
}

/// Container registries (the OCI distribution API) and their token
/// servers. Without hosts it still recognises registries by the shape of
/// the API's requests under `/v2/`, and token requests by their `scope`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OciAdapterConfig {
    #[serde(default = "yes")]
    /// Default true.
    pub enabled: bool,
    /// Hosts (`name` or `name:port`) that are registries: every `GET` and
    /// `HEAD` under their `/v2/` is registry traffic.
    #[serde(default)]
    pub registries: Vec<String>,
    /// Hosts (`name` or `name:port`) of token servers (the `realm` of a
    /// registry's `WWW-Authenticate: Bearer`): every request there is a
    /// token request.
    #[serde(default)]
    pub auth_hosts: Vec<String>,
    /// Also recognise any host by the shape of its requests. Default true.
    #[serde(default = "yes")]
    pub detect: bool,
}

impl Default for OciAdapterConfig {
    fn default() -> Self {
        OciAdapterConfig {
            enabled: true,
            registries: Vec::new(),
            auth_hosts: Vec::new(),
            detect: true,
        }
    }
}

/// The plain-files adapter: exact URLs. It is the fallback for every request
/// no ecosystem adapter claims.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesAdapterConfig {
    #[serde(default = "yes")]
    /// Default true.
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

impl Default for FilesAdapterConfig {
    fn default() -> Self {
        FilesAdapterConfig { enabled: true }
    }
}

impl Config {
    /// Parses TOML text; `origin` names the source in error messages.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] or [`ConfigError::Invalid`].
    pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            message: e.to_string().trim_end().replace('\n', "\n  "),
        })?;
        // Relative paths in a file are relative to the file, so a config
        // works the same whatever directory `btrfly serve` runs from.
        let base = origin.parent().unwrap_or(Path::new("."));
        let anchor = |p: &mut PathBuf| {
            if p.is_relative() && !base.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        };
        if let Some(p) = config.data_dir.as_mut() {
            anchor(p);
        }
        if let Some(p) = config.storage.root.as_mut() {
            anchor(p);
        }
        if let Some(p) = config.upstream.ca_file.as_mut() {
            anchor(p);
        }
        if let Some(p) = config
            .storage
            .gcs
            .as_mut()
            .and_then(|g| g.credential_path.as_mut())
        {
            anchor(p);
        }
        config.validate(origin)?;
        Ok(config)
    }

    /// Reads and parses a file.
    ///
    /// # Errors
    /// [`ConfigError`]: unreadable, not TOML, an unknown key, a bad value.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    fn validate(&self, origin: &Path) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: origin.to_owned(),
            message,
        };
        for host in self.upstream.resolve.keys() {
            if host.is_empty() || host.contains([':', '/', ' ']) {
                return Err(invalid(format!(
                    "upstream.resolve: {host:?} is not a host name (write the name alone, without port or scheme)"
                )));
            }
        }
        // One host parser for every list that names hosts.
        let pip = &self.adapters.pip;
        let oci = &self.adapters.oci;
        let lists = [
            ("adapters.pip.index_hosts", &pip.index_hosts),
            ("adapters.pip.file_hosts", &pip.file_hosts),
            ("adapters.oci.registries", &oci.registries),
            ("adapters.oci.auth_hosts", &oci.auth_hosts),
            ("adapters.go.proxy_hosts", &self.adapters.go.proxy_hosts),
            ("adapters.go.sumdb_hosts", &self.adapters.go.sumdb_hosts),
            (
                "adapters.cargo.index_hosts",
                &self.adapters.cargo.index_hosts,
            ),
            (
                "adapters.cargo.download_hosts",
                &self.adapters.cargo.download_hosts,
            ),
            ("adapters.npm.hosts", &self.adapters.npm.hosts),
        ];
        for (key, list) in lists {
            if let Err(e) = btrfly_core::HostPattern::parse_all(list) {
                return Err(invalid(format!("{key}: {e}")));
            }
        }
        for entry in &self.policy.allow {
            let e = entry.trim();
            let ok = e.parse::<ipnet::IpNet>().is_ok()
                || e.parse::<IpAddr>().is_ok()
                || btrfly_core::HostPattern::parse(e).is_ok();
            if !ok {
                return Err(invalid(format!(
                    "policy.allow: {entry:?} is neither a CIDR (10.1.0.0/16), an address nor a host (`name` or `name:port`)"
                )));
            }
        }
        let l = &self.limits;
        let zeros = [
            (
                "limits.max_connections",
                l.max_connections.map(|v| v as u64),
            ),
            ("limits.max_url_bytes", l.max_url_bytes.map(|v| v as u64)),
            (
                "limits.max_header_bytes",
                l.max_header_bytes.map(|v| v as u64),
            ),
            (
                "limits.upstream_read_timeout_secs",
                l.upstream_read_timeout_secs,
            ),
            (
                "limits.tls_handshake_timeout_secs",
                l.tls_handshake_timeout_secs,
            ),
        ];
        for (key, value) in zeros {
            if value == Some(0) {
                return Err(invalid(format!(
                    "{key}: 0 would refuse everything; remove the key for the default"
                )));
            }
        }
        if self
            .policy
            .connect_ports
            .as_ref()
            .is_some_and(|p| p.contains(&0))
        {
            return Err(invalid(
                "policy.connect_ports: 0 is not a port (1-65535)".into(),
            ));
        }
        self.sessions.lease().map_err(invalid)?;
        self.storage.validate().map_err(invalid)
    }

    /// The data directory, resolved against the environment defaults.
    pub fn data_dir(&self) -> PathBuf {
        if let Some(d) = &self.data_dir {
            return d.clone();
        }
        default_data_dir()
    }

    /// The fs backend's directory: `storage.root`, else `<data_dir>/store`.
    pub fn storage_root(&self) -> PathBuf {
        self.storage
            .root
            .clone()
            .unwrap_or_else(|| self.data_dir().join("store"))
    }
}

impl StorageConfig {
    /// `timeout_secs` and `io_timeout_secs` (defaults 30 and 10), as
    /// durations: `(operation, io)`.
    pub fn timeouts(&self) -> (Duration, Duration) {
        (
            Duration::from_secs(self.timeout_secs.unwrap_or(30)),
            Duration::from_secs(self.io_timeout_secs.unwrap_or(10)),
        )
    }

    /// Checks what can be checked without the network; messages name the key.
    fn validate(&self) -> Result<(), String> {
        for (key, v) in [
            ("timeout_secs", self.timeout_secs),
            ("io_timeout_secs", self.io_timeout_secs),
        ] {
            if v == Some(0) {
                return Err(format!(
                    "storage.{key} must be at least 1 (remove it for the default)"
                ));
            }
        }
        let backend = self.backend.as_str();
        match self.backend {
            Backend::Fs => {}
            Backend::Memory if self.root.is_some() => {
                return Err("storage.root is not used by the memory backend; remove it".into())
            }
            Backend::Memory => {}
            Backend::S3 | Backend::Gcs if self.root.is_some() => {
                return Err(format!(
                    "storage.root is for the fs backend; with backend = \"{backend}\" use storage.{backend}.prefix"
                ))
            }
            Backend::S3 | Backend::Gcs => {}
        }
        if self.s3.is_some() && self.backend != Backend::S3 {
            return Err(format!(
                "[storage.s3] is set but storage.backend is \"{backend}\"; set backend = \"s3\" or remove the table"
            ));
        }
        if self.gcs.is_some() && self.backend != Backend::Gcs {
            return Err(format!(
                "[storage.gcs] is set but storage.backend is \"{backend}\"; set backend = \"gcs\" or remove the table"
            ));
        }
        if self.backend == Backend::S3 {
            let Some(s3) = &self.s3 else {
                return Err(
                    "storage.backend = \"s3\" needs a [storage.s3] table with at least bucket = \"NAME\"".into(),
                );
            };
            check_bucket("storage.s3.bucket", &s3.bucket)?;
            check_endpoint("storage.s3.endpoint", s3.endpoint.as_deref())?;
            check_prefix("storage.s3.prefix", s3.prefix.as_deref())?;
            if s3.region.as_deref().is_some_and(str::is_empty) {
                return Err("storage.s3.region is empty; remove it to use AWS_REGION".into());
            }
            match (&s3.access_key_id, &s3.secret_access_key) {
                (Some(_), None) => {
                    return Err(
                        "storage.s3.access_key_id is set without storage.s3.secret_access_key"
                            .into(),
                    )
                }
                (None, Some(_)) => {
                    return Err(
                        "storage.s3.secret_access_key is set without storage.s3.access_key_id"
                            .into(),
                    )
                }
                _ => {}
            }
            if s3.session_token.is_some() && s3.access_key_id.is_none() {
                return Err(
                    "storage.s3.session_token needs storage.s3.access_key_id and secret_access_key"
                        .into(),
                );
            }
        }
        if self.backend == Backend::Gcs {
            let Some(gcs) = &self.gcs else {
                return Err(
                    "storage.backend = \"gcs\" needs a [storage.gcs] table with at least bucket = \"NAME\"".into(),
                );
            };
            check_bucket("storage.gcs.bucket", &gcs.bucket)?;
            check_endpoint("storage.gcs.endpoint", gcs.endpoint.as_deref())?;
            check_prefix("storage.gcs.prefix", gcs.prefix.as_deref())?;
            if gcs.allow_anonymous && gcs.credential_path.is_some() {
                return Err("storage.gcs.allow_anonymous and storage.gcs.credential_path exclude each other".into());
            }
        }
        Ok(())
    }
}

/// Bucket names of S3 and GCS: 3-222 characters of a-z 0-9 . - _, starting
/// and ending with a letter or digit.
fn check_bucket(key: &str, name: &str) -> Result<(), String> {
    let ok = (3..=222).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{key}: {name:?} is not a bucket name (3-222 characters of a-z 0-9 . - _, starting and ending with a letter or digit)"
        ))
    }
}

fn check_endpoint(key: &str, endpoint: Option<&str>) -> Result<(), String> {
    let Some(e) = endpoint else { return Ok(()) };
    let host = e
        .strip_prefix("http://")
        .or_else(|| e.strip_prefix("https://"))
        .unwrap_or_default();
    if host.is_empty() || host.starts_with('/') || host.contains(char::is_whitespace) {
        return Err(format!(
            "{key}: {e:?} is not a URL (write http://host:port or https://host)"
        ));
    }
    Ok(())
}

fn check_prefix(key: &str, prefix: Option<&str>) -> Result<(), String> {
    let Some(p) = prefix else { return Ok(()) };
    if p.split('/').any(|seg| seg == ".." || seg == ".")
        || p.contains("//")
        || p.chars().any(|c| c.is_control() || c == '\\')
    {
        return Err(format!(
            "{key}: {p:?} is not a key prefix (segments separated by single /, no . or ..)"
        ));
    }
    Ok(())
}

/// `$BTRFLY_DATA_DIR`, else `$XDG_DATA_HOME/btrfly`, else `~/.local/share/btrfly`.
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BTRFLY_DATA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("btrfly");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/share/btrfly")
}

#[cfg(test)]
mod tests;
