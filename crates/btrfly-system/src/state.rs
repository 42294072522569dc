//! The state directory: the state file (what was changed and what was there
//! before) and the prior bytes of every file, written before the first
//! change so that a crash at any point leaves enough behind to restore.
//!
//! ```text
//! <state_dir>/            mode 0700
//!   lock                  flock(2) held by apply and restore
//!   state.json            the State below (mode 0600); written before any change
//!   prior/<sha256>        the exact bytes of a file as it was (mode 0600)
//!   displaced/<name>.<t>  a file someone changed after apply, saved before restore replaced it
//! ```

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, SystemError};
use crate::fsops::{sha256_hex, Prior, Snapshot};
use crate::resolver::{Manager, ResolvConfKind};
use crate::trust::TrustMethod;

/// The format version of `state.json`.
pub(crate) const STATE_VERSION: u32 = 1;

/// Everything `restore` needs, written before `apply` changes anything.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct State {
    pub version: u32,
    /// Who applied it (shown by `status`).
    pub session: String,
    /// When apply started, RFC 3339.
    pub created: String,
    /// Whether apply finished; `false` after a crash or while running.
    pub complete: bool,
    pub resolver: Option<ResolverState>,
    pub trust: Option<TrustState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResolverState {
    pub path: PathBuf,
    pub prior: Prior,
    pub kind: ResolvConfKind,
    pub manager: Manager,
    pub nameservers: Vec<IpAddr>,
    /// SHA-256 of the file btrfly writes (known before writing it).
    pub written_sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrustState {
    /// SHA-256 of the CA's DER.
    pub fingerprint: String,
    pub method: TrustMethod,
    /// Paths btrfly itself writes, in the order it writes them (directories
    /// it creates, the CA file); put back in reverse order.
    pub touched: Vec<Touched>,
    /// Files derived from the trust configuration (the bundle, Java's
    /// keystore), which a tool regenerates.
    pub watched: Vec<Watched>,
    /// With [`TrustMethod::Bundle`]: the exact text appended to the bundle.
    pub appended: Option<String>,
    /// With [`TrustMethod::UpdateCaCertificates`]: every entry of the
    /// hashed directory (`/etc/ssl/certs`), which the tool rewrites.
    #[serde(default)]
    pub certs_dir: Option<Listing>,
}

/// The entries of one directory (not recursive; subdirectories are not
/// recorded).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Listing {
    pub dir: PathBuf,
    pub entries: std::collections::BTreeMap<String, Prior>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Touched {
    pub path: PathBuf,
    pub prior: Prior,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Watched {
    pub path: PathBuf,
    pub prior: Prior,
    /// SHA-256 right after apply (`None`: apply did not get that far, or no file).
    pub after_sha256: Option<String>,
}

/// The state directory, created root-only.
pub(crate) struct StateDir {
    dir: PathBuf,
}

/// Held while apply or restore runs: one at a time per state directory.
pub(crate) struct Lock {
    _file: File,
}

impl StateDir {
    pub(crate) fn new(dir: &Path) -> Self {
        Self { dir: dir.into() }
    }

    pub(crate) fn state_file(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    fn blob_dir(&self) -> PathBuf {
        self.dir.join("prior")
    }

    /// Creates the directory (0700, and `prior/`) and takes the lock,
    /// waiting for another apply or restore to finish.
    pub(crate) fn lock(&self) -> Result<Lock> {
        for d in [&self.dir, &self.blob_dir()] {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(d)
                .map_err(|e| SystemError::io("create directory", d, e))?;
            fs::set_permissions(d, fs::Permissions::from_mode(0o700))
                .map_err(|e| SystemError::io("change mode of", d, e))?;
        }
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| SystemError::io("open", &path, e))?;
        file.lock().map_err(|e| SystemError::io("lock", &path, e))?;
        Ok(Lock { _file: file })
    }

    /// The state, if a configuration is applied.
    pub(crate) fn load(&self) -> Result<Option<State>> {
        let path = self.state_file();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(SystemError::io("read", &path, e)),
        };
        let state: State = serde_json::from_str(&text).map_err(|e| SystemError::State {
            path: path.clone(),
            reason: format!("{e}; left in place for inspection"),
        })?;
        if state.version != STATE_VERSION {
            return Err(SystemError::State {
                path,
                reason: format!(
                    "version {} is not {STATE_VERSION}; written by another btrfly",
                    state.version
                ),
            });
        }
        Ok(Some(state))
    }

    /// Writes the state atomically (temporary file, fsync, rename, fsync of
    /// the directory), mode 0600.
    pub(crate) fn save(&self, state: &State) -> Result<()> {
        let path = self.state_file();
        let json = serde_json::to_vec_pretty(state).map_err(|e| SystemError::State {
            path: path.clone(),
            reason: format!("cannot encode: {e}"),
        })?;
        write_private(&path, &json)
    }

    /// Keeps a snapshot's bytes (if any) under their SHA-256.
    pub(crate) fn keep(&self, snap: &Snapshot) -> Result<()> {
        if let Some(bytes) = &snap.bytes {
            let path = self.blob_dir().join(sha256_hex(bytes));
            if !path.exists() {
                write_private(&path, bytes)?;
            }
        }
        Ok(())
    }

    /// The bytes a [`Prior::File`] had, checked against its SHA-256;
    /// `None` for other priors.
    pub(crate) fn bytes_of(&self, prior: &Prior) -> Result<Option<Vec<u8>>> {
        let Prior::File { sha256, .. } = prior else {
            return Ok(None);
        };
        let path = self.blob_dir().join(sha256);
        let bytes = fs::read(&path).map_err(|e| SystemError::io("read prior bytes", &path, e))?;
        if &sha256_hex(&bytes) != sha256 {
            return Err(SystemError::State {
                path,
                reason: "prior bytes do not match their SHA-256".into(),
            });
        }
        Ok(Some(bytes))
    }

    /// Saves a copy of a file someone changed after apply, before restore
    /// replaces it; returns where.
    pub(crate) fn displace(&self, original: &Path, bytes: &[u8]) -> Result<PathBuf> {
        let dir = self.dir.join("displaced");
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| SystemError::io("create directory", &dir, e))?;
        let name = original
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into());
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let path = dir.join(format!("{name}.{stamp}"));
        write_private(&path, bytes)?;
        Ok(path)
    }

    /// Removes the state file (the commit point of a restore), then the
    /// prior bytes.
    pub(crate) fn clear(&self) -> Result<()> {
        let path = self.state_file();
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(SystemError::io("remove", &path, e)),
        }
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| SystemError::io("sync directory", &self.dir, e))?;
        self.clear_blobs()
    }

    /// Removes prior bytes no state file refers to (left by an earlier,
    /// interrupted restore).
    pub(crate) fn clear_blobs(&self) -> Result<()> {
        let dir = self.blob_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(SystemError::io("list", &dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| SystemError::io("list", &dir, e))?;
            fs::remove_file(entry.path())
                .map_err(|e| SystemError::io("remove", entry.path(), e))?;
        }
        Ok(())
    }
}

/// Writes `bytes` to `path` atomically with mode 0600.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| SystemError::io("create", &tmp, e))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| SystemError::io("write", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| SystemError::io("rename into place", path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| SystemError::io("sync directory", dir, e))?;
    }
    Ok(())
}
