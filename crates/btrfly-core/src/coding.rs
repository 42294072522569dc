//! Content codings (RFC 9110 §8.4.1) of the documents adapters read for
//! the digests they announce (pip index pages, Go checksum-database
//! lookups, cargo index files, npm packuments): a recorded body is stored
//! as the upstream sent it, so an adapter decodes it before parsing.

use std::borrow::Cow;
use std::io::Read as _;

/// `body` without its content coding, at most `limit` decoded bytes (the
/// rest is not read: a bound on what a hostile document can cost).
///
/// `coding` is the entry's `Content-Encoding`: none, `identity`, `gzip`
/// (`x-gzip`; several gzip members are read one after the other) or
/// `deflate` (the zlib format RFC 9110 names, or the raw deflate some
/// servers send instead). Case and surrounding spaces are ignored.
///
/// Returns `None` for another coding (`br`, `zstd`, a list of codings)
/// or a body that does not decode.
pub fn decode_content<'a>(
    coding: Option<&str>,
    body: &'a [u8],
    limit: u64,
) -> Option<Cow<'a, [u8]>> {
    let coding = coding.map(|c| c.trim().to_ascii_lowercase());
    let mut out = Vec::new();
    match coding.as_deref() {
        None | Some("" | "identity") => return Some(Cow::Borrowed(body)),
        Some("gzip" | "x-gzip") => {
            flate2::read::MultiGzDecoder::new(body)
                .take(limit)
                .read_to_end(&mut out)
                .ok()?;
        }
        Some("deflate") => {
            let zlib = flate2::read::ZlibDecoder::new(body)
                .take(limit)
                .read_to_end(&mut out);
            if zlib.is_err() {
                out.clear();
                flate2::read::DeflateDecoder::new(body)
                    .take(limit)
                    .read_to_end(&mut out)
                    .ok()?;
            }
        }
        Some(_) => return None,
    }
    Some(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::decode_content;
    use std::io::Write as _;

    const TEXT: &[u8] = b"{\"versions\":{\"1.0.0\":{}}}";

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).expect("gzip");
        e.finish().expect("gzip")
    }

    #[test]
    fn identity_is_borrowed_and_codings_decode() {
        assert!(matches!(
            decode_content(None, TEXT, 1 << 20),
            Some(std::borrow::Cow::Borrowed(b)) if b == TEXT
        ));
        assert_eq!(
            decode_content(Some(" Identity "), TEXT, 1 << 20).as_deref(),
            Some(TEXT)
        );
        assert_eq!(
            decode_content(Some("GZIP"), &gzip(TEXT), 1 << 20).as_deref(),
            Some(TEXT)
        );
        assert_eq!(
            decode_content(Some("x-gzip"), &gzip(TEXT), 1 << 20).as_deref(),
            Some(TEXT)
        );

        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zlib.write_all(TEXT).expect("zlib");
        let zlib = zlib.finish().expect("zlib");
        assert_eq!(
            decode_content(Some("deflate"), &zlib, 1 << 20).as_deref(),
            Some(TEXT)
        );

        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(TEXT).expect("deflate");
        let raw = raw.finish().expect("deflate");
        assert_eq!(
            decode_content(Some("deflate"), &raw, 1 << 20).as_deref(),
            Some(TEXT)
        );
    }

    #[test]
    fn several_gzip_members_are_read_in_turn() {
        let mut two = gzip(b"{\"a\":");
        two.extend(gzip(b"1}"));
        assert_eq!(
            decode_content(Some("gzip"), &two, 1 << 20).as_deref(),
            Some(&b"{\"a\":1}"[..])
        );
    }

    #[test]
    fn the_limit_bounds_what_is_decoded() {
        let big = vec![b'x'; 100_000];
        let coded = gzip(&big);
        let got = decode_content(Some("gzip"), &coded, 1000).expect("decodes");
        assert_eq!(got.len(), 1000);
    }

    #[test]
    fn unknown_codings_and_broken_bodies_are_none() {
        assert_eq!(decode_content(Some("br"), TEXT, 1 << 20), None);
        assert_eq!(decode_content(Some("gzip, br"), TEXT, 1 << 20), None);
        assert_eq!(decode_content(Some("gzip"), b"not gzip", 1 << 20), None);
    }
}
