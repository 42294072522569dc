//! btrfly's CA as a validated value, and the trust stores it goes into.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SystemError};
use crate::fsops::sha256_hex;
use crate::paths::SystemPaths;

/// One X.509 certificate (btrfly's CA), checked once: the PEM text given
/// holds exactly one `CERTIFICATE` section and nothing else (in particular
/// no private key).
#[derive(Clone, PartialEq, Eq)]
pub struct CaCertificate {
    der: Vec<u8>,
}

impl CaCertificate {
    /// Parses PEM text (RFC 7468).
    ///
    /// # Errors
    /// [`SystemError::InvalidCa`] when the text is not valid PEM, holds no
    /// certificate, more than one, or any other section (a key...).
    pub fn from_pem(pem: &str) -> Result<Self> {
        let mut der = None;
        for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem.as_bytes()) {
            let (kind, bytes) =
                section.map_err(|e| SystemError::InvalidCa(format!("not valid PEM: {e}")))?;
            if kind != SectionKind::Certificate {
                return Err(SystemError::InvalidCa(format!(
                    "holds a {kind:?} section; only one CERTIFICATE is accepted"
                )));
            }
            if der.replace(bytes).is_some() {
                return Err(SystemError::InvalidCa(
                    "holds more than one certificate".into(),
                ));
            }
        }
        der.map(|der| Self { der })
            .ok_or_else(|| SystemError::InvalidCa("no CERTIFICATE section".into()))
    }

    /// The certificate's DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The SHA-256 fingerprint: lower-case hex of the DER's digest (what
    /// `openssl x509 -fingerprint -sha256` prints, without colons).
    pub fn fingerprint(&self) -> String {
        sha256_hex(&self.der)
    }

    /// Canonical PEM: `-----BEGIN CERTIFICATE-----`, base64 in lines of 64
    /// characters, the end line and a final newline.
    pub fn to_pem(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.der);
        let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(chunk));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
        out
    }
}

impl fmt::Debug for CaCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaCertificate(sha256 {})", self.fingerprint())
    }
}

/// Whether a PEM bundle holds the certificate with DER `der`. Sections
/// that are not certificates, and a bundle that stops parsing half-way, are
/// read as far as they go.
pub(crate) fn bundle_contains(bundle: &[u8], der: &[u8]) -> bool {
    CertificateDer::pem_slice_iter(bundle)
        .map_while(|c| c.ok())
        .any(|c| c.as_ref() == der)
}

/// How btrfly's CA was put into the machine's trust.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TrustMethod {
    /// Written to the local CA directory and `update-ca-certificates` run:
    /// the bundle, the hashed directory and what its hooks keep (Java's
    /// keystore with ca-certificates-java) all include it.
    UpdateCaCertificates {
        /// The program run.
        tool: PathBuf,
        /// The certificate file written (`…/btrfly-ca.crt`).
        ca_file: PathBuf,
    },
    /// No `update-ca-certificates`: the CA was appended to the bundle in
    /// place (or the bundle created with it alone).
    Bundle,
}

/// A trust store that exists on the machine but that this crate does not
/// change, with what a user can do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherStore {
    /// What it is (`"NSS database"`...).
    pub name: &'static str,
    /// Where it is.
    pub path: PathBuf,
    /// Who reads it and how to make them trust btrfly's CA.
    pub hint: &'static str,
}

/// The trust stores that exist on the machine and are left alone.
/// `java_changed`: whether Java's keystore changed during apply (then it
/// is not listed).
pub(crate) fn untouched_stores(paths: &SystemPaths, java_changed: bool) -> Vec<OtherStore> {
    let mut out = Vec::new();
    if !java_changed && paths.java_cacerts.exists() {
        out.push(OtherStore {
            name: "Java cacerts",
            path: paths.java_cacerts.clone(),
            hint: "Java (Maven, Gradle) reads it; it follows update-ca-certificates only through \
                   the ca-certificates-java hook; otherwise import btrfly's CA with keytool",
        });
    }
    if paths.nss_db.exists() {
        out.push(OtherStore {
            name: "NSS database",
            path: paths.nss_db.clone(),
            hint: "Firefox and Chromium read NSS databases (also per user in ~/.pki/nssdb); \
                   add btrfly's CA with certutil",
        });
    }
    out
}

/// Where a list of [`OtherStore`]s is printed, one per line.
pub(crate) fn describe_untouched(stores: &[OtherStore]) -> String {
    stores
        .iter()
        .map(|s| format!("not changed: {} ({}): {}", s.name, s.path.display(), s.hint))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `update-ca-certificates` arguments: none on the host; the directories
/// below the root otherwise (Debian's script accepts them).
pub(crate) fn tool_args(paths: &SystemPaths, fresh: bool) -> Vec<String> {
    let mut args = Vec::new();
    if fresh {
        args.push("--fresh".to_string());
    }
    if !paths.is_host_root() {
        let bundle_name = paths
            .bundle
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "ca-certificates.crt".into());
        for (flag, p) in [
            ("--certsconf", &paths.ca_conf),
            ("--certsdir", &paths.distro_ca_dir),
            ("--localcertsdir", &paths.local_ca_dir),
            ("--etccertsdir", &paths.certs_dir),
            ("--hooksdir", &paths.hooks_dir),
        ] {
            args.push(flag.to_string());
            args.push(p.display().to_string());
        }
        args.push("--certbundle".into());
        args.push(bundle_name);
    }
    args
}

/// Whether `bundle` lies in `certs_dir` (where the tool writes it).
pub(crate) fn bundle_in_certs_dir(paths: &SystemPaths) -> bool {
    paths.bundle.parent() == Some(Path::new(&paths.certs_dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn accepts_one_certificate_and_round_trips_it() {
        let text = pem();
        let ca = CaCertificate::from_pem(&text).unwrap();
        let again = CaCertificate::from_pem(&ca.to_pem()).unwrap();
        assert_eq!(ca, again);
        assert_eq!(ca.fingerprint().len(), 64);
        assert!(bundle_contains(
            format!("junk\n{}", ca.to_pem()).as_bytes(),
            ca.der()
        ));
        assert!(!bundle_contains(pem().as_bytes(), ca.der()));
    }

    #[test]
    fn rejects_keys_pairs_and_nothing() {
        let key = rcgen::KeyPair::generate().unwrap();
        let with_key = format!("{}{}", pem(), key.serialize_pem());
        let err = CaCertificate::from_pem(&with_key).unwrap_err().to_string();
        assert!(err.contains("PrivateKey"), "{err}");
        let two = format!("{}{}", pem(), pem());
        assert!(CaCertificate::from_pem(&two)
            .unwrap_err()
            .to_string()
            .contains("more than one"));
        assert!(CaCertificate::from_pem("hello")
            .unwrap_err()
            .to_string()
            .contains("no CERTIFICATE"));
    }

    #[test]
    fn tool_gets_directories_only_below_another_root() {
        assert!(tool_args(&SystemPaths::host(), false).is_empty());
        assert_eq!(tool_args(&SystemPaths::host(), true), ["--fresh"]);
        let args = tool_args(&SystemPaths::under("/r"), false).join(" ");
        assert!(args.contains("--localcertsdir /r/usr/local/share/ca-certificates"));
        assert!(args.contains("--certbundle ca-certificates.crt"));
    }
}
