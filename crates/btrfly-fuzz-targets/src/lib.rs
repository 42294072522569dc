//! The bodies of btrfly's fuzz targets, as plain functions.
//!
//! `fuzz/` (a cargo-fuzz workspace of its own, built with nightly) calls
//! each of these from a `fuzz_target!`; the test beside them replays the
//! checked-in corpus `fuzz/corpus/<target>/` through them on stable, so CI
//! exercises every target even where nightly is absent. Each function
//! takes arbitrary bytes, must never panic, and checks a property that
//! must hold for every input (a panic is the finding):
//!
//! | target | what it feeds | property |
//! |---|---|---|
//! | `files_key`, `pip_key`, `oci_key`, `cargo_key`, `go_key`, `npm_key` | a request head (HTTP/1.1 text) to the adapter's `classify` | no panic; no `Authorization`/`Cookie` value in the key |
//! | `pip_page` | an index page (first byte: HTML or JSON) to the pip page parser | no panic; every hint names a URL and a 64-hex digest |
//! | `connect_head` | bytes to the listener's head framing and CONNECT parsing | no panic; a parsed target has a host |
//! | `config` | TOML text to the config loader | no panic (errors are fine) |

use std::path::Path;
use std::sync::OnceLock;

use btrfly_core::{Adapter, RequestHead};
use http::Method;

/// A target's body: arbitrary bytes in, a panic when a property fails.
pub type Target = fn(&[u8]);

/// Every target, by name (the names of `fuzz/fuzz_targets/*.rs` and of
/// the corpus directories).
pub const TARGETS: &[(&str, Target)] = &[
    ("files_key", files_key),
    ("pip_key", pip_key),
    ("oci_key", oci_key),
    ("cargo_key", cargo_key),
    ("go_key", go_key),
    ("npm_key", npm_key),
    ("pip_page", pip_page),
    ("connect_head", connect_head),
    ("config", config),
];

/// A request head from HTTP/1.1 text: an absolute-form target is used as
/// it is, an origin-form one is made absolute with its `Host` (over
/// https). `None` for what is not a request head.
pub fn request_head(data: &[u8]) -> Option<RequestHead> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(data).ok()?;
    let method = Method::from_bytes(req.method?.as_bytes()).ok()?;
    let path = req.path?;
    let fields: Vec<(&str, &str)> = req
        .headers
        .iter()
        .filter_map(|h| Some((h.name, std::str::from_utf8(h.value).ok()?)))
        .collect();
    let uri = if path.starts_with("http://") || path.starts_with("https://") {
        path.to_owned()
    } else {
        let host = fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("host"))
            .map_or("files.example.test", |(_, v)| v);
        format!("https://{host}{path}")
    };
    RequestHead::from_parts(method, &uri, &fields).ok()
}

/// Credentials never enter a key: no value of `Authorization`, `Cookie`
/// or `Proxy-Authorization` of 8 bytes or more appears in it.
fn check_no_secret_in_key(head: &RequestHead, adapter: &dyn Adapter) {
    let Some(class) = adapter.classify(head) else {
        return;
    };
    let key = format!("{:?}", class.key);
    let _ = class.key.id();
    for name in ["authorization", "cookie", "proxy-authorization"] {
        for value in head.headers.get_all(name) {
            let Ok(v) = value.to_str() else { continue };
            let v = v.trim();
            if v.len() >= 8 && !head.uri.to_string().contains(v) {
                assert!(
                    !key.contains(v),
                    "{name} value {v:?} entered the {} key {key}",
                    adapter.name()
                );
            }
        }
    }
}

/// The plain-files adapter's key of an arbitrary request head.
pub fn files_key(data: &[u8]) {
    if let Some(head) = request_head(data) {
        check_no_secret_in_key(&head, &btrfly_adapter_files::FilesAdapter);
    }
}

fn pip_adapter() -> &'static btrfly_adapter_pip::PipAdapter {
    static PIP: OnceLock<btrfly_adapter_pip::PipAdapter> = OnceLock::new();
    PIP.get_or_init(|| {
        let config =
            btrfly_adapter_pip::PipConfig::new(&["pypi.example.test"], &["files.example.test"])
                .unwrap_or_default();
        btrfly_adapter_pip::PipAdapter::new(config)
    })
}

/// The pip adapter's key of an arbitrary request head (index host
/// `pypi.example.test`, file host `files.example.test`).
pub fn pip_key(data: &[u8]) {
    if let Some(head) = request_head(data) {
        check_no_secret_in_key(&head, pip_adapter());
    }
}

/// The OCI adapter's key of an arbitrary request head (registry
/// `registry.example.test`, token host `auth.example.test`, detection on).
pub fn oci_key(data: &[u8]) {
    static OCI: OnceLock<Option<btrfly_adapter_oci::OciAdapter>> = OnceLock::new();
    let adapter = OCI.get_or_init(|| {
        btrfly_adapter_oci::OciAdapter::new(&btrfly_adapter_oci::OciConfig {
            registries: vec!["registry.example.test".into()],
            auth_hosts: vec!["auth.example.test".into()],
            detect: true,
        })
        .ok()
    });
    if let (Some(adapter), Some(head)) = (adapter, request_head(data)) {
        check_no_secret_in_key(&head, adapter);
    }
}

/// The cargo adapter's key of an arbitrary request head (index host
/// `index.example.test`, download host `static.example.test`).
pub fn cargo_key(data: &[u8]) {
    static CARGO: OnceLock<btrfly_adapter_cargo::CargoAdapter> = OnceLock::new();
    let adapter = CARGO.get_or_init(|| {
        let config = btrfly_adapter_cargo::CargoConfig::new(
            &["index.example.test"],
            &["static.example.test"],
        )
        .unwrap_or_default();
        btrfly_adapter_cargo::CargoAdapter::new(config)
    });
    if let Some(head) = request_head(data) {
        check_no_secret_in_key(&head, adapter);
    }
}

/// The npm adapter's key of an arbitrary request head (registry host
/// `npm.example.test`; other hosts by npm's headers and path shape).
pub fn npm_key(data: &[u8]) {
    static NPM: OnceLock<btrfly_adapter_npm::NpmAdapter> = OnceLock::new();
    let adapter = NPM.get_or_init(|| {
        let config = btrfly_adapter_npm::NpmConfig::new(&["npm.example.test"]).unwrap_or_default();
        btrfly_adapter_npm::NpmAdapter::new(config)
    });
    if let Some(head) = request_head(data) {
        check_no_secret_in_key(&head, adapter);
    }
}

/// The Go adapter's key of an arbitrary request head (module proxy
/// `proxy.example.test`, checksum database `sum.example.test`; other hosts
/// by path shape and direct mode).
pub fn go_key(data: &[u8]) {
    static GO: OnceLock<btrfly_adapter_go::GoAdapter> = OnceLock::new();
    let adapter = GO.get_or_init(|| {
        let config =
            btrfly_adapter_go::GoConfig::new(&["proxy.example.test"], &["sum.example.test"])
                .unwrap_or_default();
        btrfly_adapter_go::GoAdapter::new(config)
    });
    if let Some(head) = request_head(data) {
        check_no_secret_in_key(&head, adapter);
    }
}

/// The pip index page parser: the first byte picks the form (even: PEP
/// 503 HTML, odd: PEP 691 JSON), the rest is the page.
pub fn pip_page(data: &[u8]) {
    let Some((first, body)) = data.split_first() else {
        return;
    };
    let content_type = if first % 2 == 0 {
        "text/html"
    } else {
        "application/vnd.pypi.simple.v1+json"
    };
    let hints = btrfly_adapter_pip::index::digest_hints(
        "https://pypi.example.test/simple/demo/",
        Some(content_type),
        None,
        body,
    );
    for h in hints {
        assert!(!h.url.is_empty(), "a hint without a URL");
        if let Some(sha256) = h.digest.as_sha256() {
            assert_eq!(sha256.as_str().len(), 64, "{h:?}");
        }
    }
}

/// The listener's head framing and CONNECT parsing.
pub fn connect_head(data: &[u8]) {
    let head = match btrfly_proxy::listener::head_end(data) {
        Some(end) => &data[..end],
        None => data,
    };
    if let Ok((host, _port, _credential)) = btrfly_proxy::listener::parse_connect_head(head) {
        assert!(!host.is_empty(), "a CONNECT target without a host");
    }
}

/// The config loader on arbitrary TOML text.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = btrfly_config::Config::parse(text, Path::new("fuzz.toml"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of every target's checked-in corpus, through the
    /// target's body: what the fuzzer found interesting keeps being
    /// checked on stable.
    #[test]
    fn checked_in_corpus_replays() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
        for (name, target) in TARGETS {
            let dir = root.join(name);
            let entries =
                std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()));
            let mut n = 0;
            for entry in entries.flatten() {
                let data = std::fs::read(entry.path()).expect("corpus file");
                target(&data);
                n += 1;
            }
            assert!(n > 0, "the corpus of {name} is empty");
        }
    }

    #[test]
    fn a_secret_in_a_key_is_found() {
        // the property check itself must be able to fail
        let head = request_head(
            b"GET /x HTTP/1.1\r\nHost: files.example.test\r\nAuthorization: Bearer abcdefgh123\r\n\r\n",
        )
        .expect("head");
        struct Leaky;
        impl Adapter for Leaky {
            fn name(&self) -> &'static str {
                "leaky"
            }
            fn classify(&self, req: &RequestHead) -> Option<btrfly_core::Classification> {
                let auth = req.headers.get("authorization")?.to_str().ok()?;
                Some(btrfly_core::Classification {
                    key: btrfly_core::RecordingKey::new("leaky", auth),
                    mutability: btrfly_core::Mutability::Mutable,
                    expected: None,
                    package: None,
                    subject: None,
                })
            }
        }
        let caught = std::panic::catch_unwind(|| check_no_secret_in_key(&head, &Leaky));
        assert!(caught.is_err());
    }
}
