use super::*;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::ServerName;
use rustls::RootCertStore;

fn verify(ca: &CertificateAuthority, name: &str) -> Result<(), String> {
    let leaf = ca.leaf(name).map_err(|e| e.to_string())?;
    let mut roots = RootCertStore::empty();
    roots
        .add(ca.cert_der().clone())
        .map_err(|e| e.to_string())?;
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        crypto_provider(),
    )
    .build()
    .map_err(|e| e.to_string())?;
    let server_name = ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    verifier
        .verify_server_cert(
            &leaf.cert[0],
            &[],
            &server_name,
            &[],
            rustls::pki_types::UnixTime::now(),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn created_once_then_loaded_with_a_private_key_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = CertificateAuthority::load_or_create(dir.path()).expect("create");
    let b = CertificateAuthority::load_or_create(dir.path()).expect("load");
    assert_eq!(a.cert_pem(), b.cert_pem(), "second start must reuse the CA");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join("ca-key.pem"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(a.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
}

#[test]
fn leaves_verify_for_names_and_ips_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = CertificateAuthority::load_or_create(dir.path()).expect("ca");
    verify(&ca, "files.example.test").expect("dns name");
    verify(&ca, "127.0.0.1").expect("ipv4");
    verify(&ca, "::1").expect("ipv6");
    // a leaf for one name is not valid for another
    let leaf = ca.leaf("a.example.test").expect("leaf");
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert_der().clone()).expect("root");
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        crypto_provider(),
    )
    .build()
    .expect("verifier");
    let wrong = ServerName::try_from("b.example.test").expect("name");
    assert!(verifier
        .verify_server_cert(
            &leaf.cert[0],
            &[],
            &wrong,
            &[],
            rustls::pki_types::UnixTime::now()
        )
        .is_err());
}

#[test]
fn leaves_are_cached_and_keys_are_distinct() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = CertificateAuthority::load_or_create(dir.path()).expect("ca");
    let a1 = ca.leaf("a.example.test").expect("a");
    let a2 = ca.leaf("A.example.test.").expect("a again");
    assert!(Arc::ptr_eq(&a1, &a2), "same host must hit the cache");
    let b = ca.leaf("b.example.test").expect("b");
    assert_ne!(a1.cert[0], b.cert[0]);
    assert_ne!(
        a1.key.public_key().map(|k| k.to_vec()),
        b.key.public_key().map(|k| k.to_vec()),
        "every leaf has its own key"
    );
}

#[test]
fn garbage_ca_files_are_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("ca.pem"), "not a cert").expect("write");
    fs::write(dir.path().join("ca-key.pem"), "not a key").expect("write");
    let err = CertificateAuthority::load_or_create(dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("certificate authority in"), "{err}");
}

#[test]
fn processes_starting_at_once_end_with_one_ca() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("data");
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let p = path.clone();
            std::thread::spawn(move || {
                CertificateAuthority::load_or_create(&p)
                    .map(|ca| ca.cert_pem().to_owned())
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    let pems: Vec<String> = handles
        .into_iter()
        .map(|h| h.join().expect("thread").expect("ca"))
        .collect();
    assert!(pems.iter().all(|p| p == &pems[0]), "one CA for all");
    assert_eq!(
        std::fs::read_to_string(path.join("ca.pem")).expect("ca.pem"),
        pems[0]
    );
    assert!(!path.join("ca.lock").exists(), "the lock is released");
}

#[test]
fn leaves_are_reminted_before_they_expire() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = CertificateAuthority::load_or_create(dir.path()).expect("ca");
    let now = OffsetDateTime::now_utc();
    let first = ca.leaf_at("renew.example.test", now).expect("leaf");
    let same = ca
        .leaf_at(
            "renew.example.test",
            now + LEAF_VALIDITY - LEAF_RENEW_MARGIN - Duration::days(1),
        )
        .expect("leaf");
    assert!(Arc::ptr_eq(&first, &same), "cached while far from expiry");
    let renewed = ca
        .leaf_at(
            "renew.example.test",
            now + LEAF_VALIDITY - LEAF_RENEW_MARGIN + Duration::days(1),
        )
        .expect("leaf");
    assert!(!Arc::ptr_eq(&first, &renewed), "minted again near expiry");
    assert_ne!(first.cert[0], renewed.cert[0]);
}

#[test]
fn server_configs_are_cached_per_name() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Arc::new(CertificateAuthority::load_or_create(dir.path()).expect("ca"));
    let a = ca
        .server_config(Some("a.example.test"), &[b"h2"])
        .expect("a");
    let a2 = ca
        .server_config(Some("a.example.test"), &[b"h2"])
        .expect("a2");
    let b = ca
        .server_config(Some("b.example.test"), &[b"h2"])
        .expect("b");
    assert!(Arc::ptr_eq(&a, &a2));
    assert!(!Arc::ptr_eq(&a, &b));
}
