//! The client's state in `BTRFLY_HOME` (default `~/.btrfly`): the active
//! session and the CA bundle its exports point at.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use btrfly_core::Mode;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

pub fn home() -> PathBuf {
    if let Some(h) = std::env::var_os("BTRFLY_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let user = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    user.join(".btrfly")
}

/// The session `btrfly start` opened and `btrfly stop` closes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ActiveSession {
    pub server: String,
    pub id: String,
    pub secret: String,
    pub tag: String,
    pub mode: Mode,
    pub proxy: String,
}

impl ActiveSession {
    pub fn proxy_url(&self) -> String {
        format!("http://{}:{}@{}", self.id, self.secret, self.proxy)
    }
}

fn session_file(home: &Path) -> PathBuf {
    home.join("session.json")
}

pub fn load_active(home: &Path) -> Result<Option<ActiveSession>> {
    let path = session_file(home);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "reading {} (delete it to forget that session)",
                path.display()
            )
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

pub fn save_active(home: &Path, s: &ActiveSession) -> Result<()> {
    std::fs::create_dir_all(home).with_context(|| format!("creating {}", home.display()))?;
    let path = session_file(home);
    let body = serde_json::to_vec_pretty(s)?;
    btrfly_ca::write_private(&path, &body).with_context(|| format!("writing {}", path.display()))
}

pub fn clear_active(home: &Path) -> Result<()> {
    match std::fs::remove_file(session_file(home)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).context("removing the active session file"),
    }
}

/// Writes `ca.pem` (btrfly's CA alone) and `ca-bundle.pem` (the OS roots
/// plus btrfly's CA) into `home`; returns their paths.
pub fn write_bundles(home: &Path, ca_pem: &str) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(home).with_context(|| format!("creating {}", home.display()))?;
    let ca: CertificateDer<'static> = CertificateDer::from_pem_slice(ca_pem.as_bytes())
        .context("the server sent a CA certificate that is not PEM")?;
    let mut certs: Vec<CertificateDer<'static>> = btrfly_proxy::roots::os_roots()
        .into_iter()
        .filter(|c| c != &ca)
        .collect();
    certs.push(ca);
    let ca_path = home.join("ca.pem");
    let bundle_path = home.join("ca-bundle.pem");
    std::fs::write(&ca_path, ca_pem).with_context(|| format!("writing {}", ca_path.display()))?;
    std::fs::write(&bundle_path, btrfly_proxy::roots::to_pem(&certs))
        .with_context(|| format!("writing {}", bundle_path.display()))?;
    // Debian's wget (GnuTLS) ignores SSL_CERT_FILE; it reads a wgetrc.
    let wgetrc = home.join("wgetrc");
    std::fs::write(
        &wgetrc,
        format!("ca_certificate = {}\n", bundle_path.display()),
    )
    .with_context(|| format!("writing {}", wgetrc.display()))?;
    Ok((ca_path, bundle_path))
}

/// The environment a session's clients need.
pub fn session_env(s: &ActiveSession, ca: &Path, bundle: &Path) -> Vec<(&'static str, String)> {
    let proxy = s.proxy_url();
    let wgetrc = bundle.with_file_name("wgetrc").display().to_string();
    let bundle = bundle.display().to_string();
    vec![
        ("HTTPS_PROXY", proxy.clone()),
        ("https_proxy", proxy.clone()),
        ("HTTP_PROXY", proxy.clone()),
        ("http_proxy", proxy),
        ("SSL_CERT_FILE", bundle.clone()),
        ("REQUESTS_CA_BUNDLE", bundle.clone()),
        ("PIP_CERT", bundle.clone()),
        ("CURL_CA_BUNDLE", bundle.clone()),
        ("GIT_SSL_CAINFO", bundle.clone()),
        ("CARGO_HTTP_CAINFO", bundle.clone()),
        ("AWS_CA_BUNDLE", bundle),
        ("WGETRC", wgetrc),
        ("NODE_EXTRA_CA_CERTS", ca.display().to_string()),
        ("BTRFLY_SESSION", s.id.clone()),
        ("BTRFLY_TAG", s.tag.clone()),
    ]
}

/// `export NAME='value'`, quoted for POSIX shells.
pub fn export_line(name: &str, value: &str) -> String {
    format!("export {name}='{}'", value.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_are_shell_safe() {
        assert_eq!(export_line("A", "b c"), "export A='b c'");
        assert_eq!(export_line("A", "it's"), "export A='it'\\''s'");
    }
}
