//! Writing btrfly's own answers (replies from the gateway, streamed from
//! the store) and the interim answers the hooks send.

use btrfly_gateway::{Reply, ReplyBody};
use futures::StreamExt;
use http::{header, Method, StatusCode};
use pingora_error::{Error, ErrorType, Result};
use pingora_http::ResponseHeader;
use pingora_proxy::Session;

use btrfly_store::{BlobStream, Store};

use crate::verified;

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

/// Writes a reply of btrfly's own (a blob is streamed from `store` and
/// checked on the way, see [`crate::verified`]).
pub(crate) async fn write_reply(store: &Store, session: &mut Session, reply: Reply) -> Result<()> {
    // A blob that cannot be opened is answered with the error instead.
    let reply = match &reply.body {
        ReplyBody::Blob {
            sha256,
            offset,
            len,
            ..
        } if *len > 0 => {
            match verified::open(store, sha256, *offset, *len, reply.replayed.as_ref()).await {
                Ok(stream) => return write_blob_reply(session, reply, stream).await,
                Err(failure) => failure_reply(failure),
            }
        }
        _ => reply,
    };
    let is_head = session.req_header().method == Method::HEAD;
    let mut resp = head_of(&reply)?;
    match reply.body {
        ReplyBody::Bytes(bytes) => {
            resp.insert_header(header::CONTENT_LENGTH, bytes.len())?;
            let empty = bytes.is_empty() || is_head;
            session.write_response_header(Box::new(resp), empty).await?;
            if !empty {
                session.write_response_body(Some(bytes), true).await?;
            }
        }
        ReplyBody::Blob { .. } => {
            // an empty body (a non-empty one was written above)
            session.write_response_header(Box::new(resp), true).await?;
        }
        ReplyBody::Parts {
            sha256,
            parts,
            tail,
        } => {
            let replayed = reply.replayed.as_ref();
            let mut first = Some(resp);
            for part in parts {
                // The first part opens before the head goes out: a missing
                // blob is then a clean error answer.
                let stream =
                    match verified::open(store, &sha256, part.offset, part.len, replayed).await {
                        Ok(s) => s,
                        Err(failure) if first.is_some() => {
                            let reply = failure_reply(failure);
                            return Box::pin(write_reply(store, session, reply)).await;
                        }
                        Err(failure) => return Err(internal(failure.message)),
                    };
                if let Some(resp) = first.take() {
                    session.write_response_header(Box::new(resp), false).await?;
                }
                session.write_response_body(Some(part.head), false).await?;
                stream_part(session, stream, &sha256, replayed).await?;
            }
            if let Some(resp) = first.take() {
                session.write_response_header(Box::new(resp), false).await?;
            }
            session.write_response_body(Some(tail), true).await?;
        }
    }
    Ok(())
}

/// The response head of a reply.
fn head_of(reply: &Reply) -> Result<ResponseHeader> {
    let mut resp = ResponseHeader::build(reply.status, Some(reply.headers.len() + 1))?;
    for (name, value) in reply.headers.iter() {
        resp.append_header(name.clone(), value.clone())?;
    }
    if let Some(reason) = reply.reason {
        // HTTP/1 clients print the reason phrase with the status
        // (pip: "409 Client Error: … for url: …"): make it say why.
        resp.set_reason_phrase(Some(reason))?;
    }
    Ok(resp)
}

/// The answer sent instead of a stored body that cannot be opened.
fn failure_reply(failure: verified::OpenFailure) -> Reply {
    let mut reply =
        Reply::text(failure.status, failure.message).with_header("x-btrfly-error", failure.kind);
    reply.reason = Some(failure.reason);
    reply
}

/// A reply whose body is a blob already opened.
async fn write_blob_reply(session: &mut Session, reply: Reply, stream: BlobStream) -> Result<()> {
    let ReplyBody::Blob {
        sha256, len, whole, ..
    } = &reply.body
    else {
        return Err(internal("a blob reply without a blob"));
    };
    let resp = head_of(&reply)?;
    session.write_response_header(Box::new(resp), false).await?;
    verified::stream(
        session,
        stream,
        sha256,
        *len,
        *whole,
        reply.replayed.as_ref(),
    )
    .await
}

/// One part of a multipart answer: streamed, not verified (a range).
async fn stream_part(
    session: &mut Session,
    mut stream: BlobStream,
    sha256: &btrfly_core::Sha256,
    replayed: Option<&btrfly_gateway::Replayed>,
) -> Result<()> {
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let why = format!("reading blob {sha256}: {e}");
                if let Some(r) = replayed {
                    r.failed(&why);
                }
                return Err(Error::explain(ErrorType::ReadError, why));
            }
        };
        session.write_response_body(Some(chunk), false).await?;
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
