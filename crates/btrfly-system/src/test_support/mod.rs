//! Harnesses for tests that configure a machine (feature `test-support`;
//! not part of the library's normal API).
//!
//! * [`mount_ns`]: run a test body again in a private mount namespace
//!   (`unshare --mount --propagation private`, as root), where tmpfs,
//!   overlay and bind mounts over `/etc`, `/usr/local/share/ca-certificates`
//!   or `/var/lib` change nothing on the host.
//! * [`netns`]: network namespaces with loopback up, veth pairs between
//!   them, and a per-namespace `/etc/netns/NAME/resolv.conf` that
//!   `ip netns exec` bind-mounts over `/etc/resolv.conf`; everything is
//!   deleted on drop.
//! * [`tree`]: byte-for-byte pictures of directory trees, to compare a
//!   machine before apply and after restore.
//!
//! `mount_ns` and `netns` need root (the test suite runs as root) and fail
//! with a clear message otherwise.

pub mod mount_ns;
pub mod netns;
pub mod tree;

use std::process::Command;

/// Runs `cmd`, panicking with its output when it fails: for test set-up.
///
/// # Panics
/// When the command cannot start or exits unsuccessfully.
pub fn must(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
