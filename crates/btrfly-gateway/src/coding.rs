//! Content codings (RFC 9110 §8.4, §12.5.3): a replay never answers a
//! request with a body in a coding the request did not accept.

use btrfly_core::Entry;
use http::HeaderMap;

/// The content codings of a recorded answer, in order, lower case,
/// without `identity`.
fn codings(entry: &Entry) -> Vec<String> {
    entry
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("content-encoding"))
        .filter_map(|(_, v)| v.to_str())
        .flat_map(|v| v.split(','))
        .map(|c| canonical(c.trim()))
        .filter(|c| !c.is_empty() && c != "identity")
        .collect()
}

/// `x-gzip` and `x-compress` are the same codings as `gzip` and `compress`
/// (RFC 9110 §8.4.1).
fn canonical(coding: &str) -> String {
    let c = coding.to_ascii_lowercase();
    match c.as_str() {
        "x-gzip" => "gzip".into(),
        "x-compress" => "compress".into(),
        _ => c,
    }
}

/// `q` of one `Accept-Encoding` member; a malformed weight counts as 0.
fn weight(params: &str) -> f32 {
    for p in params.split(';') {
        if let Some((k, v)) = p.split_once('=') {
            if k.trim().eq_ignore_ascii_case("q") {
                return v.trim().parse::<f32>().unwrap_or(0.0);
            }
        }
    }
    1.0
}

/// Whether `request` accepts the content coding(s) of `entry`. A request
/// without `Accept-Encoding` accepts any coding (RFC 9110 §12.5.3); an
/// answer without a coding is always acceptable. Otherwise every coding of
/// the answer must be listed with a weight above 0, or be covered by `*`.
pub fn accepts(request: &HeaderMap, entry: &Entry) -> bool {
    let codings = codings(entry);
    if codings.is_empty() {
        return true;
    }
    let fields: Vec<&str> = request
        .get_all(http::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if fields.is_empty() {
        return true;
    }
    let members: Vec<(String, f32)> = fields
        .iter()
        .flat_map(|f| f.split(','))
        .filter_map(|m| {
            let (name, params) = m.split_once(';').unwrap_or((m, ""));
            let name = canonical(name.trim());
            (!name.is_empty()).then(|| (name, weight(params)))
        })
        .collect();
    let q = |coding: &str| {
        members
            .iter()
            .find(|(n, _)| n == coding)
            .or_else(|| members.iter().find(|(n, _)| n == "*"))
            .map_or(0.0, |(_, q)| *q)
    };
    codings.iter().all(|c| q(c) > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(coding: Option<&str>) -> Entry {
        Entry {
            key: btrfly_core::RecordingKey::new("files", "GET x"),
            method: "GET".into(),
            url: "x".into(),
            status: 200,
            headers: coding
                .map(|c| vec![("Content-Encoding".to_owned(), c.into())])
                .unwrap_or_default(),
            sha256: btrfly_core::Sha256::of(b""),
            size: 0,
            mutability: btrfly_core::Mutability::Mutable,
            recorded_at: time::OffsetDateTime::UNIX_EPOCH,
            purl: None,
        }
    }

    fn req(accept_encoding: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = accept_encoding {
            h.insert(
                http::header::ACCEPT_ENCODING,
                v.parse().expect("header value"),
            );
        }
        h
    }

    #[test]
    fn table() {
        let cases: &[(Option<&str>, Option<&str>, bool)] = &[
            (None, None, true),
            (None, Some("gzip"), true),
            (Some("gzip, deflate"), Some("gzip"), true),
            (Some("gzip, deflate"), Some("x-gzip"), true),
            (Some("br"), Some("gzip"), false),
            (Some("identity"), Some("gzip"), false),
            (Some(""), Some("gzip"), false),
            (Some("gzip;q=0, *"), Some("gzip"), false),
            (Some("*"), Some("zstd"), true),
            (Some("gzip;q=0.5"), Some("gzip"), true),
            (Some("gzip"), Some("gzip, br"), false),
            (Some("br"), None, true),
            (Some("br"), Some("identity"), true),
        ];
        for (ae, ce, want) in cases {
            assert_eq!(accepts(&req(*ae), &entry(*ce)), *want, "{ae:?} {ce:?}");
        }
    }
}
