//! Independent validation with tools from the package index: warcio reads,
//! indexes and checks the digests of our WARC files, a WARC written by
//! warcio's own recorder imports, CycloneDX and SPDX outputs validate
//! against their schemas (and the validators do refuse broken documents).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use btrfly_archive::bom::Manifest;
use btrfly_archive::store::{export_tag, import_tag, tag_entries};
use btrfly_archive::warc::ExportOptions;
use btrfly_core::RequestHead;
use btrfly_store::Store;
use common::{adapters, classify, sample_tag, tag, venv_bin};
use futures::StreamExt;

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    eprintln!(
        "{cmd:?} → {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

async fn export_to(store: &Store, name: &str, path: &Path, gzip: bool) {
    let file = tokio::fs::File::create(path).await.expect("create");
    let options = ExportOptions {
        gzip: gzip.then(flate2::Compression::default),
        filename: path.file_name().map(|n| n.to_string_lossy().into_owned()),
    };
    let (mut file, _) = export_tag(store, &tag(name), file, &options, |_| {})
        .await
        .expect("export");
    tokio::io::AsyncWriteExt::flush(&mut file)
        .await
        .expect("flush");
}

#[tokio::test]
async fn warcio_reads_indexes_and_checks_our_export() {
    let store = Store::memory().expect("store");
    let entries = sample_tag(&store, "build-1").await;
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("build-1.warc.gz");
    export_to(&store, "build-1", &path, true).await;

    // every record's digests present and correct
    let out = run(Command::new(venv_bin("warcio"))
        .arg("check")
        .arg("-v")
        .arg(&path));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let records = 1 + 2 * entries.len();
    assert_eq!(text.matches("digest pass").count(), records, "{text}");

    // indexed: one gzip member per record (distinct offsets), types in
    // order, the recorded statuses and our sha256 payload digests
    let out = run(Command::new(venv_bin("warcio"))
        .args([
            "index",
            "-f",
            "offset,length,warc-type,warc-target-uri,warc-payload-digest,http:status",
        ])
        .arg(&path));
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), records);
    assert_eq!(lines[0]["warc-type"], "warcinfo");
    let mut offsets: Vec<u64> = lines
        .iter()
        .map(|l| {
            l["offset"]
                .as_str()
                .and_then(|o| o.parse().ok())
                .expect("offset")
        })
        .collect();
    offsets.dedup();
    assert_eq!(offsets.len(), records, "one member per record");
    let (_, sorted) = tag_entries(&store, &tag("build-1")).await.expect("entries");
    for (i, e) in sorted.iter().enumerate() {
        let resp = &lines[1 + 2 * i];
        assert_eq!(resp["warc-type"], "response");
        assert_eq!(resp["http:status"], e.status.to_string());
        let digest =
            btrfly_archive::digest::WarcDigest::sha256_from_hex(&e.sha256).expect("digest");
        assert_eq!(resp["warc-payload-digest"], digest.to_warc());
        assert_eq!(lines[2 + 2 * i]["warc-type"], "request");

        // warcio hands out the body we recorded
        let out = run(Command::new(venv_bin("warcio"))
            .args(["extract", "--payload"])
            .arg(&path)
            .arg(resp["offset"].as_str().expect("offset")));
        assert!(out.status.success());
        assert_eq!(btrfly_core::sha256_hex(&out.stdout), e.sha256, "{}", e.url);
    }

    // the check bites: one flipped body byte in a plain WARC fails it
    let plain = dir.path().join("build-1.warc");
    export_to(&store, "build-1", &plain, false).await;
    let mut bytes = std::fs::read(&plain).expect("read");
    let at = bytes
        .windows(b"<p>Hallo</p>".len())
        .position(|w| w == b"<p>Hallo</p>")
        .expect("body");
    bytes[at + 3] = b'h';
    std::fs::write(&plain, bytes).expect("write");
    let out = run(Command::new(venv_bin("warcio")).arg("check").arg(&plain));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("digest failed"));
}

/// A Python program: starts a local HTTP server (a file with a
/// `Content-Length`, a chunked answer, a gzip-coded one, a redirect, a
/// 404), fetches each URL through warcio's `capture_http` into a WARC,
/// and prints what the client received: `{url: [status, sha256]}`.
const CAPTURE: &str = r#"
import gzip, hashlib, http.server, json, os, sys, threading
from warcio.capture_http import capture_http
import urllib.request, urllib.error

BIG = bytes((i * 2654435761 >> 13) & 0xff for i in range(700000))
GZ = gzip.compress(b'{"coded": true}\n' * 100)

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path == '/big.bin':
            self.send_response(200); self.send_header('Content-Type', 'application/octet-stream')
            self.send_header('Content-Length', str(len(BIG))); self.end_headers(); self.wfile.write(BIG)
        elif self.path == '/chunked':
            self.send_response(200); self.send_header('Content-Type', 'text/plain')
            self.send_header('Transfer-Encoding', 'chunked'); self.end_headers()
            for part in (b'hello', b', ', b'chunked world\n' * 50):
                self.wfile.write(b'%x\r\n%s\r\n' % (len(part), part))
            self.wfile.write(b'0\r\n\r\n')
        elif self.path == '/coded.json':
            self.send_response(200); self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Encoding', 'gzip'); self.send_header('Content-Length', str(len(GZ)))
            self.end_headers(); self.wfile.write(GZ)
        elif self.path == '/old':
            self.send_response(302); self.send_header('Location', '/big.bin')
            self.send_header('Content-Length', '0'); self.end_headers()
        else:
            body = b'no such file\n'
            self.send_response(404); self.send_header('Content-Length', str(len(body)))
            self.end_headers(); self.wfile.write(body)

server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
threading.Thread(target=server.serve_forever, daemon=True).start()
base = 'http://127.0.0.1:%d' % server.server_address[1]

class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k): return None
opener = urllib.request.build_opener(NoRedirect)

got = {}
with capture_http(sys.argv[1]):
    for path in ('/big.bin', '/chunked', '/coded.json', '/old', '/missing'):
        url = base + path
        try:
            r = opener.open(urllib.request.Request(url, headers={'Accept-Encoding': 'gzip'}), timeout=30)
            status, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        got[url] = [status, hashlib.sha256(body).hexdigest()]
server.shutdown()
print(json.dumps(got))
"#;

#[tokio::test]
async fn a_warc_written_by_warcios_recorder_imports_with_the_bodies_the_client_got() {
    let dir = tempfile::tempdir().expect("tmp");
    let warc = dir.path().join("captured.warc.gz");
    let out = run(Command::new(venv_bin("python"))
        .arg("-c")
        .arg(CAPTURE)
        .arg(&warc)
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env("NO_PROXY", "*"));
    assert!(out.status.success());
    let got: std::collections::BTreeMap<String, (u16, String)> =
        serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(got.len(), 5);
    // warcio itself finds its file sound
    assert!(
        run(Command::new(venv_bin("warcio")).arg("check").arg(&warc))
            .status
            .success()
    );

    let store = Store::memory().expect("store");
    let list = adapters();
    let f = move |h: &RequestHead| classify(&list, h);
    let file = tokio::fs::File::open(&warc).await.expect("open");
    let summary = import_tag(&store, &tag("captured"), file, &f)
        .await
        .expect("import");
    assert!(summary.skipped.is_empty(), "{:?}", summary.skipped);
    assert_eq!(summary.entries, got.len());
    let (meta, entries) = tag_entries(&store, &tag("captured"))
        .await
        .expect("entries");
    assert!(meta.sealed);
    for e in &entries {
        let (status, sha256) = &got[&e.url];
        assert_eq!(
            (e.status, e.sha256.as_str()),
            (*status, sha256.as_str()),
            "{}",
            e.url
        );
        // the body is in the store, whole
        let mut s = store.read_blob(&e.sha256, None).await.expect("blob");
        let mut all = Vec::new();
        while let Some(c) = s.next().await {
            all.extend_from_slice(&c.expect("chunk"));
        }
        assert_eq!(&btrfly_core::sha256_hex(&all), sha256);
        assert!(
            !e.headers.iter().any(|(k, _)| k == "transfer-encoding"),
            "{}: the body is stored de-chunked",
            e.url
        );
    }
    let coded = entries
        .iter()
        .find(|e| e.url.ends_with("/coded.json"))
        .expect("coded");
    assert_eq!(
        coded.header("content-encoding"),
        Some("gzip"),
        "the content coding stays"
    );
    let old = entries
        .iter()
        .find(|e| e.url.ends_with("/old"))
        .expect("redirect");
    assert_eq!(old.header("location"), Some("/big.bin"));
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

const CYCLONEDX_VALIDATE: &str = r#"
import sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
errors = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())
if errors:
    print('invalid:', errors)
    sys.exit(1)
print('valid')
"#;

const JSONSCHEMA_VALIDATE: &str = r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[2]))
v = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
errors = list(v.iter_errors(json.load(open(sys.argv[1]))))
for e in errors:
    print('invalid:', e.message, list(e.path))
sys.exit(1 if errors else 0)
"#;

#[tokio::test]
async fn cyclonedx_and_spdx_documents_validate_against_their_schemas() {
    let store = Store::memory().expect("store");
    sample_tag(&store, "deps").await;
    let (meta, entries) = tag_entries(&store, &tag("deps")).await.expect("entries");
    let m = Manifest::derive(meta, entries, |_| None).expect("manifest");
    let dir = tempfile::tempdir().expect("tmp");

    let cdx = m.to_cyclonedx().expect("cyclonedx");
    let doc: serde_json::Value = serde_json::from_str(&cdx).expect("json");
    let purls: Vec<&str> = doc["components"]
        .as_array()
        .expect("components")
        .iter()
        .filter_map(|c| c["purl"].as_str())
        .collect();
    assert!(purls.contains(&"pkg:pypi/demo-pkg@1.0"), "{purls:?}");
    assert!(
        purls.iter().any(|p| p.starts_with("pkg:oci/app@sha256:")),
        "{purls:?}"
    );
    let path = write(dir.path(), "bom.cdx.json", &cdx);
    let out = run(Command::new(venv_bin("python"))
        .arg("-c")
        .arg(CYCLONEDX_VALIDATE)
        .arg(&path));
    assert!(out.status.success());
    // the validator bites: a hash that is not one
    let broken = cdx.replacen("\"content\": \"", "\"content\": \"zz", 1);
    let path = write(dir.path(), "broken.cdx.json", &broken);
    assert!(!run(Command::new(venv_bin("python"))
        .arg("-c")
        .arg(CYCLONEDX_VALIDATE)
        .arg(&path))
    .status
    .success());

    let spdx = m.to_spdx().expect("spdx");
    let path = write(dir.path(), "bom.spdx.json", &spdx);
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/spdx-schema-2.3.json");
    let out = run(Command::new(venv_bin("python"))
        .arg("-c")
        .arg(JSONSCHEMA_VALIDATE)
        .arg(&path)
        .arg(&schema));
    assert!(out.status.success());
    let out = run(Command::new(venv_bin("pyspdxtools")).arg("-i").arg(&path));
    assert!(out.status.success());
    // both validators bite: a document without its version
    let mut broken: serde_json::Value = serde_json::from_str(&spdx).expect("json");
    broken
        .as_object_mut()
        .and_then(|o| o.remove("spdxVersion"))
        .expect("a version to remove");
    let broken = broken.to_string();
    let path = write(dir.path(), "broken.spdx.json", &broken);
    assert!(!run(Command::new(venv_bin("python"))
        .arg("-c")
        .arg(JSONSCHEMA_VALIDATE)
        .arg(&path)
        .arg(&schema))
    .status
    .success());
    assert!(
        !run(Command::new(venv_bin("pyspdxtools")).arg("-i").arg(&path))
            .status
            .success()
    );
}
