//! The proxy's limits: connections, request heads, upstream reads and the
//! opening of client connections. Each limit that is hit gives a clear answer (a status and a
//! message naming the `[limits]` key), never a silent drop or an unbounded
//! wait.

use std::time::Duration;

use http::StatusCode;
use pingora_http::RequestHeader;

/// The proxy's limits (`[limits]` in the config; see [`Limits::default`]).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Client connections each listener serves at once; one more is
    /// refused (`503` on plain-HTTP-first listeners) and closed.
    pub max_connections: usize,
    /// Longest request target (bytes of the URL as sent): longer is `414`.
    pub max_url_bytes: usize,
    /// Largest request head (names and values of all fields, in bytes):
    /// larger is `431`.
    pub max_header_bytes: usize,
    /// Longest wait for the next bytes from an upstream (its head or the
    /// next part of its body): then `504`.
    pub upstream_read_timeout: Duration,
    /// Longest opening of a client connection (the accept loop's
    /// slow-loris bound): from accept until its TLS handshake is done (in a
    /// CONNECT tunnel or on the transparent TLS listener) or its first
    /// plain-HTTP request head is in.
    pub tls_handshake_timeout: Duration,
}

impl Default for Limits {
    /// 4096 connections, 8 KiB URLs, 64 KiB heads, 60 s upstream reads,
    /// 10 s TLS handshakes.
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            max_url_bytes: 8 * 1024,
            max_header_bytes: 64 * 1024,
            upstream_read_timeout: Duration::from_secs(60),
            tls_handshake_timeout: Duration::from_secs(10),
        }
    }
}

impl Limits {
    /// Checks a request head before anything reads it further (keys, logs,
    /// miss lists): `Some((status, message))` when it is too large.
    pub fn check_head(&self, req: &RequestHeader) -> Option<(StatusCode, String)> {
        let url = req.raw_path().len();
        if url > self.max_url_bytes {
            return Some((
                StatusCode::URI_TOO_LONG,
                format!(
                    "btrfly: the request URL is {url} bytes, more than limits.max_url_bytes ({})",
                    self.max_url_bytes
                ),
            ));
        }
        let head: usize = req
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum();
        if head > self.max_header_bytes {
            return Some((
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!(
                    "btrfly: the request's header fields are {head} bytes, more than limits.max_header_bytes ({})",
                    self.max_header_bytes
                ),
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_over_the_limits_are_refused() {
        let limits = Limits {
            max_url_bytes: 64,
            max_header_bytes: 128,
            ..Limits::default()
        };
        let ok = RequestHeader::build("GET", b"/short", None).expect("head");
        assert_eq!(limits.check_head(&ok), None);
        let long = format!("/{}", "a".repeat(100));
        let url = RequestHeader::build("GET", long.as_bytes(), None).expect("head");
        let (status, msg) = limits.check_head(&url).expect("too long");
        assert_eq!(status, StatusCode::URI_TOO_LONG);
        assert!(msg.contains("limits.max_url_bytes"), "{msg}");
        let mut big = RequestHeader::build("GET", b"/", None).expect("head");
        big.insert_header("x-big", "b".repeat(200)).expect("header");
        let (status, msg) = limits.check_head(&big).expect("too large");
        assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert!(msg.contains("limits.max_header_bytes"), "{msg}");
    }
}
