//! btrfly's certificate authority.
//!
//! On first start the CA is generated into the data directory (`ca.pem`,
//! and `ca-key.pem` with mode 0600); later starts load it, so clients that
//! trust it keep trusting it. For every intercepted host a leaf certificate
//! is minted on demand with its own fresh P-256 key (never the CA's), with
//! the host as a DNS or IP subject alternative name, valid
//! [`LEAF_VALIDITY`] (90 days), and kept in a bounded LRU cache; a cached
//! leaf is minted again once less than [`LEAF_RENEW_MARGIN`] (30 days) of
//! it is left. TLS server configs are cached the same way. Creating the CA
//! cannot race between processes sharing a data dir (see
//! [`CertificateAuthority::load_or_create`]).
//! [`roots`] holds the rest of btrfly's trust: the OS store and PEM
//! bundles of it.

pub mod roots;

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use lru::LruCache;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

/// What went wrong with the CA.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// A CA file could not be read or written.
    #[error("certificate authority file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The CA in a directory does not load (or could not be generated).
    #[error("certificate authority in {}: {source}", path.display())]
    Load {
        /// The data directory.
        path: PathBuf,
        /// What is wrong.
        source: PemError,
    },
    /// A leaf could not be minted.
    #[error("minting a certificate for {name}: {source}")]
    Mint {
        /// The name asked for.
        name: String,
        /// Why.
        source: MintError,
    },
}

/// A CA certificate or key that does not load.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    /// The private key.
    #[error("private key: {0}")]
    Key(rcgen::Error),
    /// The certificate (as rcgen reads it).
    #[error("certificate: {0}")]
    Certificate(rcgen::Error),
    /// The certificate (as rustls reads it).
    #[error("certificate: {0}")]
    CertificatePem(rustls_pki_types::pem::Error),
    /// Generating a new CA failed.
    #[error("generating a new CA: {0}")]
    Generate(rcgen::Error),
}

/// Why a leaf could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// The name is neither an IP address nor a DNS name.
    #[error("not a valid DNS name: {0}")]
    Name(rcgen::Error),
    /// Key generation or signing failed.
    #[error(transparent)]
    Sign(rcgen::Error),
    /// rustls refused the key or the configuration.
    #[error(transparent)]
    Tls(rustls::Error),
}

/// How many minted leaves are kept (least recently used go first).
const LEAF_CACHE_LIMIT: NonZeroUsize = match NonZeroUsize::new(10_000) {
    Some(n) => n,
    None => unreachable!(),
};

/// How many TLS server configs are kept (one per CONNECT target name).
const CONFIG_CACHE_LIMIT: NonZeroUsize = match NonZeroUsize::new(10_000) {
    Some(n) => n,
    None => unreachable!(),
};

/// How long a minted leaf is valid: 90 days (clients cap leaf lifetimes;
/// 398 days is the strictest common cap).
pub const LEAF_VALIDITY: Duration = Duration::days(90);

/// A cached leaf is minted again once less than this is left of its
/// validity, so no client ever sees one about to expire, however long the
/// server runs.
pub const LEAF_RENEW_MARGIN: Duration = Duration::days(30);

/// How long a process waits for another one creating the CA.
pub const CREATE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// A CA creation lock older than this was left by a process that died.
pub const STALE_LOCK_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// A minted leaf and when it must be minted again.
struct CachedLeaf {
    key: Arc<CertifiedKey>,
    renew_at: OffsetDateTime,
}

/// What a TLS server config is cached under: the fallback name and ALPN.
type ConfigKey = (Option<String>, Vec<Vec<u8>>);

/// btrfly's certificate authority (see the crate docs).
pub struct CertificateAuthority {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    provider: Arc<CryptoProvider>,
    leaves: Mutex<LruCache<String, CachedLeaf>>,
    configs: Mutex<LruCache<ConfigKey, Arc<ServerConfig>>>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .finish_non_exhaustive()
    }
}

/// The crypto provider btrfly uses everywhere (ring), chosen explicitly so
/// that which features the dependency graph enables never matters.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl CertificateAuthority {
    /// Loads `dir/ca.pem` + `dir/ca-key.pem`, or creates them.
    ///
    /// Creation cannot race: of several processes starting at once on one
    /// data dir, the one that creates `dir/ca.lock` (`O_EXCL`) generates the
    /// CA, writing the key and then the certificate (each to a temp file
    /// renamed into place, the certificate last); the others wait for
    /// `ca.pem` and load it, so all end with one CA. A lock left by a
    /// process that died mid-creation is taken over after
    /// [`STALE_LOCK_AGE`].
    ///
    /// # Errors
    /// [`CaError`]: unreadable or unwritable files, a CA that does not load,
    /// a key without its certificate, no CA after waiting
    /// [`CREATE_WAIT`] for another process.
    pub fn load_or_create(dir: &Path) -> Result<CertificateAuthority, CaError> {
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca-key.pem");
        let lock_path = dir.join("ca.lock");
        let ioerr = |path: &Path| {
            let path = path.to_owned();
            move |source| CaError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(ioerr(dir))?;
        let deadline = std::time::Instant::now() + CREATE_WAIT;
        loop {
            if cert_path.exists() {
                return Self::load(dir, &cert_path, &key_path);
            }
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&lock_path)
            {
                Ok(_) => {
                    let made = Self::create_locked(dir, &cert_path, &key_path);
                    let _ = fs::remove_file(&lock_path);
                    return made;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = fs::metadata(&lock_path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > STALE_LOCK_AGE);
                    if stale {
                        tracing::warn!(
                            path = %lock_path.display(),
                            "taking over a CA creation lock left by a process that died"
                        );
                        let _ = fs::remove_file(&lock_path);
                        continue;
                    }
                    if std::time::Instant::now() > deadline {
                        return Err(CaError::Io {
                            path: lock_path,
                            source: std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                "another process is creating the CA and has not finished; remove the lock if no btrfly is starting",
                            ),
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(ioerr(&lock_path)(e)),
            }
        }
    }

    fn load(
        dir: &Path,
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<CertificateAuthority, CaError> {
        let ioerr = |path: &Path| {
            let path = path.to_owned();
            move |source| CaError::Io { path, source }
        };
        let cert_pem = fs::read_to_string(cert_path).map_err(ioerr(cert_path))?;
        let key_pem = fs::read_to_string(key_path).map_err(ioerr(key_path))?;
        Self::from_pem(&cert_pem, &key_pem).map_err(|source| CaError::Load {
            path: dir.to_owned(),
            source,
        })
    }

    /// Generates and writes the CA; the caller holds `ca.lock`.
    fn create_locked(
        dir: &Path,
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<CertificateAuthority, CaError> {
        let ioerr = |path: &Path| {
            let path = path.to_owned();
            move |source| CaError::Io { path, source }
        };
        // finished by another process between our check and the lock
        if cert_path.exists() {
            return Self::load(dir, cert_path, key_path);
        }
        let (cert_pem, key_pem) = generate_ca().map_err(|e| CaError::Load {
            path: dir.to_owned(),
            source: PemError::Generate(e),
        })?;
        let key_tmp = dir.join(".ca-key.pem.tmp");
        write_private(&key_tmp, key_pem.as_bytes()).map_err(ioerr(&key_tmp))?;
        fs::rename(&key_tmp, key_path).map_err(ioerr(key_path))?;
        let cert_tmp = dir.join(".ca.pem.tmp");
        fs::write(&cert_tmp, &cert_pem).map_err(ioerr(&cert_tmp))?;
        fs::rename(&cert_tmp, cert_path).map_err(ioerr(cert_path))?;
        tracing::info!(path = %cert_path.display(), "generated a new certificate authority");
        Self::from_pem(&cert_pem, &key_pem).map_err(|source| CaError::Load {
            path: dir.to_owned(),
            source,
        })
    }

    /// A CA from its certificate and key, PEM.
    ///
    /// # Errors
    /// [`PemError`] naming the part that does not load.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<CertificateAuthority, PemError> {
        let key = KeyPair::from_pem(key_pem).map_err(PemError::Key)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(PemError::Certificate)?;
        let cert_der = rustls_pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes())
            .map_err(PemError::CertificatePem)?;
        Ok(CertificateAuthority {
            cert_pem: cert_pem.to_owned(),
            cert_der,
            issuer,
            provider: crypto_provider(),
            leaves: Mutex::new(LruCache::new(LEAF_CACHE_LIMIT)),
            configs: Mutex::new(LruCache::new(CONFIG_CACHE_LIMIT)),
        })
    }

    /// The CA certificate, PEM: what clients must trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The leaf for `name` (a DNS name or an IP address), minted on first
    /// use and kept in a bounded LRU cache; valid [`LEAF_VALIDITY`], and
    /// minted again once less than [`LEAF_RENEW_MARGIN`] is left.
    ///
    /// # Errors
    /// [`CaError::Mint`]: not a name a certificate can carry, or signing
    /// failed.
    pub fn leaf(&self, name: &str) -> Result<Arc<CertifiedKey>, CaError> {
        self.leaf_at(name, OffsetDateTime::now_utc())
    }

    /// [`CertificateAuthority::leaf`] as of `now` (tests move the clock).
    fn leaf_at(&self, name: &str, now: OffsetDateTime) -> Result<Arc<CertifiedKey>, CaError> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(hit) = self.cache().get(&name) {
            if now < hit.renew_at {
                return Ok(hit.key.clone());
            }
        }
        let minted = Arc::new(self.mint(&name, now)?);
        self.cache().put(
            name,
            CachedLeaf {
                key: minted.clone(),
                renew_at: now + LEAF_VALIDITY - LEAF_RENEW_MARGIN,
            },
        );
        Ok(minted)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, LruCache<String, CachedLeaf>> {
        // A poisoned cache only means another thread panicked mid-insert;
        // the map itself is still consistent.
        self.leaves.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mint(&self, name: &str, now: OffsetDateTime) -> Result<CertifiedKey, CaError> {
        let fail = |source: MintError| CaError::Mint {
            name: name.to_owned(),
            source,
        };
        let mut params = CertificateParams::default();
        let san = match name.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                name.to_owned()
                    .try_into()
                    .map_err(|e| fail(MintError::Name(e)))?,
            ),
        };
        params.subject_alt_names = vec![san];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.not_before = now - Duration::hours(1);
        params.not_after = now + LEAF_VALIDITY;
        params.serial_number = Some(random_serial());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(|e| fail(MintError::Sign(e)))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| fail(MintError::Sign(e)))?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signer = self
            .provider
            .key_provider
            .load_private_key(key_der)
            .map_err(|e| fail(MintError::Tls(e)))?;
        Ok(CertifiedKey::new(vec![cert.der().clone()], signer))
    }

    /// A TLS server config that picks the leaf by SNI, falling back to
    /// `fallback` (the CONNECT target) when the client sent no SNI, as
    /// clients do for IP addresses. Configs are kept in a bounded LRU
    /// cache (one per fallback name and ALPN list); the leaf is resolved
    /// at each handshake, so a cached config never serves a stale leaf.
    ///
    /// # Errors
    /// rustls refused the configuration.
    pub fn server_config(
        self: &Arc<Self>,
        fallback: Option<&str>,
        alpn: &[&[u8]],
    ) -> Result<Arc<ServerConfig>, CaError> {
        let key: ConfigKey = (
            fallback.map(str::to_owned),
            alpn.iter().map(|p| p.to_vec()).collect(),
        );
        let mut configs = self.configs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hit) = configs.get(&key) {
            return Ok(hit.clone());
        }
        let config = self.new_server_config(fallback, alpn)?;
        configs.put(key, config.clone());
        Ok(config)
    }

    fn new_server_config(
        self: &Arc<Self>,
        fallback: Option<&str>,
        alpn: &[&[u8]],
    ) -> Result<Arc<ServerConfig>, CaError> {
        let resolver = Arc::new(MintingResolver {
            ca: self.clone(),
            fallback: fallback.map(str::to_owned),
        });
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| CaError::Mint {
                name: fallback.unwrap_or("*").to_owned(),
                source: MintError::Tls(e),
            })?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// Resolves the server certificate during the handshake by minting (or
/// finding in the cache) a leaf for the requested name.
#[derive(Debug)]
pub struct MintingResolver {
    ca: Arc<CertificateAuthority>,
    fallback: Option<String>,
}

impl ResolvesServerCert for MintingResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name().or(self.fallback.as_deref())?;
        match self.ca.leaf(name) {
            Ok(k) => Some(k),
            Err(e) => {
                tracing::warn!("{e}");
                None
            }
        }
    }
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // keep it positive
    SerialNumber::from_slice(&bytes)
}

fn generate_ca() -> Result<(String, String), rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    let suffix: u32 = rand::random();
    dn.push(DnType::CommonName, format!("btrfly CA {suffix:08x}"));
    dn.push(DnType::OrganizationName, "btrfly");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(3650);
    params.serial_number = Some(random_serial());
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes a file readable by its owner only, created with mode 0600 so the
/// secret is never briefly world-readable.
///
/// # Errors
/// The file cannot be created or written.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(contents)?;
    f.sync_all()
}

#[cfg(test)]
mod tests;
