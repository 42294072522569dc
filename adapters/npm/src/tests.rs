//! Table tests of every key rule, the negotiation and the hints.

use std::io::Write as _;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use btrfly_core::{Adapter, Entry, ExpectedDigest, Mutability, RecordingKey, RequestHead};
use http::Method;

use crate::config::NpmConfig;
use crate::key::{self, Form, Resource};
use crate::{packument, NpmAdapter};

/// The abbreviated packument's `Accept`, as npm (pacote) sends it.
const CORGI: &str = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*";

fn head(method: Method, uri: &str, headers: &[(&str, &str)]) -> RequestHead {
    RequestHead::from_parts(method, uri, headers).expect("request head")
}

fn config() -> NpmConfig {
    NpmConfig::new(&["registry.example.test", "mirror.example.test:8443"]).expect("config")
}

fn adapter() -> NpmAdapter {
    NpmAdapter::new(config())
}

#[test]
fn names_and_versions() {
    for ok in [
        "left-pad",
        "a",
        "JSONStream",
        "lodash.merge",
        "~x",
        "@scope/name",
        "@s/n-1.x",
    ] {
        assert!(key::is_package_name(ok), "{ok}");
    }
    for bad in [
        "",
        ".hidden",
        "_private",
        "-",
        "node_modules",
        "favicon.ico",
        "a b",
        "a/b",
        "@scope",
        "@scope/",
        "@/name",
        "@scope/name/x",
        "@sc ope/name",
        &"x".repeat(215),
    ] {
        assert!(!key::is_package_name(bad), "{bad}");
    }
    for ok in ["1.0.0", "0.1.12-alpha.1", "1.2.3+build.5", "10.0.0-rc.1+x"] {
        assert!(key::is_version(ok), "{ok}");
    }
    for bad in ["1.0", "v1.0.0", "1.0.0/x", "", "1..0", "latest"] {
        assert!(!key::is_version(bad), "{bad}");
    }
    assert_eq!(key::split_scope("@s/n"), (Some("@s"), "n"));
    assert_eq!(key::split_scope("n"), (None, "n"));
}

#[test]
fn resources_by_host_headers_and_path_shape() {
    let c = config();
    let none: &[(&str, &str)] = &[];
    let npm: &[(&str, &str)] = &[("npm-command", "install")];
    let corgi: &[(&str, &str)] = &[("accept", CORGI)];
    let full: &[(&str, &str)] = &[("accept", "application/json")];
    let doc = |root: &str, name: &str| {
        Some(Resource::Packument {
            root: root.into(),
            name: name.into(),
        })
    };
    let tgz = |root: &str, name: &str, version: &str| {
        Some(Resource::Tarball {
            root: root.into(),
            name: name.into(),
            version: version.into(),
        })
    };
    for (method, uri, headers, want) in [
        // packuments on a registry host, both encodings of a scoped name
        (
            Method::GET,
            "https://registry.example.test/left-pad",
            none,
            doc("https://registry.example.test:443/", "left-pad"),
        ),
        (
            Method::GET,
            "https://registry.example.test/@scope%2fname",
            none,
            doc("https://registry.example.test:443/", "@scope/name"),
        ),
        (
            Method::GET,
            "https://registry.example.test/@scope%2Fname",
            none,
            doc("https://registry.example.test:443/", "@scope/name"),
        ),
        (
            Method::HEAD,
            "https://registry.example.test/@scope/name",
            none,
            doc("https://registry.example.test:443/", "@scope/name"),
        ),
        (
            Method::GET,
            "https://Mirror.example.test:8443/api/npm/repo/JSONStream",
            none,
            doc(
                "https://mirror.example.test:8443/api/npm/repo/",
                "JSONStream",
            ),
        ),
        (
            Method::GET,
            "https://mirror.example.test:8443/api/npm/repo/@scope%2fname",
            none,
            doc(
                "https://mirror.example.test:8443/api/npm/repo/",
                "@scope/name",
            ),
        ),
        // elsewhere packuments need npm's signs: its header or its Accept
        (
            Method::GET,
            "https://other.example.test/left-pad",
            npm,
            doc("https://other.example.test:443/", "left-pad"),
        ),
        (
            Method::GET,
            "https://other.example.test/npm/@scope%2fname",
            corgi,
            doc("https://other.example.test:443/npm/", "@scope/name"),
        ),
        (
            Method::GET,
            "https://other.example.test/@scope/name",
            npm,
            doc("https://other.example.test:443/", "@scope/name"),
        ),
        (
            Method::GET,
            "https://other.example.test/left-pad",
            none,
            None,
        ),
        (
            Method::GET,
            "https://other.example.test/left-pad",
            full,
            None,
        ),
        (
            Method::GET,
            "https://other.example.test/@scope%2fname",
            none,
            None,
        ),
        // not a package name: not a packument
        (Method::GET, "https://other.example.test/.env", npm, None),
        (
            Method::GET,
            "https://other.example.test/favicon.ico",
            npm,
            None,
        ),
        (Method::GET, "https://other.example.test/a%20b", npm, None),
        (Method::GET, "https://other.example.test/%ff", npm, None),
        // tarballs by their path, on any host, with and without scope
        (
            Method::GET,
            "https://cdn.example.test/left-pad/-/left-pad-1.3.0.tgz",
            none,
            tgz("https://cdn.example.test:443/", "left-pad", "1.3.0"),
        ),
        (
            Method::GET,
            "https://cdn.example.test/@scope/name/-/name-2.0.0-beta.1.tgz",
            none,
            tgz(
                "https://cdn.example.test:443/",
                "@scope/name",
                "2.0.0-beta.1",
            ),
        ),
        (
            Method::GET,
            "https://cdn.example.test/@scope%2fname/-/name-2.0.0.tgz",
            none,
            tgz("https://cdn.example.test:443/", "@scope/name", "2.0.0"),
        ),
        (
            Method::HEAD,
            "https://registry.example.test/repo/a-b/-/a-b-1.0.0.tgz",
            none,
            tgz("https://registry.example.test:443/repo/", "a-b", "1.0.0"),
        ),
        // a file name that is not the package's, or no version: not a tarball
        (
            Method::GET,
            "https://cdn.example.test/left-pad/-/other-1.3.0.tgz",
            none,
            None,
        ),
        (
            Method::GET,
            "https://cdn.example.test/left-pad/-/left-pad-latest.tgz",
            none,
            None,
        ),
        (
            Method::GET,
            "https://cdn.example.test/@scope/name/-/@scope-name-1.0.0.tgz",
            none,
            None,
        ),
        (
            Method::GET,
            "https://cdn.example.test/files/left-pad-1.3.0.tgz",
            none,
            None,
        ),
        // other files and pages of a registry host
        (
            Method::GET,
            "https://registry.example.test/files/left-pad-1.3.0.tgz",
            none,
            Some(Resource::File),
        ),
        (
            Method::GET,
            "https://registry.example.test/-/v1/search?text=pad",
            none,
            Some(Resource::Page),
        ),
        (
            Method::GET,
            "https://registry.example.test/left-pad?write=true",
            none,
            Some(Resource::Page),
        ),
        (
            Method::GET,
            "https://registry.example.test/",
            none,
            Some(Resource::Page),
        ),
        // npm's own endpoints elsewhere, and other paths: not npm's
        (
            Method::GET,
            "https://other.example.test/-/v1/search?text=pad",
            npm,
            None,
        ),
        (
            Method::GET,
            "https://other.example.test/left-pad?x=1",
            npm,
            None,
        ),
        (
            Method::GET,
            "https://other.example.test/index.html",
            none,
            None,
        ),
        (
            Method::GET,
            "https://other.example.test/a/b/c.tgz",
            none,
            None,
        ),
        (
            Method::GET,
            "https://mirror.example.test:9443/left-pad",
            none,
            None,
        ),
        // only GET and HEAD: publishing and audit go to the next adapter
        (
            Method::PUT,
            "https://registry.example.test/left-pad",
            none,
            None,
        ),
        (
            Method::POST,
            "https://registry.example.test/-/npm/v1/security/advisories/bulk",
            npm,
            None,
        ),
    ] {
        let req = head(method.clone(), uri, headers);
        assert_eq!(key::resource(&c, &req), want, "{method} {uri} {headers:?}");
    }
}

#[test]
fn the_negotiated_form() {
    for (accept, want) in [
        // npm's two requests
        (Some(CORGI), Form::Abbreviated),
        (Some("application/json"), Form::Full),
        // no header, an empty one, wildcards: the registry's default
        (None, Form::Full),
        (Some(""), Form::Full),
        (Some("*/*"), Form::Full),
        (Some("application/*"), Form::Full),
        (Some("application/*;q=0.5, */*;q=0.1"), Form::Full),
        // the abbreviated form when named, unless refused or ranked lower
        (
            Some("application/vnd.npm.install-v1+json"),
            Form::Abbreviated,
        ),
        (
            Some("Application/VND.npm.Install-v1+JSON ; Q=1"),
            Form::Abbreviated,
        ),
        (
            Some("application/vnd.npm.install-v1+json, application/json"),
            Form::Abbreviated,
        ),
        (
            Some("application/json;q=0.9, application/vnd.npm.install-v1+json;q=0.9"),
            Form::Abbreviated,
        ),
        (
            Some("application/vnd.npm.install-v1+json;q=0.5, application/json"),
            Form::Full,
        ),
        (
            Some("application/vnd.npm.install-v1+json;q=0, */*"),
            Form::Full,
        ),
        (
            Some("application/vnd.npm.install-v1+json;q=0.000, application/json;q=0.001"),
            Form::Full,
        ),
        (
            Some("application/vnd.npm.install-v1+json;q=0.001, application/json;q=0"),
            Form::Abbreviated,
        ),
        // refusals: neither form (a wildcard alone never asks for the
        // abbreviated form)
        (Some("application/json;q=0, */*"), Form::None),
        (Some("application/json;q=0"), Form::None),
        (Some("text/html"), Form::None),
        (
            Some("application/vnd.npm.install-v1+json;q=0, application/json;q=0"),
            Form::None,
        ),
        // ranges that do not parse, or whose q is not a qvalue, are skipped
        (
            Some("application/vnd.npm.install-v1+json;q=2, application/json"),
            Form::Full,
        ),
        (
            Some("application/vnd.npm.install-v1+json;q=0.5000, text/html"),
            Form::None,
        ),
        (Some("garbage, application/json"), Form::Full),
    ] {
        assert_eq!(key::negotiated_form(accept), want, "{accept:?}");
    }
}

#[test]
fn keys() {
    let a = adapter();
    let class = |uri: &str, headers: &[(&str, &str)]| {
        a.classify(&head(Method::GET, uri, headers))
            .unwrap_or_else(|| panic!("{uri} not npm's"))
    };
    let packument = |root: &str, name: &str, form: &str| {
        RecordingKey::new("npm", format!("GET {root} packument {name}")).vary("accept", form)
    };

    // a packument: frozen per tag, keyed by the negotiated form
    let c = class(
        "https://registry.example.test/@scope%2fname",
        &[("accept", CORGI)],
    );
    assert_eq!(
        c.key,
        packument(
            "https://registry.example.test:443/",
            "@scope/name",
            "abbreviated"
        )
    );
    assert_eq!(c.mutability, Mutability::Mutable);
    assert_eq!((c.package, c.subject), (None, None));
    // both encodings, and any Accept negotiating the same form: one key
    for (uri, accept) in [
        ("https://registry.example.test/@scope/name", CORGI),
        (
            "https://registry.example.test/@scope%2Fname",
            "application/vnd.npm.install-v1+json",
        ),
    ] {
        assert_eq!(class(uri, &[("accept", accept)]).key, c.key, "{uri}");
    }
    // another form: another key
    for accept in ["application/json", "*/*", ""] {
        let full = class(
            "https://registry.example.test/@scope/name",
            &[("accept", accept)],
        );
        assert_eq!(
            full.key,
            packument("https://registry.example.test:443/", "@scope/name", "full"),
            "{accept}"
        );
    }
    let refused = class(
        "https://registry.example.test/left-pad",
        &[("accept", "application/json;q=0")],
    );
    assert_eq!(refused.key.variance["accept"], "none");

    // a tarball: immutable, by package and version, with its purl
    for uri in [
        "https://registry.example.test/@scope/name/-/name-1.0.0.tgz",
        "https://registry.example.test/@scope%2fname/-/name-1.0.0.tgz",
    ] {
        let c = class(uri, &[("accept", CORGI)]);
        assert_eq!(
            c.key,
            RecordingKey::new(
                "npm",
                "GET https://registry.example.test:443/ tarball @scope/name@1.0.0"
            ),
            "{uri}"
        );
        assert_eq!(c.mutability, Mutability::Immutable);
        assert_eq!(c.package.as_deref(), Some("pkg:npm/%40scope/name@1.0.0"));
        assert_eq!(c.subject.as_deref(), Some("npm:@scope/name@1.0.0"));
    }
    let c = class(
        "https://cdn.example.test/left-pad/-/left-pad-1.3.0.tgz",
        &[],
    );
    assert_eq!(
        c.key,
        RecordingKey::new(
            "npm",
            "GET https://cdn.example.test:443/ tarball left-pad@1.3.0"
        )
    );
    assert_eq!(c.package.as_deref(), Some("pkg:npm/left-pad@1.3.0"));
    assert_eq!(c.subject.as_deref(), Some("npm:left-pad@1.3.0"));
    // a range is variance
    let c = class(
        "https://cdn.example.test/left-pad/-/left-pad-1.3.0.tgz",
        &[("range", "bytes=0-9")],
    );
    assert_eq!(c.key.variance["range"], "bytes=0-9");
    let c = class(
        "https://registry.example.test/left-pad",
        &[("range", "bytes=0-9")],
    );
    assert_eq!(c.key.variance["range"], "bytes=0-9");
    assert_eq!(c.key.variance["accept"], "full");

    // other files and pages of a registry host: by path
    let c = class("https://registry.example.test/files/x-1.0.0.tgz", &[]);
    assert_eq!(
        c.key,
        RecordingKey::new(
            "npm",
            "GET https://registry.example.test:443/files/x-1.0.0.tgz"
        )
    );
    assert_eq!(c.mutability, Mutability::Immutable);
    assert_eq!(c.package, None);
    let c = class("https://registry.example.test/-/v1/search?text=pad", &[]);
    assert_eq!(
        c.key,
        RecordingKey::new(
            "npm",
            "GET https://registry.example.test:443/-/v1/search?text=pad"
        )
    );
    assert_eq!(c.mutability, Mutability::Mutable);

    // HEAD is keyed apart from GET
    let c = a
        .classify(&head(
            Method::HEAD,
            "https://cdn.example.test/left-pad/-/left-pad-1.3.0.tgz",
            &[],
        ))
        .expect("npm's");
    assert!(c.key.primary.starts_with("HEAD "), "{}", c.key.primary);
}

#[test]
fn config_rejects_what_is_not_a_host() {
    let err = NpmConfig::new(&["https://registry.example.test/"]).expect_err("a URL");
    assert_eq!(err.key, "hosts");
    assert!(NpmConfig::new::<&str>(&[]).is_ok());
}

fn sri(alg: &str, bytes: &[u8]) -> String {
    format!("{alg}-{}", STANDARD.encode(bytes))
}

fn entry(encoding: Option<&str>) -> Entry {
    let mut headers = vec![(
        "content-type".to_owned(),
        btrfly_core::FieldValue::from("application/json"),
    )];
    if let Some(e) = encoding {
        headers.push((
            "content-encoding".to_owned(),
            btrfly_core::FieldValue::from(e),
        ));
    }
    Entry {
        key: RecordingKey::new("npm", "x"),
        method: "GET".into(),
        url: "x".into(),
        status: 200,
        headers,
        sha256: btrfly_core::Sha256::of(b""),
        size: 0,
        mutability: Mutability::Mutable,
        recorded_at: time::OffsetDateTime::UNIX_EPOCH,
        purl: None,
    }
}

#[test]
fn the_digest_of_a_version() {
    let sha512 = [0x11u8; 64];
    let sha256 = [0x22u8; 32];
    let sha1 = "0123456789abcdef0123456789abcdef01234567";
    let want512 = ExpectedDigest::Sha512(Box::new(sha512));
    for (dist, want) in [
        (
            serde_json::json!({"integrity": sri("sha512", &sha512), "shasum": sha1}),
            Some(want512.clone()),
        ),
        // several hashes: the strongest, whatever the order
        (
            serde_json::json!({"integrity": format!("{} {} {}", sri("sha1", &[0x33; 20]), sri("sha256", &sha256), sri("sha512", &sha512))}),
            Some(want512.clone()),
        ),
        (
            serde_json::json!({"integrity": format!("{} {}", sri("sha512", &sha512), sri("sha256", &sha256))}),
            Some(want512),
        ),
        // no usable integrity: the shasum
        (
            serde_json::json!({"integrity": sri("sha1", &[0x33; 20]), "shasum": sha1}),
            ExpectedDigest::sha1_hex(sha1).ok(),
        ),
        (
            serde_json::json!({"integrity": "sha512-???", "shasum": sha1}),
            ExpectedDigest::sha1_hex(sha1).ok(),
        ),
        (
            serde_json::json!({"shasum": sha1}),
            ExpectedDigest::sha1_hex(sha1).ok(),
        ),
        // nothing usable
        (serde_json::json!({"shasum": "abc"}), None),
        (serde_json::json!({"integrity": 5}), None),
        (serde_json::json!({}), None),
    ] {
        assert_eq!(packument::dist_digest(&dist), want, "{dist}");
    }
}

#[test]
fn a_packument_announces_its_tarballs() {
    let a = adapter();
    let sha512 = [0x44u8; 64];
    let doc = serde_json::json!({
        "name": "@scope/name",
        "dist-tags": {"latest": "1.1.0"},
        "versions": {
            "1.0.0": {"dist": {
                "tarball": "https://Registry.example.test/@scope/name/-/name-1.0.0.tgz",
                "integrity": sri("sha512", &sha512),
            }},
            // a relative tarball URL, another layout, only a shasum
            "1.1.0": {"dist": {
                "tarball": "/files/name-1.1.0.tgz",
                "shasum": "0123456789abcdef0123456789abcdef01234567",
            }},
            // announces nothing
            "1.2.0": {"dist": {"tarball": "https://registry.example.test/x.tgz"}},
            "1.3.0": {"name": "no dist"},
        },
    });
    let body = serde_json::to_vec(&doc).expect("json");
    let req = head(
        Method::GET,
        "https://registry.example.test/@scope%2fname",
        &[("accept", CORGI)],
    );
    let class = a.classify(&req).expect("npm's");
    assert!(a.inspects(&class, 200));
    assert!(!a.inspects(&class, 404));
    let want: Vec<(String, String)> = vec![
        (
            "https://registry.example.test:443/@scope/name/-/name-1.0.0.tgz".into(),
            "sha512".into(),
        ),
        ("npm:@scope/name@1.0.0".into(), "sha512".into()),
        (
            "https://registry.example.test:443/files/name-1.1.0.tgz".into(),
            "sha1".into(),
        ),
        ("npm:@scope/name@1.1.0".into(), "sha1".into()),
    ];
    let got = |hints: Vec<btrfly_core::DigestHint>| -> Vec<(String, String)> {
        hints
            .into_iter()
            .map(|h| (h.url, h.digest.algorithm().to_owned()))
            .collect()
    };
    assert_eq!(got(a.digest_hints(&req, &entry(None), &body)), want);
    // the same document gzip'd
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&body).expect("gzip");
    let gz = gz.finish().expect("gzip");
    assert_eq!(got(a.digest_hints(&req, &entry(Some("gzip")), &gz)), want);
    // an unknown coding, a body that is not a packument: nothing
    assert!(a.digest_hints(&req, &entry(Some("br")), &gz).is_empty());
    assert!(a
        .digest_hints(&req, &entry(None), b"<html>not json</html>")
        .is_empty());
    assert!(a
        .digest_hints(&req, &entry(None), br#"{"versions": 5}"#)
        .is_empty());
    // a tarball is not inspected, nor read for hints
    let tarball = head(
        Method::GET,
        "https://registry.example.test/@scope/name/-/name-1.0.0.tgz",
        &[],
    );
    let tclass = a.classify(&tarball).expect("npm's");
    assert!(!a.inspects(&tclass, 200));
    assert!(a.digest_hints(&tarball, &entry(None), &body).is_empty());
}

#[test]
fn response_heads_and_vary() {
    let a = adapter();
    let packument = a
        .classify(&head(
            Method::GET,
            "https://registry.example.test/left-pad",
            &[("accept", CORGI)],
        ))
        .expect("npm's");
    let tarball = a
        .classify(&head(
            Method::GET,
            "https://registry.example.test/left-pad/-/left-pad-1.3.0.tgz",
            &[],
        ))
        .expect("npm's");
    let names = vec!["accept".to_owned(), "accept-encoding".to_owned()];
    assert_eq!(
        a.vary_headers(&packument, names.clone()),
        ["accept-encoding"]
    );
    assert_eq!(a.vary_headers(&tarball, names.clone()), names);

    let full = || {
        let mut h = http::HeaderMap::new();
        for (k, v) in [
            ("date", "Mon, 30 Nov 2026 12:00:00 GMT"),
            ("etag", "\"abc\""),
            ("last-modified", "Mon, 30 Nov 2026 12:00:00 GMT"),
            ("content-type", "application/json"),
        ] {
            h.insert(k, http::HeaderValue::from_static(v));
        }
        h
    };
    let mut h = full();
    a.normalize_response_headers(&packument, 200, &mut h);
    assert_eq!(
        h.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
        ["content-type"]
    );
    let mut h = full();
    a.normalize_response_headers(&tarball, 200, &mut h);
    assert_eq!(h, full());
}
