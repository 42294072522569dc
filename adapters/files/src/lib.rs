//! The plain-files adapter.
//!
//! It claims every request (it runs last, after the ecosystem adapters) and
//! keys it by the exact resource: method, scheme, lower-cased host, explicit
//! port, path and query. A `Range` header is variance, so a partial response
//! is only ever replayed for the same range. Everything else in the request
//! (credentials, cookies, user agent, conditional headers) stays out of the
//! key. Plain files are treated as mutable: each tag freezes what it saw.

use btrfly_core::{Adapter, Classification, Mutability, RecordingKey, RequestHead};

/// The adapter's name and key namespace.
pub const NAME: &str = "files";

#[derive(Clone, Copy, Debug, Default)]
/// The plain-files adapter (see the crate docs).
pub struct FilesAdapter;

/// The exact identity of a request: `METHOD scheme://host:port/path?query`.
pub fn exact_primary(req: &RequestHead) -> String {
    format!("{} {}{}", req.method, req.origin(), req.path_and_query())
}

impl Adapter for FilesAdapter {
    fn name(&self) -> &'static str {
        NAME
    }

    fn classify(&self, req: &RequestHead) -> Option<Classification> {
        let key = RecordingKey::new(NAME, exact_primary(req)).with_range(req);
        Some(Classification::new(key, Mutability::Mutable))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn head(method: Method, uri: &str, headers: &[(&str, &str)]) -> RequestHead {
        RequestHead::from_parts(method, uri, headers).expect("request head")
    }

    fn key(method: Method, uri: &str, headers: &[(&str, &str)]) -> RecordingKey {
        FilesAdapter
            .classify(&head(method, uri, headers))
            .expect("files claims everything")
            .key
    }

    type Headers<'a> = &'a [(&'a str, &'a str)];

    #[test]
    fn table() {
        let cases: &[(Method, &str, Headers, &str, Headers)] = &[
            (
                Method::GET,
                "https://files.example.test/a/b.tar.gz",
                &[],
                "GET https://files.example.test:443/a/b.tar.gz",
                &[],
            ),
            (
                Method::GET,
                "https://Files.Example.TEST:443/a",
                &[],
                "GET https://files.example.test:443/a",
                &[],
            ),
            (
                Method::GET,
                "http://files.example.test/a?x=1&y=2",
                &[],
                "GET http://files.example.test:80/a?x=1&y=2",
                &[],
            ),
            (
                Method::GET,
                "https://files.example.test:8443/a",
                &[],
                "GET https://files.example.test:8443/a",
                &[],
            ),
            (
                Method::HEAD,
                "https://files.example.test/a",
                &[],
                "HEAD https://files.example.test:443/a",
                &[],
            ),
            (
                Method::GET,
                "https://files.example.test/a",
                &[("range", "bytes=0-99")],
                "GET https://files.example.test:443/a",
                &[("range", "bytes=0-99")],
            ),
            // secrets and client noise stay out of the key
            (
                Method::GET,
                "https://files.example.test/a",
                &[
                    ("authorization", "Bearer s3cret"),
                    ("cookie", "id=1"),
                    ("user-agent", "curl/8"),
                    ("if-none-match", "\"x\""),
                ],
                "GET https://files.example.test:443/a",
                &[],
            ),
        ];
        for (method, uri, headers, primary, variance) in cases {
            let k = key(method.clone(), uri, headers);
            assert_eq!(k.namespace, "files");
            assert_eq!(&k.primary, primary, "{uri}");
            let want: Vec<(String, String)> = variance
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            let got: Vec<(String, String)> = k.variance.clone().into_iter().collect();
            assert_eq!(got, want, "{uri}");
        }
    }

    #[test]
    fn distinct_resources_get_distinct_keys() {
        let a = key(Method::GET, "https://files.example.test/a?x=1", &[]);
        let b = key(Method::GET, "https://files.example.test/a?x=2", &[]);
        let c = key(Method::GET, "http://files.example.test/a?x=1", &[]);
        let d = key(Method::GET, "https://other.example.test/a?x=1", &[]);
        let ids = [a.id(), b.id(), c.id(), d.id()];
        for i in 0..ids.len() {
            for j in i + 1..ids.len() {
                assert_ne!(ids[i], ids[j]);
            }
        }
    }

    #[test]
    fn files_are_mutable_without_expected_digest() {
        let c = FilesAdapter
            .classify(&head(Method::GET, "https://files.example.test/a", &[]))
            .expect("claimed");
        assert_eq!(c.mutability, Mutability::Mutable);
        assert_eq!(c.expected, None);
    }
}
