//! Table tests: one row per rule of the adapter.

use super::*;
use http::{HeaderValue, Method};
use oci_spec::image::{MediaType, ToDockerV2S2};

const D1: &str = "sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b";
const HEX1: &str = "6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b";
const D512: &str = "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e";

fn head(method: Method, uri: &str, headers: &[(&str, &str)]) -> RequestHead {
    RequestHead::from_parts(method, uri, headers).expect("request head")
}

fn get(uri: &str) -> RequestHead {
    head(Method::GET, uri, &[])
}

fn adapter(registries: &[&str], auth_hosts: &[&str], detect: bool) -> OciAdapter {
    OciAdapter::new(&OciConfig {
        registries: registries.iter().map(|s| s.to_string()).collect(),
        auth_hosts: auth_hosts.iter().map(|s| s.to_string()).collect(),
        detect,
    })
    .expect("valid config")
}

fn classify(req: &RequestHead) -> Option<Classification> {
    OciAdapter::default().classify(req)
}

fn manifest_types() -> [String; 4] {
    [
        MediaType::ImageManifest.to_string(),
        MediaType::ImageIndex.to_string(),
        MediaType::ImageManifest
            .to_docker_v2s2()
            .expect("docker v2s2")
            .to_owned(),
        MediaType::ImageIndex
            .to_docker_v2s2()
            .expect("docker list")
            .to_owned(),
    ]
}

type Variance<'a> = &'a [(&'a str, &'a str)];

/// method, URL, request headers → key primary, variance, mutability,
/// expected sha256.
type KeyCase<'a> = (
    Method,
    String,
    Variance<'a>,
    &'a str,
    Variance<'a>,
    Mutability,
    Option<&'a str>,
);

/// A host pattern → (host, port, whether it matches), or `None` when it is
/// rejected.
type HostCase<'a> = (&'a str, Option<(&'a str, u16, bool)>);

/// What shape detection (the default) makes of each kind of request.
#[test]
fn keys_by_endpoint() {
    let r = "https://registry.example.test:5000";
    #[rustfmt::skip]
    let cases: &[KeyCase] = &[
        // the version check, with or without the slash
        (Method::GET, format!("{r}/v2/"), &[], "GET https://registry.example.test:5000/v2/", &[], Mutability::Mutable, None),
        (Method::GET, format!("{r}/v2"), &[], "GET https://registry.example.test:5000/v2/", &[], Mutability::Mutable, None),
        (Method::HEAD, format!("{r}/v2/"), &[], "HEAD https://registry.example.test:5000/v2/", &[], Mutability::Mutable, None),
        // a manifest by tag: registry, repository, tag and the Accept set
        (Method::GET, format!("{r}/v2/lib/app/manifests/1.0"),
            &[("accept", "application/vnd.oci.image.index.v1+json")],
            "GET https://registry.example.test:5000/v2/lib/app/manifests/1.0",
            &[("accept", "application/vnd.oci.image.index.v1+json")], Mutability::Mutable, None),
        (Method::HEAD, format!("{r}/v2/app/manifests/latest"), &[],
            "HEAD https://registry.example.test:5000/v2/app/manifests/latest", &[], Mutability::Mutable, None),
        // a manifest by digest: the digest alone, verified
        (Method::GET, format!("{r}/v2/app/manifests/{D1}"), &[("accept", "*/*")],
            &format!("GET manifest {D1}"), &[], Mutability::Immutable, Some(HEX1)),
        // a blob by digest: the digest alone, verified; a Range is variance
        (Method::GET, format!("{r}/v2/lib/app/blobs/{D1}"), &[],
            &format!("GET blob {D1}"), &[], Mutability::Immutable, Some(HEX1)),
        (Method::GET, format!("{r}/v2/app/blobs/{D1}"), &[("range", "bytes=0-99")],
            &format!("GET blob {D1}"), &[("range", "bytes=0-99")], Mutability::Immutable, Some(HEX1)),
        (Method::HEAD, format!("{r}/v2/app/blobs/{D1}"), &[],
            &format!("HEAD blob {D1}"), &[], Mutability::Immutable, Some(HEX1)),
        // a digest the recorder cannot verify stays an exact, per-registry key
        (Method::GET, format!("{r}/v2/app/blobs/{D512}"), &[],
            &format!("GET https://registry.example.test:5000/v2/app/blobs/{D512}"), &[], Mutability::Mutable, None),
        // listings are exact URLs, frozen per tag
        (Method::GET, format!("{r}/v2/app/tags/list?n=10&last=a"), &[],
            "GET https://registry.example.test:5000/v2/app/tags/list?n=10&last=a", &[], Mutability::Mutable, None),
        (Method::GET, format!("{r}/v2/_catalog"), &[],
            "GET https://registry.example.test:5000/v2/_catalog", &[], Mutability::Mutable, None),
        (Method::GET, format!("{r}/v2/app/referrers/{D1}"), &[],
            &format!("GET https://registry.example.test:5000/v2/app/referrers/{D1}"), &[], Mutability::Mutable, None),
        // host case and the default port are normalised
        (Method::GET, "https://Registry.Example.TEST/v2/".into(), &[],
            "GET https://registry.example.test:443/v2/", &[], Mutability::Mutable, None),
        // secrets and client noise never enter a key
        (Method::GET, format!("{r}/v2/app/blobs/{D1}"),
            &[("authorization", "Bearer eyJ.s3cret"), ("cookie", "a=b"), ("user-agent", "skopeo/1.9"), ("if-none-match", "\"x\"")],
            &format!("GET blob {D1}"), &[], Mutability::Immutable, Some(HEX1)),
        (Method::GET, format!("{r}/v2/app/manifests/1.0"), &[("authorization", "Bearer a")],
            "GET https://registry.example.test:5000/v2/app/manifests/1.0", &[], Mutability::Mutable, None),
        // token requests: realm and service; scope, account and client id left out
        (Method::GET, "https://auth.example.test:8443/token?scope=repository%3Aapp%3Apull&service=registry.example.test".into(), &[],
            "GET token https://auth.example.test:8443/token", &[("service", "registry.example.test")], Mutability::Mutable, None),
        (Method::GET, "https://auth.example.test:8443/token?account=me&client_id=podman&offline_token=true&scope=repository:other/app:pull,push&service=registry.example.test".into(),
            &[("authorization", "Basic bWU6cHc=")],
            "GET token https://auth.example.test:8443/token", &[("service", "registry.example.test")], Mutability::Mutable, None),
        (Method::GET, "https://auth.example.test/oauth?scope=registry%3Acatalog%3A*".into(), &[],
            "GET token https://auth.example.test:443/oauth", &[], Mutability::Mutable, None),
        (Method::GET, "https://auth.example.test/t?scope=repository(plugin):p:pull&service=s".into(), &[],
            "GET token https://auth.example.test:443/t", &[("service", "s")], Mutability::Mutable, None),
    ];
    for (method, uri, headers, primary, variance, mutability, expected) in cases {
        let req = head(method.clone(), uri, headers);
        let c = classify(&req).unwrap_or_else(|| panic!("{method} {uri} not claimed"));
        assert_eq!(c.key.namespace, "oci");
        assert_eq!(&c.key.primary, primary, "{method} {uri}");
        let want: Vec<(String, String)> = variance
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let got: Vec<(String, String)> = c.key.variance.clone().into_iter().collect();
        assert_eq!(got, want, "{method} {uri}");
        assert_eq!(c.mutability, *mutability, "{method} {uri}");
        assert_eq!(
            c.expected.as_ref().map(|d| d.to_string()).as_deref(),
            *expected,
            "{method} {uri}"
        );
    }
}

/// What shape detection leaves to the next adapter (finally `files`).
#[test]
fn declines_what_is_not_registry_traffic() {
    let declined = [
        head(
            Method::PUT,
            "https://r.example.test/v2/app/manifests/1.0",
            &[],
        ),
        head(
            Method::POST,
            "https://r.example.test/v2/app/blobs/uploads/",
            &[],
        ),
        head(
            Method::PATCH,
            "https://r.example.test/v2/app/blobs/uploads/u1",
            &[],
        ),
        head(
            Method::DELETE,
            &format!("https://r.example.test/v2/app/blobs/{D1}"),
            &[],
        ),
        get("https://r.example.test/v2/app/blobs/uploads/u1"),
        get("https://r.example.test/v2/App/manifests/1.0"),
        get("https://r.example.test/v2/app/manifests/-tag"),
        get("https://r.example.test/v2/app/blobs/latest"),
        get("https://r.example.test/v2x/app/manifests/1.0"),
        get("https://files.example.test/tool.tar.gz"),
        get("https://files.example.test/v1/app/manifests/1.0"),
        get("https://auth.example.test/token?service=registry.example.test"),
        get("https://files.example.test/search?scope=everything"),
        // a token request with credentials in a form body goes to `files`
        head(
            Method::POST,
            "https://auth.example.test/token?scope=repository:a:pull",
            &[],
        ),
    ];
    for req in &declined {
        assert_eq!(classify(req), None, "{} {}", req.method, req.uri);
    }
}

/// Configured hosts: every `/v2/` request of a registry host, every request
/// of a token host; without detection nothing else.
#[test]
fn configured_hosts() {
    let a = adapter(
        &["registry.example.test:5000", "mirror.example.test"],
        &["auth.example.test"],
        false,
    );
    let claimed = |uri: &str| a.classify(&get(uri)).map(|c| c.key.primary);
    assert_eq!(
        claimed("https://registry.example.test:5000/v2/app/blobs/uploads/u1").as_deref(),
        Some("GET https://registry.example.test:5000/v2/app/blobs/uploads/u1"),
        "any /v2/ path of a registry host"
    );
    assert_eq!(
        claimed(&format!(
            "https://mirror.example.test:1234/v2/app/blobs/{D1}"
        )),
        Some(format!("GET blob {D1}")),
        "no port in the pattern: any port"
    );
    assert_eq!(
        claimed("https://registry.example.test:5001/v2/"),
        None,
        "another port"
    );
    assert_eq!(
        claimed("https://other.example.test/v2/"),
        None,
        "detection off"
    );
    assert_eq!(
        claimed("https://other.example.test/token?scope=repository:a:pull"),
        None,
        "detection off: token shape ignored"
    );
    assert_eq!(
        claimed("https://auth.example.test/login?service=registry.example.test").as_deref(),
        Some("GET token https://auth.example.test:443/login"),
        "a token host needs no scope"
    );
    assert_eq!(
        claimed("https://registry.example.test:5000/index.html"),
        None,
        "a registry host's other paths"
    );
}

/// One recording of content serves every repository, registry, port and
/// tag that names the same digest.
#[test]
fn digest_keys_are_shared_across_repositories_and_registries() {
    let urls = [
        format!("https://registry.example.test:5000/v2/app/blobs/{D1}"),
        format!("https://registry.example.test:5000/v2/lib/other/blobs/{D1}"),
        format!("https://secure.example.test:443/v2/app/blobs/{D1}"),
        format!("http://mirror.example.test:8080/v2/x/y/z/blobs/{D1}"),
    ];
    let ids: Vec<String> = urls
        .iter()
        .map(|u| classify(&get(u)).expect("claimed").key.id())
        .collect();
    assert!(ids.iter().all(|id| id == &ids[0]), "{urls:?}");
    // a manifest and a blob with the same digest are different answers
    let m = classify(&get(&format!(
        "https://registry.example.test:5000/v2/app/manifests/{D1}"
    )))
    .expect("claimed");
    assert_ne!(m.key.id(), ids[0]);
}

/// Tags are per registry, repository and tag.
#[test]
fn tag_keys_are_per_registry_repository_and_tag() {
    let uris = [
        "https://registry.example.test:5000/v2/app/manifests/1.0",
        "https://registry.example.test:5000/v2/app/manifests/1.1",
        "https://registry.example.test:5000/v2/lib/app/manifests/1.0",
        "https://registry.example.test:5001/v2/app/manifests/1.0",
        "https://secure.example.test:5000/v2/app/manifests/1.0",
    ];
    let mut ids: Vec<String> = uris
        .iter()
        .map(|u| classify(&get(u)).expect("claimed").key.id())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), uris.len());
}

/// The Accept set is normalised: split headers and commas, drop
/// parameters, lower case, sort, dedupe. Different sets differ.
#[test]
fn accept_negotiation() {
    let [oci, oci_index, docker, docker_list] = manifest_types();
    let u = "https://registry.example.test/v2/app/manifests/1.0";
    let variance = |headers: &[(&str, &str)]| {
        classify(&head(Method::GET, u, headers))
            .expect("claimed")
            .key
            .variance
            .get("accept")
            .cloned()
    };
    let all = {
        let mut v = manifest_types().to_vec();
        v.sort();
        v.join(",")
    };
    let joined = format!("{docker}, {oci};q=0.9,{oci_index} ,{docker_list}");
    let upper = joined.to_ascii_uppercase();
    let same: Vec<Vec<(&str, &str)>> = vec![
        vec![
            ("accept", &oci),
            ("accept", &oci_index),
            ("accept", &docker),
            ("accept", &docker_list),
        ],
        vec![("accept", &joined)],
        vec![("accept", &upper)],
        vec![("accept", &joined), ("accept", &docker)],
    ];
    for headers in &same {
        assert_eq!(
            variance(headers).as_deref(),
            Some(all.as_str()),
            "{headers:?}"
        );
    }
    let different = [
        variance(&[("accept", &docker)]),
        variance(&[("accept", &oci)]),
        variance(&[("accept", &oci_index)]),
        variance(&[("accept", &docker_list)]),
        variance(&[("accept", &format!("{docker},{docker_list}"))]),
        variance(&[]),
        Some(all),
    ];
    for i in 0..different.len() {
        for j in i + 1..different.len() {
            assert_ne!(different[i], different[j], "{i} vs {j}");
        }
    }
    assert_eq!(variance(&[]), None);
}

fn class_of(uri: &str) -> Classification {
    classify(&get(uri)).expect("claimed")
}

/// Which answers are recorded: content by digest only whole (a redirect is
/// followed, a part cannot be verified); everything else as it comes.
#[test]
fn what_is_recorded() {
    let a = OciAdapter::default();
    let blob = class_of(&format!("https://r.example.test/v2/app/blobs/{D1}"));
    let manifest = class_of(&format!("https://r.example.test/v2/app/manifests/{D1}"));
    let tag = class_of("https://r.example.test/v2/app/manifests/1.0");
    let ping = class_of("https://r.example.test/v2/");
    let req = get("https://r.example.test/v2/");
    let none = HeaderMap::new();
    #[rustfmt::skip]
    let cases: &[(&Classification, u16, bool)] = &[
        (&blob, 200, true), (&blob, 307, false), (&blob, 302, false), (&blob, 301, false),
        (&blob, 303, false), (&blob, 308, false), (&blob, 206, false), (&blob, 404, true),
        (&manifest, 200, true), (&manifest, 307, false), (&manifest, 206, false),
        (&tag, 200, true), (&tag, 307, true), (&tag, 404, true),
        (&ping, 200, true), (&ping, 401, true),
    ];
    for (class, status, want) in cases {
        assert_eq!(
            a.records(&req, class, *status, &none),
            *want,
            "{} {status}",
            class.key
        );
    }
}

/// A redirect of content by digest names the URL the client follows, which
/// the session then records under the digest key.
#[test]
fn redirect_aliases() {
    let a = OciAdapter::default();
    let blob_url = format!("https://registry.example.test:5000/v2/app/blobs/{D1}");
    let req = get(&blob_url);
    let blob = a.classify(&req).expect("claimed");
    let tag_req = get("https://registry.example.test:5000/v2/app/manifests/1.0");
    let tag = a.classify(&tag_req).expect("claimed");
    let loc = |l: &str| {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::LOCATION,
            HeaderValue::from_str(l).expect("value"),
        );
        h
    };
    #[rustfmt::skip]
    let cases: &[(&RequestHead, &Classification, u16, HeaderMap, Option<&str>)] = &[
        (&req, &blob, 307, loc("https://cdn.example.test/b/ab/data?X-Amz-Signature=f00&Expires=1"),
            Some("https://cdn.example.test:443/b/ab/data?X-Amz-Signature=f00&Expires=1")),
        (&req, &blob, 302, loc("https://CDN.example.test:8443/data"), Some("https://cdn.example.test:8443/data")),
        (&req, &blob, 307, loc("/storage/data?sig=1"), Some("https://registry.example.test:5000/storage/data?sig=1")),
        (&req, &blob, 307, loc("//cdn.example.test/data"), Some("https://cdn.example.test:443/data")),
        (&req, &blob, 307, loc("data?sig=2"), Some("https://registry.example.test:5000/v2/app/blobs/data?sig=2")),
        (&req, &blob, 200, loc("https://cdn.example.test/data"), None),
        (&req, &blob, 307, HeaderMap::new(), None),
        (&tag_req, &tag, 307, loc("https://cdn.example.test/data"), None),
    ];
    for (req, class, status, headers, want) in cases {
        assert_eq!(
            a.redirect_alias(req, class, *status, headers).as_deref(),
            *want,
            "{status} {headers:?}"
        );
    }
}

/// `Vary` never splits content by digest (it is verified), and a manifest
/// by tag keys its `Accept` set its own way.
#[test]
fn vary_headers_leave_out_what_the_adapter_keys_itself() {
    let a = OciAdapter::default();
    let names = || vec!["accept".to_owned(), "accept-encoding".to_owned()];
    let blob = class_of(&format!("https://r.example.test/v2/app/blobs/{D1}"));
    assert!(a.vary_headers(&blob, names()).is_empty());
    let manifest = class_of("https://r.example.test/v2/app/manifests/1.0");
    assert_eq!(a.vary_headers(&manifest, names()), ["accept-encoding"]);
}

/// A `HEAD` falls back to the recorded `GET` of the same key.
#[test]
fn head_falls_back_to_get() {
    let a = OciAdapter::default();
    for uri in [
        "https://r.example.test/v2/".to_string(),
        "https://r.example.test/v2/app/manifests/1.0".into(),
        format!("https://r.example.test/v2/app/manifests/{D1}"),
        format!("https://r.example.test/v2/app/blobs/{D1}"),
    ] {
        let headers = [("accept", "application/vnd.oci.image.index.v1+json")];
        let h = a
            .classify(&head(Method::HEAD, &uri, &headers))
            .expect("claimed");
        let g = a
            .classify(&head(Method::GET, &uri, &headers))
            .expect("claimed");
        assert_eq!(a.replay_fallbacks(&h), vec![g.key.clone()], "{uri}");
        assert!(a.replay_fallbacks(&g).is_empty(), "{uri}");
    }
}

#[test]
fn host_patterns() {
    #[rustfmt::skip]
    let cases: &[HostCase] = &[
        ("registry.example.test", Some(("registry.example.test", 5000, true))),
        ("Registry.Example.Test", Some(("registry.example.test", 443, true))),
        ("registry.example.test:5000", Some(("registry.example.test", 5000, true))),
        ("registry.example.test:5000", Some(("registry.example.test", 5001, false))),
        ("[::1]:5000", Some(("[::1]", 5000, true))),
        ("[::1]", Some(("::1", 1, true))),
        ("127.0.0.1", Some(("127.0.0.1", 1, true))),
        ("", None),
        ("https://registry.example.test", None),
        ("registry.example.test/v2", None),
        ("registry.example.test:http", None),
        ("registry.example.test:0", None),
        ("registry.example.test:70000", None),
        ("user@registry.example.test", None),
        ("[::1", None),
        ("::1", None),
    ];
    for (text, want) in cases {
        let parsed = HostPattern::parse(text);
        match want {
            None => assert!(parsed.is_err(), "{text:?} parsed"),
            Some((host, port, matches)) => {
                let p = parsed.unwrap_or_else(|e| panic!("{text:?}: {e}"));
                assert_eq!(
                    p.matches(host, *port),
                    *matches,
                    "{text:?} vs {host}:{port}"
                );
            }
        }
    }
    let err = OciAdapter::new(&OciConfig {
        auth_hosts: vec!["https://auth.example.test".into()],
        ..OciConfig::default()
    })
    .unwrap_err();
    let err = err.to_string();
    assert!(
        err.contains("auth_hosts") && err.contains("https://auth.example.test"),
        "{err}"
    );
}

#[test]
fn endpoints_parse() {
    use route::{parse, Endpoint};
    assert_eq!(parse("/v2/"), Some(Endpoint::Ping));
    assert_eq!(parse("/v2"), Some(Endpoint::Ping));
    assert_eq!(parse("/v2/_catalog"), Some(Endpoint::Catalog));
    assert_eq!(
        parse("/v2/a/manifests/b/manifests/v1"),
        Some(Endpoint::ManifestByTag {
            name: "a/manifests/b",
            tag: "v1"
        }),
        "a name may contain an endpoint word"
    );
    assert_eq!(
        parse("/v2/a/tags/list"),
        Some(Endpoint::TagsList { name: "a" })
    );
    assert!(matches!(
        parse(&format!("/v2/a.b_c__d-e/f/blobs/{D1}")),
        Some(Endpoint::Blob {
            name: "a.b_c__d-e/f",
            ..
        })
    ));
    for other in [
        "/v2/a",
        "/v2/a/blobs",
        "/v2/-a/manifests/x",
        "/v2/a//b/manifests/x",
        "/v2/a/manifests/",
        "/v2/a/referrers/latest",
    ] {
        assert_eq!(parse(other), Some(Endpoint::Other), "{other}");
    }
    for outside in ["/", "/v1/", "/v22/", "/x/v2/"] {
        assert_eq!(parse(outside), None, "{outside}");
    }
}

/// Only the version check may be recorded without its body.
#[test]
fn only_the_version_check_may_lose_its_body() {
    let a = OciAdapter::default();
    for (uri, want) in [
        ("https://r.example.test/v2/".to_string(), true),
        ("https://r.example.test/v2".into(), true),
        ("https://r.example.test/v2/app/manifests/1.0".into(), false),
        (format!("https://r.example.test/v2/app/blobs/{D1}"), false),
        ("https://r.example.test/v2/_catalog".into(), false),
        (
            "https://auth.example.test/v2/?scope=repository:a:pull".into(),
            true,
        ),
        (
            "https://auth.example.test/token?scope=repository:a:pull".into(),
            false,
        ),
    ] {
        for status in [200, 401] {
            assert_eq!(a.head_suffices(&class_of(&uri), status), want, "{uri}");
        }
    }
}

/// Content by digest names its package: `pkg:oci/<last name segment>@<digest>`
/// with the repository as a qualifier (encoded by the `packageurl` crate);
/// tags and lists name none.
#[test]
fn content_by_digest_has_a_purl() {
    let d = format!("sha256:{}", "a".repeat(64));
    let blob = class_of(&format!(
        "https://registry.example.test:5000/v2/team/app/blobs/{d}"
    ));
    assert_eq!(
        blob.package.as_deref(),
        Some(
            format!(
                "pkg:oci/app@sha256:{}?repository_url=registry.example.test:5000%2Fteam%2Fapp",
                "a".repeat(64)
            )
            .as_str()
        )
    );
    let tag = class_of("https://registry.example.test:5000/v2/team/app/manifests/latest");
    assert_eq!(tag.package, None);
}
