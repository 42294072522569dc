//! Memory does not grow with body size: a 200 MiB body (generated, never
//! held whole) is exported as a gzip WARC into a 64 KiB pipe whose other
//! end is imported at the same time; the body arrives with its digest and
//! the process's peak RSS stays far below the body's size.
//!
//! Its own test binary, so the peak RSS (`VmHWM`) is this test's alone.

use std::time::Instant;

use btrfly_archive::warc::{
    read_exchanges, Bodies, BodySink, BodyStream, BodyWriter, ExportOptions, StoredBody,
    WarcReader, WarcWriter,
};
use btrfly_core::{Entry, FieldValue, Mutability, RecordingKey, Tag, TagMeta};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

const SIZE: u64 = 200 * 1024 * 1024;
const CHUNK: usize = 256 * 1024;

/// Pseudo-random bytes (xorshift64), so gzip cannot shrink them: the
/// harshest case for buffers.
fn generated(size: u64) -> BodyStream {
    let stream = futures::stream::unfold(
        (0u64, 0x9e37_79b9_7f4a_7c15u64),
        move |(done, mut x)| async move {
            if done >= size {
                return None;
            }
            let n = (size - done).min(CHUNK as u64) as usize;
            let mut chunk = Vec::with_capacity(n + 8);
            while chunk.len() < n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chunk.extend_from_slice(&x.to_le_bytes());
            }
            chunk.truncate(n);
            Some((Ok(Bytes::from(chunk)), (done + n as u64, x)))
        },
    );
    Box::pin(stream)
}

struct Generated;

impl Bodies for Generated {
    async fn open(&self, entry: &Entry) -> std::io::Result<BodyStream> {
        Ok(generated(entry.size))
    }
}

/// A sink that keeps nothing but the digest.
struct Hashing;
struct HashingWriter(Sha256, u64);

impl BodySink for Hashing {
    type Writer = HashingWriter;
    async fn start(&mut self) -> std::io::Result<HashingWriter> {
        Ok(HashingWriter(Sha256::new(), 0))
    }
}

impl BodyWriter for HashingWriter {
    async fn write(&mut self, chunk: Bytes) -> std::io::Result<()> {
        self.0.update(&chunk);
        self.1 += chunk.len() as u64;
        Ok(())
    }
    async fn finish(self) -> std::io::Result<StoredBody> {
        Ok(StoredBody {
            sha256: btrfly_core::Sha256::from_bytes(self.0.finalize().into()),
            size: self.1,
        })
    }
    async fn abort(self) {}
}

fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kib / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mib_body_streams_through_export_and_import_in_bounded_memory() {
    let started = Instant::now();
    let mut hash = Sha256::new();
    let mut body = generated(SIZE);
    while let Some(chunk) = futures::StreamExt::next(&mut body).await {
        hash.update(chunk.expect("chunk"));
    }
    let sha256 = btrfly_core::Sha256::from_bytes(hash.finalize().into());
    let entry = Entry {
        key: RecordingKey::new("files", "GET https://files.example.test:443/huge.bin"),
        method: "GET".into(),
        url: "https://files.example.test:443/huge.bin".into(),
        status: 200,
        headers: vec![(
            "content-type".into(),
            FieldValue::from("application/octet-stream"),
        )],
        sha256: sha256.clone(),
        size: SIZE,
        mutability: Mutability::Mutable,
        recorded_at: OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("time"),
        purl: None,
    };
    let meta = TagMeta {
        tag: Tag::new("huge").expect("tag"),
        created_at: entry.recorded_at,
        sealed: true,
        sealed_at: Some(entry.recorded_at),
    };

    let (tx, rx) = tokio::io::duplex(64 * 1024);
    let export = tokio::spawn(async move {
        let options = ExportOptions {
            gzip: Some(flate2::Compression::fast()),
            filename: None,
        };
        let mut w = WarcWriter::new(tx, &options);
        w.write_warcinfo(&meta, 1, None).await.expect("warcinfo");
        w.write_entry(&entry, &Generated).await.expect("entry");
        let written = w.bytes_written();
        drop(w.finish().await.expect("finish"));
        written
    });
    let mut reader = WarcReader::new(rx).await.expect("reader");
    assert!(reader.is_gzip());
    let contents = read_exchanges(&mut reader, &mut Hashing)
        .await
        .expect("import");
    let written = export.await.expect("export task");

    assert_eq!(contents.exchanges.len(), 1);
    let ex = &contents.exchanges[0];
    assert_eq!(ex.body.sha256, sha256);
    assert_eq!(ex.body.size, SIZE);
    assert!(written > SIZE, "random bytes do not compress: {written}");
    let peak = peak_rss_mib();
    eprintln!(
        "200 MiB body exported and imported in {:.1} s, {written} bytes of WARC, peak RSS {peak} MiB",
        started.elapsed().as_secs_f64()
    );
    assert!(peak < 50, "peak RSS {peak} MiB for a 200 MiB body");
}
