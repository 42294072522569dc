//! HTTP/1.x messages inside WARC `request`/`response`/`revisit` blocks:
//! heads parsed with httparse, chunked payloads decoded while streaming.

use btrfly_core::FieldValue;

/// Largest HTTP head read from a record.
pub const MAX_HTTP_HEAD: usize = 1024 * 1024;

/// Largest chunk-size line (with extensions) or trailer line.
const MAX_CHUNK_LINE: usize = 8 * 1024;

/// A parsed status line and header fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// Field names as written, values byte for byte.
    pub headers: Vec<(String, FieldValue)>,
}

/// A parsed request line and header fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// The request method.
    pub method: String,
    /// The request target as written (origin form, or absolute form).
    pub target: String,
    /// The header fields, in order.
    pub headers: Vec<(String, FieldValue)>,
}

/// The index just past the empty line that ends a head (`\r\n\r\n`, or a
/// bare `\n\n` as lenient parsers accept).
pub fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn config() -> httparse::ParserConfig {
    let mut c = httparse::ParserConfig::default();
    c.allow_obsolete_multiline_headers_in_responses(true)
        .allow_spaces_after_header_name_in_responses(true)
        .allow_multiple_spaces_in_response_status_delimiters(true);
    c
}

fn owned(headers: &[httparse::Header<'_>]) -> Vec<(String, FieldValue)> {
    headers
        .iter()
        .map(|h| (h.name.to_owned(), FieldValue::new(h.value.to_vec())))
        .collect()
}

/// Parses a complete response head (`head` ends with its empty line).
pub fn parse_response(head: &[u8]) -> Result<ResponseHead, String> {
    let mut n = 64;
    loop {
        let mut headers = vec![httparse::EMPTY_HEADER; n];
        let mut resp = httparse::Response::new(&mut headers);
        match config().parse_response(&mut resp, head) {
            Ok(httparse::Status::Complete(_)) => {
                return Ok(ResponseHead {
                    status: resp.code.unwrap_or_default(),
                    headers: owned(resp.headers),
                })
            }
            Ok(httparse::Status::Partial) => return Err("incomplete HTTP response head".into()),
            Err(httparse::Error::TooManyHeaders) if n < 8192 => n *= 4,
            Err(e) => return Err(format!("HTTP response head: {e}")),
        }
    }
}

/// Parses a complete request head.
pub fn parse_request(head: &[u8]) -> Result<RequestHead, String> {
    let mut n = 64;
    loop {
        let mut headers = vec![httparse::EMPTY_HEADER; n];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(head) {
            Ok(httparse::Status::Complete(_)) => {
                return Ok(RequestHead {
                    method: req.method.unwrap_or("GET").to_owned(),
                    target: req.path.unwrap_or("/").to_owned(),
                    headers: owned(req.headers),
                })
            }
            Ok(httparse::Status::Partial) => return Err("incomplete HTTP request head".into()),
            Err(httparse::Error::TooManyHeaders) if n < 8192 => n *= 4,
            Err(e) => return Err(format!("HTTP request head: {e}")),
        }
    }
}

/// Whether the last transfer coding of these headers is `chunked`
/// (RFC 9112 §6.1).
pub fn is_chunked(headers: &[(String, FieldValue)]) -> bool {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding"))
        .filter_map(|(_, v)| v.to_str())
        .flat_map(|v| v.split(','))
        .map(|c| c.trim().to_ascii_lowercase())
        .rfind(|c| !c.is_empty())
        .is_some_and(|c| c == "chunked")
}

/// Decodes `chunked` framing (RFC 9112 §7.1) as bytes arrive, in bounded
/// memory: chunk data is passed on as it comes, only a size or trailer
/// line is held (at most 8 KiB).
///
/// Some WARC writers store a body already de-chunked but keep its
/// `Transfer-Encoding: chunked` header: when the payload does not start
/// with a chunk-size line, the decoder passes everything through unchanged
/// ([`Dechunker::was_chunked`] is then false).
#[derive(Debug, Default)]
pub struct Dechunker {
    state: State,
    line: Vec<u8>,
    /// Set once the first size line parsed (or failed to).
    decided: Option<bool>,
}

#[derive(Debug, Default, PartialEq, Eq)]
enum State {
    #[default]
    Size,
    Data(u64),
    DataEnd,
    Trailer,
    Done,
    Identity,
}

impl Dechunker {
    /// Decodes `input`, appending body bytes to `out`.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        while !input.is_empty() {
            match self.state {
                State::Identity => {
                    out.extend_from_slice(input);
                    return Ok(());
                }
                State::Done => return Ok(()),
                State::Data(n) => {
                    let take = input.len().min(n.min(usize::MAX as u64) as usize);
                    out.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    self.state = match n - take as u64 {
                        0 => State::DataEnd,
                        rest => State::Data(rest),
                    };
                }
                State::DataEnd => {
                    match input[0] {
                        b'\r' => {}
                        b'\n' => self.state = State::Size,
                        b => return Err(format!("chunked body: byte {b:#04x} after chunk data")),
                    }
                    input = &input[1..];
                }
                State::Size | State::Trailer => {
                    let (line_done, used) = match input.iter().position(|&b| b == b'\n') {
                        Some(i) => (true, i + 1),
                        None => (false, input.len()),
                    };
                    self.line.extend_from_slice(&input[..used]);
                    input = &input[used..];
                    if self.line.len() > MAX_CHUNK_LINE {
                        if self.decided.is_none() {
                            self.pass_through(out);
                            continue;
                        }
                        return Err("chunked body: chunk-size or trailer line too long".into());
                    }
                    if line_done {
                        self.end_line(out)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn pass_through(&mut self, out: &mut Vec<u8>) {
        self.decided = Some(false);
        out.append(&mut self.line);
        self.state = State::Identity;
    }

    fn end_line(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        if self.state == State::Trailer {
            let blank = self.line.iter().all(|b| matches!(b, b'\r' | b'\n'));
            self.line.clear();
            if blank {
                self.state = State::Done;
            }
            return Ok(());
        }
        let original = std::mem::take(&mut self.line);
        let mut line = original.clone();
        if !line.ends_with(b"\r\n") {
            // httparse wants CRLF; accept a bare LF
            line.pop();
            line.extend_from_slice(b"\r\n");
        }
        match httparse::parse_chunk_size(&line) {
            Ok(httparse::Status::Complete((_, size))) => {
                self.decided = Some(true);
                self.state = if size == 0 {
                    State::Trailer
                } else {
                    State::Data(size)
                };
                Ok(())
            }
            _ if self.decided.is_none() => {
                self.line = original;
                self.pass_through(out);
                Ok(())
            }
            _ => Err(format!(
                "chunked body: bad chunk-size line {:?}",
                String::from_utf8_lossy(&line[..line.len().min(40)])
            )),
        }
    }

    /// Whether the payload really was chunked (see the type's docs).
    pub fn was_chunked(&self) -> bool {
        self.decided == Some(true)
    }

    /// Whether the input ended where a body may end: after the last chunk
    /// (or anywhere, for a body passed through).
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Done | State::Identity)
            || (self.state == State::Trailer && self.line.is_empty())
            || (self.decided.is_none() && self.line.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dechunk_in_pieces(input: &[u8], piece: usize) -> (Vec<u8>, Dechunker) {
        let mut d = Dechunker::default();
        let mut out = Vec::new();
        for part in input.chunks(piece) {
            d.feed(part, &mut out).expect("decodes");
        }
        (out, d)
    }

    #[test]
    fn dechunks_across_any_split() {
        let body = b"4;ext=1\r\nWiki\r\n6\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nX-Trailer: y\r\n\r\n";
        for piece in [1, 2, 3, 7, 100] {
            let (out, d) = dechunk_in_pieces(body, piece);
            assert_eq!(out, b"Wikipedia in \r\n\r\nchunks.", "piece {piece}");
            assert!(d.was_chunked() && d.is_complete());
        }
        let (_, d) = dechunk_in_pieces(b"4\r\nWiki\r\n", 3);
        assert!(!d.is_complete(), "no last chunk yet");
    }

    #[test]
    fn a_body_that_is_not_chunked_passes_through() {
        let body = b"{\"already\": \"decoded\"}\n";
        let (out, d) = dechunk_in_pieces(body, 5);
        assert_eq!(out, body);
        assert!(!d.was_chunked() && d.is_complete());
        let mut d = Dechunker::default();
        let mut out = Vec::new();
        d.feed(b"4\r\nWiki\r\nzz\r\n", &mut out)
            .expect_err("a bad size after a good one is an error");
    }

    #[test]
    fn heads() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Bytes: caf\xe9\r\n\r\nbody";
        let end = head_end(raw).expect("end");
        assert_eq!(&raw[end..], b"body");
        let head = parse_response(&raw[..end]).expect("parses");
        assert_eq!(head.status, 200);
        assert_eq!(head.headers[1].1.as_bytes(), b"caf\xe9");
        let req = parse_request(b"GET /x?y HTTP/1.1\r\nHost: a.example.test\r\n\r\n").expect("req");
        assert_eq!((req.method.as_str(), req.target.as_str()), ("GET", "/x?y"));
        assert!(is_chunked(&[(
            "Transfer-Encoding".into(),
            FieldValue::from("gzip, chunked")
        )]));
        assert!(!is_chunked(&[(
            "transfer-encoding".into(),
            FieldValue::from("gzip")
        )]));
    }
}
