//! Round trips through a real (in-memory) store, refused files, foreign
//! WARC shapes, diffs and manifests.

use std::io::Write as _;
use std::sync::Arc;

use btrfly_core::{
    Adapter, Classification, Entry, FieldValue, Mutability, RecordingKey, RequestHead, Tag, TagMeta,
};
use btrfly_store::Store;
use bytes::Bytes;
use time::OffsetDateTime;

use crate::bom::Manifest;
use crate::diff::TagDiff;
use crate::store::{export_tag, import_tag, tag_entries};
use crate::warc::ExportOptions;
use crate::ArchiveError;

fn tag(name: &str) -> Tag {
    Tag::new(name).expect("tag")
}

fn at(secs: i64, micros: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(
        (secs as i128) * 1_000_000_000 + (micros as i128) * 1000,
    )
    .expect("time")
}

/// Stores `body` and an entry for it.
async fn put(store: &Store, t: &Tag, mut entry: Entry, body: &[u8]) -> Entry {
    let mut w = store.blob_writer(None).await.expect("writer");
    w.write(Bytes::copy_from_slice(body)).await.expect("write");
    let blob = w.finish().await.expect("finish");
    entry.sha256 = blob.sha256;
    entry.size = blob.size;
    if let Some(r) = crate::store::vary_record_of(&entry.key) {
        store.put_vary(t, &r).await.expect("vary");
    }
    store.put_entry(t, &entry).await.expect("entry");
    entry
}

fn entry(ns: &str, method: &str, url: &str, status: u16, headers: &[(&str, &[u8])]) -> Entry {
    Entry {
        key: RecordingKey::new(ns, format!("{method} {url}")),
        method: method.into(),
        url: url.into(),
        status,
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), FieldValue::new(v.to_vec())))
            .collect(),
        sha256: btrfly_core::Sha256::of(b""),
        size: 0,
        mutability: Mutability::Mutable,
        recorded_at: at(1_700_000_000, 250_000),
        purl: None,
    }
}

/// A sealed tag with the shapes a build records: a file, a pip wheel
/// (immutable), a page with a `Vary` representation, a redirect, an error,
/// header bytes that are not UTF-8, a gzip-coded body, an empty body.
async fn sample_tag(store: &Store, name: &str) -> Vec<Entry> {
    let t = tag(name);
    store
        .put_tag_meta(&TagMeta {
            tag: t.clone(),
            created_at: at(1_699_999_000, 0),
            sealed: false,
            sealed_at: None,
        })
        .await
        .expect("meta");
    let mut out = Vec::new();
    out.push(
        put(
            store,
            &t,
            entry(
                "files",
                "GET",
                "https://files.example.test:443/tool.tar.gz",
                200,
                &[
                    ("content-type", b"application/gzip"),
                    (
                        "content-disposition",
                        b"attachment; filename=\"caf\xe9.tar.gz\"",
                    ),
                ],
            ),
            &vec![7u8; 300_000],
        )
        .await,
    );
    let mut wheel = entry(
        "pip",
        "GET",
        "https://files.example.test:443/packages/demo_pkg-1.0-py3-none-any.whl",
        200,
        &[("content-type", b"application/octet-stream")],
    );
    wheel.mutability = Mutability::Immutable;
    // what the pip adapter records for it
    wheel.purl = Some("pkg:pypi/demo-pkg@1.0".into());
    out.push(put(store, &t, wheel, b"PK\x03\x04 wheel bytes").await);
    let mut page = entry(
        "files",
        "GET",
        "https://files.example.test:443/page",
        200,
        &[("content-type", b"text/html"), ("vary", b"Accept-Language")],
    );
    page.key = page.key.clone().vary("vary:accept-language", "de");
    out.push(put(store, &t, page, b"<p>Hallo</p>").await);
    out.push(
        put(
            store,
            &t,
            entry(
                "files",
                "GET",
                "https://files.example.test:443/old",
                302,
                &[("location", b"/tool.tar.gz")],
            ),
            b"",
        )
        .await,
    );
    out.push(
        put(
            store,
            &t,
            entry(
                "files",
                "GET",
                "https://files.example.test:443/missing",
                404,
                &[],
            ),
            b"not here\n",
        )
        .await,
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"{\"coded\": true}").expect("gzip");
    out.push(
        put(
            store,
            &t,
            entry(
                "files",
                "GET",
                "https://files.example.test:443/api.json",
                200,
                &[
                    ("content-type", b"application/json"),
                    ("content-encoding", b"gzip"),
                ],
            ),
            &gz.finish().expect("gzip"),
        )
        .await,
    );
    let meta = store.tag_meta(&t).await.expect("meta").expect("meta");
    store.seal_tag(meta).await.expect("seal");
    out
}

fn adapters() -> Vec<Arc<dyn Adapter>> {
    let pip = btrfly_adapter_pip::PipConfig::new::<&str>(&[], &[]).expect("pip");
    vec![
        Arc::new(btrfly_adapter_pip::PipAdapter::new(pip)),
        Arc::new(btrfly_adapter_files::FilesAdapter),
    ]
}

fn classify(
    list: &[Arc<dyn Adapter>],
    head: &RequestHead,
) -> Option<(Arc<dyn Adapter>, Classification)> {
    list.iter()
        .find_map(|a| a.classify(head).map(|c| (a.clone(), c)))
}

async fn export_bytes(store: &Store, t: &Tag, options: &ExportOptions) -> Vec<u8> {
    let (out, progress) = export_tag(store, t, Vec::new(), options, |_| {})
        .await
        .expect("export");
    assert_eq!(progress.entries_done, progress.entries_total);
    out
}

async fn import_bytes(
    store: &Store,
    t: &Tag,
    warc: Vec<u8>,
) -> Result<crate::store::ImportSummary, ArchiveError> {
    let list = adapters();
    let f = move |h: &RequestHead| classify(&list, h);
    import_tag(store, t, std::io::Cursor::new(warc), &f).await
}

/// What must survive a round trip: key, method, URL, status, header bytes,
/// body, mutability, time (to the microsecond).
fn comparable(e: &Entry) -> serde_json::Value {
    serde_json::json!({
        "key": e.key.id(),
        "method": e.method,
        "url": e.url,
        "status": e.status,
        "headers": e.headers.iter().map(|(k, v)| (k.clone(), v.as_bytes().to_vec())).collect::<Vec<_>>(),
        "sha256": e.sha256,
        "size": e.size,
        "mutability": e.mutability,
        "recorded_at": e.recorded_at.unix_timestamp_nanos().to_string(),
        "purl": e.purl,
    })
}

#[tokio::test]
async fn export_then_import_gives_the_same_entries_gzip_or_not() {
    for gzip in [true, false] {
        let store = Store::memory().expect("store");
        let mut recorded = sample_tag(&store, "source").await;
        let options = ExportOptions {
            gzip: gzip.then(flate2::Compression::default),
            filename: None,
        };
        let warc = export_bytes(&store, &tag("source"), &options).await;
        assert_eq!(warc.starts_with(&[0x1f, 0x8b]), gzip);
        // the same tag exports to the same bytes
        assert_eq!(warc, export_bytes(&store, &tag("source"), &options).await);

        let fresh = Store::memory().expect("fresh store");
        let summary = import_bytes(&fresh, &tag("copy"), warc)
            .await
            .expect("import");
        assert_eq!(summary.entries, recorded.len(), "{:?}", summary.skipped);
        assert!(summary.skipped.is_empty(), "{:?}", summary.skipped);
        assert_eq!(summary.source_tag.as_deref(), Some("source"));
        assert!(summary.meta.sealed);
        let (_, imported) = tag_entries(&fresh, &tag("copy")).await.expect("entries");
        crate::store::sort_entries(&mut recorded);
        assert_eq!(
            imported.iter().map(comparable).collect::<Vec<_>>(),
            recorded.iter().map(comparable).collect::<Vec<_>>()
        );
        // bodies are in the fresh store, byte for byte
        for e in &imported {
            assert_eq!(fresh.verify_blob(&e.sha256).await.expect("blob"), e.size);
        }
        // the Vary representation is found as in a recording
        let page = imported
            .iter()
            .find(|e| e.url.ends_with("/page"))
            .expect("page");
        let sets = fresh
            .vary_sets(&tag("copy"), &page.key.without_vary())
            .await
            .expect("vary");
        assert_eq!(sets, vec![vec!["accept-language".to_owned()]]);

        // importing into an existing tag is refused
        let again = export_bytes(&store, &tag("source"), &options).await;
        let err = import_bytes(&fresh, &tag("copy"), again)
            .await
            .expect_err("exists");
        assert!(err.to_string().contains("already exists"), "{err}");
    }
}

/// Flips one byte of the first body in an uncompressed export.
fn tamper(warc: &mut [u8], needle: &[u8]) {
    let at = warc
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle in the WARC");
    warc[at] ^= 0x20;
}

#[tokio::test]
async fn a_record_whose_digest_does_not_match_is_refused_and_no_tag_is_made() {
    let store = Store::memory().expect("store");
    sample_tag(&store, "source").await;
    let plain = ExportOptions {
        gzip: None,
        filename: None,
    };
    let mut warc = export_bytes(&store, &tag("source"), &plain).await;
    tamper(&mut warc, b"<p>Hallo</p>");
    let fresh = Store::memory().expect("fresh");
    let err = import_bytes(&fresh, &tag("copy"), warc)
        .await
        .expect_err("refused");
    let msg = err.to_string();
    assert!(matches!(err, ArchiveError::DigestMismatch { .. }), "{msg}");
    assert!(
        msg.contains("<urn:uuid:")
            && msg.contains("declares sha256:")
            && msg.contains("has sha256:"),
        "{msg}"
    );
    assert!(fresh.tag_meta(&tag("copy")).await.expect("meta").is_none());

    // a payload digest that names another body (the block digest, over
    // the block only, still matches)
    let mut warc = export_bytes(&store, &tag("source"), &plain).await;
    let field = b"WARC-Payload-Digest: sha256:";
    let second = warc
        .windows(field.len())
        .enumerate()
        .filter(|(_, w)| *w == field)
        .nth(1)
        .map(|(i, _)| i + field.len())
        .expect("a second payload digest");
    warc[second] = if warc[second] == b'A' { b'B' } else { b'A' };
    let err = import_bytes(&fresh, &tag("copy2"), warc)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("digest mismatch"), "{err}");
}

/// A WARC in the shape other tools write: sha1 digests, a chunked response
/// whose request comes after it without `WARC-Concurrent-To`, a revisit,
/// a `metadata` record, the whole file one gzip member.
fn foreign_warc() -> Vec<u8> {
    use sha1::Digest as _;
    let sha1 = |b: &[u8]| {
        format!(
            "sha1:{}",
            data_encoding::BASE32.encode(&sha1::Sha1::digest(b))
        )
    };
    let mut out = Vec::new();
    let mut record = |fields: &[(&str, String)], block: &[u8]| {
        out.extend_from_slice(b"WARC/1.0\r\n");
        for (k, v) in fields {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", block.len()).as_bytes());
        out.extend_from_slice(block);
        out.extend_from_slice(b"\r\n\r\n");
    };
    let chunked_payload = b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";
    let mut resp = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n".to_vec();
    resp.extend_from_slice(chunked_payload);
    let req = b"GET /greeting HTTP/1.1\r\nHost: files.example.test\r\nAccept: */*\r\n\r\n";
    let uri = "<http://files.example.test/greeting>".to_owned();
    record(
        &[
            ("WARC-Type", "response".into()),
            (
                "WARC-Record-ID",
                "<urn:uuid:00000000-0000-4000-8000-000000000001>".into(),
            ),
            ("WARC-Date", "2024-01-02T03:04:05Z".into()),
            ("WARC-Target-URI", uri.clone()),
            ("Content-Type", "application/http; msgtype=response".into()),
            ("WARC-Payload-Digest", sha1(chunked_payload)),
            ("WARC-Block-Digest", sha1(&resp)),
        ],
        &resp,
    );
    record(
        &[
            ("WARC-Type", "request".into()),
            (
                "WARC-Record-ID",
                "<urn:uuid:00000000-0000-4000-8000-000000000002>".into(),
            ),
            ("WARC-Date", "2024-01-02T03:04:05Z".into()),
            ("WARC-Target-URI", uri),
            ("Content-Type", "application/http; msgtype=request".into()),
        ],
        req,
    );
    record(
        &[
            ("WARC-Type", "metadata".into()),
            (
                "WARC-Record-ID",
                "<urn:uuid:00000000-0000-4000-8000-000000000003>".into(),
            ),
            ("WARC-Date", "2024-01-02T03:04:05Z".into()),
            ("Content-Type", "application/warc-fields".into()),
        ],
        b"outlinks: none\r\n",
    );
    let revisit = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n";
    record(
        &[
            ("WARC-Type", "revisit".into()),
            (
                "WARC-Record-ID",
                "<urn:uuid:00000000-0000-4000-8000-000000000004>".into(),
            ),
            ("WARC-Date", "2024-01-03T03:04:05Z".into()),
            (
                "WARC-Target-URI",
                "http://files.example.test/greeting-mirror".into(),
            ),
            ("Content-Type", "application/http; msgtype=response".into()),
            (
                "WARC-Profile",
                "http://netpreserve.org/warc/1.0/revisit/identical-payload-digest".into(),
            ),
            ("WARC-Payload-Digest", sha1(chunked_payload)),
        ],
        revisit,
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&out).expect("gzip");
    gz.finish().expect("gzip")
}

#[tokio::test]
async fn a_foreign_warc_imports_with_chunking_removed_and_revisits_resolved() {
    let store = Store::memory().expect("store");
    let summary = import_bytes(&store, &tag("foreign"), foreign_warc())
        .await
        .expect("import");
    assert_eq!(summary.entries, 2, "{:?}", summary.skipped);
    let (_, entries) = tag_entries(&store, &tag("foreign")).await.expect("entries");
    let greeting = entries
        .iter()
        .find(|e| e.url.ends_with("/greeting"))
        .expect("greeting");
    assert_eq!(greeting.sha256, btrfly_core::sha256_hex(b"hello, world"));
    assert_eq!(greeting.key.namespace, "files");
    assert_eq!(greeting.recorded_at, at(1_704_164_645, 0));
    let names: Vec<&str> = greeting.headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["content-type"],
        "hop-by-hop and transfer coding dropped"
    );
    let mirror = entries
        .iter()
        .find(|e| e.url.ends_with("/greeting-mirror"))
        .expect("revisit");
    assert_eq!(mirror.sha256, greeting.sha256);
    assert_eq!(store.verify_blob(&greeting.sha256).await.expect("blob"), 12);

    // a revisit whose original is in another file is refused, by name
    let mut warc = Vec::new();
    flate2::read::MultiGzDecoder::new(&foreign_warc()[..]).read_to_end_into(&mut warc);
    let cut = warc
        .windows(b"WARC/1.0\r\nWARC-Type: revisit".len())
        .position(|w| w == b"WARC/1.0\r\nWARC-Type: revisit")
        .expect("revisit");
    let err = import_bytes(&store, &tag("lonely"), warc[cut..].to_vec())
        .await
        .expect_err("unresolved");
    assert!(
        matches!(err, ArchiveError::UnresolvedRevisit { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("00000000-0000-4000-8000-000000000004"),
        "{err}"
    );
}

trait ReadAll {
    fn read_to_end_into(self, out: &mut Vec<u8>);
}

impl<R: std::io::Read> ReadAll for R {
    fn read_to_end_into(mut self, out: &mut Vec<u8>) {
        self.read_to_end(out).expect("read");
    }
}

#[tokio::test]
async fn diff_of_two_recordings_where_upstream_changed_one_file() {
    let store = Store::memory().expect("store");
    let first = sample_tag(&store, "monday").await;
    let t = tag("tuesday");
    store
        .put_tag_meta(&TagMeta {
            tag: t.clone(),
            created_at: at(1_700_086_400, 0),
            sealed: false,
            sealed_at: None,
        })
        .await
        .expect("meta");
    for e in &first {
        let body = if e.url.ends_with("/tool.tar.gz") {
            vec![8u8; 300_000] // the upstream regenerated the archive
        } else if e.url.ends_with("/missing") {
            continue; // no longer requested
        } else {
            let mut all = Vec::new();
            let mut s = store.read_blob(&e.sha256, None).await.expect("blob");
            while let Some(c) = futures::StreamExt::next(&mut s).await {
                all.extend_from_slice(&c.expect("chunk"));
            }
            all
        };
        put(&store, &t, e.clone(), &body).await;
    }
    put(
        &store,
        &t,
        entry(
            "files",
            "GET",
            "https://files.example.test:443/new",
            200,
            &[],
        ),
        b"new",
    )
    .await;

    let manifest = |name: &'static str| {
        let store = store.clone();
        async move {
            let (meta, entries) = tag_entries(&store, &tag(name)).await.expect("entries");
            Manifest::derive(meta, entries, |_| None).expect("manifest")
        }
    };
    let (a, b) = (manifest("monday").await, manifest("tuesday").await);
    let diff = TagDiff::between(&a, &b);
    assert!(!diff.is_equal());
    assert_eq!(
        diff.added
            .iter()
            .map(|d| d.url.as_str())
            .collect::<Vec<_>>(),
        ["https://files.example.test:443/new"]
    );
    assert_eq!(
        diff.removed
            .iter()
            .map(|d| d.url.as_str())
            .collect::<Vec<_>>(),
        ["https://files.example.test:443/missing"]
    );
    assert_eq!(diff.changed.len(), 1);
    assert_eq!(
        diff.changed[0].after.url,
        "https://files.example.test:443/tool.tar.gz"
    );
    assert_ne!(diff.changed[0].before.sha256, diff.changed[0].after.sha256);
    assert_eq!(diff.unchanged, first.len() - 2);
    let text = diff.to_text();
    assert!(
        text.contains("~ GET https://files.example.test:443/tool.tar.gz"),
        "{text}"
    );
    assert!(
        text.ends_with("1 added, 1 removed, 1 changed, 4 unchanged (monday → tuesday)\n"),
        "{text}"
    );
    let json = diff.to_json();
    assert_eq!(json["equal"], false);
    assert_eq!(
        json["changed"][0]["after"]["url"],
        "https://files.example.test:443/tool.tar.gz"
    );
    // the purl travels with a changed package
    let wheel = b
        .items
        .iter()
        .find(|i| i.entry.url.ends_with(".whl"))
        .expect("wheel");
    assert_eq!(wheel.purl.as_deref(), Some("pkg:pypi/demo-pkg@1.0"));

    assert!(TagDiff::between(&a, &a).is_equal());

    // a recorded identity wins over a derived one, and must be a purl
    let (meta, entries) = tag_entries(&store, &tag("monday")).await.expect("entries");
    let recorded = |e: &Entry| {
        e.url
            .ends_with(".whl")
            .then(|| "pkg:pypi/demo-pkg@1.0?file_name=x.whl".to_owned())
    };
    let m = Manifest::derive(meta.clone(), entries.clone(), recorded).expect("manifest");
    assert!(m
        .items
        .iter()
        .any(|i| i.purl.as_deref() == Some("pkg:pypi/demo-pkg@1.0?file_name=x.whl")));
    let err = Manifest::derive(meta, entries, |_| Some("not a purl".into())).expect_err("refused");
    assert!(err.to_string().contains("not a package URL"), "{err}");
}

#[test]
fn a_manifest_lists_the_purl_the_adapter_recorded_as_it_was_recorded() {
    // purls as the adapters build them (`btrfly_core::purl`), one of them
    // on an entry whose URL would derive another
    let recorded = [
        (
            "https://registry.example.test:5000/v2/team/app/blobs/sha256:".to_owned()
                + &"cd".repeat(32),
            format!(
                "pkg:oci/app@sha256:{}?repository_url=registry.example.test:5000%2Fteam%2Fapp",
                "cd".repeat(32)
            ),
        ),
        (
            "https://proxy.example.test:443/example.test/%21upper/@v/v1.0.0.zip".to_owned(),
            "pkg:golang/example.test/Upper@v1.0.0".to_owned(),
        ),
        (
            "https://npm.example.test:443/@types/node/-/node-20.1.0.tgz".to_owned(),
            "pkg:npm/%40types/node@20.1.0".to_owned(),
        ),
    ];
    let mut entries: Vec<Entry> = recorded
        .iter()
        .map(|(url, purl)| {
            let mut e = entry("files", "GET", url, 200, &[]);
            e.purl = Some(purl.clone());
            e
        })
        .collect();
    // an entry without one gets the derived identity
    entries.push(entry(
        "files",
        "GET",
        "https://crates.example.test:443/api/v1/crates/serde/1.0.200/download",
        200,
        &[],
    ));
    let meta = TagMeta {
        tag: tag("purls"),
        created_at: at(1_700_000_000, 0),
        sealed: true,
        sealed_at: Some(at(1_700_000_000, 0)),
    };
    let m = Manifest::of_entries(meta, entries).expect("manifest");
    for (url, purl) in &recorded {
        let item = m.items.iter().find(|i| &i.entry.url == url).expect("item");
        assert_eq!(item.purl.as_deref(), Some(purl.as_str()), "{url}");
    }
    let derived = m
        .items
        .iter()
        .find(|i| i.entry.url.ends_with("/download"))
        .expect("crate");
    assert_eq!(derived.purl.as_deref(), Some("pkg:cargo/serde@1.0.200"));
}

#[tokio::test]
async fn manifests_list_every_entry_and_sboms_the_downloads() {
    let store = Store::memory().expect("store");
    sample_tag(&store, "deps").await;
    let (meta, entries) = tag_entries(&store, &tag("deps")).await.expect("entries");
    let m = Manifest::derive(meta, entries, |_| None).expect("manifest");
    let json = m.to_json();
    assert_eq!(json["tag"], "deps");
    assert_eq!(json["entries"].as_array().expect("entries").len(), 6);
    let wheel = json["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["url"].as_str().is_some_and(|u| u.ends_with(".whl")))
        .expect("wheel");
    assert_eq!(wheel["purl"], "pkg:pypi/demo-pkg@1.0");

    let cdx = m.to_cyclonedx().expect("cyclonedx");
    let bom =
        cyclonedx_bom::models::bom::Bom::parse_from_json_v1_5(cdx.as_bytes()).expect("parses");
    use cyclonedx_bom::validation::Validate;
    assert!(bom.validate().passed(), "{cdx}");
    // 200 GETs only: the file, the wheel, the page, the coded JSON
    assert_eq!(bom.components.as_ref().map(|c| c.0.len()), Some(4), "{cdx}");
    assert_eq!(cdx, m.to_cyclonedx().expect("again"), "deterministic");

    let spdx: serde_json::Value = serde_json::from_str(&m.to_spdx().expect("spdx")).expect("json");
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3");
    assert_eq!(spdx["packages"].as_array().expect("packages").len(), 5);
}

#[tokio::test]
async fn what_is_not_a_warc_is_refused_by_name() {
    let store = Store::memory().expect("store");
    let err = import_bytes(&store, &tag("empty"), Vec::new())
        .await
        .expect_err("empty");
    assert!(err.to_string().contains("no WARC record"), "{err}");
    let err = import_bytes(&store, &tag("html"), b"<html>hello</html>\n".to_vec())
        .await
        .expect_err("not a WARC");
    assert!(
        err.to_string()
            .contains("expected a WARC record, found \"<html>"),
        "{err}"
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"just text").expect("gzip");
    let err = import_bytes(&store, &tag("gz"), gz.finish().expect("gzip"))
        .await
        .expect_err("gzip, not a WARC");
    assert!(err.to_string().contains("expected a WARC record"), "{err}");
    assert!(store.list_tags().await.expect("tags").is_empty());
}

#[tokio::test]
async fn a_truncated_file_is_an_error_not_a_shorter_tag() {
    let store = Store::memory().expect("store");
    sample_tag(&store, "source").await;
    let warc = export_bytes(&store, &tag("source"), &ExportOptions::default()).await;
    let cut = warc[..warc.len() - 100].to_vec();
    let fresh = Store::memory().expect("fresh");
    let err = import_bytes(&fresh, &tag("copy"), cut)
        .await
        .expect_err("truncated");
    assert!(
        matches!(
            err,
            ArchiveError::Read { .. } | ArchiveError::Malformed { .. }
        ),
        "{err}"
    );
    assert!(fresh.tag_meta(&tag("copy")).await.expect("meta").is_none());
}
