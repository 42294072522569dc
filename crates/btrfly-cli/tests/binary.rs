//! The binary this package builds, as a user first meets it: `--version`
//! and `--help`. (Its behaviour is tested end to end by the btrfly-e2e
//! package in `tests/`, which runs this same binary: having an integration
//! test here makes every `cargo test` of the workspace build it.)

use std::process::Command;

#[test]
fn version_and_help_name_the_commands() {
    let bin = env!("CARGO_BIN_EXE_btrfly");
    let out = Command::new(bin)
        .arg("--version")
        .output()
        .expect("run btrfly");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("btrfly {}\n", env!("CARGO_PKG_VERSION"))
    );
    let out = Command::new(bin)
        .arg("--help")
        .output()
        .expect("run btrfly");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for command in ["serve", "start", "stop", "run", "tags", "tag", "ca"] {
        assert!(help.contains(command), "{command} in\n{help}");
    }
}
