//! apply → restore on a Debian-like machine laid out below a temporary root,
//! with the real `update-ca-certificates` (given the root's directories).
//! Every test compares the whole tree before apply and after restore: file
//! bytes (SHA-256), modes, owners, symbolic link targets.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use btrfly_system::test_support::tree::assert_same;
use btrfly_system::{
    nameservers, Drift, Manager, Plan, ResolvConfKind, ResolverAction, ResolverPlan, RestoreAction,
    System, SystemError, TrustMethod, TrustPlan, MARKER,
};
use common::{bundle_verifies, plan, script, Machine, TestCa, PRIOR_RESOLV};

const GATEWAY: &str = "192.0.2.53";

#[test]
fn plain_file_apply_restore_byte_for_byte() {
    let m = Machine::new();
    let before = m.picture();
    let ca = TestCa::new("btrfly test CA");
    let (leaf, _) = ca.leaf("pkgs.example.test");
    assert!(
        !bundle_verifies(&m.paths.bundle, &leaf),
        "not trusted before"
    );
    let system = System::new(m.paths.clone());

    let applied = system.apply(&plan(&ca, &[GATEWAY])).unwrap();
    let text = applied.to_string();
    println!("{text}");

    // The resolver: btrfly's nameserver, the previous search line, same
    // inode mode (0640), nothing else of the old file.
    let resolv = fs::read_to_string(&m.paths.resolv_conf).unwrap();
    assert!(resolv.starts_with(MARKER), "{resolv}");
    assert_eq!(
        nameservers(resolv.as_bytes()),
        [GATEWAY.parse::<std::net::IpAddr>().unwrap()]
    );
    assert!(resolv.contains("search build.example.test\n"));
    assert!(!resolv.contains("ndots"));
    let mode = fs::metadata(&m.paths.resolv_conf)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o640);
    let r = applied.resolver.as_ref().unwrap();
    assert_eq!(r.before, ResolvConfKind::File);
    assert_eq!(r.action, ResolverAction::WroteInPlace);
    assert_eq!(r.manager, Manager::None);

    // The trust store: a client reading the bundle now accepts a leaf
    // minted by the CA; the derived store (the hook's) changed too.
    assert!(
        bundle_verifies(&m.paths.bundle, &leaf),
        "trusted after apply"
    );
    let t = applied.trust.as_ref().unwrap();
    assert!(matches!(t.method, TrustMethod::UpdateCaCertificates { .. }));
    assert!(t.changed.contains(&m.paths.bundle), "{:?}", t.changed);
    assert!(t.changed.contains(&m.paths.java_cacerts), "{:?}", t.changed);
    assert!(m.paths.certs_dir.join("btrfly-ca.pem").is_symlink());
    assert!(text.contains("nameserver 192.0.2.53"), "{text}");
    assert!(text.contains(&ca.ca().fingerprint()), "{text}");

    let status = system.status().unwrap();
    println!("{status}");
    assert_eq!(status.resolver.drift, Drift::AsWritten);
    assert!(status.resolver.written_by_btrfly);
    assert_eq!(status.trust.ca_in_bundle, Some(true));
    assert!(status.applied.as_ref().unwrap().complete);

    let restored = system.restore().unwrap();
    println!("{restored}");
    assert!(restored.was_applied());
    assert_same("the machine after restore", &before, &m.picture());
    assert!(
        !bundle_verifies(&m.paths.bundle, &leaf),
        "not trusted after restore"
    );
    // The hook's store was regenerated differently by --fresh; its prior
    // bytes came back.
    let java = restored
        .steps
        .iter()
        .find(|s| s.path == m.paths.java_cacerts)
        .unwrap();
    assert_eq!(java.action, RestoreAction::PriorBytesPutBack);

    let status = system.status().unwrap();
    assert!(status.applied.is_none());
    assert_eq!(status.resolver.drift, Drift::NotApplied);
    assert!(!status.resolver.written_by_btrfly);
    assert!(!status.trust.ca_file_present);

    // A second restore finds nothing to do, succeeds and changes nothing.
    let again = system.restore().unwrap();
    assert!(!again.was_applied());
    assert!(again.to_string().contains("nothing to restore"));
    assert_same("the machine after a second restore", &before, &m.picture());
}

#[test]
fn symlink_to_systemd_resolved_stub_is_replaced_and_put_back() {
    let m = Machine::new();
    let stub = m.root.join("run/systemd/resolve/stub-resolv.conf");
    common::write_mode(
        &stub,
        b"# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch corp.example.test\n",
        0o644,
    );
    fs::remove_file(&m.paths.resolv_conf).unwrap();
    std::os::unix::fs::symlink(
        "../run/systemd/resolve/stub-resolv.conf",
        &m.paths.resolv_conf,
    )
    .unwrap();
    let before = m.picture();
    let system = System::new(m.paths.clone());
    let ca = TestCa::new("btrfly test CA");

    let applied = system
        .apply(&plan(&ca, &[GATEWAY, "2001:db8::53"]))
        .unwrap();
    let r = applied.resolver.as_ref().unwrap();
    assert_eq!(r.manager, Manager::SystemdResolved);
    assert_eq!(
        r.action,
        ResolverAction::ReplacedLink {
            target: btrfly_system::LinkTarget::Text(
                "../run/systemd/resolve/stub-resolv.conf".into()
            )
        }
    );
    // The link itself was replaced; the daemon's file is untouched.
    assert!(!m.paths.resolv_conf.is_symlink());
    let text = fs::read_to_string(&m.paths.resolv_conf).unwrap();
    assert!(
        text.contains("nameserver 192.0.2.53\nnameserver 2001:db8::53\n"),
        "{text}"
    );
    assert!(
        text.contains("search corp.example.test"),
        "search kept from the stub: {text}"
    );
    assert!(fs::read_to_string(&stub).unwrap().contains("127.0.0.53"));
    assert!(applied.to_string().contains("systemd-resolved"));

    system.restore().unwrap();
    assert_eq!(
        fs::read_link(&m.paths.resolv_conf).unwrap(),
        PathBuf::from("../run/systemd/resolve/stub-resolv.conf")
    );
    assert_same("the machine after restore", &before, &m.picture());
}

#[test]
fn missing_update_ca_certificates_appends_to_the_bundle_in_place() {
    let m = Machine::new();
    // A bundle whose last line has no newline: the CA must start on a line
    // of its own.
    let mut bundle = fs::read(&m.paths.bundle).unwrap();
    while bundle.last() == Some(&b'\n') {
        bundle.pop();
    }
    fs::write(&m.paths.bundle, &bundle).unwrap();
    let before = m.picture();
    let mut paths = m.paths.clone();
    paths.update_ca_certificates = None;
    let system = System::new(paths);
    let ca = TestCa::new("btrfly test CA");
    let (leaf, _) = ca.leaf("pkgs.example.test");

    let applied = system.apply(&plan(&ca, &[GATEWAY])).unwrap();
    let t = applied.trust.as_ref().unwrap();
    assert_eq!(t.method, TrustMethod::Bundle);
    assert!(applied.to_string().contains("no update-ca-certificates"));
    assert!(bundle_verifies(&m.paths.bundle, &leaf));
    // Only the bundle changed in the trust store: no CA file, no links.
    assert!(!m.paths.ca_file().exists());
    assert!(!m.paths.certs_dir.join("btrfly-ca.pem").exists());

    system.restore().unwrap();
    assert_same("the machine after restore", &before, &m.picture());
    assert!(!bundle_verifies(&m.paths.bundle, &leaf));
}

#[test]
fn missing_tool_and_bundle_creates_the_bundle_then_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    common::write_mode(
        &root.join("etc/resolv.conf"),
        PRIOR_RESOLV.as_bytes(),
        0o644,
    );
    fs::create_dir_all(root.join("var/lib")).unwrap();
    let mut paths = btrfly_system::SystemPaths::under(root);
    paths.update_ca_certificates = None;
    let before = btrfly_system::test_support::tree::picture(root, &[&paths.state_dir]);
    let system = System::new(paths.clone());
    let ca = TestCa::new("btrfly test CA");

    system.apply(&plan(&ca, &[GATEWAY])).unwrap();
    let bundle = fs::read_to_string(&paths.bundle).unwrap();
    assert_eq!(bundle, ca.ca().to_pem());
    system.restore().unwrap();
    assert!(
        !root.join("etc/ssl").exists(),
        "directories it created are gone"
    );
    assert_same(
        "the machine after restore",
        &before,
        &btrfly_system::test_support::tree::picture(root, &[&paths.state_dir]),
    );
}

/// Runs this test binary again, filtered to `test`, with `env` set; returns
/// the child's exit status.
fn child(test: &str, env: &[(&str, &Path)]) -> std::process::ExitStatus {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.status().expect("run the child test")
}

const CHILD_ROOT: &str = "BTRFLY_TEST_CHILD_ROOT";
const CHILD_TOOL: &str = "BTRFLY_TEST_CHILD_TOOL";

/// In a child process: apply on the given root (with the given tool), then
/// exit without restoring, as a crash would.
fn apply_in_child_then_die() {
    let root = PathBuf::from(std::env::var_os(CHILD_ROOT).expect("child root"));
    let mut paths = btrfly_system::SystemPaths::under(&root);
    paths.update_ca_certificates = std::env::var_os(CHILD_TOOL).map(PathBuf::from);
    let ca = TestCa::new("btrfly crashed session CA");
    let _ = System::new(paths).apply(&plan(&ca, &[GATEWAY]));
    // Still alive (the tool did not kill us): die without restoring.
    std::process::abort();
}

#[test]
fn crash_during_apply_then_restore() {
    if std::env::var_os(CHILD_ROOT).is_some() {
        apply_in_child_then_die();
    }
    let m = Machine::new();
    let before = m.picture();
    // The real tool runs, then the process running apply is killed: the
    // CA is installed, resolv.conf not yet changed.
    let scripts = tempfile::tempdir().unwrap();
    let killer = scripts.path().join("killer");
    script(
        &killer,
        &format!(
            "{} \"$@\" || exit $?\nkill -9 $PPID\nsleep 10",
            common::UPDATE_CA_CERTIFICATES
        ),
    );
    let status = child(
        "crash_during_apply_then_restore",
        &[(CHILD_ROOT, &m.root), (CHILD_TOOL, &killer)],
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "the child was killed: {status:?}");

    let system = System::new(m.paths.clone());
    let st = system.status().unwrap();
    println!("{st}");
    let applied = st.applied.as_ref().expect("a state file was left behind");
    assert!(!applied.complete);
    assert_eq!(st.trust.ca_in_bundle, Some(true));
    assert!(st.to_string().contains("apply did not finish"));
    // It crashed before it got to resolv.conf.
    assert_eq!(st.resolver.drift, Drift::NotApplied);
    assert_eq!(
        fs::read_to_string(&m.paths.resolv_conf).unwrap(),
        PRIOR_RESOLV
    );
    // A new apply refuses until the crashed one is restored.
    let err = system
        .apply(&plan(&TestCa::new("next"), &[GATEWAY]))
        .unwrap_err();
    assert!(matches!(err, SystemError::AlreadyApplied { .. }), "{err}");

    system.restore().unwrap();
    assert_same("the machine after restoring a crash", &before, &m.picture());
    assert!(!system.restore().unwrap().was_applied());
}

#[test]
fn crash_after_apply_then_restore() {
    if std::env::var_os(CHILD_ROOT).is_some() {
        apply_in_child_then_die();
    }
    let m = Machine::new();
    let before = m.picture();
    let status = child(
        "crash_after_apply_then_restore",
        &[
            (CHILD_ROOT, &m.root),
            (CHILD_TOOL, Path::new(common::UPDATE_CA_CERTIFICATES)),
        ],
    );
    assert!(!status.success());
    let system = System::new(m.paths.clone());
    let st = system.status().unwrap();
    assert!(st.applied.as_ref().unwrap().complete);
    assert_eq!(st.resolver.drift, Drift::AsWritten);

    let restored = system.restore().unwrap();
    assert_eq!(restored.session.as_deref(), Some("record tag=t1 (test)"));
    assert_same("the machine after restoring a crash", &before, &m.picture());
}

#[test]
fn failing_tool_rolls_back_everything() {
    let m = Machine::new();
    let before = m.picture();
    // The real tool does its work, then reports failure.
    let scripts = tempfile::tempdir().unwrap();
    let failing = scripts.path().join("failing");
    script(
        &failing,
        &format!(
            "{} \"$@\" || exit $?\necho 'E: something broke' >&2\nexit 1",
            common::UPDATE_CA_CERTIFICATES
        ),
    );
    let mut paths = m.paths.clone();
    paths.update_ca_certificates = Some(failing.clone());
    let system = System::new(paths);

    let err = system
        .apply(&plan(&TestCa::new("btrfly test CA"), &[GATEWAY]))
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SystemError::RolledBack { .. }), "{text}");
    assert!(
        text.contains("something broke") && text.contains("restored"),
        "{text}"
    );
    assert!(!m.paths.state_file().exists());
    // The failing tool also ran for the rollback (and failed): the prior
    // bytes were put back regardless.
    assert_same("the machine after a failed apply", &before, &m.picture());
}

#[test]
fn tool_that_leaves_the_ca_out_of_the_bundle_rolls_back() {
    let m = Machine::new();
    let before = m.picture();
    let mut paths = m.paths.clone();
    paths.update_ca_certificates = Some(PathBuf::from("/bin/true"));
    let err = System::new(paths)
        .apply(&plan(&TestCa::new("btrfly test CA"), &[GATEWAY]))
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("does not contain btrfly's CA"), "{text}");
    assert!(matches!(err, SystemError::RolledBack { .. }));
    assert_same("the machine after a failed apply", &before, &m.picture());
}

#[test]
fn second_apply_is_refused_and_changes_nothing() {
    let m = Machine::new();
    let system = System::new(m.paths.clone());
    system
        .apply(&plan(&TestCa::new("first"), &[GATEWAY]))
        .unwrap();
    let applied = m.picture();
    let err = system
        .apply(&plan(&TestCa::new("second"), &["192.0.2.54"]))
        .unwrap_err();
    assert!(err.to_string().contains("record tag=t1"), "{err}");
    assert_same("the machine after a refused apply", &applied, &m.picture());
    system.restore().unwrap();
}

#[test]
fn resolv_conf_rewritten_by_a_manager_shows_as_drift_and_is_saved() {
    let m = Machine::new();
    let before = m.picture();
    let system = System::new(m.paths.clone());
    system
        .apply(&plan(&TestCa::new("btrfly test CA"), &[GATEWAY]))
        .unwrap();
    // NetworkManager's next DHCP lease, say.
    let theirs = "# Generated by NetworkManager\nnameserver 10.9.9.9\n";
    fs::write(&m.paths.resolv_conf, theirs).unwrap();
    let st = system.status().unwrap();
    assert_eq!(
        st.resolver.drift,
        Drift::Changed {
            still_points_at_btrfly: false
        }
    );
    assert!(
        st.to_string().contains("no longer points at btrfly"),
        "{st}"
    );

    let restored = system.restore().unwrap();
    let step = &restored.steps[0];
    let note = step.note.as_deref().unwrap();
    assert!(note.contains("changed after apply"), "{note}");
    let saved: PathBuf = note.rsplit(' ').next().unwrap().into();
    assert_eq!(fs::read_to_string(saved).unwrap(), theirs);
    assert_same("the machine after restore", &before, &m.picture());
}

#[test]
fn bundle_regenerated_by_someone_else_keeps_the_newer_store() {
    let m = Machine::new();
    let system = System::new(m.paths.clone());
    let ca = TestCa::new("btrfly test CA");
    let (leaf, _) = ca.leaf("pkgs.example.test");
    system.apply(&plan(&ca, &[GATEWAY])).unwrap();
    // A package update adds a distribution CA and regenerates the store
    // while the session runs.
    let newcomer = TestCa::new("Example Distribution Root 4");
    fs::write(
        m.paths.distro_ca_dir.join("example/distro-4.crt"),
        newcomer.pem(),
    )
    .unwrap();
    let mut conf = fs::read_to_string(&m.paths.ca_conf).unwrap();
    conf.push_str("example/distro-4.crt\n");
    fs::write(&m.paths.ca_conf, conf).unwrap();
    m.run_tool(&[]);
    let (newcomer_leaf, _) = newcomer.leaf("new.example.test");

    let restored = system.restore().unwrap();
    println!("{restored}");
    let bundle_step = restored
        .steps
        .iter()
        .find(|s| s.path == m.paths.bundle)
        .unwrap();
    assert_eq!(bundle_step.action, RestoreAction::KeptNewer);
    assert!(
        !bundle_verifies(&m.paths.bundle, &leaf),
        "btrfly's CA is gone"
    );
    assert!(
        bundle_verifies(&m.paths.bundle, &newcomer_leaf),
        "the update stays"
    );
    assert_eq!(
        fs::read_to_string(&m.paths.resolv_conf).unwrap(),
        PRIOR_RESOLV
    );
}

#[test]
fn partial_plans_touch_only_their_part() {
    let m = Machine::new();
    let before = m.picture();
    let system = System::new(m.paths.clone());
    let ca = TestCa::new("btrfly test CA");

    let trust_only = Plan {
        session: "trust only".into(),
        resolver: None,
        trust: Some(TrustPlan { ca: ca.ca() }),
    };
    let applied = system.apply(&trust_only).unwrap();
    assert!(applied.resolver.is_none());
    assert_eq!(
        fs::read_to_string(&m.paths.resolv_conf).unwrap(),
        PRIOR_RESOLV
    );
    system.restore().unwrap();
    assert_same("after trust only", &before, &m.picture());

    let resolver_only = Plan {
        session: "resolver only".into(),
        resolver: Some(ResolverPlan {
            nameservers: vec![GATEWAY.parse().unwrap()],
        }),
        trust: None,
    };
    let bundle = fs::read(&m.paths.bundle).unwrap();
    system.apply(&resolver_only).unwrap();
    assert_eq!(fs::read(&m.paths.bundle).unwrap(), bundle);
    system.restore().unwrap();
    assert_same("after resolver only", &before, &m.picture());
}

#[test]
fn invalid_plans_are_refused_before_anything_is_looked_at() {
    let m = Machine::new();
    let before = m.picture();
    let system = System::new(m.paths.clone());
    let ca = TestCa::new("btrfly test CA");
    for (ns, want) in [
        (vec![], "0 nameservers"),
        (
            vec!["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"],
            "4 nameservers",
        ),
        (vec!["192.0.2.1", "192.0.2.1"], "listed twice"),
        (vec!["0.0.0.0"], "not a unicast"),
    ] {
        let err = system.apply(&plan(&ca, &ns)).unwrap_err();
        assert!(err.to_string().contains(want), "{err}");
    }
    let empty = Plan {
        session: "nothing".into(),
        resolver: None,
        trust: None,
    };
    assert!(system
        .apply(&empty)
        .unwrap_err()
        .to_string()
        .contains("neither"));
    // A resolv.conf that is a directory is refused before any change.
    fs::remove_file(&m.paths.resolv_conf).unwrap();
    fs::create_dir(&m.paths.resolv_conf).unwrap();
    let before_dir = m.picture();
    let err = system.apply(&plan(&ca, &[GATEWAY])).unwrap_err();
    assert!(matches!(err, SystemError::NotAFile { .. }), "{err}");
    assert!(!m.paths.state_file().exists());
    assert_same("after a refused apply", &before_dir, &m.picture());
    drop(before);
}
