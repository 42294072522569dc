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
    /// The file's sha256, from the link's fragment or the JSON `hashes`.
    pub sha256: Option<String>,
    /// The sha256 of its metadata file (PEP 658/714).
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
    let Some(body) = btrfly_core::coding::decode_content(content_encoding, body, MAX_DECODED)
    else {
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
    let Ok(sha256) = btrfly_core::Sha256::parse_lenient(sha256) else {
        return;
    };
    let path = url.path();
    let cleaned = clean_path(path);
    for p in [path, cleaned.as_str()] {
        if let Some(u) = canonical(url, p) {
            if !hints.iter().any(|h| h.url == u) {
                hints.push(DigestHint {
                    url: u,
                    digest: sha256.clone().into(),
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

/// The first `<base href>` and the `<a href>` links of an HTML page, read
/// as pip reads them (Python's `html.parser` under pip's `HTMLLinkParser`):
///
/// - tags and attributes are found by html5gum, a WHATWG tokenizer
///   (names lower-cased, quoted and unquoted values, comments skipped,
///   `<script>`/`<style>` contents not markup);
/// - attribute values are decoded as `html.unescape` does: character
///   references by the rules for text, so `&para=2` in a link's query is
///   `¶=2` to pip as well (a browser would keep it as written in an
///   attribute);
/// - an anchor's attributes are a Python dict (a repeated attribute: the
///   last one counts), an anchor without a non-empty `href` lists nothing;
/// - the base is the first `<base>` whose (first) `href` has a value.
pub fn listed_in_html(html: &str) -> (Option<String>, Vec<Listed>) {
    let mut base = None;
    let mut listed = Vec::new();
    for tag in start_tags(html) {
        match tag.name.as_str() {
            "base" if base.is_none() => {
                base = tag
                    .attrs
                    .iter()
                    .find(|(k, _)| k == "href")
                    .and_then(|(_, v)| v.clone());
            }
            "a" => {
                // `dict(attrs)`: the last of a repeated attribute wins
                let get = |n: &str| {
                    tag.attrs
                        .iter()
                        .rev()
                        .find(|(k, _)| k == n)
                        .and_then(|(_, v)| v.as_deref())
                };
                let Some(href) = get("href").filter(|h| !h.is_empty()) else {
                    continue;
                };
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

/// A start tag: its lower-case name and its attributes in order, each
/// with its decoded value (`None` for an attribute written without `=`).
struct StartTag {
    name: String,
    attrs: Vec<(String, Option<String>)>,
}

/// Every start tag of a page, by html5gum. Attribute values are taken
/// from the page as written (html5gum reports where each one is) and
/// decoded by [`unescape`].
fn start_tags(html: &str) -> Vec<StartTag> {
    use html5gum::emitters::callback::{CallbackEmitter, CallbackEvent};
    use html5gum::{Span, Tokenizer};

    let raw = |span: Span<usize>| html.get(span.start..span.end).unwrap_or("");
    let mut tags = Vec::new();
    let mut current: Option<StartTag> = None;
    let mut emitter = CallbackEmitter::new(|event: CallbackEvent<'_>, span: Span<usize>| {
        match event {
            CallbackEvent::OpenStartTag { name } => {
                current = Some(StartTag {
                    name: String::from_utf8_lossy(name).into_owned(),
                    attrs: Vec::new(),
                });
            }
            CallbackEvent::AttributeName { name } => {
                if let Some(tag) = current.as_mut() {
                    // `name="…"` (even empty) has a value; `name` alone not
                    let after = html.get(span.end..).unwrap_or("");
                    let value = after.trim_start().starts_with('=').then(String::new);
                    tag.attrs
                        .push((String::from_utf8_lossy(name).into_owned(), value));
                }
            }
            CallbackEvent::AttributeValue { .. } => {
                if let Some((_, value)) = current.as_mut().and_then(|t| t.attrs.last_mut()) {
                    *value = Some(unescape(raw(span)));
                }
            }
            CallbackEvent::CloseStartTag { .. } => {
                if let Some(tag) = current.take() {
                    tags.push(tag);
                }
            }
            // attributes of an end tag are no one's
            CallbackEvent::EndTag { .. } => current = None,
            _ => {}
        }
        None::<std::convert::Infallible>
    });
    // `<script>`, `<style>`, `<textarea>`, `<title>`… hold no tags, as for
    // pip's parser and for browsers.
    emitter.naively_switch_states(true);
    for _ in Tokenizer::new_with_emitter(html, emitter) {}
    tags
}

/// Character references in an attribute value as Python's `html.unescape`
/// expands them: every named reference of HTML5 (the legacy ones also
/// without `;`, and also before `=` or a letter), numeric ones; anything
/// else stays as written. These are the WHATWG rules for references in
/// text, applied here by html5gum tokenizing the value as text.
fn unescape(s: &str) -> String {
    use html5gum::{Token, Tokenizer};
    if !s.contains('&') {
        return s.to_owned();
    }
    // a `<` would start a tag in text; `&lt;` decodes back to it
    let text = s.replace('<', "&lt;");
    let mut out = Vec::with_capacity(text.len());
    for token in Tokenizer::new(&text).flatten() {
        if let Token::String(chars) = token {
            out.extend_from_slice(&chars);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
        // every HTML5 entity, as Python's html.unescape expands them
        assert_eq!(unescape("&nbsp; & &#;"), "\u{a0} & &#;");
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

    /// Tricky markup, read the way pip's `HTMLLinkParser` (Python's
    /// `html.parser`) reads it: one row per rule.
    #[test]
    fn links_are_read_as_pip_reads_them() {
        let d = "ab".repeat(32);
        #[rustfmt::skip]
        let rows: Vec<(String, Vec<&str>)> = vec![
            // upper-case tag and attribute names
            (r#"<A HREF="up.whl">x</A>"#.to_string(), vec!["up.whl"]),
            // unquoted values end at whitespace or `>`
            (format!("<a href=unq.whl#sha256={d} data-x=1>x</a>"), vec!["unq.whl#sha256=ab"]),
            // character references are expanded, also legacy ones
            // without `;` before `=` (html.unescape, not the attribute rule)
            (r#"<a href="e.whl?a=1&amp;b=2&para=3&#x26;c=&lt;">x</a>"#.into(), vec!["e.whl?a=1&b=2\u{b6}=3&c=<"]),
            // comments, scripts and styles hold no links
            (r#"<!-- <a href="c.whl"> --><script>"<a href='s.whl'>"</script><style>a{}</style>"#.into(), vec![]),
            // a repeated attribute: the last one (a Python dict)
            (r#"<a href="first.whl" href="second.whl">x</a>"#.into(), vec!["second.whl"]),
            // no href, an empty one, or one without a value: no link
            (r#"<a>x</a><a href="">y</a><a href>z</a>"#.into(), vec![]),
            // attributes of an end tag are ignored
            (r#"</a href="end.whl">"#.into(), vec![]),
            // `/` between name and attribute, spaces around `=`
            (r#"<a/href="slash.whl"><a href = 'sp.whl'>"#.into(), vec!["slash.whl", "sp.whl"]),
        ];
        for (html, want) in rows {
            let (_, listed) = listed_in_html(&html);
            let hrefs: Vec<String> = listed.iter().map(|l| l.href.replace(&d[2..], "")).collect();
            assert_eq!(hrefs, want, "{html}");
        }
        // `<base>`: the first one with a value, its first `href`
        for (html, want) in [
            (
                r#"<base href="/one/" href="/two/"><base href="/three/">"#,
                Some("/one/"),
            ),
            (r#"<BASE target=_top><base HREF=/b&amp;c/>"#, Some("/b&c/")),
            (r#"<base href><base href="/late/">"#, Some("/late/")),
            ("<p>no base</p>", None),
        ] {
            assert_eq!(listed_in_html(html).0.as_deref(), want, "{html}");
        }
        // the digest of a link whose URL holds references goes to the URL
        // pip requests
        let page = format!(r#"<a href="/p/f.whl?a=1&amp;b=2#sha256={d}">f</a>"#);
        let hints = digest_hints(
            "https://pypi.example.test/simple/f/",
            Some("text/html"),
            None,
            page.as_bytes(),
        );
        assert_eq!(
            hints[0].url,
            "https://pypi.example.test:443/p/f.whl?a=1&b=2"
        );
        assert_eq!(hints[0].digest.to_string(), d);
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
