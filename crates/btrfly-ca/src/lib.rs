//! btrfly's certificate authority.
//!
//! On first start the CA is generated into the data directory (`ca.pem`,
//! and `ca-key.pem` with mode 0600); later starts load it, so clients that
//! trust it keep trusting it. For every intercepted host a leaf certificate
//! is minted on demand with its own fresh P-256 key (never the CA's), with
//! the host as a DNS or IP subject alternative name, and cached in memory.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("certificate authority file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificate authority in {path}: {message}")]
    Load { path: PathBuf, message: String },
    #[error("minting a certificate for {name}: {message}")]
    Mint { name: String, message: String },
}

/// How many minted leaves are kept; past this the cache starts over.
const LEAF_CACHE_LIMIT: usize = 10_000;

pub struct CertificateAuthority {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    provider: Arc<CryptoProvider>,
    leaves: Mutex<HashMap<String, Arc<CertifiedKey>>>,
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
    pub fn load_or_create(dir: &Path) -> Result<CertificateAuthority, CaError> {
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca-key.pem");
        let ioerr = |path: &Path| {
            let path = path.to_owned();
            move |source| CaError::Io { path, source }
        };
        if cert_path.exists() || key_path.exists() {
            let cert_pem = fs::read_to_string(&cert_path).map_err(ioerr(&cert_path))?;
            let key_pem = fs::read_to_string(&key_path).map_err(ioerr(&key_path))?;
            return Self::from_pem(&cert_pem, &key_pem).map_err(|message| CaError::Load {
                path: dir.to_owned(),
                message,
            });
        }
        fs::create_dir_all(dir).map_err(ioerr(dir))?;
        let (cert_pem, key_pem) = generate_ca().map_err(|message| CaError::Load {
            path: dir.to_owned(),
            message,
        })?;
        write_private(&key_path, key_pem.as_bytes()).map_err(ioerr(&key_path))?;
        fs::write(&cert_path, &cert_pem).map_err(ioerr(&cert_path))?;
        tracing::info!(path = %cert_path.display(), "generated a new certificate authority");
        Self::from_pem(&cert_pem, &key_pem).map_err(|message| CaError::Load {
            path: dir.to_owned(),
            message,
        })
    }

    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<CertificateAuthority, String> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| format!("private key: {e}"))?;
        let issuer =
            Issuer::from_ca_cert_pem(cert_pem, key).map_err(|e| format!("certificate: {e}"))?;
        let cert_der = rustls_pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| format!("certificate: {e}"))?;
        Ok(CertificateAuthority {
            cert_pem: cert_pem.to_owned(),
            cert_der,
            issuer,
            provider: crypto_provider(),
            leaves: Mutex::new(HashMap::new()),
        })
    }

    /// The CA certificate, PEM: what clients must trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The leaf for `name` (a DNS name or an IP address), minted on first use.
    pub fn leaf(&self, name: &str) -> Result<Arc<CertifiedKey>, CaError> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(hit) = self.cache().get(&name) {
            return Ok(hit.clone());
        }
        let minted = Arc::new(self.mint(&name)?);
        let mut cache = self.cache();
        if cache.len() >= LEAF_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(name, minted.clone());
        Ok(minted)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<CertifiedKey>>> {
        // A poisoned cache only means another thread panicked mid-insert;
        // the map itself is still consistent.
        self.leaves.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mint(&self, name: &str) -> Result<CertifiedKey, CaError> {
        let fail = |message: String| CaError::Mint {
            name: name.to_owned(),
            message,
        };
        let mut params = CertificateParams::default();
        let san = match name.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                name.to_owned()
                    .try_into()
                    .map_err(|e| fail(format!("not a valid DNS name: {e}")))?,
            ),
        };
        params.subject_alt_names = vec![san];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(365);
        params.serial_number = Some(random_serial());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(|e| fail(e.to_string()))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| fail(e.to_string()))?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signer = self
            .provider
            .key_provider
            .load_private_key(key_der)
            .map_err(|e| fail(e.to_string()))?;
        Ok(CertifiedKey::new(vec![cert.der().clone()], signer))
    }

    /// A TLS server config that picks the leaf by SNI, falling back to
    /// `fallback` (the CONNECT target) when the client sent no SNI, as
    /// clients do for IP addresses.
    pub fn server_config(
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
                message: e.to_string(),
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

fn generate_ca() -> Result<(String, String), String> {
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
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
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes a file readable by its owner only, created with mode 0600 so the
/// secret is never briefly world-readable.
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
