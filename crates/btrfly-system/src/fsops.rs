//! Exact snapshots of a path (bytes, link target, mode, owner) and the
//! writes that change a path or put it back.
//!
//! Two ways to write a file, chosen by what the path is:
//! * in place (`O_TRUNC`, write, fsync): the inode stays, so a bind-mounted
//!   file (a container's `/etc/resolv.conf`) keeps being the runtime's file
//!   and its mode and owner stay as they were;
//! * replace (a temporary file in the same directory, fsync, rename, fsync
//!   of the directory): atomic, used where there is no file yet or where a
//!   symbolic link itself is replaced. rename(2) replaces the link, never
//!   its target.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Result, SystemError};

/// Files larger than this are not snapshotted: nothing this crate touches
/// (resolv.conf, a CA bundle, Java's keystore) comes near it.
pub(crate) const MAX_SNAPSHOT: u64 = 64 << 20;

/// Hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A symbolic link's target, exactly: UTF-8 text where it is, raw bytes
/// otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LinkTarget {
    /// A target that is valid UTF-8 (every real-world case).
    Text(String),
    /// Any other target, byte for byte.
    Bytes(Vec<u8>),
}

impl LinkTarget {
    pub(crate) fn from_path(p: PathBuf) -> Self {
        match p.into_os_string().into_string() {
            Ok(s) => Self::Text(s),
            Err(os) => Self::Bytes(os.into_vec()),
        }
    }

    /// The target as a path.
    pub fn to_path(&self) -> PathBuf {
        match self {
            Self::Text(s) => PathBuf::from(s),
            Self::Bytes(b) => PathBuf::from(OsString::from_vec(b.clone())),
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Text(s) => s.as_bytes(),
            Self::Bytes(b) => b,
        }
    }
}

impl std::fmt::Display for LinkTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_path().display())
    }
}

/// What a path held, exactly enough to put it back: a file's bytes are kept
/// apart (by their SHA-256) in the state directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Prior {
    /// Nothing was there.
    Absent,
    /// A regular file.
    File {
        sha256: String,
        len: u64,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// A symbolic link (the link itself, not what it points to).
    Symlink {
        target: LinkTarget,
        uid: u32,
        gid: u32,
    },
    /// A directory (its contents are not part of the snapshot).
    Dir { mode: u32, uid: u32, gid: u32 },
}

/// A snapshot: the prior state and, for a file, its bytes.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub prior: Prior,
    pub bytes: Option<Vec<u8>>,
}

/// Any other kind of file (socket, device...) is reported as an error.
pub(crate) fn snapshot(path: &Path) -> Result<Snapshot> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Snapshot {
                prior: Prior::Absent,
                bytes: None,
            })
        }
        Err(e) => return Err(SystemError::io("inspect", path, e)),
    };
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = fs::read_link(path).map_err(|e| SystemError::io("read link", path, e))?;
        return Ok(Snapshot {
            prior: Prior::Symlink {
                target: LinkTarget::from_path(target),
                uid: meta.uid(),
                gid: meta.gid(),
            },
            bytes: None,
        });
    }
    if ft.is_dir() {
        return Ok(Snapshot {
            prior: Prior::Dir {
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
            },
            bytes: None,
        });
    }
    if !ft.is_file() {
        return Err(SystemError::NotAFile { path: path.into() });
    }
    let bytes = read_bounded(path)?;
    Ok(Snapshot {
        prior: Prior::File {
            sha256: sha256_hex(&bytes),
            len: bytes.len() as u64,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
        },
        bytes: Some(bytes),
    })
}

/// The bytes of a regular file (following links), at most [`MAX_SNAPSHOT`];
/// `None` when there is no file.
pub(crate) fn read_file_opt(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::metadata(path) {
        Ok(m) if m.is_file() => read_bounded(path).map(Some),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SystemError::io("inspect", path, e)),
    }
}

fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|e| SystemError::io("open", path, e))?;
    let mut bytes = Vec::new();
    file.take(MAX_SNAPSHOT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| SystemError::io("read", path, e))?;
    if bytes.len() as u64 > MAX_SNAPSHOT {
        return Err(SystemError::io(
            "read",
            path,
            io::Error::other(format!("larger than {MAX_SNAPSHOT} bytes")),
        ));
    }
    Ok(bytes)
}

/// Truncates and rewrites an existing file, keeping its inode, mode and owner.
pub(crate) fn write_in_place(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| SystemError::io("open for writing in place", path, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| SystemError::io("write in place", path, e))
}

/// Appends to an existing file in place.
pub(crate) fn append_in_place(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| SystemError::io("open for appending", path, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| SystemError::io("append", path, e))
}

fn temp_sibling(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| SystemError::io("write", path, io::Error::other("path has no file name")))?;
    let mut tmp = OsString::from(".");
    tmp.push(name);
    tmp.push(".btrfly-tmp");
    Ok(path.with_file_name(tmp))
}

fn sync_parent(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| SystemError::io("sync directory", dir, e))?;
    }
    Ok(())
}

/// Atomically puts a regular file with `bytes`, `mode` (and owner, when
/// given) at `path`, replacing whatever entry is there (a symbolic link is
/// replaced, not followed).
pub(crate) fn replace_with_file(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<()> {
    let tmp = temp_sibling(path)?;
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| SystemError::io("create", &tmp, e))?;
        f.write_all(bytes)
            .and_then(|()| f.set_permissions(fs::Permissions::from_mode(mode)))
            .and_then(|()| f.sync_all())
            .map_err(|e| SystemError::io("write", &tmp, e))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&tmp, Some(uid), Some(gid))
                .map_err(|e| SystemError::io("change owner of", &tmp, e))?;
        }
        fs::rename(&tmp, path).map_err(|e| SystemError::io("rename into place", path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_parent(path)
}

/// Atomically puts a symbolic link to `target` at `path`, replacing whatever
/// entry is there.
pub(crate) fn replace_with_symlink(
    path: &Path,
    target: &LinkTarget,
    owner: Option<(u32, u32)>,
) -> Result<()> {
    let tmp = temp_sibling(path)?;
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        std::os::unix::fs::symlink(target.to_path(), &tmp)
            .map_err(|e| SystemError::io("create link", &tmp, e))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::lchown(&tmp, Some(uid), Some(gid))
                .map_err(|e| SystemError::io("change owner of", &tmp, e))?;
        }
        fs::rename(&tmp, path).map_err(|e| SystemError::io("rename into place", path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_parent(path)
}

/// What putting a path back did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PutBack {
    /// It already was as before.
    Unchanged,
    /// The file's bytes (or mode, owner) were rewritten in place.
    Rewritten,
    /// The entry was replaced (a file or link recreated).
    Recreated,
    /// The entry did not exist before and was removed.
    Removed,
    /// A directory that did not exist before still holds files someone
    /// else put there; it was left.
    LeftNonEmptyDir,
}

/// Puts `path` back to `prior` (`bytes`: the prior file's content).
/// Idempotent: a second call finds everything as before and returns
/// [`PutBack::Unchanged`].
pub(crate) fn put_back(path: &Path, prior: &Prior, bytes: Option<&[u8]>) -> Result<PutBack> {
    let now = fs::symlink_metadata(path);
    let now = match now {
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(SystemError::io("inspect", path, e)),
    };
    match prior {
        Prior::Absent => match now {
            None => Ok(PutBack::Unchanged),
            Some(m) if m.is_dir() => match fs::remove_dir(path) {
                Ok(()) => Ok(PutBack::Removed),
                Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => {
                    Ok(PutBack::LeftNonEmptyDir)
                }
                Err(e) => Err(SystemError::io("remove directory", path, e)),
            },
            Some(_) => {
                fs::remove_file(path).map_err(|e| SystemError::io("remove", path, e))?;
                sync_parent(path)?;
                Ok(PutBack::Removed)
            }
        },
        Prior::File {
            sha256,
            mode,
            uid,
            gid,
            ..
        } => {
            let bytes = bytes.ok_or_else(|| {
                SystemError::io(
                    "restore",
                    path,
                    io::Error::other(format!("prior bytes sha256 {sha256} missing")),
                )
            })?;
            match now {
                Some(m) if m.is_file() => {
                    let same_bytes = read_bounded(path)? == bytes;
                    let same_meta =
                        m.mode() & 0o7777 == *mode && m.uid() == *uid && m.gid() == *gid;
                    if same_bytes && same_meta {
                        return Ok(PutBack::Unchanged);
                    }
                    if !same_bytes {
                        // In place: the path may be a bind mount, which
                        // cannot be renamed over.
                        write_in_place(path, bytes)?;
                    }
                    if m.mode() & 0o7777 != *mode {
                        fs::set_permissions(path, fs::Permissions::from_mode(*mode))
                            .map_err(|e| SystemError::io("change mode of", path, e))?;
                    }
                    if m.uid() != *uid || m.gid() != *gid {
                        std::os::unix::fs::chown(path, Some(*uid), Some(*gid))
                            .map_err(|e| SystemError::io("change owner of", path, e))?;
                    }
                    Ok(PutBack::Rewritten)
                }
                Some(m) if m.is_dir() => Err(SystemError::NotAFile { path: path.into() }),
                _ => {
                    replace_with_file(path, bytes, *mode, Some((*uid, *gid)))?;
                    Ok(PutBack::Recreated)
                }
            }
        }
        Prior::Symlink { target, uid, gid } => {
            if let Some(m) = &now {
                if m.file_type().is_symlink() {
                    let current =
                        fs::read_link(path).map_err(|e| SystemError::io("read link", path, e))?;
                    if current.as_os_str().as_bytes() == target.as_bytes() {
                        if m.uid() != *uid || m.gid() != *gid {
                            std::os::unix::fs::lchown(path, Some(*uid), Some(*gid))
                                .map_err(|e| SystemError::io("change owner of", path, e))?;
                            return Ok(PutBack::Rewritten);
                        }
                        return Ok(PutBack::Unchanged);
                    }
                }
                if m.is_dir() {
                    return Err(SystemError::NotAFile { path: path.into() });
                }
            }
            replace_with_symlink(path, target, Some((*uid, *gid)))?;
            Ok(PutBack::Recreated)
        }
        Prior::Dir { mode, uid, gid } => match now {
            Some(m) if m.is_dir() => Ok(PutBack::Unchanged),
            Some(_) => Err(SystemError::io(
                "restore directory",
                path,
                io::Error::other("a non-directory is in its place"),
            )),
            None => {
                fs::create_dir(path).map_err(|e| SystemError::io("create directory", path, e))?;
                fs::set_permissions(path, fs::Permissions::from_mode(*mode))
                    .map_err(|e| SystemError::io("change mode of", path, e))?;
                std::os::unix::fs::chown(path, Some(*uid), Some(*gid))
                    .map_err(|e| SystemError::io("change owner of", path, e))?;
                Ok(PutBack::Recreated)
            }
        },
    }
}

/// The SHA-256 of what is at `path` now (following links), `None` when
/// there is no regular file.
pub(crate) fn current_sha256(path: &Path) -> Result<Option<String>> {
    Ok(read_file_opt(path)?.map(|b| sha256_hex(&b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_back_restores_file_link_and_absence_and_is_idempotent() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| SystemError::io("tempdir", "/tmp", e))?;
        let file = dir.path().join("f");
        fs::write(&file, b"before\n").map_err(|e| SystemError::io("write", &file, e))?;
        fs::set_permissions(&file, fs::Permissions::from_mode(0o640))
            .map_err(|e| SystemError::io("chmod", &file, e))?;
        let link = dir.path().join("l");
        std::os::unix::fs::symlink("../somewhere/else", &link)
            .map_err(|e| SystemError::io("symlink", &link, e))?;
        let none = dir.path().join("n");

        let snaps: Vec<(PathBuf, Snapshot)> = [&file, &link, &none]
            .iter()
            .map(|p| snapshot(p).map(|s| (p.to_path_buf(), s)))
            .collect::<Result<_>>()?;

        // Change all three.
        write_in_place(&file, b"after\n")?;
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600))
            .map_err(|e| SystemError::io("chmod", &file, e))?;
        replace_with_file(&link, b"now a file\n", 0o644, None)?;
        replace_with_file(&none, b"new\n", 0o644, None)?;

        for (p, s) in &snaps {
            assert_ne!(
                put_back(p, &s.prior, s.bytes.as_deref())?,
                PutBack::Unchanged
            );
        }
        for (p, s) in &snaps {
            assert_eq!(
                put_back(p, &s.prior, s.bytes.as_deref())?,
                PutBack::Unchanged
            );
            assert_eq!(snapshot(p)?.prior, s.prior, "{}", p.display());
        }
        assert_eq!(fs::read(&file).ok(), Some(b"before\n".to_vec()));
        assert_eq!(
            fs::read_link(&link).ok(),
            Some(PathBuf::from("../somewhere/else"))
        );
        assert!(!none.exists());
        Ok(())
    }

    #[test]
    fn non_utf8_link_targets_round_trip_through_json() {
        let t = LinkTarget::from_path(PathBuf::from(OsString::from_vec(vec![b'a', 0xff])));
        let json = serde_json::to_string(&t).unwrap_or_default();
        let back: Option<LinkTarget> = serde_json::from_str(&json).ok();
        assert_eq!(back, Some(t));
    }
}
