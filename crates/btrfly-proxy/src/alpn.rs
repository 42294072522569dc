//! A TLS stream whose negotiated `http/1.0` reads as `http/1.1`.
//!
//! Pingora picks the protocol of a TLS connection by its ALPN: `h2`, or
//! `http/1.1` / none for HTTP/1.x, and anything else for a custom session.
//! A client that offers only `http/1.0` (`curl --http1.0`) must still be
//! served as HTTP/1.x (which speaks 1.0 to a 1.0 request), so such a
//! stream is wrapped: every call goes to the inner stream, and only the
//! ALPN it reports is `http/1.1`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::tls::{SslDigest, TlsRef};
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// See the module docs.
#[derive(Debug)]
pub struct AsHttp1(pub Stream);

impl AsyncRead for AsHttp1 {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for AsHttp1 {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for AsHttp1 {
    async fn shutdown(&mut self) {
        self.0.shutdown().await
    }
}

impl UniqueID for AsHttp1 {
    fn id(&self) -> UniqueIDType {
        self.0.id()
    }
}

impl Ssl for AsHttp1 {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.0.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.0.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        Some(ALPN::H1)
    }
}

impl GetTimingDigest for AsHttp1 {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.0.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> std::time::Duration {
        self.0.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> std::time::Duration {
        self.0.get_write_pending_time()
    }
}

impl GetProxyDigest for AsHttp1 {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.0.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.0.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for AsHttp1 {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.0.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.0.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for AsHttp1 {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.0.try_peek(buf).await
    }
}
