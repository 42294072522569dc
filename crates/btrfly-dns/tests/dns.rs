//! End-to-end tests: a real server on loopback, queried over real UDP and TCP
//! with hickory-resolver and with hand-built protocol messages.

use std::{
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use btrfly_dns::{DnsConfig, DnsError, DnsServer};
use hickory_resolver::{
    config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig},
    net::{runtime::TokioRuntimeProvider, DnsError as ResolveDnsError, NetError},
    proto::{
        op::{Edns, Message, MessageType, OpCode, Query, ResponseCode},
        rr::{
            rdata::{A, AAAA},
            DNSClass, Name, RData, RecordType,
        },
    },
    Resolver, TokioResolver,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, UdpSocket},
    sync::watch,
    task::JoinHandle,
    time::timeout,
};

const V4: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 42);
const V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x42);
const TTL: u32 = 77;
/// Generous bound for any single network exchange on loopback.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn config() -> DnsConfig {
    DnsConfig {
        v4: Some(V4),
        v6: Some(V6),
        ttl: TTL,
    }
}

/// A long but valid name: three 63-byte labels under example.test (204 bytes).
fn long_name() -> String {
    let label = |c: char| c.to_string().repeat(63);
    format!("{}.{}.{}.example.test.", label('a'), label('b'), label('c'))
}

struct Running {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), DnsError>>,
}

impl Running {
    /// Signals shutdown and asserts that `run` returns `Ok` within 2 s.
    async fn shutdown(self) -> SocketAddr {
        self.stop
            .send(true)
            .expect("server still listening for shutdown");
        let result = timeout(Duration::from_secs(2), self.task)
            .await
            .expect("run returned within 2 s of the shutdown signal")
            .expect("server task did not panic");
        result.expect("run ended without error");
        self.addr
    }
}

async fn start(config: DnsConfig) -> Running {
    let server = DnsServer::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config)
        .await
        .expect("bind on loopback");
    let addr = server.local_addr();
    assert_eq!(addr.ip(), Ipv4Addr::LOCALHOST);
    assert_ne!(addr.port(), 0, "local_addr reports the actual port");
    let (stop, shutdown) = watch::channel(false);
    // The sockets are bound already, so queries sent from here on are queued by
    // the kernel until `run` picks them up: no readiness wait is needed.
    let task = tokio::spawn(server.run(shutdown));
    Running { addr, stop, task }
}

#[derive(Clone, Copy, Debug)]
enum Transport {
    Udp,
    Tcp,
}

/// A resolver that knows only our server, over only the given transport.
fn resolver(addr: SocketAddr, transport: Transport) -> TokioResolver {
    let mut connection = match transport {
        Transport::Udp => ConnectionConfig::udp(),
        Transport::Tcp => ConnectionConfig::tcp(),
    };
    connection.port = addr.port();
    let name_server = NameServerConfig::new(addr.ip(), true, vec![connection]);
    let mut builder = Resolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![name_server]),
        TokioRuntimeProvider::default(),
    );
    let options = builder.options_mut();
    options.use_hosts_file = ResolveHosts::Never;
    options.timeout = IO_TIMEOUT;
    options.attempts = 1;
    options.try_tcp_on_error = false;
    builder.build().expect("resolver builds")
}

async fn check_resolver(transport: Transport) {
    let running = start(config()).await;
    let resolver = resolver(running.addr, transport);

    // A, for a short and a long name.
    for name in ["www.example.test.".to_owned(), long_name()] {
        let lookup = resolver
            .lookup(name.as_str(), RecordType::A)
            .await
            .unwrap_or_else(|e| panic!("A lookup of {name} over {transport:?}: {e}"));
        let answers = lookup.answers();
        assert_eq!(answers.len(), 1, "{name}: {answers:?}");
        assert_eq!(answers[0].data, RData::A(A(V4)));
        assert_eq!(answers[0].name.to_string(), name);
        assert_eq!(answers[0].ttl, TTL);
        assert!(lookup.message().authoritative, "answer is authoritative");
    }

    // AAAA.
    let lookup = resolver
        .lookup("www.example.test.", RecordType::AAAA)
        .await
        .unwrap_or_else(|e| panic!("AAAA lookup over {transport:?}: {e}"));
    let answers = lookup.answers();
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].data, RData::AAAA(AAAA(V6)));
    assert_eq!(answers[0].name.to_string(), "www.example.test.");
    assert_eq!(answers[0].ttl, TTL);

    // lookup_ip goes through the resolver's usual dual-stack path.
    let ips: Vec<_> = resolver
        .lookup_ip("api.example.test.")
        .await
        .unwrap_or_else(|e| panic!("lookup_ip over {transport:?}: {e}"))
        .iter()
        .collect();
    assert!(ips.contains(&V4.into()), "{ips:?}");

    // MX: the name exists (NOERROR) but has no such records.
    let error = resolver
        .lookup("mail.example.test.", RecordType::MX)
        .await
        .expect_err("MX has no answer");
    assert_no_records(&error, ResponseCode::NoError);

    running.shutdown().await;
}

fn assert_no_records(error: &NetError, expected: ResponseCode) {
    match error {
        NetError::Dns(ResolveDnsError::NoRecordsFound(no_records)) => {
            assert_eq!(no_records.response_code, expected, "{error}");
        }
        other => panic!("expected an empty answer, got {other}"),
    }
}

#[tokio::test]
async fn resolves_over_udp() {
    check_resolver(Transport::Udp).await;
}

#[tokio::test]
async fn resolves_over_tcp() {
    check_resolver(Transport::Tcp).await;
}

#[tokio::test]
async fn unset_families_answer_noerror_without_records() {
    let running = start(DnsConfig {
        v4: None,
        v6: Some(V6),
        ttl: TTL,
    })
    .await;
    let resolver = resolver(running.addr, Transport::Udp);
    let error = resolver
        .lookup("www.example.test.", RecordType::A)
        .await
        .expect_err("no v4 configured");
    assert_no_records(&error, ResponseCode::NoError);
    let lookup = resolver
        .lookup("www.example.test.", RecordType::AAAA)
        .await
        .expect("v6 still answered");
    assert_eq!(lookup.answers()[0].data, RData::AAAA(AAAA(V6)));
    running.shutdown().await;

    let running = start(DnsConfig {
        v4: Some(V4),
        v6: None,
        ttl: TTL,
    })
    .await;
    let response = udp_exchange(
        running.addr,
        &query("www.example.test.", RecordType::AAAA, true),
    )
    .await;
    assert_eq!(response.response_code, ResponseCode::NoError);
    assert!(response.answers.is_empty(), "{response:?}");
    assert!(response.authoritative);
    running.shutdown().await;
}

// ---- protocol-level checks with hand-built messages ----

fn query(name: &str, record_type: RecordType, edns: bool) -> Message {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(
        Name::from_ascii(name).expect("valid name"),
        record_type,
    ));
    if edns {
        message.set_edns(Edns::new());
    }
    message
}

async fn udp_exchange_raw(server: SocketAddr, request: &[u8]) -> Vec<u8> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("client udp socket");
    socket.send_to(request, server).await.expect("send");
    let mut buf = vec![0; 65_535];
    let (len, from) = timeout(IO_TIMEOUT, socket.recv_from(&mut buf))
        .await
        .expect("udp response in time")
        .expect("recv");
    assert_eq!(from, server);
    buf.truncate(len);
    buf
}

async fn udp_exchange(server: SocketAddr, request: &Message) -> Message {
    let bytes = udp_exchange_raw(server, &request.to_vec().expect("encode")).await;
    let response = Message::from_vec(&bytes).expect("decodable response");
    assert_eq!(response.id, request.id);
    response
}

async fn tcp_send_frame(stream: &mut TcpStream, frame: &[u8]) {
    let len = u16::try_from(frame.len()).expect("frame fits");
    stream.write_all(&len.to_be_bytes()).await.expect("write");
    stream.write_all(frame).await.expect("write");
}

async fn tcp_read_frame(stream: &mut TcpStream) -> Vec<u8> {
    let len = timeout(IO_TIMEOUT, stream.read_u16())
        .await
        .expect("tcp response in time")
        .expect("read length");
    let mut buf = vec![0; usize::from(len)];
    timeout(IO_TIMEOUT, stream.read_exact(&mut buf))
        .await
        .expect("tcp response in time")
        .expect("read body");
    buf
}

async fn tcp_exchange(stream: &mut TcpStream, request: &Message) -> Message {
    tcp_send_frame(stream, &request.to_vec().expect("encode")).await;
    let response = Message::from_vec(&tcp_read_frame(stream).await).expect("decodable response");
    assert_eq!(response.id, request.id);
    response
}

fn assert_single_answer(response: &Message, name: &str, rdata: RData) {
    assert_eq!(response.message_type, MessageType::Response);
    assert_eq!(response.response_code, ResponseCode::NoError);
    assert!(response.authoritative, "authoritative: {response:?}");
    assert_eq!(response.queries.len(), 1);
    assert_eq!(response.queries[0].name().to_string(), name);
    assert_eq!(response.answers.len(), 1, "{response:?}");
    let answer = &response.answers[0];
    // Name equality is case-insensitive; compare the spelling.
    assert_eq!(answer.name.to_string(), name);
    assert_eq!(answer.dns_class, DNSClass::IN);
    assert_eq!(answer.ttl, TTL);
    assert_eq!(answer.data, rdata);
}

#[tokio::test]
async fn raw_udp_answers_echo_the_question_name_exactly() {
    let running = start(config()).await;
    let addr = running.addr;

    // Mixed case (as with 0x20 randomisation) is echoed verbatim, with and without EDNS.
    for edns in [false, true] {
        let name = "WwW.ExAmPlE.TeSt.";
        let response = udp_exchange(addr, &query(name, RecordType::A, edns)).await;
        assert_single_answer(&response, name, RData::A(A(V4)));
        assert_eq!(response.edns.is_some(), edns, "EDNS answered in kind");

        let response = udp_exchange(addr, &query(name, RecordType::AAAA, edns)).await;
        assert_single_answer(&response, name, RData::AAAA(AAAA(V6)));
    }

    let name = long_name();
    let response = udp_exchange(addr, &query(&name, RecordType::A, true)).await;
    assert_single_answer(&response, &name, RData::A(A(V4)));

    // Any other type: NOERROR, authoritative, no records at all.
    for record_type in [
        RecordType::MX,
        RecordType::TXT,
        RecordType::NS,
        RecordType::SOA,
        RecordType::HTTPS,
        RecordType::SRV,
        RecordType::ANY,
    ] {
        let response = udp_exchange(addr, &query("x.example.test.", record_type, true)).await;
        assert_eq!(
            response.response_code,
            ResponseCode::NoError,
            "{record_type}"
        );
        assert!(response.authoritative, "{record_type}");
        assert!(response.answers.is_empty(), "{record_type}: {response:?}");
        assert!(response.authorities.is_empty(), "{record_type}");
    }

    running.shutdown().await;
}

#[tokio::test]
async fn raw_tcp_answers_several_queries_on_one_connection() {
    let running = start(config()).await;
    let mut stream = TcpStream::connect(running.addr).await.expect("connect");

    let name = long_name();
    let response = tcp_exchange(&mut stream, &query(&name, RecordType::A, false)).await;
    assert_single_answer(&response, &name, RData::A(A(V4)));
    let response = tcp_exchange(
        &mut stream,
        &query("v6.example.test.", RecordType::AAAA, true),
    )
    .await;
    assert_single_answer(&response, "v6.example.test.", RData::AAAA(AAAA(V6)));
    let response = tcp_exchange(
        &mut stream,
        &query("mx.example.test.", RecordType::MX, true),
    )
    .await;
    assert_eq!(response.response_code, ResponseCode::NoError);
    assert!(response.authoritative);
    assert!(response.answers.is_empty());

    drop(stream);
    running.shutdown().await;
}

#[tokio::test]
async fn unsupported_opcode_is_not_implemented() {
    let running = start(config()).await;
    let mut request = query("www.example.test.", RecordType::A, false);
    request.metadata.op_code = OpCode::Status;
    let response = udp_exchange(running.addr, &request).await;
    assert_eq!(response.response_code, ResponseCode::NotImp);
    assert!(response.answers.is_empty());
    running.shutdown().await;
}

#[tokio::test]
async fn malformed_packets_do_not_crash_the_server() {
    let running = start(config()).await;
    let addr = running.addr;

    // UDP: too short for a header, garbage, and a header promising a question
    // that is not there. None of these may take the server down.
    let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("client socket");
    client.send_to(&[], addr).await.expect("send empty");
    client.send_to(&[0xff; 5], addr).await.expect("send short");
    client
        .send_to(&[0xab; 300], addr)
        .await
        .expect("send garbage");
    drop(client);
    // A parseable header with a broken question gets FORMERR back.
    let truncated_question = [
        0x12, 0x34, // id
        0x01, 0x00, // query, RD
        0x00, 0x01, // one question
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // no other records
        0x07, b'e', b'x', // label claims 7 bytes, has 2
    ];
    let response = udp_exchange_raw(addr, &truncated_question).await;
    let response = Message::from_vec(&response).expect("decodable FORMERR");
    assert_eq!(response.id, 0x1234);
    assert_eq!(response.response_code, ResponseCode::FormErr);
    // A response (QR set) sent to the server is ignored, not answered: the
    // first datagram back on this socket answers the query sent after it.
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("client socket");
    let mut reflected = query("www.example.test.", RecordType::A, false);
    reflected.metadata.message_type = MessageType::Response;
    reflected.metadata.id = 0x0bad;
    let mut follow_up = query("follow.example.test.", RecordType::A, false);
    follow_up.metadata.id = 0x600d;
    for message in [&reflected, &follow_up] {
        socket
            .send_to(&message.to_vec().expect("encode"), addr)
            .await
            .expect("send");
    }
    let mut buf = vec![0; 65_535];
    let (len, _) = timeout(IO_TIMEOUT, socket.recv_from(&mut buf))
        .await
        .expect("udp response in time")
        .expect("recv");
    let response = Message::from_vec(&buf[..len]).expect("decodable response");
    assert_eq!(
        response.id, follow_up.id,
        "a response message must not be answered"
    );
    assert_single_answer(&response, "follow.example.test.", RData::A(A(V4)));

    // TCP: a garbage frame, then a connection that dies mid-frame.
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    tcp_send_frame(&mut stream, &[0xcd; 40]).await;
    drop(stream);
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(&[0x01, 0x00, 0x00]).await.expect("write");
    drop(stream);

    // Still serving on both transports.
    let response = udp_exchange(addr, &query("after.example.test.", RecordType::A, true)).await;
    assert_single_answer(&response, "after.example.test.", RData::A(A(V4)));
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let response = tcp_exchange(
        &mut stream,
        &query("after.example.test.", RecordType::AAAA, false),
    )
    .await;
    assert_single_answer(&response, "after.example.test.", RData::AAAA(AAAA(V6)));

    drop(stream);
    running.shutdown().await;
}

#[tokio::test]
async fn shutdown_is_prompt_and_releases_the_port() {
    let running = start(config()).await;
    let addr = running.addr;
    // Make sure it is really serving, and leave an idle TCP connection open:
    // shutdown must not wait for the client to hang up.
    let response = udp_exchange(addr, &query("up.example.test.", RecordType::A, false)).await;
    assert_single_answer(&response, "up.example.test.", RData::A(A(V4)));
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    let response = tcp_exchange(&mut idle, &query("up.example.test.", RecordType::A, false)).await;
    assert_single_answer(&response, "up.example.test.", RData::A(A(V4)));

    running.shutdown().await;

    // The port is free again, for both transports, both directly and for a new server.
    drop(UdpSocket::bind(addr).await.expect("udp port released"));
    drop(TcpListener::bind(addr).await.expect("tcp port released"));
    let again = DnsServer::bind(addr, config())
        .await
        .expect("same port binds again");
    assert_eq!(again.local_addr(), addr);
    drop(again);
    drop(idle);
}

#[tokio::test]
async fn shutdown_already_requested_or_sender_dropped_returns() {
    // Already true before run starts.
    let server = DnsServer::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config())
        .await
        .expect("bind");
    let (_stop, shutdown) = watch::channel(true);
    timeout(Duration::from_secs(2), server.run(shutdown))
        .await
        .expect("returns promptly")
        .expect("no error");

    // Sender dropped: nobody can stop the server any more, so it stops.
    let server = DnsServer::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config())
        .await
        .expect("bind");
    let (stop, shutdown) = watch::channel(false);
    drop(stop);
    timeout(Duration::from_secs(2), server.run(shutdown))
        .await
        .expect("returns promptly")
        .expect("no error");
}

#[tokio::test]
async fn binding_a_taken_port_reports_context() {
    let taken = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let addr = taken.local_addr().expect("addr");
    let error = DnsServer::bind(addr, config())
        .await
        .expect_err("port is taken");
    assert!(matches!(error, DnsError::Bind { .. }), "{error:?}");
    assert_eq!(
        error.to_string().split(": ").next(),
        Some(format!("binding dns udp listener on {addr}").as_str()),
        "{error}"
    );
}

// ---- HTTPS/SVCB, TXT, NXDOMAIN and forwarding ----

#[tokio::test]
async fn https_svcb_and_txt_answer_noerror_without_data() {
    let running = start(config()).await;
    // HTTPS and SVCB carry ECH keys and alt-svc hints (RFC 9460): never any record.
    for record_type in [RecordType::HTTPS, RecordType::SVCB, RecordType::TXT] {
        let response =
            udp_exchange(running.addr, &query("www.example.test.", record_type, true)).await;
        assert_eq!(
            response.response_code,
            ResponseCode::NoError,
            "{record_type}"
        );
        assert!(response.answers.is_empty(), "{record_type}: {response:?}");
        assert!(
            response.additionals.is_empty(),
            "{record_type}: {response:?}"
        );
    }
    // The same through hickory's resolver: a name that exists, with no such data.
    let resolver = resolver(running.addr, Transport::Udp);
    let error = resolver
        .lookup("www.example.test.", RecordType::HTTPS)
        .await
        .expect_err("HTTPS has no answer");
    assert_no_records(&error, ResponseCode::NoError);
    running.shutdown().await;
}

#[tokio::test]
async fn invalid_names_are_nxdomain() {
    let running = start(config()).await;
    let names: Vec<Name> = [
        &[&b"www"[..], b"example", b"invalid"][..],
        &[b"foo", b"INVALID"],
        &[b"-lead", b"example", b"test"],
        &[b"trail-", b"example", b"test"],
        &[b"sp ace", b"example", b"test"],
    ]
    .iter()
    .map(|labels| {
        let mut name = Name::from_labels(labels.iter().copied()).expect("a DNS name");
        name.set_fqdn(true);
        name
    })
    .collect();
    for name in &names {
        for record_type in [RecordType::A, RecordType::AAAA, RecordType::TXT] {
            let mut request = Message::query();
            request.add_query(Query::query(name.clone(), record_type));
            let response = udp_exchange(running.addr, &request).await;
            assert_eq!(
                response.response_code,
                ResponseCode::NXDomain,
                "{name} {record_type}: {response:?}"
            );
            assert!(response.answers.is_empty(), "{name}: {response:?}");
        }
    }
    // hickory's resolver sees the NXDOMAIN (it answers `.invalid` itself, so
    // ask it about a name that only the server can reject).
    let resolver = resolver(running.addr, Transport::Tcp);
    let error = resolver
        .lookup(names[3].clone(), RecordType::A)
        .await
        .expect_err("NXDOMAIN");
    assert_no_records(&error, ResponseCode::NXDomain);
    // Names with underscores (SRV, TXT owners) and digits are fine.
    let lookup = resolver
        .lookup("_svc.1-a.example.test.", RecordType::A)
        .await
        .expect("valid name answered");
    assert_eq!(lookup.answers()[0].data, RData::A(A(V4)));
    running.shutdown().await;
}

#[tokio::test]
async fn forwarded_names_get_the_real_resolvers_answer() {
    // The "real resolver": another server with different addresses.
    const REAL_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);
    let real = start(DnsConfig {
        v4: Some(REAL_V4),
        v6: None,
        ttl: 300,
    })
    .await;
    let forward = btrfly_dns::Forward::new(&["control.example.test".to_owned()], &[real.addr])
        .expect("forward set up");
    let server = DnsServer::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config())
        .await
        .expect("bind")
        .with_forward(forward);
    let addr = server.local_addr();
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(server.run(shutdown));
    let front = Running { addr, stop, task };

    let resolver = resolver(front.addr, Transport::Udp);
    for name in ["control.example.test.", "api.Control.example.test."] {
        let lookup = resolver
            .lookup(name, RecordType::A)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let data: Vec<_> = lookup.answers().iter().map(|r| r.data.clone()).collect();
        assert_eq!(data, vec![RData::A(A(REAL_V4))], "{name} is forwarded");
    }
    // The real resolver has no AAAA: passed on as NOERROR without data.
    let error = resolver
        .lookup("control.example.test.", RecordType::AAAA)
        .await
        .expect_err("no AAAA upstream");
    assert_no_records(&error, ResponseCode::NoError);
    // HTTPS is never forwarded.
    let response = udp_exchange(
        front.addr,
        &query("control.example.test.", RecordType::HTTPS, true),
    )
    .await;
    assert_eq!(response.response_code, ResponseCode::NoError);
    assert!(response.answers.is_empty(), "{response:?}");
    // A sibling name, and a name that only ends the same way, are not forwarded.
    for name in ["other.example.test.", "xcontrol.example.test."] {
        let lookup = resolver.lookup(name, RecordType::A).await.expect(name);
        assert_eq!(lookup.answers()[0].data, RData::A(A(V4)), "{name}");
    }

    // With the real resolver gone, forwarded names fail (SERVFAIL) rather than
    // pointing at the gateway.
    let real_addr = real.shutdown().await;
    let response = timeout(
        Duration::from_secs(30),
        udp_exchange_raw(
            front.addr,
            &query("gone.control.example.test.", RecordType::A, false)
                .to_vec()
                .expect("encode"),
        ),
    )
    .await
    .unwrap_or_else(|_| panic!("answer within 30 s with {real_addr} down"));
    let response = Message::from_vec(&response).expect("decodable");
    assert_eq!(
        response.response_code,
        ResponseCode::ServFail,
        "{response:?}"
    );
    assert!(response.answers.is_empty());
    front.shutdown().await;
}

#[test]
fn forward_names_must_be_names() {
    let error = btrfly_dns::Forward::new(&["a..b".to_owned()], &[]).expect_err("empty label");
    assert!(error.to_string().contains("\"a..b\""), "{error}");
}
