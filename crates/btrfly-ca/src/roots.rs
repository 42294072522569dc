//! Trust beyond btrfly's own CA: the OS trust store, PEM bundles of it for
//! upstream verification (the proxy) and for clients (the CLI's session
//! files). PEM is read by `rustls-pki-types` and written by `pem`
//! (RFC 7468).
//!
//! Pingora's connector reads one CA file, which *replaces* the OS store, so
//! btrfly writes a combined bundle at start: the OS trust store plus
//! `upstream.ca_file`. Upstream certificates are always verified.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// The upstream trust bundle could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RootsError {
    /// `upstream.ca_file` is unreadable or holds no certificate.
    #[error("upstream.ca_file {}: {source}", path.display())]
    Extra {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: PemFileError,
    },
    /// The bundle could not be written.
    #[error("writing the upstream trust bundle {}: {source}", path.display())]
    Write {
        /// The bundle.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Nothing to trust at all.
    #[error("no trusted certificates for upstreams: the OS trust store is empty and upstream.ca_file is not set")]
    Empty,
}

/// A PEM file that yields no certificate.
#[derive(Debug, thiserror::Error)]
pub enum PemFileError {
    /// It cannot be read, or a PEM section is malformed.
    #[error(transparent)]
    Pem(#[from] rustls_pki_types::pem::Error),
    /// It holds no `CERTIFICATE` section.
    #[error("no PEM certificate found")]
    NoCertificate,
}

/// One certificate as PEM (`-----BEGIN CERTIFICATE-----`, 64-column base64).
pub fn pem_of(der: &CertificateDer<'_>) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new("CERTIFICATE", der.as_ref()), config)
}

/// Reads every certificate of a PEM file.
///
/// # Errors
/// [`PemFileError`]: unreadable, malformed, or without a certificate.
pub fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemFileError> {
    let certs = CertificateDer::pem_file_iter(path)?.collect::<Result<Vec<_>, _>>()?;
    if certs.is_empty() {
        return Err(PemFileError::NoCertificate);
    }
    Ok(certs)
}

/// The OS trust store as DER certificates.
pub fn os_roots() -> Vec<CertificateDer<'static>> {
    let result = rustls_native_certs::load_native_certs();
    for e in &result.errors {
        tracing::debug!("OS trust store: {e}");
    }
    result.certs
}

/// PEM text of a list of certificates.
pub fn to_pem(certs: &[CertificateDer<'_>]) -> String {
    certs.iter().map(pem_of).collect()
}

/// Writes OS roots + `extra` into `dest` and returns its path.
///
/// # Errors
/// [`RootsError`]: `extra` unusable, nothing to trust, `dest` not writable.
pub fn write_upstream_bundle(extra: Option<&Path>, dest: &Path) -> Result<PathBuf, RootsError> {
    let mut certs = os_roots();
    if let Some(path) = extra {
        let more = read_pem_certs(path).map_err(|source| RootsError::Extra {
            path: path.to_owned(),
            source,
        })?;
        certs.extend(more);
    }
    if certs.is_empty() {
        return Err(RootsError::Empty);
    }
    std::fs::write(dest, to_pem(&certs)).map_err(|source| RootsError::Write {
        path: dest.to_owned(),
        source,
    })?;
    Ok(dest.to_owned())
}
