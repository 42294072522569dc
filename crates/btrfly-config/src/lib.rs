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

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the server keeps its own state: the CA, the admin token and
    /// (with the default fs storage) the recordings.
    /// Default: `$BTRFLY_DATA_DIR`, else `$XDG_DATA_HOME/btrfly`, else
    /// `~/.local/share/btrfly`.
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub proxy: ProxyConfig,
    #[serde(default)]
    pub control: ControlConfig,
    #[serde(default)]
    pub dns: Option<DnsConfig>,
    #[serde(default)]
    pub upstream: UpstreamConfig,
    #[serde(default)]
    pub adapters: AdaptersConfig,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Fs,
    Memory,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    #[serde(default = "default_backend")]
    pub backend: Backend,
    /// fs: the directory holding blobs and tag indexes.
    /// Default: `<data_dir>/store`.
    pub root: Option<PathBuf>,
}

fn default_backend() -> Backend {
    Backend::Fs
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: Backend::Fs,
            root: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
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
pub struct ControlConfig {
    /// The HTTP API the CLI talks to.
    #[serde(default = "default_control_listen")]
    pub listen: SocketAddr,
}

fn default_control_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 3129))
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            listen: default_control_listen(),
        }
    }
}

/// btrfly's DNS server, which answers every name with the proxy's address.
/// Absent by default.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    pub listen: SocketAddr,
    /// Address given for A queries. Default: the proxy's listen address when
    /// it is IPv4 and not a wildcard, else 127.0.0.1.
    pub answer_v4: Option<std::net::Ipv4Addr>,
    /// Address given for AAAA queries. Default: none (empty answer).
    pub answer_v6: Option<std::net::Ipv6Addr>,
    #[serde(default = "default_dns_ttl")]
    pub ttl: u32,
}

fn default_dns_ttl() -> u32 {
    5
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
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
pub struct AdaptersConfig {
    #[serde(default)]
    pub files: FilesAdapterConfig,
}

/// The plain-files adapter: exact URLs. It is the fallback for every request
/// no ecosystem adapter claims.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesAdapterConfig {
    #[serde(default = "yes")]
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
        config.validate(origin)?;
        Ok(config)
    }

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
        if self.storage.backend == Backend::Memory && self.storage.root.is_some() {
            return Err(invalid(
                "storage.root is not used by the memory backend; remove it".into(),
            ));
        }
        Ok(())
    }

    /// The data directory, resolved against the environment defaults.
    pub fn data_dir(&self) -> PathBuf {
        if let Some(d) = &self.data_dir {
            return d.clone();
        }
        default_data_dir()
    }

    pub fn storage_root(&self) -> PathBuf {
        self.storage
            .root
            .clone()
            .unwrap_or_else(|| self.data_dir().join("store"))
    }
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
