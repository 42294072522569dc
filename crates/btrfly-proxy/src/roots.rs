//! Which certificates upstreams are verified against.
//!
//! Pingora's connector reads one CA file, which *replaces* the OS store, so
//! btrfly writes a combined bundle at start: the OS trust store plus
//! `upstream.ca_file`. Upstream certificates are always verified.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

#[derive(Debug, thiserror::Error)]
pub enum RootsError {
    #[error("upstream.ca_file {path}: {message}")]
    Extra { path: PathBuf, message: String },
    #[error("writing the upstream trust bundle {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no trusted certificates for upstreams: the OS trust store is empty and upstream.ca_file is not set")]
    Empty,
}

fn pem_of(der: &CertificateDer<'_>) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Reads every certificate of a PEM file.
pub fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| e.to_string())?
        .collect();
    let certs = certs.map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no PEM certificate found".into());
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
pub fn write_upstream_bundle(extra: Option<&Path>, dest: &Path) -> Result<PathBuf, RootsError> {
    let mut certs = os_roots();
    if let Some(path) = extra {
        let more = read_pem_certs(path).map_err(|message| RootsError::Extra {
            path: path.to_owned(),
            message,
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
