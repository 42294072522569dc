//! Checks of every algorithm, and of zips in the shapes writers produce,
//! fed in every chunking.

use std::io::Write as _;

use base64::Engine as _;
use btrfly_core::{ExpectedDigest, H1Of};
use flate2::write::DeflateEncoder;
use flate2::Compression;
use sha2::Digest as _;

use super::Checker;

/// A zip of `files`: deflated with a signed data descriptor (as Go's
/// archive/zip writes), or stored with sizes in the local header.
fn zip(files: &[(&str, &[u8])], deflate: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, content) in files {
        let data = if deflate {
            let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
            e.write_all(content).expect("deflate");
            e.finish().expect("deflate")
        } else {
            content.to_vec()
        };
        let (flags, method, size): (u16, u16, u32) = if deflate {
            (8, 8, 0)
        } else {
            (0, 0, u32::try_from(data.len()).expect("size"))
        };
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&20u16.to_le_bytes());
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&method.to_le_bytes());
        out.extend_from_slice(&[0; 8]); // time, date, crc
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&u16::try_from(name.len()).expect("name").to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&data);
        if deflate {
            out.extend_from_slice(&0x0807_4b50u32.to_le_bytes());
            out.extend_from_slice(&[0; 4]);
            out.extend_from_slice(&u32::try_from(data.len()).expect("c").to_le_bytes());
            out.extend_from_slice(&u32::try_from(content.len()).expect("u").to_le_bytes());
        }
    }
    // A central directory header is all the reader looks for at the end.
    out.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 42]);
    out
}

/// dirhash `Hash1` by its definition: lines in the order of the sorted
/// file names.
fn h1(files: &[(&str, &[u8])]) -> String {
    let mut sorted = files.to_vec();
    sorted.sort_by_key(|(n, _)| *n);
    let lines: Vec<String> = sorted
        .iter()
        .map(|(n, c)| format!("{}  {n}\n", hex::encode(sha2::Sha256::digest(c))))
        .collect();
    let sum = sha2::Sha256::digest(lines.concat().as_bytes());
    format!(
        "h1:{}",
        base64::engine::general_purpose::STANDARD.encode(sum)
    )
}

fn check(expected: &ExpectedDigest, body: &[u8], chunk: usize) -> Result<(), super::Computed> {
    let mut c = Checker::new(expected.clone());
    for part in body.chunks(chunk.max(1)) {
        c.update(part);
    }
    c.finish()
}

#[test]
fn module_zips_hash_as_go_does_in_every_chunking() {
    let big: Vec<u8> = (0..200_000u32)
        .flat_map(|i| (i % 251).to_le_bytes())
        .collect();
    let files: &[(&str, &[u8])] = &[
        ("example.test/m@v1.0.0/go.mod", b"module example.test/m\n"),
        ("example.test/m@v1.0.0/a.go", b"package m\n"),
        ("example.test/m@v1.0.0/data.bin", &big),
    ];
    let want = ExpectedDigest::go_h1(&h1(files), H1Of::ModuleZip).expect("h1");
    for deflate in [true, false] {
        let body = zip(files, deflate);
        for chunk in [body.len(), 65_536, 4096, 7, 1] {
            assert_eq!(
                check(&want, &body, chunk),
                Ok(()),
                "deflate {deflate} chunk {chunk}"
            );
        }
        // one changed byte of content: refused, with the hash it has
        let mut tampered = files.to_vec();
        tampered[1].1 = b"package n\n";
        let bad = check(&want, &zip(&tampered, deflate), 4096).expect_err("tampered");
        assert_eq!(bad.algorithm, "h1");
        assert_eq!(bad.actual, h1(&tampered));
        // a truncated zip has no hash at all
        let cut = check(&want, &body[..body.len() - 50], 4096).expect_err("cut");
        assert!(cut.actual.starts_with("(none: "), "{}", cut.actual);
    }
    let junk = check(&want, b"not a zip at all", 3).expect_err("junk");
    assert!(
        junk.actual.contains("no zip entry header"),
        "{}",
        junk.actual
    );
}

#[test]
fn byte_digests_and_go_mod_hashes() {
    let body = b"module example.test/m\n\ngo 1.19\n";
    let cases = [
        ExpectedDigest::Sha256(btrfly_core::Sha256::of(body)),
        ExpectedDigest::from_sri(&format!(
            "sha512-{}",
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(body))
        ))
        .expect("sri"),
        ExpectedDigest::sha1_hex(&hex::encode(sha1::Sha1::digest(body))).expect("sha1"),
        ExpectedDigest::go_h1(&h1(&[("go.mod", body)]), H1Of::GoMod).expect("h1"),
    ];
    for want in &cases {
        for chunk in [1, 5, body.len()] {
            assert_eq!(check(want, body, chunk), Ok(()), "{want:?}");
        }
        let bad = check(want, b"module evil\n", 4).expect_err("tampered");
        assert_eq!(bad.algorithm, want.algorithm());
        assert_ne!(bad.actual, want.to_string());
    }
}
