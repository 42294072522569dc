//! The client's state in `BTRFLY_HOME` (default `~/.btrfly`): the active
//! session (one per `BTRFLY_HOME`), the CA files and client configuration
//! its exports point at, and the per-session download caches.
//!
//! ```text
//! session.json         the active session (0600: it holds the proxy secret)
//! ca.pem               btrfly's CA alone
//! ca-bundle.pem        the OS roots plus btrfly's CA
//! wgetrc               ca_certificate = ca-bundle.pem (wget with GnuTLS)
//! apt.conf             Acquire::https::CaInfo "ca-bundle.pem" (APT_CONFIG)
//! caches/<session>/    pip, npm, yarn, cargo and Go caches of one session
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use btrfly_core::Mode;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

/// `BTRFLY_HOME`, else `~/.btrfly`.
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
    /// The control API it was started on.
    pub server: String,
    /// The session's id.
    pub id: String,
    /// The session's secret (the proxy password).
    pub secret: String,
    /// The tag.
    pub tag: String,
    /// Record or playback.
    pub mode: Mode,
    /// `host:port` of the proxy.
    pub proxy: String,
    /// The per-session cache directory, unless the session keeps the
    /// user's caches (`--keep-caches`).
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// What each exported variable was before `start` (`None`: not set),
    /// so that `stop` can put it back.
    #[serde(default)]
    pub previous: BTreeMap<String, Option<String>>,
}

impl ActiveSession {
    /// `http://SESSION:SECRET@HOST:PORT`.
    pub fn proxy_url(&self) -> String {
        format!("http://{}:{}@{}", self.id, self.secret, self.proxy)
    }
}

/// `ca.pem`: btrfly's CA alone.
pub fn ca_path(home: &Path) -> PathBuf {
    home.join("ca.pem")
}

/// `ca-bundle.pem`: the OS roots plus btrfly's CA.
pub fn bundle_path(home: &Path) -> PathBuf {
    home.join("ca-bundle.pem")
}

/// `wgetrc`, for wget with GnuTLS.
pub fn wgetrc_path(home: &Path) -> PathBuf {
    home.join("wgetrc")
}

/// `apt.conf`, for `APT_CONFIG`.
pub fn apt_conf_path(home: &Path) -> PathBuf {
    home.join("apt.conf")
}

fn session_file(home: &Path) -> PathBuf {
    home.join("session.json")
}

/// The active session of `home`, if any.
///
/// # Errors
/// The session file exists but cannot be read or parsed (the message says
/// it can be deleted).
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

/// Writes the session file (mode 0600).
///
/// # Errors
/// `home` cannot be created or written.
pub fn save_active(home: &Path, s: &ActiveSession) -> Result<()> {
    std::fs::create_dir_all(home).with_context(|| format!("creating {}", home.display()))?;
    let path = session_file(home);
    let body = serde_json::to_vec_pretty(s)?;
    btrfly_ca::write_private(&path, &body).with_context(|| format!("writing {}", path.display()))
}

/// Forgets the active session and removes its cache directory.
///
/// # Errors
/// The session file exists but cannot be removed.
pub fn clear_active(home: &Path, s: &ActiveSession) -> Result<()> {
    if let Some(dir) = &s.cache_dir {
        remove_cache_dir(dir);
    }
    match std::fs::remove_file(session_file(home)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).context("removing the active session file"),
    }
}

/// Writes `ca.pem` (btrfly's CA alone), `ca-bundle.pem` (the OS roots plus
/// btrfly's CA) and the client configuration files that point at them
/// (`wgetrc`, `apt.conf`) into `home`.
///
/// # Errors
/// `ca_pem` is not a PEM certificate; a file cannot be written.
pub fn write_bundles(home: &Path, ca_pem: &str) -> Result<()> {
    std::fs::create_dir_all(home).with_context(|| format!("creating {}", home.display()))?;
    let ca: CertificateDer<'static> = CertificateDer::from_pem_slice(ca_pem.as_bytes())
        .context("the server sent a CA certificate that is not PEM")?;
    let mut certs: Vec<CertificateDer<'static>> = btrfly_ca::roots::os_roots()
        .into_iter()
        .filter(|c| c != &ca)
        .collect();
    certs.push(ca);
    let bundle = bundle_path(home);
    let write = |path: PathBuf, text: String| {
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    write(ca_path(home), ca_pem.to_owned())?;
    write(bundle.clone(), btrfly_ca::roots::to_pem(&certs))?;
    // Debian's wget (GnuTLS) ignores SSL_CERT_FILE; it reads a wgetrc.
    write(
        wgetrc_path(home),
        format!("ca_certificate = {}\n", bundle.display()),
    )?;
    // apt ignores SSL_CERT_FILE too; APT_CONFIG names a file it reads
    // before /etc/apt/apt.conf.d (which can still override it).
    write(
        apt_conf_path(home),
        format!(
            "// written by btrfly start: trust btrfly's CA for https sources\nAcquire::https::CaInfo \"{}\";\n",
            bundle.display()
        ),
    )?;
    Ok(())
}

/// Creates `home/caches/<id>/` for a session's client caches.
///
/// # Errors
/// The directory cannot be created.
pub fn new_cache_dir(home: &Path, id: &str) -> Result<PathBuf> {
    let dir = home.join("caches").join(id);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Removes a session's cache directory. Go makes its module cache
/// read-only, so folders are made writable first. Failures are reported,
/// not fatal: the session is over either way.
pub fn remove_cache_dir(dir: &Path) {
    fn writable(dir: &Path) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                writable(&e.path());
            }
        }
    }
    if !dir.exists() {
        return;
    }
    writable(dir);
    if let Err(e) = std::fs::remove_dir_all(dir) {
        eprintln!(
            "btrfly: warning: could not remove the session's cache {}: {e}",
            dir.display()
        );
    }
}
