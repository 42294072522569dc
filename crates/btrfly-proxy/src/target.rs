//! Where a request goes: its origin from the tunnel it came through, the
//! absolute-form target, or the `Host` header.

use btrfly_core::Origin;
use btrfly_gateway::Reply;
use http::{header, StatusCode};
use pingora_http::RequestHeader;
use pingora_proxy::Session;

use crate::tunnel::Tunnel;

pub(crate) fn tunnel_of(session: &Session) -> Option<Tunnel> {
    session
        .digest()?
        .proxy_digest
        .as_ref()?
        .user_data
        .as_ref()?
        .downcast_ref::<Tunnel>()
        .cloned()
}

/// The request target as an absolute URI when the client sent one
/// (absolute-form, as clients do towards a plain-HTTP proxy, or HTTP/2's
/// `:scheme`+`:authority`). Pingora keeps absolute-form in `raw_path`.
pub(crate) fn absolute_uri(req: &RequestHeader) -> Option<http::Uri> {
    if req.uri.scheme().is_some() && req.uri.authority().is_some() {
        return Some(req.uri.clone());
    }
    std::str::from_utf8(req.raw_path())
        .ok()
        .and_then(|p| p.parse::<http::Uri>().ok())
        .filter(|u| u.scheme().is_some() && u.authority().is_some())
}

/// Works out the upstream origin of a request, or the reply that refuses it.
pub(crate) fn origin_of(
    session: &Session,
    tunnel: Option<&Tunnel>,
) -> std::result::Result<Origin, Reply> {
    let req = session.req_header();
    let absolute = absolute_uri(req);
    let named_host = absolute
        .as_ref()
        .and_then(|u| u.host())
        .map(str::to_owned)
        .or_else(|| {
            req.headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.parse::<http::uri::Authority>().ok())
                .map(|a| a.host().to_owned())
        })
        .map(|h| {
            h.trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase()
        });
    if let Some(t) = tunnel.filter(|t| t.by_host) {
        let Some(host) = named_host else {
            return Err(Reply::text(
                StatusCode::BAD_REQUEST,
                "btrfly: the request has no Host header: a transparent HTTP request is routed by its Host",
            ));
        };
        let port = absolute
            .as_ref()
            .and_then(|u| u.port_u16())
            .or_else(|| {
                req.headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .and_then(|h| h.parse::<http::uri::Authority>().ok())
                    .and_then(|a| a.port_u16())
            })
            .unwrap_or(t.port);
        return Ok(Origin::new(false, &host, port));
    }
    if let Some(t) = tunnel {
        if let Some(named) = named_host {
            if named != t.host {
                return Err(Reply::text(
                    StatusCode::MISDIRECTED_REQUEST,
                    format!(
                        "btrfly: this tunnel was opened to {} but the request names {named}",
                        t.host
                    ),
                ));
            }
        }
        return Ok(Origin::new(t.tls, &t.host, t.port));
    }
    let https = match absolute.as_ref().and_then(|u| u.scheme_str()) {
        Some("http") => false,
        Some("https") => true,
        Some(other) => {
            return Err(Reply::text(
                StatusCode::BAD_REQUEST,
                format!("btrfly: unsupported scheme {other:?}"),
            ))
        }
        None => {
            return Err(Reply::text(
                StatusCode::BAD_REQUEST,
                "btrfly is a proxy: send absolute-form requests (GET http://host/path) or CONNECT host:port; set HTTPS_PROXY/HTTP_PROXY as `btrfly start` prints them",
            ))
        }
    };
    let Some(host) = named_host else {
        return Err(Reply::text(
            StatusCode::BAD_REQUEST,
            "btrfly: the request names no host",
        ));
    };
    let port = absolute
        .as_ref()
        .and_then(|u| u.port_u16())
        .unwrap_or(if https { 443 } else { 80 });
    Ok(Origin::new(https, &host, port))
}
