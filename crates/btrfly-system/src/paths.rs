//! Where the machine keeps what this crate changes, relative to a
//! configurable root so that tests can work on a directory tree instead of
//! the host.

use std::path::{Path, PathBuf};

/// The file name btrfly's CA gets in the local CA directory.
pub const CA_FILE_NAME: &str = "btrfly-ca.crt";

/// The default state directory (root-only, mode 0700), relative to the root.
pub const STATE_DIR: &str = "var/lib/btrfly-client";

/// Every path this crate reads or changes.
///
/// [`SystemPaths::host`] is the running machine (root `/`);
/// [`SystemPaths::under`] the same layout below another directory. Fields are
/// public so that a caller (or a test) can point one of them elsewhere, e.g.
/// the state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemPaths {
    /// The root every default below is relative to (`/` for the host).
    pub root: PathBuf,
    /// The stub resolver's configuration, resolv.conf(5): `/etc/resolv.conf`.
    pub resolv_conf: PathBuf,
    /// The administrator's CA directory that `update-ca-certificates` reads
    /// (`*.crt`, PEM): `/usr/local/share/ca-certificates`.
    pub local_ca_dir: PathBuf,
    /// The distribution's CA directory: `/usr/share/ca-certificates`.
    pub distro_ca_dir: PathBuf,
    /// The list of distribution CAs to trust: `/etc/ca-certificates.conf`.
    pub ca_conf: PathBuf,
    /// The hashed directory of trusted certificates (OpenSSL's `CApath`):
    /// `/etc/ssl/certs`.
    pub certs_dir: PathBuf,
    /// The PEM bundle that curl, git, Python's `ssl` (and truststore) and Go
    /// read: `/etc/ssl/certs/ca-certificates.crt`. It must lie in
    /// `certs_dir`, where `update-ca-certificates` writes it.
    pub bundle: PathBuf,
    /// The hooks `update-ca-certificates` runs: `/etc/ca-certificates/update.d`.
    pub hooks_dir: PathBuf,
    /// Java's system keystore, kept by the ca-certificates-java hook:
    /// `/etc/ssl/certs/java/cacerts`.
    pub java_cacerts: PathBuf,
    /// NSS's system database (not changed, reported): `/etc/pki/nssdb`.
    pub nss_db: PathBuf,
    /// Runtime directory where resolver managers leave traces: `/run`.
    pub run_dir: PathBuf,
    /// Where the state file and the prior bytes live:
    /// `/var/lib/btrfly-client`.
    pub state_dir: PathBuf,
    /// The mount table of this process, proc(5) `mountinfo`. Not below the
    /// root: mounts are a property of the running process.
    pub mountinfo: PathBuf,
    /// Debian's `update-ca-certificates`, if the machine has it; `None`
    /// makes the bundle be edited directly (see the crate docs).
    pub update_ca_certificates: Option<PathBuf>,
}

impl SystemPaths {
    /// The running machine: root `/`, `update-ca-certificates` looked up in
    /// `/usr/sbin`, `/sbin`, `/usr/bin` and `/bin`.
    pub fn host() -> Self {
        Self::under("/")
    }

    /// The standard layout below `root`. `update-ca-certificates` is still
    /// the host's own program (it takes the directories as arguments when
    /// `root` is not `/`).
    pub fn under(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let at = |rel: &str| root.join(rel);
        Self {
            resolv_conf: at("etc/resolv.conf"),
            local_ca_dir: at("usr/local/share/ca-certificates"),
            distro_ca_dir: at("usr/share/ca-certificates"),
            ca_conf: at("etc/ca-certificates.conf"),
            certs_dir: at("etc/ssl/certs"),
            bundle: at("etc/ssl/certs/ca-certificates.crt"),
            hooks_dir: at("etc/ca-certificates/update.d"),
            java_cacerts: at("etc/ssl/certs/java/cacerts"),
            nss_db: at("etc/pki/nssdb"),
            run_dir: at("run"),
            state_dir: at(STATE_DIR),
            mountinfo: PathBuf::from("/proc/self/mountinfo"),
            update_ca_certificates: find_update_ca_certificates(),
            root,
        }
    }

    /// Whether this is the machine's own root (`/`).
    pub fn is_host_root(&self) -> bool {
        self.root == Path::new("/")
    }

    /// Where btrfly's CA is written for `update-ca-certificates`.
    pub fn ca_file(&self) -> PathBuf {
        self.local_ca_dir.join(CA_FILE_NAME)
    }

    /// The state file: `<state_dir>/state.json`.
    pub fn state_file(&self) -> PathBuf {
        self.state_dir.join("state.json")
    }
}

/// Where Debian installs `update-ca-certificates`; `None` when absent.
fn find_update_ca_certificates() -> Option<PathBuf> {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|dir| Path::new(dir).join("update-ca-certificates"))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_layout_is_the_debian_one() {
        let p = SystemPaths::host();
        assert_eq!(p.resolv_conf, Path::new("/etc/resolv.conf"));
        assert_eq!(
            p.local_ca_dir,
            Path::new("/usr/local/share/ca-certificates")
        );
        assert_eq!(p.bundle, Path::new("/etc/ssl/certs/ca-certificates.crt"));
        assert_eq!(
            p.state_file(),
            Path::new("/var/lib/btrfly-client/state.json")
        );
        assert_eq!(
            p.ca_file(),
            Path::new("/usr/local/share/ca-certificates/btrfly-ca.crt")
        );
        assert!(p.is_host_root());
    }

    #[test]
    fn under_a_root_every_path_but_mountinfo_moves() {
        let p = SystemPaths::under("/tmp/r");
        assert_eq!(p.resolv_conf, Path::new("/tmp/r/etc/resolv.conf"));
        assert_eq!(p.state_dir, Path::new("/tmp/r/var/lib/btrfly-client"));
        assert_eq!(p.mountinfo, Path::new("/proc/self/mountinfo"));
        assert!(!p.is_host_root());
    }
}
