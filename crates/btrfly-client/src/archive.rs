//! The archive commands: `btrfly export`, `btrfly import`, `btrfly tag
//! manifest`, `btrfly tag diff` (the control API's archive routes).
//!
//! Exports and imports stream: the WARC never sits whole in memory on
//! either side. A progress bar (indicatif) is drawn on stderr when it is a
//! terminal, nothing otherwise.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use futures::TryStreamExt;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, BodyStream, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::args::ServerArgs;
use crate::control::{error_chain, refusal, ClientError};
use crate::target::{connect, Target};

fn parse_tag(tag: &str) -> Result<btrfly_core::Tag> {
    btrfly_core::Tag::new(tag).map_err(|e| anyhow!("--tag {tag:?}: {e}"))
}

/// A bar of `len` bytes on a terminal; hidden in pipes and files.
fn bar(len: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

fn header_u64(headers: &http::HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.parse().ok()
}

/// `btrfly export --tag T -o FILE`: the tag as a WARC file (gzip member per
/// record). The file appears only when the whole export arrived: the body
/// goes to a temporary file beside it, renamed at the clean end of the
/// stream (removed otherwise). `-o -` writes to stdout.
///
/// # Errors
/// The server cannot be reached or refuses (unknown tag: 404); the stream
/// was cut (the server's export failed, the connection broke); the file
/// cannot be written.
pub async fn export(args: &ServerArgs, tag: &str, output: &Path) -> Result<ExitCode> {
    let tag = parse_tag(tag)?;
    let target = connect(args, None)?;
    let to_stdout = output == Path::new("-");
    let filename = (!to_stdout)
        .then(|| output.file_name().map(|n| n.to_string_lossy().into_owned()))
        .flatten();
    let mut path = format!("/v1/tags/{tag}/export");
    if let Some(f) = &filename {
        path.push_str("?filename=");
        path.push_str(
            &percent_encoding::utf8_percent_encode(f, percent_encoding::NON_ALPHANUMERIC)
                .to_string(),
        );
    }
    let resp = stream_request(&target, Method::GET, &path, None).await?;
    let (parts, body) = resp.into_parts();
    if !parts.status.is_success() {
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(target.explain(refusal(parts.status, &bytes)));
    }
    let entries = header_u64(&parts.headers, "x-btrfly-export-entries");
    let body_bytes = header_u64(&parts.headers, "x-btrfly-export-body-bytes");
    // The bar counts bytes received against the bodies' uncompressed size:
    // close for the compressed downloads most builds fetch.
    let progress = bar(
        body_bytes.unwrap_or(0),
        &format!("exporting {tag} ({} entries)", entries.unwrap_or(0)),
    );
    let (mut out, temp): (Box<dyn tokio::io::AsyncWrite + Unpin + Send>, _) = if to_stdout {
        (Box::new(tokio::io::stdout()), None)
    } else {
        let dir = match output.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(&format!(
                ".{}.",
                filename.as_deref().unwrap_or("export.warc.gz")
            ))
            .suffix(".part")
            .tempfile_in(&dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        let file = temp
            .reopen()
            .with_context(|| format!("opening {}", temp.path().display()))?;
        (Box::new(tokio::fs::File::from_std(file)), Some(temp))
    };
    let mut received: u64 = 0;
    let mut frames = BodyStream::new(body);
    loop {
        let frame = match frames.try_next().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                progress.abandon();
                bail!(
                    "the export of tag {tag} was cut after {received} bytes ({}); {} not written",
                    error_chain(&e),
                    if to_stdout {
                        "the output is incomplete:".to_owned()
                    } else {
                        format!("{} was", output.display())
                    }
                );
            }
        };
        if let Ok(data) = frame.into_data() {
            received += data.len() as u64;
            out.write_all(&data)
                .await
                .with_context(|| format!("writing {}", output.display()))?;
            progress.set_position(received.min(progress.length().unwrap_or(0)));
        }
    }
    out.flush()
        .await
        .with_context(|| format!("writing {}", output.display()))?;
    drop(out);
    progress.finish_and_clear();
    if let Some(temp) = temp {
        temp.as_file()
            .sync_all()
            .with_context(|| format!("writing {}", output.display()))?;
        temp.persist(output)
            .with_context(|| format!("renaming the export to {}", output.display()))?;
        eprintln!(
            "exported tag {tag} to {}: {} entries, {received} bytes",
            output.display(),
            entries.unwrap_or(0)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What the server answers an import with (btrfly-archive's
/// `ImportSummary`, the fields the CLI prints).
#[derive(Deserialize)]
struct ImportSummary {
    entries: usize,
    body_bytes: u64,
    source_tag: Option<String>,
    skipped: Vec<Skipped>,
}

#[derive(Deserialize)]
struct Skipped {
    record_id: String,
    record_type: String,
    target_uri: Option<String>,
    reason: String,
}

/// `btrfly import FILE --tag T`: the WARC file (`.warc` or `.warc.gz`)
/// into a new sealed tag, streamed as the request body; prints the summary
/// (entries, skipped records and why) on stderr, or the server's JSON
/// with `json`.
///
/// # Errors
/// The file cannot be read; the server refuses (the tag exists: 409; a
/// digest mismatch, an unresolved revisit or broken framing: 422, with the
/// record named).
pub async fn import(args: &ServerArgs, file: &Path, tag: &str, json: bool) -> Result<ExitCode> {
    let tag = parse_tag(tag)?;
    let target = connect(args, None)?;
    let f = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("opening {}", file.display()))?;
    let size = f
        .metadata()
        .await
        .with_context(|| format!("reading {}", file.display()))?
        .len();
    let progress = bar(size, &format!("importing {}", file.display()));
    let sent = progress.clone();
    let chunks = tokio_util::io::ReaderStream::with_capacity(f, 64 * 1024)
        .inspect_ok(move |c| sent.inc(c.len() as u64))
        .map_ok(Frame::data);
    let body = StreamBody::new(chunks).boxed();
    let resp = stream_request(
        &target,
        Method::POST,
        &format!("/v1/tags/{tag}/import"),
        Some(body),
    )
    .await?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| anyhow!("reading the server's answer: {}", error_chain(&e)))?
        .to_bytes();
    progress.finish_and_clear();
    if status != StatusCode::CREATED {
        return Err(target.explain(refusal(status, &bytes)));
    }
    if json {
        println!("{}", String::from_utf8_lossy(&bytes));
        return Ok(ExitCode::SUCCESS);
    }
    let s: ImportSummary = serde_json::from_slice(&bytes).map_err(|_| ClientError::Protocol {
        status,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })?;
    eprintln!(
        "imported {} into tag {tag} (sealed): {} entries, {} body bytes{}",
        file.display(),
        s.entries,
        s.body_bytes,
        match &s.source_tag {
            Some(t) => format!(", exported from tag {t}"),
            None => String::new(),
        }
    );
    if !s.skipped.is_empty() {
        eprintln!("{} records not imported:", s.skipped.len());
        for k in &s.skipped {
            eprintln!(
                "  {} {} {}: {}",
                k.record_type,
                k.record_id,
                k.target_uri.as_deref().unwrap_or("-"),
                k.reason
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `btrfly tag manifest T --format F`: the document on stdout.
///
/// # Errors
/// The server cannot be reached or refuses (unknown tag, unknown format).
pub async fn manifest(args: &ServerArgs, tag: &str, format: &str) -> Result<ExitCode> {
    let tag = parse_tag(tag)?;
    let target = connect(args, None)?;
    let (status, _, bytes) = target
        .client
        .get_with_head(&format!("/v1/tags/{tag}/manifest?format={format}"))
        .await
        .map_err(|e| target.explain(e))?;
    if !status.is_success() {
        return Err(target.explain(refusal(status, &bytes)));
    }
    let mut stdout = tokio::io::stdout();
    stdout.write_all(&bytes).await?;
    if !bytes.ends_with(b"\n") {
        stdout.write_all(b"\n").await?;
    }
    stdout.flush().await?;
    Ok(ExitCode::SUCCESS)
}

/// `btrfly tag diff A B`: what changed from tag `a` to tag `b`, as text (or
/// JSON); exit 0 when the tags are equal, 1 when they differ, 2 when the
/// diff could not be made (the message on stderr) — a CI gate.
pub async fn diff(args: &ServerArgs, a: &str, b: &str, json: bool) -> ExitCode {
    match diff_inner(args, a, b, json).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("btrfly: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Prints the diff; whether the tags are equal.
async fn diff_inner(args: &ServerArgs, a: &str, b: &str, json: bool) -> Result<bool> {
    let (a, b) = (parse_tag(a)?, parse_tag(b)?);
    let target = connect(args, None)?;
    let format = if json { "json" } else { "text" };
    let (status, headers, bytes) = target
        .client
        .get_with_head(&format!("/v1/tags/{a}/diff/{b}?format={format}"))
        .await
        .map_err(|e| target.explain(e))?;
    if !status.is_success() {
        return Err(target.explain(refusal(status, &bytes)));
    }
    let equal = if json {
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|_| ClientError::Protocol {
                status,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            })?;
        v.get("equal")
            .and_then(serde_json::Value::as_bool)
            .ok_or_else(|| anyhow!("the server's diff has no \"equal\""))?
    } else {
        match headers
            .get("x-btrfly-diff")
            .map(http::HeaderValue::as_bytes)
        {
            Some(b"equal") => true,
            Some(b"different") => false,
            _ => bail!("the server's diff does not say whether the tags are equal"),
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
    Ok(equal)
}

type StreamingBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// One request whose body (and answer) streams.
async fn stream_request(
    target: &Target,
    method: Method,
    path: &str,
    body: Option<StreamingBody>,
) -> Result<http::Response<hyper::body::Incoming>> {
    let client: Client<_, StreamingBody> = Client::builder(TokioExecutor::new()).build_http();
    let url = format!("{}{path}", target.client.base());
    let mut req = Request::builder().method(method).uri(&url);
    if let Some(a) = target.client.authorization() {
        req = req.header(header::AUTHORIZATION, a);
    }
    let streaming = body.is_some();
    if streaming {
        req = req.header(header::CONTENT_TYPE, "application/warc");
    }
    let body = body.unwrap_or_else(|| {
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed()
    });
    let req = req.body(body).context("building the request")?;
    client.request(req).await.map_err(|e| {
        let message = error_chain(&e);
        // An upload cut short is not an unreachable server.
        if e.is_connect() || !streaming {
            target.explain(ClientError::Unreachable { url, message })
        } else {
            anyhow!("sending to {url}: {message}")
        }
    })
}
