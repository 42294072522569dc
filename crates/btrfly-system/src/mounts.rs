//! Is a path a mount point? Read from proc(5) `/proc/self/mountinfo`.
//!
//! A container runtime (Docker, Podman) and `ip netns exec` bind-mount a
//! file of their own over `/etc/resolv.conf`. Such a file must be written in
//! place: rename(2) over a mount point fails with `EBUSY`, and writing
//! through keeps the runtime's file the one in use.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Result, SystemError};

/// One line of `mountinfo` that matters here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Field 4: the path, inside the mounted file system, that is mounted
    /// here (for a bind mount of a file: that file's own path, e.g.
    /// `/etc/netns/client/resolv.conf` or
    /// `/var/lib/docker/containers/ID/resolv.conf`).
    pub root: String,
    /// Field 5: where it is mounted.
    pub mount_point: PathBuf,
    /// The file-system type (after the ` - ` separator).
    pub fs_type: String,
    /// The mount source (after the file-system type).
    pub source: String,
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\011`, `\012`,
/// `\134`).
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c));
        if octal {
            let v = u32::from(b[i + 1] - b'0') * 64
                + u32::from(b[i + 2] - b'0') * 8
                + u32::from(b[i + 3] - b'0');
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `mountinfo` text (proc(5)): `ID PARENT MAJ:MIN ROOT MOUNTPOINT
/// OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS`. Malformed lines are
/// skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fields: Vec<&str> = left.split(' ').collect();
            if fields.len() < 6 {
                return None;
            }
            let mut right = right.split(' ');
            let fs_type = right.next()?.to_string();
            let source = right.next().map(unescape).unwrap_or_default();
            Some(Mount {
                root: unescape(fields[3]),
                mount_point: PathBuf::from(unescape(fields[4])),
                fs_type,
                source,
            })
        })
        .collect()
}

/// The mount whose mount point is `path` itself (the last one, as the
/// kernel stacks them), `None` when `path` is not a mount point.
///
/// `path` is compared after resolving its directory (not its last
/// component: a symbolic link at `path` is looked at as the link).
///
/// # Errors
/// [`SystemError::Io`] when `mountinfo` cannot be read.
pub fn mount_at(mountinfo: &Path, path: &Path) -> Result<Option<Mount>> {
    let text = fs::read_to_string(mountinfo).map_err(|e| SystemError::io("read", mountinfo, e))?;
    let absolute = match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => match fs::canonicalize(dir) {
            Ok(dir) => dir.join(name),
            Err(_) => path.to_path_buf(),
        },
        _ => path.to_path_buf(),
    };
    Ok(parse_mountinfo(&text)
        .into_iter()
        .rev()
        .find(|m| m.mount_point == absolute))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
36 27 0:40 / /tmp/with\\040space rw - tmpfs tmpfs rw
612 27 254:0 /etc/netns/client/resolv.conf /etc/resolv.conf rw,relatime shared:1 - ext4 /dev/vda rw
613 27 0:55 /docker/containers/abc/resolv.conf /etc/hosts rw master:2 - ext4 /dev/sda1 rw
garbage line
";

    #[test]
    fn parses_bind_mounts_optional_fields_and_escapes() {
        let m = parse_mountinfo(SAMPLE);
        assert_eq!(m.len(), 4);
        assert_eq!(m[1].mount_point, Path::new("/tmp/with space"));
        assert_eq!(m[2].root, "/etc/netns/client/resolv.conf");
        assert_eq!(m[2].mount_point, Path::new("/etc/resolv.conf"));
        assert_eq!(m[2].fs_type, "ext4");
        assert_eq!(m[3].source, "/dev/sda1");
    }

    #[test]
    fn a_plain_directory_is_not_a_mount_point() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| SystemError::io("tempdir", "/tmp", e))?;
        assert_eq!(
            mount_at(Path::new("/proc/self/mountinfo"), &dir.path().join("x"))?,
            None
        );
        // `/` is always one.
        let root = mount_at(Path::new("/proc/self/mountinfo"), Path::new("/"))?;
        assert!(root.is_some() || !Path::new("/proc/self/mountinfo").exists());
        Ok(())
    }
}
