//! A throwaway certificate authority for upstream test servers.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// A throwaway certificate authority (ECDSA P-256, made with rcgen) that
/// issues server certificates for test upstreams such as [`super::Nginx`].
///
/// The CA exists only in memory and in the files a test writes with
/// [`TestCa::write_pem`]; clients trust it via `curl --cacert`,
/// `wget --ca-certificate`, or btrfly's `[upstream] ca_file`.
pub struct TestCa {
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    /// Creates a new CA with a fresh key, valid from 2020 to 2049.
    pub fn new() -> TestCa {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "btrfly test upstream CA");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "btrfly tests");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2049, 12, 31);
        let key = KeyPair::generate().expect("generate CA key");
        let cert = params.self_signed(&key).expect("self-sign CA certificate");
        TestCa {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate in PEM form.
    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// The CA private key in PEM (PKCS#8) form, for tests that need to hand
    /// a complete CA to some program.
    pub fn key_pem(&self) -> String {
        self.key_pem.clone()
    }

    /// Issues a server (leaf) certificate for `names` (DNS SANs, the first
    /// also being the CN) plus the IP SAN 127.0.0.1, with EKU serverAuth.
    /// Returns `(cert_pem, key_pem)`.
    pub fn issue(&self, names: &[&str]) -> (String, String) {
        assert!(!names.is_empty(), "TestCa::issue needs at least one name");
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.subject_alt_names = names
            .iter()
            .map(|n| {
                SanType::DnsName(
                    (*n).to_string()
                        .try_into()
                        .unwrap_or_else(|e| panic!("invalid DNS name {n:?}: {e}")),
                )
            })
            .collect();
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2049, 12, 31);
        let key = KeyPair::generate().expect("generate leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign leaf certificate");
        (cert.pem(), key.serialize_pem())
    }

    /// Writes the CA certificate to `dir/test-ca.pem` and returns that path.
    pub fn write_pem(&self, dir: &Path) -> PathBuf {
        let path = dir.join("test-ca.pem");
        std::fs::write(&path, &self.cert_pem)
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}
