//! Running a test body in a private mount namespace.
//!
//! ```no_run
//! use btrfly_system::test_support::mount_ns::{self, PrivateMounts};
//!
//! #[test]
//! fn changes_etc_safely() {
//!     let Some(ns) = PrivateMounts::enter("changes_etc_safely") else {
//!         return; // the parent: the body ran (and passed) in the child
//!     };
//!     ns.overlay("/etc"); // from here on /etc is a private copy-on-write view
//!     // ...
//! }
//! ```
//!
//! The parent re-executes the current test binary under
//! `unshare --mount --propagation private`, filtered to the one test
//! (`--exact NAME`), with an environment variable that tells the child it
//! is inside. Mounts made there vanish with the child; writes under a
//! mount made with [`PrivateMounts::overlay`] or [`PrivateMounts::tmpfs`]
//! land in a tmpfs, never on the host's disk.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::must;

/// The environment variable naming the test that runs inside.
pub const INSIDE_ENV: &str = "BTRFLY_TEST_MOUNT_NS";
/// The environment variable holding the scratch directory.
pub const SCRATCH_ENV: &str = "BTRFLY_TEST_MOUNT_NS_SCRATCH";

/// How long the child test may run.
const DEADLINE: Duration = Duration::from_secs(300);

/// Inside the namespace: a scratch tmpfs and helpers to mount over host
/// paths.
#[derive(Debug)]
pub struct PrivateMounts {
    scratch: PathBuf,
    n: std::cell::Cell<u32>,
}

impl PrivateMounts {
    /// In the parent: runs the test `test_name` again in a private mount
    /// namespace, panics if it failed, and returns `None`. In the child:
    /// mounts a tmpfs on the scratch directory and returns the handle.
    ///
    /// # Panics
    /// In the parent when `unshare` cannot run (not root) or the child
    /// test fails or runs past 300 s.
    pub fn enter(test_name: &str) -> Option<Self> {
        if std::env::var(INSIDE_ENV).as_deref() == Ok(test_name) {
            let scratch = PathBuf::from(
                std::env::var_os(SCRATCH_ENV).unwrap_or_else(|| panic!("{SCRATCH_ENV} not set")),
            );
            must(
                Command::new("mount")
                    .args(["-t", "tmpfs", "btrfly-test"])
                    .arg(&scratch),
            );
            return Some(Self {
                scratch,
                n: std::cell::Cell::new(0),
            });
        }
        let scratch = tempfile::Builder::new()
            .prefix("btrfly-mount-ns-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a scratch directory: {e}"));
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
        let mut child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--"])
            .arg(exe)
            .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
            .env(INSIDE_ENV, test_name)
            .env(SCRATCH_ENV, scratch.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run unshare (needs root): {e}"));
        let started = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if started.elapsed() > DEADLINE => {
                    let _ = child.kill();
                    panic!("{test_name} in a private mount namespace ran past {DEADLINE:?}");
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => panic!("waiting for the child test: {e}"),
            }
        }
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("child output: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        print!("{stdout}");
        eprint!("{stderr}");
        assert!(
            out.status.success(),
            "{test_name} failed in its private mount namespace ({})",
            out.status
        );
        // The filter must have matched exactly one test, or nothing ran.
        assert!(
            stdout.contains("1 passed"),
            "{test_name}: the child ran no test (wrong name?)"
        );
        None
    }

    /// The scratch directory (a tmpfs private to this namespace).
    pub fn scratch(&self) -> &Path {
        &self.scratch
    }

    fn fresh(&self, what: &str) -> PathBuf {
        let n = self.n.get() + 1;
        self.n.set(n);
        let p = self.scratch.join(format!("{what}-{n}"));
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        p
    }

    /// Mounts a writable overlay over the directory `dir`: it shows what
    /// the host has, and every change lands in the scratch tmpfs.
    pub fn overlay(&self, dir: impl AsRef<Path>) {
        let dir = dir.as_ref();
        let base = self.fresh("overlay");
        let (upper, work) = (base.join("upper"), base.join("work"));
        for d in [&upper, &work] {
            std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        }
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            dir.display(),
            upper.display(),
            work.display()
        );
        must(
            Command::new("mount")
                .args(["-t", "overlay", "overlay", "-o", &opts])
                .arg(dir),
        );
    }

    /// Mounts an empty tmpfs over the directory `dir`.
    pub fn tmpfs(&self, dir: impl AsRef<Path>) {
        must(
            Command::new("mount")
                .args(["-t", "tmpfs", "btrfly-test"])
                .arg(dir.as_ref()),
        );
    }

    /// Bind-mounts `src` over `dst` (a file over a file, as container
    /// runtimes do with `/etc/resolv.conf`).
    pub fn bind(&self, src: impl AsRef<Path>, dst: impl AsRef<Path>) {
        must(
            Command::new("mount")
                .arg("--bind")
                .arg(src.as_ref())
                .arg(dst.as_ref()),
        );
    }

    /// Remounts an existing mount read-only.
    pub fn read_only(&self, mount_point: impl AsRef<Path>) {
        must(
            Command::new("mount")
                .args(["-o", "remount,ro,bind"])
                .arg(mount_point.as_ref()),
        );
    }
}
