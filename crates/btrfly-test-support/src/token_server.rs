//! A small bearer-token server for [`super::DockerRegistry`]'s token
//! authentication: HTTPS (rustls) on loopback, issuing ES256 JWTs with an
//! `x5c` header that distribution 2.8 verifies against its
//! `rootcertbundle`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::ca::TestCa;
use super::process::port_is_closed;

/// A running token server on 127.0.0.1:[`TokenServer::port`] at path
/// `/token`. It grants whatever `scope` asks for, signed by its own key
/// (the certificate is [`TokenServer::signing_cert`]); its answers say the
/// token was issued an hour ago and lives 60 s, so clients see every token
/// as expired and fetch a new one for each request (the churn of expiring
/// tokens), while the JWT itself stays valid for the registry for 5
/// minutes. Stopped on `Drop`.
pub struct TokenServer {
    port: u16,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    dir: tempfile::TempDir,
}

struct Signer {
    key: EcdsaKeyPair,
    x5c: String,
    issuer: String,
    service: String,
}

impl TokenServer {
    /// Starts serving HTTPS for `names` (certificate from `ca`); tokens
    /// name `issuer` and have audience `service`.
    pub fn start(ca: &TestCa, names: &[&str], issuer: &str, service: &str) -> TokenServer {
        let dir = tempfile::Builder::new()
            .prefix("token-server-")
            .tempdir()
            .expect("token server dir");
        // The signing key and its self-signed certificate (the registry's
        // rootcertbundle).
        let key = rcgen::KeyPair::generate().expect("signing key");
        let cert = rcgen::CertificateParams::new(vec!["btrfly-test-token-signer".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("self-sign");
        std::fs::write(dir.path().join("signing.pem"), cert.pem()).expect("write signing.pem");
        let rng = ring::rand::SystemRandom::new();
        let signer = Arc::new(Signer {
            key: EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &key.serialize_der(),
                &rng,
            )
            .expect("ring key"),
            x5c: base64::engine::general_purpose::STANDARD.encode(cert.der()),
            issuer: issuer.to_string(),
            service: service.to_string(),
        });

        let (cert_pem, key_pem) = ca.issue(names);
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .expect("server cert");
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("server key");
        let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tls = Arc::new(tls);

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token server");
        let port = listener.local_addr().expect("local addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, requests) = (stop.clone(), requests.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    match listener.accept() {
                        Ok((tcp, _)) => {
                            let (tls, signer, requests) =
                                (tls.clone(), signer.clone(), requests.clone());
                            std::thread::spawn(move || {
                                if let Err(e) = serve(tcp, tls, &signer, &requests) {
                                    eprintln!("token server: {e}");
                                }
                            });
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err(e) => {
                            eprintln!("token server accept: {e}");
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
            })
        };
        TokenServer {
            port,
            stop,
            requests,
            thread: Some(thread),
            dir,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The certificate of the token-signing key (the registry's
    /// `rootcertbundle`).
    pub fn signing_cert(&self) -> PathBuf {
        self.dir.path().join("signing.pem")
    }

    /// The request targets (`/token?...`) served so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Stops accepting and waits until the port refuses connections.
    pub fn stop(mut self) {
        self.shutdown();
        let port = self.port;
        super::wait_until(Duration::from_secs(5), "token server port to close", || {
            port_is_closed(port).then_some(())
        });
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn serve(
    tcp: TcpStream,
    tls: Arc<rustls::ServerConfig>,
    signer: &Signer,
    requests: &Mutex<Vec<String>>,
) -> Result<(), String> {
    tcp.set_nonblocking(false).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let conn = rustls::ServerConnection::new(tls).map_err(|e| e.to_string())?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before the request head".into());
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > 64 * 1024 {
            return Err("request head too large".into());
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let target = head
        .split_whitespace()
        .nth(1)
        .ok_or("no request target")?
        .to_string();
    if let Ok(mut r) = requests.lock() {
        r.push(target.clone());
    }
    let (status, body) = match target.split_once('?') {
        Some(("/token", query)) => ("200 OK", token_answer(signer, query)?),
        _ => ("404 Not Found", "{\"error\":\"not found\"}".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(response.as_bytes())
        .map_err(|e| e.to_string())?;
    stream.flush().map_err(|e| e.to_string())?;
    stream.conn.send_close_notify();
    let _ = stream.flush();
    Ok(())
}

/// The JSON answer to a token request: a JWT granting every requested scope.
fn token_answer(signer: &Signer, query: &str) -> Result<String, String> {
    let mut access = Vec::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if k != "scope" {
            continue;
        }
        for scope in v.split(' ') {
            let mut parts = scope.splitn(3, ':');
            if let (Some(typ), Some(name), Some(actions)) =
                (parts.next(), parts.next(), parts.next())
            {
                access.push(serde_json::json!({
                    "type": typ,
                    "name": name,
                    "actions": actions.split(',').collect::<Vec<_>>(),
                }));
            }
        }
    }
    let now = time::OffsetDateTime::now_utc();
    let claims = serde_json::json!({
        "iss": signer.issuer,
        "sub": "btrfly-test",
        "aud": signer.service,
        "exp": now.unix_timestamp() + 300,
        "nbf": now.unix_timestamp() - 10,
        "iat": now.unix_timestamp(),
        "jti": hex::encode(rand::random::<[u8; 8]>()),
        "access": access,
    });
    let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [signer.x5c]});
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
    };
    let signing_input = format!("{}.{}", b64(&header), b64(&claims));
    let rng = ring::rand::SystemRandom::new();
    let signature = signer
        .key
        .sign(&rng, signing_input.as_bytes())
        .map_err(|e| format!("signing: {e}"))?;
    let jwt = format!(
        "{signing_input}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature.as_ref())
    );
    let issued = (now - time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| e.to_string())?;
    Ok(serde_json::json!({
        "token": jwt,
        "access_token": jwt,
        "expires_in": 60,
        "issued_at": issued,
    })
    .to_string())
}
