//! Table tests of every key rule, the template and the hints.

use std::collections::BTreeMap;
use std::sync::Mutex;

use btrfly_core::{Adapter, Entry, ExpectedDigest, Mutability, RecordingKey, RequestHead};
use http::Method;

use crate::config::CargoConfig;
use crate::index::{self, Line};
use crate::key::{self, Resource};
use crate::CargoAdapter;

const PROTO: (&str, &str) = ("cargo-protocol", "version=1");

fn head(method: Method, uri: &str, headers: &[(&str, &str)]) -> RequestHead {
    RequestHead::from_parts(method, uri, headers).expect("request head")
}

fn config() -> CargoConfig {
    CargoConfig::new(&["index.example.test"], &["static.example.test:8443"]).expect("config")
}

fn sha(c: char) -> String {
    c.to_string().repeat(64)
}

#[test]
fn names_versions_and_prefixes() {
    for ok in ["serde", "a", "_x", "foo-bar_2", "Serde"] {
        assert!(key::is_crate_name(ok), "{ok}");
    }
    for bad in ["", "1abc", "foo.bar", "a/b", &"x".repeat(65)] {
        assert!(!key::is_crate_name(bad), "{bad}");
    }
    for ok in ["1.0.0", "0.1.12-alpha.1", "1.2.3+build.5", "1.0.0-rc.1+x"] {
        assert!(key::is_version(ok), "{ok}");
    }
    for bad in ["1.0", "v1.0.0", "1.0.0/x", "", "1..0"] {
        assert!(!key::is_version(bad), "{bad}");
    }
    for (name, prefix) in [
        ("a", "1"),
        ("ab", "2"),
        ("abc", "3/a"),
        ("serde", "se/rd"),
        ("Cargo", "Ca/rg"),
    ] {
        assert_eq!(key::prefix(name), prefix, "{name}");
    }
}

#[test]
fn resources_by_header_host_and_path_shape() {
    let c = config();
    let none: &[(&str, &str)] = &[];
    let proto: &[(&str, &str)] = &[PROTO];
    let file = |root: &str, name: &str| Resource::IndexFile {
        root: root.into(),
        name: name.into(),
    };
    let krate = |name: &str, version: &str| Resource::Crate {
        name: name.into(),
        version: version.into(),
    };
    for (method, uri, headers, want) in [
        // index documents: cargo's header, or an index host
        (
            Method::GET,
            "https://r.example.test/index/config.json",
            proto,
            Some(Resource::Config {
                root: "https://r.example.test:443/index/".into(),
            }),
        ),
        (
            Method::GET,
            "https://index.example.test/config.json",
            none,
            Some(Resource::Config {
                root: "https://index.example.test:443/".into(),
            }),
        ),
        (
            Method::GET,
            "https://r.example.test/index/se/rd/serde",
            proto,
            Some(file("https://r.example.test:443/index/", "serde")),
        ),
        (
            Method::GET,
            "https://R.example.test:8443/1/a",
            proto,
            Some(file("https://r.example.test:8443/", "a")),
        ),
        (
            Method::GET,
            "https://r.example.test/2/ab",
            proto,
            Some(file("https://r.example.test:443/", "ab")),
        ),
        (
            Method::HEAD,
            "https://r.example.test/3/a/abc",
            proto,
            Some(file("https://r.example.test:443/", "abc")),
        ),
        (
            Method::GET,
            "https://index.example.test/ab/cd/abcdef",
            none,
            Some(file("https://index.example.test:443/", "abcdef")),
        ),
        // a layout that does not fit its name, or upper case: not a file
        (
            Method::GET,
            "https://r.example.test/index/xx/rd/serde",
            proto,
            None,
        ),
        (Method::GET, "https://r.example.test/3/b/abc", proto, None),
        (
            Method::GET,
            "https://r.example.test/se/rd/Serde",
            proto,
            None,
        ),
        // without the header, on another host: not cargo's
        (
            Method::GET,
            "https://r.example.test/index/se/rd/serde",
            none,
            None,
        ),
        (
            Method::GET,
            "https://r.example.test/config.json",
            none,
            None,
        ),
        (
            Method::GET,
            "https://r.example.test/notconfig.json",
            proto,
            None,
        ),
        // another page of an index host
        (
            Method::GET,
            "https://index.example.test/README",
            none,
            Some(Resource::Page),
        ),
        // downloads by shape, on any host
        (
            Method::GET,
            "https://dl.example.test/api/v1/crates/serde/1.0.200/download",
            none,
            Some(krate("serde", "1.0.200")),
        ),
        (
            Method::GET,
            "https://dl.example.test/files/se/rd/serde/serde-1.0.200.crate",
            none,
            Some(krate("serde", "1.0.200")),
        ),
        (
            Method::GET,
            "https://dl.example.test/foo-2d-1.0.0-rc.1.crate",
            none,
            Some(krate("foo-2d", "1.0.0-rc.1")),
        ),
        (
            Method::GET,
            "https://dl.example.test/releases/download",
            none,
            None,
        ),
        (
            Method::GET,
            "https://dl.example.test/serde/v1/download",
            none,
            None,
        ),
        // anything a download host serves is a file
        (
            Method::GET,
            "https://static.example.test:8443/blobs/abc",
            none,
            Some(Resource::File),
        ),
        (
            Method::GET,
            "https://static.example.test/blobs/abc",
            none,
            None,
        ),
        // only GET and HEAD
        (
            Method::PUT,
            "https://index.example.test/api/v1/crates/new",
            none,
            None,
        ),
        (
            Method::POST,
            "https://dl.example.test/api/v1/crates/serde/1.0.0/download",
            none,
            None,
        ),
    ] {
        assert_eq!(
            key::resource(&c, &head(method.clone(), uri, headers)),
            want,
            "{method} {uri} {headers:?}"
        );
    }
}

#[test]
fn keys_mutability_identity_and_subject() {
    let c = config();
    let class = |m: Method, uri: &str, headers: &[(&str, &str)]| {
        key::classify(&c, &head(m, uri, headers)).expect("cargo's")
    };
    // index files: by path, frozen per tag
    let a = class(
        Method::GET,
        "https://r.example.test/index/se/rd/serde?x=1",
        &[PROTO],
    );
    assert_eq!(
        a.key,
        RecordingKey::new("cargo", "GET https://r.example.test:443/index/se/rd/serde")
    );
    assert_eq!(a.mutability, Mutability::Mutable);
    assert_eq!((a.package, a.subject), (None, None));
    // downloads: by crate and version, whichever URL form names them
    let d1 = class(
        Method::GET,
        "https://dl.example.test/api/v1/crates/Serde/1.0.200/download",
        &[],
    );
    let d2 = class(
        Method::GET,
        "https://DL.example.test:443/x/serde-1.0.200.crate",
        &[],
    );
    assert_eq!(
        d1.key,
        RecordingKey::new(
            "cargo",
            "GET https://dl.example.test:443 crate serde@1.0.200"
        )
    );
    assert_eq!(d1.key, d2.key);
    assert_eq!(d1.mutability, Mutability::Immutable);
    assert_eq!(d1.package.as_deref(), Some("pkg:cargo/Serde@1.0.200"));
    assert_eq!(d1.subject.as_deref(), Some("cargo:serde@1.0.200"));
    assert_eq!(d1.expected, None);
    // a HEAD is its own request; a Range is variance
    let h = class(
        Method::HEAD,
        "https://dl.example.test/api/v1/crates/serde/1.0.200/download",
        &[],
    );
    assert_ne!(h.key, d1.key);
    let r = class(
        Method::GET,
        "https://dl.example.test/api/v1/crates/serde/1.0.200/download",
        &[("range", "bytes=0-9")],
    );
    assert_eq!(r.key.primary, d1.key.primary);
    assert_ne!(r.key, d1.key);
    assert_eq!(
        r.key.variance.get("range").map(String::as_str),
        Some("bytes=0-9")
    );
}

fn line(name: &str, vers: &str, cksum: &str) -> Line {
    Line {
        name: name.into(),
        vers: vers.into(),
        cksum: cksum.into(),
    }
}

#[test]
fn download_urls_follow_the_dl_template() {
    let l = line("Serde_json", "1.0.0+x", &sha('A'));
    for (template, want) in [
        (
            "https://dl.example.test/api/v1/crates",
            "https://dl.example.test/api/v1/crates/Serde_json/1.0.0+x/download",
        ),
        (
            "https://dl.example.test/api/v1/crates/",
            "https://dl.example.test/api/v1/crates/Serde_json/1.0.0+x/download",
        ),
        (
            "https://dl.example.test/{prefix}/{crate}/{crate}-{version}.crate",
            "https://dl.example.test/Se/rd/Serde_json/Serde_json-1.0.0+x.crate",
        ),
        (
            "https://dl.example.test/{lowerprefix}/{crate}/{version}",
            "https://dl.example.test/se/rd/Serde_json/1.0.0+x",
        ),
        (
            "https://dl.example.test/blobs/{sha256-checksum}",
            &format!("https://dl.example.test/blobs/{}", sha('a')),
        ),
    ] {
        assert_eq!(index::download_url(template, &l), want, "{template}");
    }
}

#[test]
fn index_lines_and_config_are_read_and_bad_ones_skipped() {
    let body = format!(
        "{{\"name\":\"demo\",\"vers\":\"1.0.0\",\"deps\":[],\"cksum\":\"{}\",\"features\":{{}},\"yanked\":false}}\n\
         not json\n\
         {{\"name\":\"demo\",\"vers\":\"1.1.0\",\"cksum\":\"short\"}}\n\
         \n\
         {{\"name\":\"demo\",\"vers\":\"2.0.0\",\"cksum\":\"{}\",\"v\":2}}",
        sha('1'),
        sha('2')
    );
    assert_eq!(
        index::lines(body.as_bytes()),
        [
            line("demo", "1.0.0", &sha('1')),
            line("demo", "2.0.0", &sha('2'))
        ]
    );
    assert_eq!(
        index::dl_template(
            br#"{"dl":"https://dl.example.test/{crate}","api":"https://api.example.test"}"#
        )
        .as_deref(),
        Some("https://dl.example.test/{crate}")
    );
    assert_eq!(index::dl_template(b"{\"api\":\"x\"}"), None);
    assert_eq!(index::dl_template(b"<html>"), None);
}

fn entry(encoding: Option<&str>) -> Entry {
    Entry {
        key: RecordingKey::new("cargo", "x"),
        method: "GET".into(),
        url: "x".into(),
        status: 200,
        headers: encoding
            .map(|e| {
                vec![(
                    "content-encoding".to_owned(),
                    btrfly_core::FieldValue::from(e),
                )]
            })
            .unwrap_or_default(),
        sha256: btrfly_core::Sha256::of(b""),
        size: 0,
        mutability: Mutability::Mutable,
        recorded_at: time::OffsetDateTime::UNIX_EPOCH,
        purl: None,
    }
}

/// The session's notes, as the recorder keeps them.
#[derive(Default)]
struct Notes(Mutex<BTreeMap<String, String>>);

impl Notes {
    fn inspect(
        &self,
        a: &CargoAdapter,
        req: &RequestHead,
        entry: &Entry,
        body: &[u8],
    ) -> BTreeMap<String, ExpectedDigest> {
        self.0
            .lock()
            .expect("notes")
            .extend(a.session_notes(req, entry, body));
        let read = |prefix: &str| {
            self.0
                .lock()
                .expect("notes")
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        a.digest_hints_noted(req, entry, body, &read)
            .into_iter()
            .map(|h| (h.url, h.digest))
            .collect()
    }
}

#[test]
fn index_files_announce_checksums_by_subject_and_by_templated_url_in_either_order() {
    let a = CargoAdapter::new(CargoConfig::default());
    let config_req = head(
        Method::GET,
        "https://r.example.test/index/config.json",
        &[PROTO],
    );
    let file_req = head(
        Method::GET,
        "https://r.example.test/index/de/mo/demo",
        &[PROTO],
    );
    let config =
        br#"{"dl":"https://dl.example.test/{lowerprefix}/{crate}/{crate}-{version}.crate"}"#;
    let file = format!(
        "{{\"name\":\"demo\",\"vers\":\"1.0.0\",\"cksum\":\"{}\"}}\n",
        sha('c')
    );
    let digest = ExpectedDigest::sha256_hex(&sha('c')).expect("digest");
    let url = "https://dl.example.test:443/de/mo/demo/demo-1.0.0.crate".to_owned();
    let subject = "cargo:demo@1.0.0".to_owned();

    // config.json first: the index file announces both
    let notes = Notes::default();
    assert!(notes
        .inspect(&a, &config_req, &entry(None), config)
        .is_empty());
    let hints = notes.inspect(&a, &file_req, &entry(None), file.as_bytes());
    assert_eq!(hints.get(&url), Some(&digest));
    assert_eq!(hints.get(&subject), Some(&digest));

    // the index file first: by subject, then config.json adds the URL
    let notes = Notes::default();
    let hints = notes.inspect(&a, &file_req, &entry(None), file.as_bytes());
    assert_eq!(hints.keys().collect::<Vec<_>>(), [&subject]);
    let hints = notes.inspect(&a, &config_req, &entry(None), config);
    assert_eq!(hints.get(&url), Some(&digest));

    // another index's template does not apply
    let notes = Notes::default();
    let other = head(
        Method::GET,
        "https://r.example.test/other/config.json",
        &[PROTO],
    );
    notes.inspect(&a, &other, &entry(None), config);
    let hints = notes.inspect(&a, &file_req, &entry(None), file.as_bytes());
    assert!(!hints.contains_key(&url));

    // a gzip-coded index file is read decoded
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, file.as_bytes()).expect("gzip");
    let gz = gz.finish().expect("gzip");
    let hints = Notes::default().inspect(&a, &file_req, &entry(Some("gzip")), &gz);
    assert_eq!(hints.get(&subject), Some(&digest));
}

#[test]
fn index_documents_are_inspected_and_lose_their_validators() {
    let a = CargoAdapter::default();
    let c = config();
    let file = key::classify(
        &c,
        &head(Method::GET, "https://index.example.test/de/mo/demo", &[]),
    )
    .expect("index file");
    let krate = key::classify(
        &c,
        &head(
            Method::GET,
            "https://dl.example.test/demo/1.0.0/download",
            &[],
        ),
    )
    .expect("crate");
    assert!(a.inspects(&file, 200));
    assert!(!a.inspects(&file, 404));
    assert!(!a.inspects(&krate, 200));
    let mut h = http::HeaderMap::new();
    h.insert("etag", "\"x\"".parse().expect("value"));
    h.insert("content-type", "text/plain".parse().expect("value"));
    a.normalize_response_headers(&file, 200, &mut h);
    assert!(h.get("etag").is_none());
    assert!(h.get("content-type").is_some());
    let mut h2 = http::HeaderMap::new();
    h2.insert("etag", "\"x\"".parse().expect("value"));
    a.normalize_response_headers(&krate, 200, &mut h2);
    assert!(h2.get("etag").is_some());
}

#[test]
fn config_lists_must_be_hosts() {
    let err = CargoConfig::new(&["https://index.example.test/"], &[] as &[&str]).expect_err("url");
    assert_eq!(err.key, "index_hosts");
}
