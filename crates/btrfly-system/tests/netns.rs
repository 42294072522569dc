//! Smoke tests of the network-namespace harness (for the transparent-mode
//! end-to-end test), and of apply/restore under `ip netns exec`, where
//! /etc/resolv.conf is iproute2's bind mount of /etc/netns/NAME/resolv.conf.

use std::fs;
use std::io::Read;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use btrfly_system::test_support::netns::{link, Netns};
use btrfly_system::{Manager, Plan, ResolvConfKind, ResolverPlan, System, SystemPaths};

#[test]
fn namespaces_talk_over_their_veth_pair_and_see_their_resolv_conf() {
    let a = Netns::add("a");
    let b = Netns::add("b");
    let (ea, eb) = link(&a, "10.213.7.1/24", &b, "10.213.7.2/24");
    assert_eq!(ea.addr.to_string(), "10.213.7.1");

    // A one-shot TCP server in b, a client in a.
    let mut server = b
        .exec([
            "/usr/bin/python3",
            "-c",
            "import socket\ns = socket.create_server(('10.213.7.2', 8080))\nc, _ = s.accept()\nc.sendall(b'hello from b')\nc.close()",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let answer = loop {
        let out = a
            .exec(["bash", "-c", "exec 3<>/dev/tcp/10.213.7.2/8080 && cat <&3"])
            .output()
            .unwrap();
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no connection across the veth pair: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(answer, "hello from b");
    assert!(server.wait().unwrap().success());
    let mut rest = String::new();
    let _ = server
        .stdout
        .take()
        .map(|mut s| s.read_to_string(&mut rest));

    // a has no route anywhere but its own subnet.
    let routes = a.exec(["ip", "route"]).output().unwrap();
    let routes = String::from_utf8_lossy(&routes.stdout).into_owned();
    assert!(!routes.contains("default"), "{routes}");
    assert!(routes.contains("10.213.7.0/24"), "{routes}");
    assert_eq!(eb.addr.to_string(), "10.213.7.2");

    // ip netns exec shows /etc/netns/NAME/resolv.conf as /etc/resolv.conf.
    a.set_resolv_conf("nameserver 10.213.7.2\n");
    let seen = a.exec(["cat", "/etc/resolv.conf"]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&seen.stdout),
        "nameserver 10.213.7.2\n"
    );

    let name = a.name().to_string();
    drop(a);
    let list = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains(&name),
        "deleted on drop"
    );
    assert!(!PathBuf::from("/etc/netns").join(&name).exists());
}

const MODE: &str = "BTRFLY_TEST_NETNS_MODE";
const STATE: &str = "BTRFLY_TEST_NETNS_STATE";
const GATEWAY: &str = "10.213.8.1";

/// In the child (inside `ip netns exec`): apply or restore a resolver-only
/// plan on the machine's paths, with the state directory given.
fn child_step(mode: &str) {
    let mut paths = SystemPaths::host();
    paths.state_dir = PathBuf::from(std::env::var_os(STATE).expect("state directory"));
    let system = System::new(paths);
    match mode {
        "apply" => {
            let applied = system
                .apply(&Plan {
                    session: "netns client".into(),
                    resolver: Some(ResolverPlan {
                        nameservers: vec![GATEWAY.parse().expect("literal")],
                    }),
                    trust: None,
                })
                .expect("apply in the namespace");
            println!("{applied}");
            let r = applied.resolver.expect("test set-up");
            assert!(
                matches!(&r.before, ResolvConfKind::BindMount { source } if source.starts_with("/etc/netns/")),
                "{:?}",
                r.before
            );
            assert_eq!(
                r.manager,
                Manager::BindMount {
                    runtime: "ip netns exec".into()
                }
            );
        }
        _ => {
            let restored = system.restore().expect("restore");
            println!("{restored}");
            assert!(restored.was_applied());
        }
    }
}

#[test]
fn apply_under_ip_netns_exec_writes_the_namespace_file_in_place() {
    if let Ok(mode) = std::env::var(MODE) {
        child_step(&mode);
        return;
    }
    let host_resolv = fs::read("/etc/resolv.conf").unwrap();
    let ns = Netns::add("client");
    let prior = "# the namespace's resolver\nnameserver 10.213.8.53\nsearch example.test\n";
    let file = ns.set_resolv_conf(prior);
    let state = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let step = |mode: &str| {
        let out = ns
            .exec([exe.as_os_str()])
            .args([
                "--exact",
                "apply_under_ip_netns_exec_writes_the_namespace_file_in_place",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(MODE, mode)
            .env(STATE, state.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        print!("{stdout}");
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{mode} in the namespace: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };

    step("apply");
    let written = fs::read_to_string(&file).unwrap();
    assert!(
        written.contains(&format!("nameserver {GATEWAY}\n")),
        "{written}"
    );
    assert!(written.contains("search example.test\n"));
    assert_eq!(
        fs::read("/etc/resolv.conf").unwrap(),
        host_resolv,
        "the host's is untouched"
    );

    step("restore");
    assert_eq!(fs::read_to_string(&file).unwrap(), prior);
    assert_eq!(fs::read("/etc/resolv.conf").unwrap(), host_resolv);
}
