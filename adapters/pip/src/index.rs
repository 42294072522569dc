//! Reading a recorded index page for the digests it announces.
//!
//! An index page names each file with its sha256: in HTML (PEP 503) as a
//! `#sha256=…` fragment of the link, in JSON (PEP 691) as `hashes.sha256`,
//! and for the PEP 658/714 metadata file as `data-core-metadata` (formerly
//! `data-dist-info-metadata`) or `core-metadata` (`dist-info-metadata`).
//! The JSON API names them as `digests.sha256` of `urls` and `releases`.
//! Each becomes a [`DigestHint`] for the URL a client will request: the
//! link resolved against the page (or its `<base href>`), without the
//! fragment, in [`btrfly_core::canonical_url`] form, both as written and as
//! pip cleans it before requesting it.

use std::io::Read;

use btrfly_core::DigestHint;
use url::Url;

use crate::key::clean_path;

/// Decompressed pages larger than this are not read (a bomb guard).
const MAX_DECODED: u64 = 256 * 1024 * 1024;

/// One file an index page lists, with what it says about it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listed {
    /// The link as written (may be relative, may carry a fragment).
    pub href: String,
    pub sha256: Option<String>,
    pub metadata_sha256: Option<String>,
}

/// The hints a recorded page announces. `page_url` is the absolute URL the
/// page was fetched from; `content_type` and `content_encoding` are its
/// response headers. Unknown encodings and unparsable pages give none.
pub fn digest_hints(
    page_url: &str,
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
) -> Vec<DigestHint> {
    let Some(body) = decode_body(content_encoding, body) else {
        return Vec::new();
    };
    let Ok(mut base) = Url::parse(page_url) else {
        return Vec::new();
    };
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    let looks_json = ct.contains("json")
        || (ct.is_empty() && body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{'));
    let listed = if looks_json {
        serde_json::from_slice::<serde_json::Value>(&body)
            .map(|v| listed_in_json(&v))
            .unwrap_or_default()
    } else {
        let html = String::from_utf8_lossy(&body);
        let (base_href, listed) = listed_in_html(&html);
        if let Some(b) = base_href.and_then(|h| base.join(&h).ok()) {
            base = b;
        }
        listed
    };
    let mut hints = Vec::new();
    for item in listed {
        let Ok(mut url) = base.join(&item.href) else {
            continue;
        };
        url.set_fragment(None);
        if let Some(sha) = item.sha256 {
            push_hints(&mut hints, &url, &sha);
        }
        if let Some(sha) = item.metadata_sha256 {
            // pip asks for `<link without fragment>.metadata`
            if let Ok(meta) = Url::parse(&format!("{}.metadata", url.as_str())) {
                push_hints(&mut hints, &meta, &sha);
            }
        }
    }
    hints
}

fn decode_body(encoding: Option<&str>, body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let encoding = encoding.unwrap_or("identity").trim().to_ascii_lowercase();
    let read = match encoding.as_str() {
        "" | "identity" => return Some(body.to_vec()),
        "gzip" | "x-gzip" => flate2::read::MultiGzDecoder::new(body)
            .take(MAX_DECODED)
            .read_to_end(&mut out),
        "deflate" => {
            // HTTP's "deflate" is zlib-wrapped; some servers send it raw.
            let zlib = flate2::read::ZlibDecoder::new(body)
                .take(MAX_DECODED)
                .read_to_end(&mut out);
            if zlib.is_err() {
                out.clear();
                flate2::read::DeflateDecoder::new(body)
                    .take(MAX_DECODED)
                    .read_to_end(&mut out)
            } else {
                zlib
            }
        }
        _ => return None,
    };
    read.ok().map(|_| out)
}

/// `sha256` if it is one: 64 hex digits (any case), lower-cased.
fn sha256_of(v: &str) -> Option<String> {
    let v = v.trim().to_ascii_lowercase();
    btrfly_core::is_sha256_hex(&v).then_some(v)
}

/// `name=value` pairs of a link fragment (`#sha256=…`, `#egg=x&sha256=…`).
fn fragment_sha256(href: &str) -> Option<String> {
    let (_, fragment) = href.split_once('#')?;
    fragment
        .split('&')
        .find_map(|kv| kv.strip_prefix("sha256="))
        .and_then(sha256_of)
}

/// `sha256=<hex>` (PEP 658 attribute value); `true` carries no digest.
fn attribute_sha256(v: &str) -> Option<String> {
    v.trim().strip_prefix("sha256=").and_then(sha256_of)
}

fn canonical(url: &Url, path: &str) -> Option<String> {
    let scheme = url.scheme();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    let port = url.port_or_known_default()?;
    let mut s = format!("{scheme}://{host}:{port}{path}");
    if let Some(q) = url.query() {
        s.push('?');
        s.push_str(q);
    }
    Some(s)
}

fn push_hints(hints: &mut Vec<DigestHint>, url: &Url, sha256: &str) {
    let path = url.path();
    let cleaned = clean_path(path);
    for p in [path, cleaned.as_str()] {
        if let Some(u) = canonical(url, p) {
            if !hints.iter().any(|h| h.url == u) {
                hints.push(DigestHint {
                    url: u,
                    sha256: sha256.to_owned(),
                });
            }
        }
    }
}

/// Files listed by a JSON page: the simple API's `files` (PEP 691) or the
/// JSON API's `urls` and `releases`.
pub fn listed_in_json(v: &serde_json::Value) -> Vec<Listed> {
    let mut entries: Vec<&serde_json::Value> = Vec::new();
    for list in ["files", "urls"] {
        if let Some(a) = v.get(list).and_then(|a| a.as_array()) {
            entries.extend(a);
        }
    }
    if let Some(releases) = v.get("releases").and_then(|r| r.as_object()) {
        for files in releases.values().filter_map(|f| f.as_array()) {
            entries.extend(files);
        }
    }
    let sha = |o: &serde_json::Value, field: &str| {
        o.get(field)
            .and_then(|h| h.get("sha256"))
            .and_then(|s| s.as_str())
            .and_then(sha256_of)
    };
    entries
        .into_iter()
        .filter_map(|f| {
            let href = f.get("url")?.as_str()?.to_owned();
            let metadata_sha256 = [
                "core-metadata",
                "dist-info-metadata",
                "data-dist-info-metadata",
            ]
            .iter()
            .find(|k| f.get(**k).is_some())
            .and_then(|k| sha(f, k));
            Some(Listed {
                sha256: sha(f, "hashes")
                    .or_else(|| sha(f, "digests"))
                    .or_else(|| fragment_sha256(&href)),
                href,
                metadata_sha256,
            })
        })
        .collect()
}

/// The first `<base href>` and the `<a href>` links of an HTML page.
pub fn listed_in_html(html: &str) -> (Option<String>, Vec<Listed>) {
    let mut base = None;
    let mut listed = Vec::new();
    for (name, attrs) in tags(html) {
        let get = |n: &str| attrs.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        match name.as_str() {
            "base" if base.is_none() => base = get("href").map(str::to_owned),
            "a" => {
                let Some(href) = get("href") else { continue };
                // PEP 714: the new name wins over the old one
                let metadata = get("data-core-metadata").or_else(|| get("data-dist-info-metadata"));
                listed.push(Listed {
                    href: href.to_owned(),
                    sha256: fragment_sha256(href),
                    metadata_sha256: metadata.and_then(attribute_sha256),
                });
            }
            _ => {}
        }
    }
    (base, listed)
}

/// A small, forgiving tag scanner: every start tag's lower-cased name and
/// attributes (names lower-cased, values entity-decoded). Comments are
/// skipped. Enough for index pages, which are lists of links.
fn tags(html: &str) -> Vec<(String, Vec<(String, String)>)> {
    let b = html.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    while i < b.len() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        i += 1;
        if b[i..].starts_with(b"!--") {
            i = html[i..].find("-->").map_or(b.len(), |e| i + e + 3);
            continue;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_alphanumeric() {
            i += 1;
        }
        if i == start {
            continue;
        }
        let name = html[start..i].to_ascii_lowercase();
        let mut attrs = Vec::new();
        loop {
            while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
                i += 1;
            }
            if i >= b.len() {
                break;
            }
            if b[i] == b'>' {
                i += 1;
                break;
            }
            let a = i;
            i += 1;
            while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>' | b'/')
            {
                i += 1;
            }
            let attr = html[a..i].to_ascii_lowercase();
            skip_ws(&mut i);
            let mut value = String::new();
            if i < b.len() && b[i] == b'=' {
                i += 1;
                skip_ws(&mut i);
                if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                    let q = b[i];
                    let v = i + 1;
                    i = v;
                    while i < b.len() && b[i] != q {
                        i += 1;
                    }
                    value = unescape(&html[v..i]);
                    i = (i + 1).min(b.len());
                } else {
                    let v = i;
                    while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                        i += 1;
                    }
                    value = unescape(&html[v..i]);
                }
            }
            attrs.push((attr, value));
        }
        out.push((name, attrs));
    }
    out
}

/// Character references in an attribute value: the five named ones (with
/// or without `;`) and numeric ones; anything else stays as written.
fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let named = [
            ("&amp", '&'),
            ("&lt", '<'),
            ("&gt", '>'),
            ("&quot", '"'),
            ("&apos", '\''),
        ];
        if let Some((n, c)) = named.iter().find(|(n, _)| rest.starts_with(n)) {
            out.push(*c);
            rest = &rest[n.len()..];
            rest = rest.strip_prefix(';').unwrap_or(rest);
            continue;
        }
        if let Some(num) = rest.strip_prefix("&#") {
            let (digits, radix) = match num.strip_prefix(['x', 'X']) {
                Some(hex) => (hex, 16),
                None => (num, 10),
            };
            let len = digits
                .find(|c: char| !c.is_digit(radix))
                .unwrap_or(digits.len());
            if let Some(c) = u32::from_str_radix(&digits[..len], radix)
                .ok()
                .and_then(char::from_u32)
                .filter(|_| len > 0)
            {
                out.push(c);
                rest = &digits[len..];
                rest = rest.strip_prefix(';').unwrap_or(rest);
                continue;
            }
        }
        out.push('&');
        rest = &rest[1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_attribute_values() {
        assert_eq!(unescape("a&amp;b"), "a&b");
        assert_eq!(unescape("a&ampb"), "a&b");
        assert_eq!(unescape("&lt;&gt;&quot;&apos;"), "<>\"'");
        assert_eq!(unescape("&#62;&#x3E;&#X3e"), ">>>");
        assert_eq!(unescape("&nbsp; & &#;"), "&nbsp; & &#;");
    }

    #[test]
    fn scans_links_forgivingly() {
        let html = r#"<!DOCTYPE html><html><head><BASE HREF="/base/"><!-- <a href="nope#sha256=00"> -->
<body><a href=x.whl#sha256=AB data-requires-python="&gt;=3.8">x</a>
<A Href='y.tar.gz' data-dist-info-metadata="true" data-yanked>y</a><a>no href</a>
<a href="z.whl" data-core-metadata="sha256=ff" data-dist-info-metadata="sha256=ee"/></body>"#;
        let (base, listed) = listed_in_html(html);
        assert_eq!(base.as_deref(), Some("/base/"));
        let hrefs: Vec<&str> = listed.iter().map(|l| l.href.as_str()).collect();
        assert_eq!(hrefs, ["x.whl#sha256=AB", "y.tar.gz", "z.whl"]);
        // short or non-hex digests are not digests
        assert_eq!(listed[0].sha256, None);
        assert_eq!(listed[1].metadata_sha256, None);
        assert_eq!(listed[2].metadata_sha256, None, "ff is not a sha256");
    }

    #[test]
    fn bodies_are_decoded_or_ignored() {
        use std::io::Write;
        let page = br#"<a href="/p/a-1.0-py3-none-any.whl#sha256=0000000000000000000000000000000000000000000000000000000000000000">a</a>"#;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(page).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let url = "https://pypi.example.test:443/simple/a/";
        for (enc, body) in [(None, page.to_vec()), (Some("gzip"), gz.clone())] {
            let hints = digest_hints(url, Some("text/html"), enc, &body);
            assert_eq!(hints.len(), 1, "{enc:?}");
            assert_eq!(
                hints[0].url,
                "https://pypi.example.test:443/p/a-1.0-py3-none-any.whl"
            );
        }
        assert!(digest_hints(url, Some("text/html"), Some("br"), &gz).is_empty());
        assert!(digest_hints(url, Some("text/html"), Some("gzip"), page).is_empty());
        assert!(digest_hints(url, Some("application/json"), None, b"{not json").is_empty());
    }
}
