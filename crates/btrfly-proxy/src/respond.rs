//! Writing btrfly's own answers (replies from the gateway, streamed from
//! the store) and the interim answers the hooks send.

use btrfly_gateway::{Reply, ReplyBody};
use futures::StreamExt;
use http::{header, Method, StatusCode};
use pingora_error::{Error, ErrorType, Result};
use pingora_http::ResponseHeader;
use pingora_proxy::Session;

use btrfly_store::Store;

/// Makes `resp` carry exactly `wanted`, touching only the names that
/// differ (pingora keeps header-name case beside the map).
pub(crate) fn replace_headers(resp: &mut ResponseHeader, wanted: &http::HeaderMap) -> Result<()> {
    let names: std::collections::HashSet<http::HeaderName> =
        resp.headers.keys().chain(wanted.keys()).cloned().collect();
    for name in names {
        let old: Vec<_> = resp.headers.get_all(&name).iter().collect();
        let new: Vec<_> = wanted.get_all(&name).iter().collect();
        if old == new {
            continue;
        }
        resp.remove_header(&name);
        for v in new {
            resp.append_header(name.clone(), v.clone())?;
        }
    }
    Ok(())
}

fn internal(e: impl std::fmt::Display) -> Box<Error> {
    Error::explain(ErrorType::InternalError, e.to_string())
}

/// Writes a reply of btrfly's own (a blob is streamed from `store`).
pub(crate) async fn write_reply(store: &Store, session: &mut Session, reply: Reply) -> Result<()> {
    let is_head = session.req_header().method == Method::HEAD;
    let mut resp = ResponseHeader::build(reply.status, Some(reply.headers.len() + 1))?;
    for (name, value) in reply.headers.iter() {
        resp.append_header(name.clone(), value.clone())?;
    }
    if let Some(reason) = reply.reason {
        // HTTP/1 clients print the reason phrase with the status
        // (pip: "409 Client Error: … for url: …"): make it say why.
        resp.set_reason_phrase(Some(reason))?;
    }
    match reply.body {
        ReplyBody::Bytes(bytes) => {
            resp.insert_header(header::CONTENT_LENGTH, bytes.len())?;
            let empty = bytes.is_empty() || is_head;
            session.write_response_header(Box::new(resp), empty).await?;
            if !empty {
                session.write_response_body(Some(bytes), true).await?;
            }
        }
        ReplyBody::Blob {
            sha256,
            offset,
            len,
        } => {
            if len == 0 {
                session.write_response_header(Box::new(resp), true).await?;
                return Ok(());
            }
            // Open before the head goes out, so a missing blob is still
            // a clean error response rather than a truncated body.
            let mut stream = store
                .read_blob(&sha256, Some(offset..offset + len))
                .await
                .map_err(internal)?;
            session.write_response_header(Box::new(resp), false).await?;
            let mut sent = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| {
                    Error::explain(ErrorType::ReadError, format!("reading blob {sha256}: {e}"))
                })?;
                sent += chunk.len() as u64;
                session.write_response_body(Some(chunk), false).await?;
            }
            if sent != len {
                return Err(Error::explain(
                    ErrorType::ReadError,
                    format!("blob {sha256} ended after {sent} of {len} bytes"),
                ));
            }
            session.write_response_body(None, true).await?;
        }
        ReplyBody::Parts {
            sha256,
            parts,
            tail,
        } => {
            session.write_response_header(Box::new(resp), false).await?;
            for part in parts {
                session.write_response_body(Some(part.head), false).await?;
                let mut stream = store
                    .read_blob(&sha256, Some(part.offset..part.offset + part.len))
                    .await
                    .map_err(internal)?;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| {
                        Error::explain(ErrorType::ReadError, format!("reading blob {sha256}: {e}"))
                    })?;
                    session.write_response_body(Some(chunk), false).await?;
                }
            }
            session.write_response_body(Some(tail), true).await?;
        }
    }
    Ok(())
}

/// `100 Continue` for an HTTP/1.1 client that asked for it and whose
/// body btrfly is about to read (RFC 9110 §10.1.1): it would otherwise
/// wait (curl for a second) before sending it. HTTP/2 has no place for
/// it in Pingora; clients there send the body without waiting long.
pub(crate) async fn continue_if_expected(session: &mut Session) -> Result<()> {
    let expects = session
        .req_header()
        .headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if !expects
        || session.as_downstream().is_http2()
        || session.req_header().version != http::Version::HTTP_11
        || session.response_written().is_some()
    {
        return Ok(());
    }
    let interim = ResponseHeader::build(StatusCode::CONTINUE, Some(0))?;
    session
        .write_response_header(Box::new(interim), false)
        .await
}
