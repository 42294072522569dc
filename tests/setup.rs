//! The README's run command on a machine set up as the README says: a
//! fresh Debian 12 with Rust from rustup and nothing else. `bash
//! tools/btrfly …` checks the build prerequisites (tools/prerequisites):
//! as root it installs what is missing, as a user without root or sudo
//! it names the packages and the command, and it never starts a build it
//! knows will fail.
//!
//! The machine is simulated with `env -i` (nothing inherited) and a PATH
//! of links to every program here except cmake and sudo, run in a user
//! namespace where the user is not root (uid 1000), so it cannot install.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use btrfly_test_support::*;

fn repo() -> PathBuf {
    repo_root()
}

/// A directory of links to every program on this PATH but `without`.
fn path_without(without: &[&str], dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let path = std::env::var_os("PATH").unwrap_or_default();
    for d in std::env::split_paths(&path) {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let link = bin.join(&name);
            if without.iter().any(|w| name == *w) || link.exists() {
                continue;
            }
            let _ = std::os::unix::fs::symlink(e.path(), &link);
        }
    }
    bin
}

/// `bash tools/btrfly --version` under `env -i` with this PATH, as uid
/// 1000 (not root, no sudo).
fn readme_command_as_user(path: &Path) -> std::process::Output {
    let home = std::env::var_os("HOME").unwrap_or_default();
    let mut cmd = Command::new("unshare");
    cmd.args(["--user", "--map-user=1000", "--map-group=1000", "env", "-i"])
        .arg(format!("HOME={}", Path::new(&home).display()))
        .arg(format!("PATH={}", path.display()))
        .args(["bash", "tools/btrfly", "--version"])
        .current_dir(repo());
    let out = run_timeout(&mut cmd, Duration::from_secs(60));
    assert!(
        !text(&out.stderr).starts_with("unshare:"),
        "this test runs the command as a non-root user in a user namespace \
         (unshare --user, util-linux 2.38+), which this machine refused: {}",
        text(&out.stderr)
    );
    out
}

#[test]
fn the_readme_run_command_names_what_a_fresh_machine_lacks() {
    let scratch = tempfile::tempdir().expect("scratch");
    let path = path_without(&["cmake", "sudo"], scratch.path());
    assert!(!path.join("cmake").exists() && path.join("cargo").exists());
    let out = readme_command_as_user(&path);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "tools/prerequisites: building btrfly needs cmake (pingora's zlib-ng is built with it), which is not installed.\n\
         tools/prerequisites: Install it as root, then run this again:\n\
         tools/prerequisites:   apt-get install -y --no-install-recommends cmake\n"
    );
    assert_eq!(text(&out.stdout), "", "no build was started");

    // No C toolchain either: both packages, in one command.
    let scratch = tempfile::tempdir().expect("scratch");
    let path = path_without(&["cmake", "sudo", "cc", "make"], scratch.path());
    let out = readme_command_as_user(&path);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).ends_with(
            "tools/prerequisites:   apt-get install -y --no-install-recommends build-essential cmake\n"
        ),
        "{}",
        text(&out.stderr)
    );

    // No Rust: rustup is the way, and nothing is installed for it.
    let scratch = tempfile::tempdir().expect("scratch");
    let path = path_without(&["cargo", "rustc", "sudo"], scratch.path());
    let out = readme_command_as_user(&path);
    assert_eq!(out.status.code(), Some(1));
    let minimum = std::fs::read_to_string(repo().join("Cargo.toml"))
        .expect("Cargo.toml")
        .lines()
        .find_map(|l| {
            l.strip_prefix("rust-version = \"")?
                .strip_suffix('"')
                .map(str::to_owned)
        })
        .expect("rust-version");
    assert!(
        text(&out.stderr).starts_with(&format!(
            "tools/prerequisites: building btrfly needs Rust {minimum} or newer, and cargo is not on PATH.\n"
        )),
        "{}",
        text(&out.stderr)
    );
}

/// With everything there, the same command builds and runs btrfly (in a
/// clean environment: nothing but HOME and PATH).
#[test]
fn the_readme_run_command_builds_and_runs_btrfly() {
    let home = std::env::var_os("HOME").unwrap_or_default();
    let mut cmd = Command::new("env");
    cmd.arg("-i")
        .arg(format!("HOME={}", Path::new(&home).display()))
        .arg(format!(
            "PATH={}",
            std::env::var("PATH").unwrap_or_default()
        ));
    // the build this test runs in, not a second one
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        cmd.arg(format!("CARGO_TARGET_DIR={}", Path::new(&dir).display()));
    }
    cmd.args(["bash", "tools/btrfly", "--version"])
        .current_dir(repo());
    let out = run_timeout(&mut cmd, Duration::from_secs(1200));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("btrfly {}\n", env!("CARGO_PKG_VERSION"))
    );
}
