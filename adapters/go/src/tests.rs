//! Table tests of every key rule.

use btrfly_core::{Adapter, ExpectedDigest, H1Of, Mutability, RequestHead};
use http::Method;

use crate::config::GoConfig;
use crate::key::{self, decode_case, Resource, VersionFile};
use crate::GoAdapter;

fn head(method: Method, uri: &str) -> RequestHead {
    RequestHead::from_parts(method, uri, &[]).expect("request head")
}

fn config() -> GoConfig {
    GoConfig::new(&["goproxy.example.test"], &["sum.example.test"]).expect("config")
}

#[test]
fn case_encoding_decodes_or_refuses() {
    assert_eq!(
        decode_case("example.test/!upper/m").as_deref(),
        Some("example.test/Upper/m")
    );
    assert_eq!(decode_case("v1.0.0-!r!c1").as_deref(), Some("v1.0.0-RC1"));
    for bad in ["example.test/Upper", "trailing!", "!1", ""] {
        assert_eq!(decode_case(bad), None, "{bad:?}");
    }
}

#[test]
fn resources_by_path_shape() {
    let c = GoConfig::default();
    let v = |m: &str, ver: &str, file| Resource::Version {
        module: m.into(),
        version: ver.into(),
        file,
    };
    for (method, uri, want) in [
        (
            Method::GET,
            "https://p.example.test/example.test/m/@v/list",
            Some(Resource::List {
                module: "example.test/m".into(),
            }),
        ),
        (
            Method::GET,
            "https://p.example.test/example.test/m/@latest",
            Some(Resource::Latest {
                module: "example.test/m".into(),
            }),
        ),
        (
            Method::GET,
            "https://p.example.test/example.test/!upper/@v/v1.0.0.zip",
            Some(v("example.test/Upper", "v1.0.0", VersionFile::Zip)),
        ),
        (
            Method::GET,
            "https://p.example.test/prefix/go/example.test/m/@v/v1.2.3-!r!c.mod",
            Some(v("example.test/m", "v1.2.3-RC", VersionFile::Mod)),
        ),
        (
            Method::HEAD,
            "https://p.example.test/example.test/m/@v/v1.0.0.info",
            Some(v("example.test/m", "v1.0.0", VersionFile::Info)),
        ),
        (
            Method::GET,
            "https://p.example.test/example.test/m/@v/v1.0.0.tar",
            None,
        ),
        (
            Method::GET,
            "https://p.example.test/example.test/Upper/@v/v1.0.0.zip",
            None,
        ),
        (
            Method::GET,
            "https://p.example.test/example.test/m/@v/../../x.zip",
            None,
        ),
        (
            Method::GET,
            "https://s.example.test/lookup/example.test/!upper@v1.0.0",
            Some(Resource::Lookup {
                module: "example.test/Upper".into(),
                version: "v1.0.0".into(),
            }),
        ),
        (
            Method::GET,
            "https://p.example.test/sumdb/sum.example.test/lookup/example.test/m@v1.0.0",
            Some(Resource::Lookup {
                module: "example.test/m".into(),
                version: "v1.0.0".into(),
            }),
        ),
        (
            Method::GET,
            "https://s.example.test/tile/8/0/001.p/5",
            Some(Resource::Tile),
        ),
        (
            Method::GET,
            "https://s.example.test/tile/8/data/000",
            Some(Resource::Tile),
        ),
        (
            Method::GET,
            "https://p.example.test/sumdb/sum.example.test/latest",
            Some(Resource::SumdbState),
        ),
        (
            Method::GET,
            "https://p.example.test/sumdb/sum.example.test/supported",
            Some(Resource::SumdbState),
        ),
        (Method::GET, "https://s.example.test/latest", None),
        (
            Method::GET,
            "https://git.example.test/m?go-get=1",
            Some(Resource::Direct),
        ),
        (
            Method::GET,
            "https://git.example.test/m.git/info/refs?service=git-upload-pack",
            Some(Resource::Direct),
        ),
        (
            Method::POST,
            "https://git.example.test/m.git/git-upload-pack",
            Some(Resource::Direct),
        ),
        (
            Method::POST,
            "https://git.example.test/m.git/git-receive-pack",
            None,
        ),
        (
            Method::GET,
            "https://git.example.test/m.git/HEAD",
            Some(Resource::Direct),
        ),
        (
            Method::GET,
            "https://git.example.test/m.git/objects/info/packs",
            Some(Resource::Direct),
        ),
        (
            Method::GET,
            &format!(
                "https://git.example.test/m.git/objects/ab/{}",
                "c".repeat(38)
            ),
            Some(Resource::GitObject),
        ),
        (
            Method::GET,
            &format!(
                "https://git.example.test/m.git/objects/pack/pack-{}.pack",
                "d".repeat(40)
            ),
            Some(Resource::GitObject),
        ),
        (Method::GET, "https://www.example.test/index.html", None),
        (
            Method::PUT,
            "https://p.example.test/example.test/m/@v/list",
            None,
        ),
    ] {
        assert_eq!(
            key::resource(&c, &head(method.clone(), uri)),
            want,
            "{method} {uri}"
        );
    }
    // on configured hosts, `latest` and any other page are Go's
    let c = config();
    assert_eq!(
        key::resource(&c, &head(Method::GET, "https://sum.example.test/latest")),
        Some(Resource::SumdbState)
    );
    assert_eq!(
        key::resource(&c, &head(Method::GET, "https://goproxy.example.test/")),
        Some(Resource::Direct)
    );
}

#[test]
fn keys_mutability_identity() {
    let c = GoConfig::default();
    let class = |m: Method, uri: &str| key::classify(&c, &head(m, uri)).expect("classified");
    let zip = class(
        Method::GET,
        "https://p.example.test/example.test/!upper/@v/v1.0.0.zip",
    );
    assert_eq!(
        zip.key.primary,
        "GET https://p.example.test:443 mod example.test/Upper@v1.0.0.zip"
    );
    assert_eq!(zip.mutability, Mutability::Immutable);
    assert_eq!(
        zip.package.as_deref(),
        Some("pkg:golang/example.test/Upper@v1.0.0")
    );
    assert_eq!(
        zip.subject.as_deref(),
        Some("go:zip:example.test/Upper@v1.0.0")
    );
    // as go sends it: `!` percent-encoded
    let sent = class(
        Method::GET,
        "https://p.example.test/example.test/%21upper/@v/v1.0.0.zip",
    );
    assert_eq!(sent.key, zip.key);
    assert_eq!(sent.subject, zip.subject);
    // a path prefix does not change the module's identity
    let prefixed = class(
        Method::GET,
        "https://p.example.test/go/example.test/!upper/@v/v1.0.0.zip",
    );
    assert_eq!(prefixed.subject, zip.subject);
    let m = class(
        Method::GET,
        "https://p.example.test/example.test/m/@v/v1.0.0.mod",
    );
    assert_eq!(m.subject.as_deref(), Some("go:mod:example.test/m@v1.0.0"));
    let info = class(
        Method::GET,
        "https://p.example.test/example.test/m/@v/v1.0.0.info",
    );
    assert_eq!(info.subject, None);
    assert_eq!(info.mutability, Mutability::Immutable);
    for uri in [
        "https://p.example.test/example.test/m/@v/list",
        "https://p.example.test/example.test/m/@latest",
        "https://p.example.test/sumdb/s.example.test/lookup/example.test/m@v1.0.0",
        "https://git.example.test/m?go-get=1",
    ] {
        let c = class(Method::GET, uri);
        assert_eq!(c.mutability, Mutability::Mutable, "{uri}");
        assert_eq!(c.package, None, "{uri}");
    }
    let tile = class(Method::GET, "https://s.example.test/tile/8/0/000");
    assert_eq!(tile.mutability, Mutability::Immutable);
    // the query of a direct-mode page is in its key
    let refs = class(
        Method::GET,
        "https://git.example.test/m.git/info/refs?service=git-upload-pack",
    );
    assert_eq!(
        refs.key.primary,
        "GET https://git.example.test:443/m.git/info/refs?service=git-upload-pack"
    );
    // git's protocol version is variance in direct mode: the same
    // `info/refs` URL answers a v2 capability list or a v0 advertisement
    let v2 = key::classify(
        &c,
        &RequestHead::from_parts(
            Method::GET,
            "https://git.example.test/m.git/info/refs?service=git-upload-pack",
            &[("git-protocol", "version=2")],
        )
        .expect("head"),
    )
    .expect("classified");
    assert_eq!(v2.key.primary, refs.key.primary);
    assert_eq!(
        v2.key.variance.get("git-protocol").map(String::as_str),
        Some("version=2")
    );
    assert_ne!(v2.key, refs.key);
    assert_eq!(refs.key.variance.get("git-protocol"), None);
    // a module proxy's answers do not depend on it
    let zip_v2 = key::classify(
        &c,
        &RequestHead::from_parts(
            Method::GET,
            "https://p.example.test/example.test/!upper/@v/v1.0.0.zip",
            &[("git-protocol", "version=2")],
        )
        .expect("head"),
    )
    .expect("classified");
    assert_eq!(zip_v2.key, zip.key);
    // a range is variance
    let ranged = key::classify(
        &c,
        &RequestHead::from_parts(
            Method::GET,
            "https://p.example.test/example.test/m/@v/v1.0.0.zip",
            &[("range", "bytes=0-9")],
        )
        .expect("head"),
    )
    .expect("classified");
    assert_eq!(
        ranged.key.variance.get("range").map(String::as_str),
        Some("bytes=0-9")
    );
}

#[test]
fn lookup_answers_announce_zip_and_go_mod_hashes() {
    let zip_h1 = format!("h1:{}", "A".repeat(43) + "=");
    let mod_h1 = format!("h1:{}", "B".repeat(42) + "A=");
    let body = format!(
        "12\nexample.test/Upper v1.0.0 {zip_h1}\nexample.test/Upper v1.0.0/go.mod {mod_h1}\nexample.test/other v1.0.0 {zip_h1}\n\ngo.sum database tree\n13\nAAAA\n\n— sum.example.test sig\n"
    );
    let adapter = GoAdapter::new(GoConfig::default());
    let req = head(
        Method::GET,
        "https://s.example.test/lookup/example.test/!upper@v1.0.0",
    );
    let class = adapter.classify(&req).expect("lookup");
    assert!(adapter.inspects(&class, 200));
    assert!(!adapter.inspects(&class, 404));
    let hints = key::lookup_hints("example.test/Upper", "v1.0.0", body.as_bytes());
    assert_eq!(hints.len(), 2, "{hints:?}");
    assert_eq!(hints[0].url, "go:zip:example.test/Upper@v1.0.0");
    assert_eq!(
        hints[0].digest,
        ExpectedDigest::go_h1(&zip_h1, H1Of::ModuleZip).expect("h1")
    );
    assert_eq!(hints[1].url, "go:mod:example.test/Upper@v1.0.0");
    assert_eq!(
        hints[1].digest,
        ExpectedDigest::go_h1(&mod_h1, H1Of::GoMod).expect("h1")
    );
    assert!(key::lookup_hints("example.test/Upper", "v1.0.0", b"\xff\xfe").is_empty());
    // as the adapter reads a recorded answer: plain or gzip-coded
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, body.as_bytes()).expect("gzip");
    let gz = gz.finish().expect("gzip");
    for (coding, bytes) in [(None, body.as_bytes().to_vec()), (Some("gzip"), gz)] {
        let mut headers = Vec::new();
        if let Some(c) = coding {
            headers.push(("Content-Encoding".to_owned(), c.into()));
        }
        let entry = btrfly_core::Entry {
            key: class.key.clone(),
            method: "GET".into(),
            url: req.uri.to_string(),
            status: 200,
            headers,
            sha256: btrfly_core::Sha256::of(&bytes),
            size: bytes.len() as u64,
            mutability: Mutability::Mutable,
            recorded_at: time::OffsetDateTime::UNIX_EPOCH,
            purl: None,
        };
        assert_eq!(
            adapter.digest_hints(&req, &entry, &bytes),
            hints,
            "{coding:?}"
        );
    }
    assert!(key::lookup_hints(
        "example.test/Upper",
        "v1.0.0",
        b"12\nexample.test/Upper v1.0.0 h1:short\n"
    )
    .is_empty());
}

#[test]
fn config_names_the_bad_list() {
    let err = GoConfig::new(&["ok.example.test"], &["bad/path"]).unwrap_err();
    assert!(err.to_string().starts_with("sumdb_hosts:"), "{err}");
}
