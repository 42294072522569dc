//! `POST /v1/sessions/{id}/bind`: binds a session to a client address
//! (transparent mode) and tells the build machine where btrfly's DNS is.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::response::Response;
use btrfly_core::api::{BindRequest, BindResponse};
use http::StatusCode;

use crate::auth::{Need, Record};
use crate::server::{error, json, parse_json, session_error, ControlState};

pub(crate) async fn bind(
    _: Need<Record>,
    State(state): State<Arc<ControlState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request: BindRequest = match parse_json(body, None) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let client_ip = btrfly_session::address::canonical(request.client_ip.unwrap_or(peer.ip()));
    if client_ip.is_unspecified() || client_ip.is_multicast() {
        return error(
            StatusCode::BAD_REQUEST,
            format!("client address {client_ip} cannot send requests"),
        );
    }
    match state
        .sessions
        .bind_address(client_ip, &id, &request.secret)
        .await
    {
        Ok(()) => json(
            StatusCode::OK,
            &BindResponse {
                client_ip,
                dns: state.dns_advertise,
                ca_pem: state.ca_pem.clone(),
            },
        ),
        Err(e) => session_error(e),
    }
}
