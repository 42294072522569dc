//! Table tests: (method, URL, headers) → (key, mutability, expected digest),
//! response-head normalisation, redirects, and properties of the
//! normalisation.

use std::collections::HashMap;

use btrfly_core::{Adapter, Entry, Mutability, RecordingKey, RequestHead};
use http::{HeaderMap, HeaderValue, Method};
use proptest::prelude::*;

use super::*;
use crate::key::{clean_path, negotiated_form, negotiated_forms, normalize_name};

const PIP_ACCEPT: &str = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";

fn sha(c: char) -> String {
    std::iter::repeat_n(c, 64).collect()
}

fn head(method: Method, uri: &str, headers: &[(&str, &str)]) -> RequestHead {
    RequestHead::from_parts(method, uri, headers).expect("request head")
}

fn adapter() -> PipAdapter {
    PipAdapter::new(
        PipConfig::new(&["pypi.example.test"], &["files.example.test"]).expect("config"),
    )
}

fn entry(content_type: &str) -> Entry {
    Entry {
        key: RecordingKey::new(NAME, "x"),
        method: "GET".into(),
        url: "x".into(),
        status: 200,
        headers: vec![("Content-Type".into(), content_type.into())],
        sha256: btrfly_core::Sha256::new(&sha('0')).expect("digest"),
        size: 0,
        mutability: Mutability::Mutable,
        recorded_at: time::OffsetDateTime::UNIX_EPOCH,
        purl: None,
    }
}

/// The digests two recorded index pages announce, as a session keeps them.
fn session_hints() -> HashMap<String, String> {
    let a = adapter();
    let html_url = "https://pypi.example.test/simple/demo-pkg/";
    let html = format!(
        r#"<!DOCTYPE html>
<html><body>
<a href="https://files.example.test/packages/ab/cd/demo_pkg-1.0-py3-none-any.whl#sha256={a}" data-requires-python="&gt;=3.8" data-core-metadata="sha256={b}" data-dist-info-metadata="sha256={b}">demo_pkg-1.0-py3-none-any.whl</a>
<a href="https://files.example.test/packages/ab/cd/demo_pkg-1.0+local-py3-none-any.whl#sha256={c}">local</a>
<a href="../../packages/rel/demo_pkg-2.0.tar.gz#md5=00&amp;sha256={d}">demo_pkg-2.0.tar.gz</a>
</body></html>"#,
        a = sha('a'),
        b = sha('b'),
        c = sha('c'),
        d = sha('d'),
    );
    let json_url = "https://pypi.example.test/simple/other/";
    let json = serde_json::json!({
        "meta": {"api-version": "1.1"},
        "name": "other",
        "files": [{
            "filename": "other-3.0.tar.gz",
            "url": "https://files.example.test/packages/ef/other-3.0.tar.gz",
            "hashes": {"sha256": sha('e').to_uppercase()},
            "core-metadata": {"sha256": sha('f')},
        }, {
            "filename": "other-3.0-py3-none-any.whl",
            "url": "/packages/ef/other-3.0-py3-none-any.whl",
            "hashes": {"sha256": sha('1')},
            "core-metadata": true,
        }]
    })
    .to_string();
    let mut hints = HashMap::new();
    for (url, ct, body) in [
        (html_url, "text/html", html.into_bytes()),
        (
            json_url,
            "application/vnd.pypi.simple.v1+json",
            json.into_bytes(),
        ),
    ] {
        let req = head(Method::GET, url, &[("accept", PIP_ACCEPT)]);
        let class = a.classify(&req).expect("a page");
        assert!(a.inspects(&class, 200), "{url}");
        assert!(!a.inspects(&class, 404), "{url}");
        for h in a.digest_hints(&req, &entry(ct), &body) {
            hints.insert(h.url, h.digest.to_string());
        }
    }
    hints
}

type Headers<'a> = &'a [(&'a str, &'a str)];

/// What the classify layer sees for a request: the adapter's key and
/// mutability, and the expected digest from the session's hints (never for
/// a `Range`).
fn verdict(
    hints: &HashMap<String, String>,
    method: Method,
    uri: &str,
    headers: Headers,
) -> Option<(RecordingKey, Mutability, Option<String>)> {
    let req = head(method, uri, headers);
    let class = adapter().classify(&req)?;
    let expected = if req.headers.contains_key(http::header::RANGE) {
        None
    } else {
        hints.get(&req.canonical_url()).cloned()
    };
    Some((class.key, class.mutability, expected))
}

struct Row<'a> {
    method: Method,
    uri: &'a str,
    headers: Headers<'a>,
    /// `None`: the adapter declines (the files adapter gets it).
    want: Option<(&'a str, Headers<'a>, Mutability, Option<String>)>,
}

fn row<'a>(
    method: Method,
    uri: &'a str,
    headers: Headers<'a>,
    want: Option<(&'a str, Headers<'a>, Mutability, Option<String>)>,
) -> Row<'a> {
    Row {
        method,
        uri,
        headers,
        want,
    }
}

use Mutability::{Immutable, Mutable};

#[test]
fn table() {
    let hints = session_hints();
    let pip: Headers = &[("accept", PIP_ACCEPT)];
    let json_pref: Headers = &[("accept", "json")];
    let any: Headers = &[("accept", "json=html-v1=html")];
    let whl = "GET https://files.example.test:443/packages/ab/cd/demo_pkg-1.0-py3-none-any.whl";
    let rows = [
        // --- simple API pages: normalised names, negotiated form ---
        row(
            Method::GET,
            "https://pypi.example.test/simple/",
            pip,
            Some(("GET https://pypi.example.test:443/simple/", json_pref, Mutable, None)),
        ),
        row(
            Method::GET,
            "https://pypi.example.test/simple",
            pip,
            Some(("GET https://pypi.example.test:443/simple", json_pref, Mutable, None)),
        ),
        row(
            Method::GET,
            "https://pypi.example.test/simple/Foo_Bar.baz/",
            pip,
            Some(("GET https://pypi.example.test:443/simple/foo-bar-baz/", json_pref, Mutable, None)),
        ),
        row(
            Method::GET,
            "https://PyPI.Example.TEST:443/simple/FOO--bar__.baz",
            pip,
            Some(("GET https://pypi.example.test:443/simple/foo-bar-baz", json_pref, Mutable, None)),
        ),
        row(
            Method::GET,
            "https://pypi.example.test/simple/foo%5Fbar/",
            pip,
            Some(("GET https://pypi.example.test:443/simple/foo-bar/", json_pref, Mutable, None)),
        ),
        row(
            Method::GET,
            "https://pypi.example.test/simple/foo/",
            &[("accept", "text/html")],
            Some(("GET https://pypi.example.test:443/simple/foo/", &[("accept", "html")], Mutable, None)),
        ),
        row(
            Method::GET,
            "https://pypi.example.test/simple/foo/",
            &[("accept", "application/vnd.pypi.simple.latest+json")],
            Some(("GET https://pypi.example.test:443/simple/foo/", &[("accept", "json")], Mutable, None)),
        ),
        row(
            Method::GET,
            "https://pypi.example.test/simple/foo/",
            &[("accept", "text/html;q=0.9, application/vnd.pypi.simple.v1+json;q=0.2, application/*;q=0.5")],
            Some((
                "GET https://pypi.example.test:443/simple/foo/",
                &[("accept", "html")],
                Mutable,
                None,
            )),
        ),
        row(
            Method::GET,
            "https://pypi.example.test/simple/foo/",
            &[],
            Some(("GET https://pypi.example.test:443/simple/foo/", any, Mutable, None)),
        ),
        row(
            Method::GET,
            "https://pypi.example.test/simple/foo/",
            &[("accept", "*/*")],
            Some(("GET https://pypi.example.test:443/simple/foo/", any, Mutable, None)),
        ),
        row(
            Method::GET,
            "https://pypi.example.test/simple/foo/",
            &[("accept", "application/json")],
            Some(("GET https://pypi.example.test:443/simple/foo/", &[("accept", "none")], Mutable, None)),
        ),
        // PEP 691's `format` parameter stays, a mirror's cache buster goes
        row(
            Method::GET,
            "https://pypi.example.test/simple/foo/?ts=17&format=application/vnd.pypi.simple.v1%2Bjson",
            pip,
            Some((
                "GET https://pypi.example.test:443/simple/foo/?format=application%2Fvnd.pypi.simple.v1%2Bjson",
                json_pref,
                Mutable,
                None,
            )),
        ),
        row(
            Method::GET,
            "https://pypi.example.test/simple/foo/?cachebust=17",
            pip,
            Some(("GET https://pypi.example.test:443/simple/foo/", json_pref, Mutable, None)),
        ),
        // credentials and client noise stay out of the key
        row(
            Method::GET,
            "https://pypi.example.test/simple/foo/",
            &[
                ("accept", PIP_ACCEPT),
                ("authorization", "Basic czNjcmV0"),
                ("cookie", "session=1"),
                ("user-agent", "pip/23.2.1"),
                ("cache-control", "max-age=0"),
                ("if-none-match", "\"abc\""),
            ],
            Some(("GET https://pypi.example.test:443/simple/foo/", json_pref, Mutable, None)),
        ),
        // ports, schemes and path prefixes of other index servers
        row(
            Method::GET,
            "https://pypi.example.test:8443/simple/foo/",
            pip,
            Some(("GET https://pypi.example.test:8443/simple/foo/", json_pref, Mutable, None)),
        ),
        row(
            Method::GET,
            "http://pypi.example.test/simple/foo/",
            pip,
            Some(("GET http://pypi.example.test:80/simple/foo/", json_pref, Mutable, None)),
        ),
        row(
            Method::GET,
            "https://mirror.example.test/root/pypi/+simple/Django/",
            pip,
            Some(("GET https://mirror.example.test:443/root/pypi/%2Bsimple/django/", json_pref, Mutable, None)),
        ),
        row(
            Method::HEAD,
            "https://pypi.example.test/simple/foo/",
            pip,
            Some(("HEAD https://pypi.example.test:443/simple/foo/", json_pref, Mutable, None)),
        ),
        // --- the JSON API ---
        row(
            Method::GET,
            "https://pypi.example.test/pypi/Foo_Bar/json",
            &[],
            Some(("GET https://pypi.example.test:443/pypi/foo-bar/json", &[], Mutable, None)),
        ),
        row(
            Method::GET,
            "https://mirror.example.test/pypi/Foo_Bar/1.0/json/?x=1",
            &[("accept", "application/json")],
            Some(("GET https://mirror.example.test:443/pypi/foo-bar/1.0/json", &[], Mutable, None)),
        ),
        // --- files: immutable, no query, the digest their page announced ---
        row(
            Method::GET,
            "https://files.example.test/packages/ab/cd/demo_pkg-1.0-py3-none-any.whl",
            &[],
            Some((whl, &[], Immutable, Some(sha('a')))),
        ),
        row(
            Method::GET,
            "https://files.example.test/packages/ab/cd/demo_pkg-1.0-py3-none-any.whl?X-Amz-Signature=abc&Expires=17",
            &[("accept", "*/*"), ("authorization", "Bearer t")],
            Some((whl, &[], Immutable, None)),
        ),
        row(
            Method::GET,
            "https://files.example.test/packages/ab/cd/demo_pkg-1.0-py3-none-any.whl.metadata",
            &[],
            Some((
                "GET https://files.example.test:443/packages/ab/cd/demo_pkg-1.0-py3-none-any.whl.metadata",
                &[],
                Immutable,
                Some(sha('b')),
            )),
        ),
        // pip requests `+` as `%2B`; both are one file
        row(
            Method::GET,
            "https://files.example.test/packages/ab/cd/demo_pkg-1.0%2Blocal-py3-none-any.whl",
            &[],
            Some((
                "GET https://files.example.test:443/packages/ab/cd/demo_pkg-1.0%2Blocal-py3-none-any.whl",
                &[],
                Immutable,
                Some(sha('c')),
            )),
        ),
        row(
            Method::GET,
            "https://files.example.test/packages/ab/cd/demo_pkg-1.0+local-py3-none-any.whl",
            &[],
            Some((
                "GET https://files.example.test:443/packages/ab/cd/demo_pkg-1.0%2Blocal-py3-none-any.whl",
                &[],
                Immutable,
                Some(sha('c')),
            )),
        ),
        // a relative link of an HTML page, served by the index host
        row(
            Method::GET,
            "https://pypi.example.test/packages/rel/demo_pkg-2.0.tar.gz",
            &[],
            Some((
                "GET https://pypi.example.test:443/packages/rel/demo_pkg-2.0.tar.gz",
                &[],
                Immutable,
                Some(sha('d')),
            )),
        ),
        // JSON pages: `hashes`, `core-metadata`, relative `url`
        row(
            Method::GET,
            "https://files.example.test/packages/ef/other-3.0.tar.gz",
            &[],
            Some((
                "GET https://files.example.test:443/packages/ef/other-3.0.tar.gz",
                &[],
                Immutable,
                Some(sha('e')),
            )),
        ),
        row(
            Method::GET,
            "https://files.example.test/packages/ef/other-3.0.tar.gz.metadata",
            &[],
            Some((
                "GET https://files.example.test:443/packages/ef/other-3.0.tar.gz.metadata",
                &[],
                Immutable,
                Some(sha('f')),
            )),
        ),
        row(
            Method::GET,
            "https://pypi.example.test/packages/ef/other-3.0-py3-none-any.whl",
            &[],
            Some((
                "GET https://pypi.example.test:443/packages/ef/other-3.0-py3-none-any.whl",
                &[],
                Immutable,
                Some(sha('1')),
            )),
        ),
        row(
            Method::GET,
            "https://pypi.example.test/packages/ef/other-3.0-py3-none-any.whl.metadata",
            &[],
            Some((
                "GET https://pypi.example.test:443/packages/ef/other-3.0-py3-none-any.whl.metadata",
                &[],
                Immutable,
                None,
            )),
        ),
        // a Range is variance, and a part cannot be checked against the whole
        row(
            Method::GET,
            "https://files.example.test/packages/ab/cd/demo_pkg-1.0-py3-none-any.whl",
            &[("range", "bytes=100-")],
            Some((whl, &[("range", "bytes=100-")], Immutable, None)),
        ),
        row(
            Method::HEAD,
            "https://files.example.test/packages/ab/cd/demo_pkg-1.0-py3-none-any.whl",
            &[],
            Some((
                "HEAD https://files.example.test:443/packages/ab/cd/demo_pkg-1.0-py3-none-any.whl",
                &[],
                Immutable,
                Some(sha('a')),
            )),
        ),
        // a file host's files are files whatever their names
        row(
            Method::GET,
            "https://files.example.test/blobs/1234",
            &[],
            Some(("GET https://files.example.test:443/blobs/1234", &[], Immutable, None)),
        ),
        // other hosts: wheels and metadata files by name, sdists only where
        // mirrors put packages
        row(
            Method::GET,
            "https://elsewhere.example.test/dl/x-1.0-py3-none-any.whl?token=s3cret",
            &[],
            Some(("GET https://elsewhere.example.test:443/dl/x-1.0-py3-none-any.whl", &[], Immutable, None)),
        ),
        row(
            Method::GET,
            "https://elsewhere.example.test/mirror/packages/x-1.0.tar.gz",
            &[],
            Some(("GET https://elsewhere.example.test:443/mirror/packages/x-1.0.tar.gz", &[], Immutable, None)),
        ),
        row(
            Method::GET,
            "https://elsewhere.example.test/simple/x/x-1.0.zip",
            &[],
            Some(("GET https://elsewhere.example.test:443/simple/x/x-1.0.zip", &[], Immutable, None)),
        ),
        row(Method::GET, "https://elsewhere.example.test/dl/tool-1.0.tar.gz", &[], None),
        row(Method::GET, "https://elsewhere.example.test/readme.txt", &[], None),
        row(Method::GET, "https://elsewhere.example.test/dl/not-a.whl", &[], None),
        // any other page of an index host
        row(
            Method::GET,
            "https://pypi.example.test/project/foo/?page=2",
            &[("accept", "text/html")],
            Some(("GET https://pypi.example.test:443/project/foo/?page=2", &[("accept", "html")], Mutable, None)),
        ),
        // uploads and other methods are not the index protocol
        row(Method::POST, "https://pypi.example.test/simple/", pip, None),
        row(Method::PUT, "https://files.example.test/packages/x-1.0.tar.gz", &[], None),
    ];
    for r in rows {
        let got = verdict(&hints, r.method.clone(), r.uri, r.headers);
        let Some((primary, variance, mutability, expected)) = r.want else {
            assert!(
                got.is_none(),
                "{} {} should be declined: {got:?}",
                r.method,
                r.uri
            );
            continue;
        };
        let (key, m, e) = got.unwrap_or_else(|| panic!("{} {} declined", r.method, r.uri));
        assert_eq!(key.namespace, "pip");
        assert_eq!(key.primary, primary, "{} {}", r.method, r.uri);
        let want: Vec<(String, String)> = variance
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let got: Vec<(String, String)> = key.variance.clone().into_iter().collect();
        assert_eq!(got, want, "{} {}", r.method, r.uri);
        assert_eq!(m, mutability, "{} {}", r.method, r.uri);
        assert_eq!(e, expected, "{} {}", r.method, r.uri);
    }
}

#[test]
fn html_and_json_answers_to_one_page_never_share_a_key() {
    let a = adapter();
    let url = "https://pypi.example.test/simple/foo/";
    let k = |accept: &str| {
        a.classify(&head(Method::GET, url, &[("accept", accept)]))
            .expect("page")
            .key
            .id()
    };
    let json = k("application/vnd.pypi.simple.v1+json");
    let html = k("text/html");
    let html_v1 = k("application/vnd.pypi.simple.v1+html");
    assert_ne!(json, html);
    assert_ne!(json, html_v1);
    assert_ne!(html, html_v1);
    // the same preferences, written differently, are the same key
    assert_eq!(
        k(PIP_ACCEPT),
        k("text/html;q=0.01,application/vnd.pypi.simple.v1+html;q=0.100,APPLICATION/VND.PYPI.SIMPLE.V1+JSON;charset=utf-8")
    );
}

/// The key holds the form an `Accept` negotiates, not the header: any
/// header that ranks a form first shares that form's recording.
#[test]
fn the_key_holds_the_negotiated_form() {
    for (accept, want) in [
        (Some(PIP_ACCEPT), "json"),
        (
            Some("application/vnd.pypi.simple.v1+json;q=0.9, text/html;q=0.1"),
            "json",
        ),
        (
            Some("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"),
            "html",
        ),
        (Some("application/vnd.pypi.simple.v1+html"), "html-v1"),
        (None, "json=html-v1=html"),
        (Some("application/json"), "none"),
    ] {
        assert_eq!(negotiated_form(accept), want, "{accept:?}");
    }
}

#[test]
fn negotiation_edge_cases() {
    for (accept, want) in [
        (None, "json=html-v1=html"),
        (Some(""), "json=html-v1=html"),
        (Some("text/*"), "html"),
        (Some("application/*"), "json=html-v1"),
        (Some("*/*;q=0.5, text/html"), "html>json=html-v1"),
        (Some("text/html, */*;q=0"), "html"),
        (Some("application/vnd.pypi.simple.v1+json;q=0"), "none"),
        (Some("text/html;q=2"), "none"),
        (Some("text/html;q=0.0001"), "none"),
        (Some("text/html;q=1.000, garbage"), "html"),
        (
            Some("application/vnd.pypi.simple.v1+json;q=0.5, application/vnd.pypi.simple.v1+json"),
            "json",
        ),
    ] {
        assert_eq!(negotiated_forms(accept), want, "{accept:?}");
    }
}

// --- response heads ---

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.append(
            http::header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    map
}

fn normalized(mutability: Mutability, status: u16, pairs: &[(&str, &str)]) -> HeaderMap {
    let class = Classification {
        key: RecordingKey::new(NAME, "x"),
        mutability,
        expected: None,
        package: None,
        subject: None,
    };
    let mut h = headers(pairs);
    adapter().normalize_response_headers(&class, status, &mut h);
    h
}

#[test]
fn every_volatile_header_is_dropped() {
    let cases: &[(&str, &str)] = &[
        ("date", "Sun, 22 Nov 2026 23:22:54 GMT"),
        ("age", "17"),
        ("expires", "Sun, 22 Nov 2026 23:32:54 GMT"),
        ("set-cookie", "edge=1; Path=/"),
        ("via", "1.1 varnish, 1.1 varnish"),
        ("etag", "\"5d41402abc4b2a76b9719d911017c592\""),
        ("last-modified", "Sun, 22 Nov 2026 23:00:00 GMT"),
        ("x-cache", "HIT, MISS"),
        ("x-cache-hits", "3, 0"),
        ("x-served-by", "cache-edge-1"),
        ("x-timer", "S1700000000.1,VS0,VE1"),
        ("x-request-id", "abc"),
        ("x-amz-request-id", "abc"),
        ("x-amz-id-2", "abc"),
        ("x-amz-cf-id", "abc"),
        ("x-amz-cf-pop", "ABC1"),
        ("cf-ray", "abc-XYZ"),
        ("cf-cache-status", "HIT"),
        ("server-timing", "edge;dur=1"),
        ("alt-svc", "h3=\":443\""),
        ("report-to", "{}"),
        ("nel", "{}"),
        ("pragma", "no-cache"),
    ];
    assert_eq!(cases.len(), headers::VOLATILE.len() + 1, "a row per header");
    for (name, value) in cases {
        for m in [Mutable, Immutable] {
            let h = normalized(m, 200, &[(name, value), ("content-type", "text/html")]);
            assert!(!h.contains_key(*name), "{name} kept for {m:?}");
            assert_eq!(h["content-type"], "text/html", "{name}");
        }
    }
}

#[test]
fn cache_headers_state_what_btrfly_guarantees() {
    // pages are frozen per tag: a caching client must ask again
    let h = normalized(Mutable, 200, &[("cache-control", "max-age=600, public")]);
    assert_eq!(h.get_all("cache-control").iter().count(), 1);
    assert_eq!(h["cache-control"], headers::PAGE_CACHE_CONTROL);
    // files never change
    let h = normalized(Immutable, 200, &[("cache-control", "max-age=60")]);
    assert_eq!(h["cache-control"], headers::FILE_CACHE_CONTROL);
    let h = normalized(Immutable, 206, &[]);
    assert_eq!(h["cache-control"], headers::FILE_CACHE_CONTROL);
    // but a failed file request is not cached forever
    let h = normalized(Immutable, 404, &[("cache-control", "max-age=86400")]);
    assert_eq!(h["cache-control"], headers::PAGE_CACHE_CONTROL);
}

#[test]
fn what_describes_the_body_is_kept() {
    let kept = [
        ("content-type", "application/vnd.pypi.simple.v1+json"),
        ("content-encoding", "gzip"),
        ("content-length", "17"),
        ("vary", "Accept, Accept-Encoding"),
        ("x-pypi-last-serial", "12345"),
        ("location", "/simple/foo/"),
    ];
    let h = normalized(Mutable, 200, &kept);
    for (k, v) in kept {
        assert_eq!(h[k], v, "{k}");
    }
}

// --- redirects ---

#[test]
fn a_redirect_to_its_own_key_is_not_recorded() {
    let a = adapter();
    let rec = |uri: &str, status: u16, location: Option<&str>| {
        let req = head(Method::GET, uri, &[("accept", PIP_ACCEPT)]);
        let class = a.classify(&req).expect("claimed");
        let mut h = HeaderMap::new();
        if let Some(l) = location {
            h.insert("location", HeaderValue::from_str(l).expect("location"));
        }
        a.records(&req, &class, status, &h)
    };
    let page = "https://pypi.example.test/simple/Foo_Bar/";
    assert!(!rec(page, 301, Some("/simple/foo-bar/")));
    assert!(!rec(
        page,
        301,
        Some("https://pypi.example.test:443/simple/foo-bar/")
    ));
    // the slash form is another page: links on it resolve differently
    assert!(rec(page, 308, Some("../foo-bar")));
    assert!(rec(
        "https://pypi.example.test/root/pypi/+simple/foo",
        301,
        Some("/root/pypi/+simple/foo/")
    ));
    assert!(rec(page, 301, Some("/simple/other/")));
    assert!(rec(
        page,
        302,
        Some("https://mirror.example.test/simple/foo-bar/")
    ));
    assert!(rec(page, 301, None));
    assert!(rec(page, 200, Some("/simple/foo-bar/")));
    let file = "https://files.example.test/packages/x-1.0.tar.gz?sig=1";
    assert!(!rec(file, 302, Some("/packages/x-1.0.tar.gz?sig=2")));
    assert!(rec(
        file,
        302,
        Some("https://blobs.example.test/x-1.0.tar.gz?sig=2")
    ));
}

// --- properties: normalising twice changes nothing more ---

fn uri_chars() -> impl Strategy<Value = String> {
    // characters a request target can hold, including escapes and reserved ones
    proptest::string::string_regex("[A-Za-z0-9._~!$&'()*+,;=:@%-]{0,12}").expect("regex")
}

proptest! {
    #[test]
    fn name_normalisation_is_idempotent(name in "\\PC{0,24}") {
        let once = normalize_name(&name);
        prop_assert_eq!(normalize_name(&once), once.clone());
        prop_assert!(!once.contains("--") && !once.contains('_') && !once.contains('.'));
    }

    #[test]
    fn path_cleaning_is_idempotent(a in uri_chars(), b in uri_chars(), c in uri_chars()) {
        let path = format!("/{a}/{b}%2f{c}");
        let once = clean_path(&path);
        prop_assert_eq!(clean_path(&once), once);
    }

    /// The primary of a key, requested again, gives the same key.
    #[test]
    fn keys_are_fixed_points(
        host in prop::sample::select(vec!["pypi.example.test", "files.example.test", "elsewhere.example.test"]),
        shape in 0usize..5,
        name in "[A-Za-z0-9._-]{1,12}",
        junk in uri_chars(),
        accept in prop::sample::select(vec!["", "text/html", PIP_ACCEPT, "*/*"]),
    ) {
        let path = match shape {
            0 => format!("/simple/{name}/"),
            1 => format!("/pypi/{name}/json"),
            2 => format!("/packages/{junk}/{name}-1.0-py3-none-any.whl?{junk}"),
            3 => format!("/packages/{name}-1.0.tar.gz.metadata"),
            _ => format!("/root/+simple/{name}?format={junk}"),
        };
        let Ok(uri) = format!("https://{host}{path}").parse::<http::Uri>() else {
            return Ok(());
        };
        let a = adapter();
        let hdrs: Vec<(&str, &str)> = if accept.is_empty() { vec![] } else { vec![("accept", accept)] };
        let req = head(Method::GET, &uri.to_string(), &hdrs);
        let Some(first) = a.classify(&req) else { return Ok(()) };
        let again_uri = first.key.primary.strip_prefix("GET ").expect("method").to_owned();
        let again = a.classify(&head(Method::GET, &again_uri, &hdrs)).expect("still claimed");
        prop_assert_eq!(&again.key, &first.key);
        prop_assert_eq!(again.mutability, first.mutability);
    }

    #[test]
    fn header_normalisation_is_idempotent(
        names in prop::collection::vec(prop::sample::select(vec![
            "date", "etag", "cache-control", "content-type", "vary", "age", "x-cache", "pragma", "x-pypi-last-serial",
        ]), 0..8),
        immutable in any::<bool>(),
        status in prop::sample::select(vec![200u16, 206, 301, 404]),
    ) {
        let pairs: Vec<(&str, &str)> = names.iter().map(|n| (*n, "v")).collect();
        let m = if immutable { Immutable } else { Mutable };
        let once = normalized(m, status, &pairs);
        let class = Classification::new(RecordingKey::new(NAME, "x"), m);
        let mut twice = once.clone();
        adapter().normalize_response_headers(&class, status, &mut twice);
        prop_assert_eq!(twice, once);
    }

    /// Reordering the ranges of an `Accept` header does not change the forms.
    #[test]
    fn accept_order_does_not_matter(perm in Just(vec![
        "application/vnd.pypi.simple.v1+json", "application/vnd.pypi.simple.v1+html; q=0.1", "text/html; q=0.01", "*/*;q=0.001",
    ]).prop_shuffle()) {
        prop_assert_eq!(negotiated_forms(Some(&perm.join(", "))), "json>html-v1>html");
    }
}
