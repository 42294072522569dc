//! Kept-alive client connections and answers that come before the request
//! body was read.
//!
//! An upstream can answer a request before reading its body: nginx over
//! HTTP/2 answers a `POST` to a static file `405` (a missing one `404`)
//! and resets the stream, and btrfly then cannot forward the rest of the
//! body. A client on a kept-alive HTTP/1.1 connection (npm, inside its
//! CONNECT tunnel) must be able to rely on the answer (RFC 9112 §9.6):
//! either it says `Connection: close`, or the connection takes the next
//! request. The client here is written out byte by byte (CONNECT, TLS
//! with btrfly's CA, HTTP/1.1 inside) because real clients hide the
//! failure: curl silently retries a request on a reused connection that
//! died.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use btrfly_test_support::*;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const NAME: &str = "early.example.test";
/// An HTTP/1.1 upstream that reads a POST's body before answering.
const READER: &str = "reader.example.test";
const SMALL: &[u8] = b"a small static file\n";
/// Every exchange has this long; none takes a second on a quiet machine.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(60);

/// The proxy, its credential and the CA the client trusts, from the
/// variables `btrfly start` exports.
struct Proxy {
    addr: std::net::SocketAddr,
    authorization: String,
    tls: tokio_rustls::TlsConnector,
}

impl Proxy {
    fn from_env(server: &BtrflyServer, env: &[(String, String)]) -> Proxy {
        let var = |k: &str| {
            env.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{k} not exported: {env:?}"))
        };
        let proxy = url::Url::parse(&var("HTTPS_PROXY")).expect("HTTPS_PROXY is a URL");
        let credential = format!(
            "{}:{}",
            proxy.username(),
            proxy.password().expect("a password in HTTPS_PROXY")
        );
        let authorization = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credential)
        );
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(Path::new(&var("SSL_CERT_FILE")))
            .expect("the exported CA bundle")
        {
            roots.add(cert.expect("a PEM certificate")).expect("a CA");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Proxy {
            addr: server.proxy_addr(),
            authorization,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        }
    }

    /// A TLS connection to `host:port` through a CONNECT tunnel, speaking
    /// HTTP/1.1.
    async fn connect(&self, host: &'static str, port: u16) -> TlsStream<TcpStream> {
        let mut tcp = TcpStream::connect(self.addr).await.expect("connect");
        let connect = format!(
            "CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\
             Proxy-Authorization: {}\r\n\r\n",
            self.authorization
        );
        tcp.write_all(connect.as_bytes()).await.expect("CONNECT");
        let (head, rest) = read_head(&mut tcp).await.expect("the CONNECT answer");
        assert!(head.starts_with("http/1.1 200"), "CONNECT answered {head}");
        assert!(rest.is_empty(), "bytes after the CONNECT answer");
        let name = ServerName::try_from(host).expect("server name");
        self.tls
            .connect(name, tcp)
            .await
            .expect("TLS with btrfly's CA")
    }
}

/// One answer: its head (lower-case) and body.
struct Answer {
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn status(&self) -> u16 {
        self.head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {}", self.head))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(str::trim)
    }

    /// Whether the answer says the connection ends after it.
    fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.split(',').any(|t| t.trim() == "close"))
    }
}

/// Reads up to the end of a head; the head (lower-cased) and the bytes
/// read past it.
async fn read_head(r: &mut (impl AsyncRead + Unpin)) -> std::io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            return Ok((head, buf[end + 4..].to_vec()));
        }
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the connection ended after {} bytes of a head", buf.len()),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads one answer framed by `Content-Length` (nginx's and btrfly's
/// answers here all are).
async fn read_answer(r: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Answer> {
    let (head, mut body) = read_head(r).await?;
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("an answer without Content-Length: {head}"));
    while body.len() < len {
        let mut chunk = vec![0u8; len - body.len()];
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the body ended after {} of {len} bytes", body.len()),
            ));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Answer { head, body })
}

/// POSTs `size` bytes to `path` on `conn` (writing the body while the
/// answer is read, as npm does) and returns the answer. The body write
/// may fail once the answer came: the server need not read it.
async fn post(
    conn: TlsStream<TcpStream>,
    host: &str,
    path: &str,
    size: usize,
) -> (Answer, TlsStream<TcpStream>) {
    let (mut rd, mut wr) = tokio::io::split(conn);
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {size}\r\n\r\n"
    );
    let writer = tokio::spawn(async move {
        let body = vec![b'x'; size];
        let sent = async {
            wr.write_all(head.as_bytes()).await?;
            wr.write_all(&body).await?;
            wr.flush().await
        }
        .await;
        (wr, sent)
    });
    let answer = read_answer(&mut rd)
        .await
        .unwrap_or_else(|e| panic!("no answer to the POST of {size} bytes to {path}: {e}"));
    let (wr, sent) = writer.await.expect("the body writer");
    if let Err(e) = &sent {
        assert!(
            answer.closes(),
            "the body of {size} bytes was refused ({e}) but the answer kept the connection: {}",
            answer.head
        );
    }
    (answer, rd.unsplit(wr))
}

/// GETs `path` from `host` on `conn`.
async fn get(conn: &mut TlsStream<TcpStream>, host: &str, path: &str) -> std::io::Result<Answer> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    conn.write_all(req.as_bytes()).await?;
    read_answer(conn).await
}

/// POSTs of each size in `sizes` to `path`, `rounds` times, each followed
/// by a GET: on the same connection when the POST's answer did not say
/// `Connection: close` (the GET must then succeed there), on a new one
/// when it did. Returns the POSTs' statuses and how many of their answers
/// closed.
async fn post_then_get(
    proxy: &Proxy,
    port: u16,
    path: &str,
    sizes: &[usize],
    rounds: usize,
) -> (Vec<u16>, usize) {
    let mut statuses = Vec::new();
    let mut closed = 0;
    for round in 0..rounds {
        for &size in sizes {
            let conn = proxy.connect(NAME, port).await;
            let (answer, mut conn) = post(conn, NAME, path, size).await;
            statuses.push(answer.status());
            if answer.closes() {
                closed += 1;
                conn = proxy.connect(NAME, port).await;
            }
            let next = get(&mut conn, NAME, "/files/small.txt")
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "round {round}: the POST of {size} bytes to {path} was answered without \
                     `Connection: close`, yet the connection did not take the next request \
                     ({e}); its answer: {}",
                        answer.head
                    )
                });
            assert_eq!(
                (next.status(), next.body.as_slice()),
                (200, SMALL),
                "the GET after the POST of {size} bytes: {}",
                next.head
            );
        }
    }
    (statuses, closed)
}

/// Runs `f` on `rt`, failing the test after [`EXCHANGE_TIMEOUT`].
fn within<T>(
    rt: &tokio::runtime::Runtime,
    what: &str,
    f: impl std::future::Future<Output = T>,
) -> T {
    rt.block_on(async {
        tokio::time::timeout(EXCHANGE_TIMEOUT, f)
            .await
            .unwrap_or_else(|_| panic!("{what} took over {EXCHANGE_TIMEOUT:?}"))
    })
}

/// An upstream (nginx over HTTP/2) answers POSTs to static files before
/// reading their bodies: in record mode and in playback, every such answer
/// either says `Connection: close` or leaves the connection usable for the
/// next request. Bodies from 8 KiB (read whole with the head) through just
/// over the upstream's 64 KiB stream window (read whole by btrfly, yet not
/// forwarded whole: the case npm's audit hit) to 4 MiB (never read whole
/// before the answer). A POST answered after its body was read (an HTTP/1.1
/// upstream that reads it; a replay, which hashes it) keeps the connection,
/// and an upstream that cannot be reached is a `502` that says `close`.
#[test]
fn early_answers_close_or_keep_a_usable_connection() {
    let root = tempfile::tempdir().expect("root");
    std::fs::create_dir_all(root.path().join("files")).expect("files dir");
    std::fs::write(root.path().join("files/small.txt"), SMALL).expect("small.txt");
    let ca = TestCa::new();
    let nginx = Nginx::start(root.path(), &ca, &[NAME]);
    let mut reader = PyUpstream::start(&ca, &[READER]);
    let extra = format!(
        "[upstream]\nca_file = {}\n[upstream.resolve]\n\"{NAME}\" = \"127.0.0.1\"\n\
         \"{READER}\" = \"127.0.0.1\"\n",
        BtrflyServer::toml_str(nginx.ca_file().to_string_lossy()),
    );
    let server = BtrflyServer::start(bin(), &extra);
    let work = tempfile::tempdir().expect("work");
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let start = |mode: &str| {
        let out = run_ok(server.cli(&home).args(["start", mode, "--tag=early"]));
        server.env_from_start(&text(&out.stdout))
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // 65,600 and 66,000 bytes: the head's read brings a few KiB of the
    // body, the next read the rest, which overflows nginx's 65,536-byte
    // stream window by a little; nginx answers and resets the stream
    // before the window opens.
    let sizes = [8 << 10, 65_600, 66_000, 68_000, 100 << 10, 1 << 20, 4 << 20];
    let rounds = 4;
    let port = nginx.port();

    let env = start("record");
    let proxy = Proxy::from_env(&server, &env);
    let (statuses, closed) = within(
        &rt,
        "the POSTs to a static file",
        post_then_get(&proxy, port, "/files/small.txt", &sizes, rounds),
    );
    // 405 for a POST to a static file; 413 past nginx's 1 MiB body limit.
    assert!(
        statuses.iter().all(|&s| s == 405 || s == 413),
        "nginx's answers: {statuses:?}"
    );
    eprintln!(
        "record: {closed} of {} early answers said close",
        statuses.len()
    );
    let (statuses, _) = within(
        &rt,
        "the POSTs to a missing file",
        post_then_get(&proxy, port, "/-/v1/advisories/bulk", &sizes[..3], rounds),
    );
    assert!(
        statuses.iter().all(|&s| s == 404),
        "nginx's answers: {statuses:?}"
    );

    // An upstream that reads the body before it answers: the connection
    // stays, and takes the next request.
    let (answer, next) = within(&rt, "the POST read whole", async {
        let conn = proxy.connect(READER, reader.port()).await;
        let (answer, mut conn) = post(conn, READER, "/upload", 66_000).await;
        let next = get(&mut conn, READER, "/file.bin").await;
        (answer, next)
    });
    assert_eq!(answer.status(), 200, "{}", answer.head);
    assert!(
        !answer.closes(),
        "a POST read whole closed: {}",
        answer.head
    );
    let next = next.expect("the GET after the POST read whole, on its connection");
    assert_eq!(
        (next.status(), next.body.len()),
        (200, 100_000),
        "{}",
        next.head
    );

    // An upstream that cannot be reached: btrfly's 502 ends the
    // connection, and says so.
    let closed_port = free_port();
    let answer = within(&rt, "the GET of an unreachable upstream", async {
        let mut conn = proxy.connect(NAME, closed_port).await;
        get(&mut conn, NAME, "/files/small.txt").await
    })
    .expect("an answer from btrfly");
    assert_eq!(answer.status(), 502, "{}", answer.head);
    assert!(
        answer.closes(),
        "a 502 kept the connection: {}",
        answer.head
    );

    // Every early answer was recorded (btrfly reads the rest of each body
    // for its key); the unreachable upstream is the one problem.
    let stopped = run(server
        .cli(&home)
        .args(["stop", "record", "--allow-incomplete"]));
    let summary = text(&stopped.stderr);
    assert!(stopped.status.success(), "{summary}");
    assert!(
        summary.contains("1 answer(s) the build received could not be recorded"),
        "{summary}"
    );
    reader.stop();

    // Playback hashes each body for its key before answering: nothing is
    // answered early, and every connection stays.
    let env = start("playback");
    let proxy = Proxy::from_env(&server, &env);
    let (statuses, closed) = within(
        &rt,
        "the replayed POSTs",
        post_then_get(&proxy, port, "/files/small.txt", &sizes, 1),
    );
    assert!(
        statuses.iter().all(|&s| s == 405 || s == 413),
        "replayed answers: {statuses:?}"
    );
    assert_eq!(closed, 0, "replayed answers that closed the connection");
    let stopped = run(server.cli(&home).args(["stop", "playback"]));
    assert!(stopped.status.success(), "{}", text(&stopped.stderr));
}
