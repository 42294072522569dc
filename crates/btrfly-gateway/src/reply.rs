//! Answers made from a recorded entry: the whole answer, or a `Range` cut
//! from it the way a server would (RFC 9110 §14; parsing by
//! `http-range-header`).

use btrfly_core::Entry;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use crate::decision::{Part, Reply, ReplyBody};

/// Response header set on every answer btrfly makes itself during playback:
/// `hit`, or `miss`.
pub const REPLAY_HEADER: &str = "x-btrfly-replay";
/// Response header that marks a playback miss; its value is the tag.
pub const MISS_HEADER: &str = "x-btrfly-miss";

/// What a server answers to `Range: spec` with the recorded whole `entry`:
/// one range is a `206` with `Content-Range`; several are one `206` of
/// type `multipart/byteranges`; a range that starts past the end is a
/// `416` with `Content-Range: bytes */LEN`; a `Range` that does not parse
/// (or a method or answer ranges do not apply to) gets the whole answer.
pub fn ranged_reply(entry: &Entry, spec: &str, method: &Method) -> Reply {
    if method != Method::GET || entry.status != 200 {
        return full_reply(entry, method);
    }
    let Ok(parsed) = http_range_header::parse_range_header(spec) else {
        // not a valid `bytes` range: ignored, as RFC 9110 §14.2 says
        return full_reply(entry, method);
    };
    match parsed.validate(entry.size) {
        Ok(ranges) => match ranges.as_slice() {
            [one] => partial_reply(entry, *one.start(), *one.end()),
            [] => full_reply(entry, method),
            many => multipart_reply(entry, many),
        },
        Err(_) => unsatisfiable(entry.size),
    }
}

fn unsatisfiable(size: u64) -> Reply {
    let mut reply = Reply::text(
        StatusCode::RANGE_NOT_SATISFIABLE,
        format!("btrfly: the requested range is not within the {size} recorded bytes"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
        reply.headers.insert(http::header::CONTENT_RANGE, v);
    }
    reply
        .headers
        .insert(REPLAY_HEADER, HeaderValue::from_static("hit"));
    reply
}

fn recorded_headers(entry: &Entry) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (k, v) in &entry.headers {
        if let (Ok(name), Some(value)) = (HeaderName::from_bytes(k.as_bytes()), v.to_header_value())
        {
            headers.append(name, value);
        }
    }
    headers
}

fn bodiless(method: &Method, status: u16) -> bool {
    method == Method::HEAD || status == 204 || status == 304 || (100..200).contains(&status)
}

/// The recorded answer, whole (no body for a `HEAD` or a bodiless status).
pub fn full_reply(entry: &Entry, method: &Method) -> Reply {
    let mut headers = recorded_headers(entry);
    headers.insert(REPLAY_HEADER, HeaderValue::from_static("hit"));
    let body_len = if bodiless(method, entry.status) {
        // keep the recorded Content-Length: it describes the GET body
        0
    } else {
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(entry.size));
        entry.size
    };
    Reply {
        status: StatusCode::from_u16(entry.status).unwrap_or(StatusCode::OK),
        headers,
        body: ReplyBody::Blob {
            sha256: entry.sha256.clone(),
            offset: 0,
            len: body_len,
            whole: body_len == entry.size,
        },
        reason: None,
        replayed: None,
    }
}

fn partial_reply(entry: &Entry, start: u64, end: u64) -> Reply {
    let mut headers = recorded_headers(entry);
    let len = end - start + 1;
    headers.insert(REPLAY_HEADER, HeaderValue::from_static("hit"));
    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{}", entry.size)) {
        headers.insert(http::header::CONTENT_RANGE, v);
    }
    Reply {
        status: StatusCode::PARTIAL_CONTENT,
        headers,
        body: ReplyBody::Blob {
            sha256: entry.sha256.clone(),
            offset: start,
            len,
            whole: start == 0 && len == entry.size,
        },
        reason: None,
        replayed: None,
    }
}

/// A `multipart/byteranges` answer (RFC 9110 §14.6): each part has the
/// recorded `Content-Type` and its `Content-Range`. The boundary is
/// derived from the body and the ranges, so a replay is the same bytes
/// every time.
fn multipart_reply(entry: &Entry, ranges: &[std::ops::RangeInclusive<u64>]) -> Reply {
    let spec: Vec<String> = ranges
        .iter()
        .map(|r| format!("{}-{}", r.start(), r.end()))
        .collect();
    let boundary = format!(
        "btrfly-{}",
        &btrfly_core::sha256_hex(format!("{} {}", entry.sha256, spec.join(",")).as_bytes())[..24]
    );
    let content_type = entry.header("content-type").map(str::to_owned);
    let mut parts = Vec::with_capacity(ranges.len());
    for (i, r) in ranges.iter().enumerate() {
        // each part after the first starts with the CRLF that ends the
        // previous part's data
        let mut head = if i == 0 {
            format!("--{boundary}\r\n")
        } else {
            format!("\r\n--{boundary}\r\n")
        };
        if let Some(ct) = &content_type {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        head.push_str(&format!(
            "Content-Range: bytes {}-{}/{}\r\n\r\n",
            r.start(),
            r.end(),
            entry.size
        ));
        parts.push(Part {
            head: bytes::Bytes::from(head),
            offset: *r.start(),
            len: r.end() - r.start() + 1,
        });
    }
    let mut headers = recorded_headers(entry);
    headers.remove(http::header::CONTENT_RANGE);
    headers.insert(REPLAY_HEADER, HeaderValue::from_static("hit"));
    if let Ok(v) = HeaderValue::from_str(&format!("multipart/byteranges; boundary={boundary}")) {
        headers.insert(http::header::CONTENT_TYPE, v);
    }
    let body = ReplyBody::Parts {
        sha256: entry.sha256.clone(),
        parts,
        tail: bytes::Bytes::from(format!("\r\n--{boundary}--\r\n")),
    };
    let reply = Reply {
        status: StatusCode::PARTIAL_CONTENT,
        headers,
        body,
        reason: None,
        replayed: None,
    };
    let len = reply.body_len();
    let mut reply = reply;
    reply
        .headers
        .insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(size: u64) -> Entry {
        Entry {
            key: btrfly_core::RecordingKey::new("files", "GET x"),
            method: "GET".into(),
            url: "x".into(),
            status: 200,
            headers: vec![("content-type".into(), "text/plain".into())],
            sha256: btrfly_core::Sha256::new(&"ab".repeat(32)).expect("digest"),
            size,
            mutability: btrfly_core::Mutability::Mutable,
            recorded_at: time::OffsetDateTime::UNIX_EPOCH,
            purl: None,
        }
    }

    fn range(reply: &Reply) -> Option<&str> {
        reply
            .headers
            .get(http::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
    }

    #[test]
    fn ranges_as_a_server_answers_them() {
        let e = entry(1000);
        let get = Method::GET;
        let r = ranged_reply(&e, "bytes=0-99", &get);
        assert_eq!(
            (r.status.as_u16(), range(&r)),
            (206, Some("bytes 0-99/1000"))
        );
        let r = ranged_reply(&e, "bytes=900-", &get);
        assert_eq!(range(&r), Some("bytes 900-999/1000"));
        let r = ranged_reply(&e, "bytes=-100", &get);
        assert_eq!(range(&r), Some("bytes 900-999/1000"));
        let r = ranged_reply(&e, "bytes=990-2000", &get);
        assert_eq!(range(&r), Some("bytes 990-999/1000"));
        // past the end: 416 naming the length
        let r = ranged_reply(&e, "bytes=1000-", &get);
        assert_eq!((r.status.as_u16(), range(&r)), (416, Some("bytes */1000")));
        // not a bytes range: the whole answer
        for ignored in ["items=0-1", "bytes=x-y"] {
            let r = ranged_reply(&e, ignored, &get);
            assert_eq!((r.status.as_u16(), r.body_len()), (200, 1000), "{ignored}");
        }
        // several ranges: one multipart answer whose length is exact
        let r = ranged_reply(&e, "bytes=0-9,20-29", &get);
        assert_eq!(r.status.as_u16(), 206);
        let ct = r.headers[http::header::CONTENT_TYPE].to_str().expect("ct");
        let boundary = ct
            .strip_prefix("multipart/byteranges; boundary=")
            .expect("multipart");
        let ReplyBody::Parts { parts, tail, .. } = &r.body else {
            panic!("parts");
        };
        assert_eq!(parts.len(), 2);
        let head = String::from_utf8_lossy(&parts[1].head);
        assert!(head.starts_with(&format!("\r\n--{boundary}\r\n")), "{head}");
        assert!(
            head.contains("Content-Range: bytes 20-29/1000\r\n"),
            "{head}"
        );
        assert!(head.contains("Content-Type: text/plain\r\n"), "{head}");
        assert_eq!(tail.as_ref(), format!("\r\n--{boundary}--\r\n").as_bytes());
        assert_eq!(
            r.headers[http::header::CONTENT_LENGTH]
                .to_str()
                .expect("len")
                .parse::<u64>()
                .expect("number"),
            r.body_len()
        );
        // the same request gets the same bytes
        let again = ranged_reply(&e, "bytes=0-9,20-29", &get);
        assert_eq!(again.headers[http::header::CONTENT_TYPE], ct);
        // HEAD and answers other than 200 are not cut
        let r = ranged_reply(&e, "bytes=0-9", &Method::HEAD);
        assert_eq!(r.status.as_u16(), 200);
    }
}
