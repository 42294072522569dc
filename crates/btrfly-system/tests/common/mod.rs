//! Shared by this crate's tests: test CAs, a machine laid out below a
//! temporary root, and client-side checks.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use btrfly_system::test_support::tree::{self, Tree};
use btrfly_system::{CaCertificate, Plan, ResolverPlan, SystemPaths, TrustPlan};

/// Debian's program, which the tests run for real.
pub const UPDATE_CA_CERTIFICATES: &str = "/usr/sbin/update-ca-certificates";

/// A CA that can sign leaves.
pub struct TestCa {
    pub cert: rcgen::Certificate,
    pub key: rcgen::KeyPair,
    pub issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub fn new(cn: &str) -> Self {
        let key = rcgen::KeyPair::generate().expect("generate CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).expect("self-sign CA");
        let issuer_key = rcgen::KeyPair::from_pem(&key.serialize_pem()).expect("reload CA key");
        let issuer = rcgen::Issuer::new(params, issuer_key);
        Self { cert, key, issuer }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    pub fn ca(&self) -> CaCertificate {
        CaCertificate::from_pem(&self.pem()).expect("parse the test CA")
    }

    /// A leaf for `name` (PEM cert, PEM key).
    pub fn leaf(&self, name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("generate leaf key");
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).expect("leaf params");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        (cert.pem(), key.serialize_pem())
    }
}

/// `openssl verify -CAfile bundle leaf`: what a client using the bundle
/// decides about a certificate btrfly minted.
pub fn bundle_verifies(bundle: &Path, leaf_pem: &str) -> bool {
    let dir = tempfile::tempdir().expect("tempdir");
    let leaf = dir.path().join("leaf.pem");
    fs::write(&leaf, leaf_pem).expect("write leaf");
    Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(bundle)
        .arg(&leaf)
        .output()
        .expect("run openssl verify")
        .status
        .success()
}

pub fn write_mode(path: &Path, bytes: &[u8], mode: u32) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).expect("create parent directory");
    }
    fs::write(path, bytes).expect("write file");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("set mode");
}

pub fn script(path: &Path, body: &str) {
    write_mode(path, format!("#!/bin/sh\n{body}\n").as_bytes(), 0o755);
}

/// A Debian-like machine below a temporary root: three distribution CAs
/// listed in `etc/ca-certificates.conf`, `etc/ssl/certs` built by the
/// real `update-ca-certificates`, a hook that keeps a derived store (as
/// ca-certificates-java does with Java's keystore) and a plain
/// `etc/resolv.conf` (mode 0640, with a search line).
pub struct Machine {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub paths: SystemPaths,
}

pub const PRIOR_RESOLV: &str =
    "# the site's resolver\nnameserver 10.255.0.53\nsearch build.example.test\noptions ndots:2\n";

impl Machine {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("btrfly-system-root-")
            .tempdir()
            .expect("tempdir");
        let root = dir.path().to_path_buf();
        let mut paths = SystemPaths::under(&root);
        paths.update_ca_certificates = Some(PathBuf::from(UPDATE_CA_CERTIFICATES));
        for d in [
            &paths.certs_dir,
            &paths.local_ca_dir,
            &paths.hooks_dir,
            &paths.run_dir,
            &root.join("var/lib"),
            &root.join("usr/share/ca-certificates/example"),
        ] {
            fs::create_dir_all(d).expect("create_dir_all");
        }
        let mut conf = String::from("# distribution CAs\n");
        for i in 1..=3 {
            let ca = TestCa::new(&format!("Example Distribution Root {i}"));
            let rel = format!("example/distro-{i}.crt");
            fs::write(paths.distro_ca_dir.join(&rel), ca.pem()).expect("write distribution CA");
            conf.push_str(&rel);
            conf.push('\n');
        }
        fs::write(&paths.ca_conf, conf).expect("write ca-certificates.conf");
        let keystore = paths.java_cacerts.clone();
        script(
            &paths.hooks_dir.join("keystore"),
            &format!(
                "mkdir -p {dir}\ncat >> {ks}",
                dir = keystore.parent().expect("parent").display(),
                ks = keystore.display()
            ),
        );
        write_mode(&paths.resolv_conf, PRIOR_RESOLV.as_bytes(), 0o640);
        let m = Self { dir, root, paths };
        m.run_tool(&["--fresh"]);
        assert!(m.paths.bundle.is_file(), "the fixture has a bundle");
        m
    }

    /// Runs the real tool on this root, as a package update would.
    pub fn run_tool(&self, extra: &[&str]) {
        let p = &self.paths;
        let out = Command::new(UPDATE_CA_CERTIFICATES)
            .args(extra)
            .arg("--certsconf")
            .arg(&p.ca_conf)
            .arg("--certsdir")
            .arg(&p.distro_ca_dir)
            .arg("--localcertsdir")
            .arg(&p.local_ca_dir)
            .arg("--etccertsdir")
            .arg(&p.certs_dir)
            .arg("--hooksdir")
            .arg(&p.hooks_dir)
            .output()
            .expect("run update-ca-certificates");
        assert!(
            out.status.success(),
            "update-ca-certificates: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The whole machine, but the state directory.
    pub fn picture(&self) -> Tree {
        tree::picture(&self.root, &[&self.paths.state_dir])
    }
}

pub fn plan(ca: &TestCa, ns: &[&str]) -> Plan {
    Plan {
        session: "record tag=t1 (test)".into(),
        resolver: Some(ResolverPlan {
            nameservers: ns
                .iter()
                .map(|s| s.parse().expect("nameserver literal"))
                .collect(),
        }),
        trust: Some(TrustPlan { ca: ca.ca() }),
    }
}
