//! A tiny DNS server that answers every name with the proxy's address.
//!
//! btrfly's transparent mode points all hosts at its proxy: a client configured
//! with this server as its only resolver gets the proxy's IPv4 address for every
//! `A` query and its IPv6 address for every `AAAA` query, whatever the name.
//! Every other query type gets an empty, successful (`NOERROR`) answer, so
//! clients fall back to plain address lookups instead of failing. That includes
//! `HTTPS` and `SVCB` (RFC 9460): they are answered with no data, never with
//! records, so no client learns an ECH configuration or an alt-svc hint (such as
//! `h3` on UDP) that would let it go around the interception.
//!
//! Names that cannot exist get `NXDOMAIN`: names under `invalid.` (RFC 6761
//! §6.4) and names that are not host names (RFC 1123 §2.1: labels of letters,
//! digits and hyphens, not starting or ending with a hyphen; `_` is allowed too,
//! as in `_dmarc` or SRV owner names).
//!
//! An allow-list of names ([`Forward`]; for example the control API's own name)
//! is forwarded to real resolvers instead, all types but `HTTPS`/`SVCB`.
//!
//! The server listens on UDP and TCP on the same port and is built on
//! [`hickory_server`] with a small custom [`RequestHandler`]: there is no zone
//! data to look anything up in, so a `Catalog` would only add ceremony.
//!
//! ```no_run
//! # async fn demo() -> Result<(), btrfly_dns::DnsError> {
//! use btrfly_dns::{DnsConfig, DnsServer};
//!
//! let config = DnsConfig {
//!     v4: Some("127.0.0.1".parse().expect("literal")),
//!     v6: None,
//!     ttl: 60,
//! };
//! let server = DnsServer::bind("127.0.0.1:0".parse().expect("literal"), config).await?;
//! println!("dns on {}", server.local_addr());
//! let (stop, shutdown) = tokio::sync::watch::channel(false);
//! let task = tokio::spawn(server.run(shutdown));
//! // ... later:
//! let _ = stop.send(true);
//! # let _ = task.await;
//! # Ok(())
//! # }
//! ```

use std::{
    convert::Infallible,
    fmt, io, iter,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use async_trait::async_trait;
use hickory_server::{
    net::runtime::Time,
    proto::{
        op::{Edns, Header, HeaderCounts, LowerQuery, MessageType, Metadata, OpCode, ResponseCode},
        rr::{
            rdata::{A, AAAA},
            DNSClass, Name, RData, Record, RecordType,
        },
    },
    server::{Request, RequestHandler, ResponseHandler, ResponseInfo},
    zone_handler::MessageResponseBuilder,
    Server,
};
use tokio::{
    net::{TcpListener, UdpSocket},
    sync::watch,
};
use tracing::{debug, info, warn};

mod forward;
pub use forward::Forward;
use forward::Forwarded;

/// How long an accepted TCP connection may stay idle before the server closes it.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Responses queued per TCP connection before the connection applies backpressure
/// (hickory's own default).
const TCP_RESPONSE_BUFFER: usize = 32;

/// With port 0 the UDP socket picks a free port, which may already be taken for
/// TCP; try this many ports before giving up.
const EPHEMERAL_BIND_ATTEMPTS: usize = 16;

/// The EDNS version this server speaks.
const EDNS_VERSION: u8 = 0;

/// What the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsConfig {
    /// The address returned for every `A` query; `None` answers `NOERROR` with no records.
    pub v4: Option<Ipv4Addr>,
    /// The address returned for every `AAAA` query; `None` answers `NOERROR` with no records.
    pub v6: Option<Ipv6Addr>,
    /// Time to live, in seconds, of every returned record.
    pub ttl: u32,
}

/// Errors of the DNS server.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// A listening socket could not be bound.
    #[error("binding dns {transport} listener on {addr}: {source}")]
    Bind {
        /// `"udp"` or `"tcp"`.
        transport: &'static str,
        /// The address that was asked for.
        addr: SocketAddr,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
    /// The bound address of a listening socket could not be read.
    #[error("reading local address of dns listener bound for {addr}: {source}")]
    LocalAddr {
        /// The address that was asked for.
        addr: SocketAddr,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
    /// A name of the forwarding allow-list is not a valid DNS name.
    #[error("dns forward name {name:?} is not a valid name: {reason}")]
    ForwardName {
        /// The name as configured.
        name: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The resolver for forwarded names could not be set up (for example
    /// `/etc/resolv.conf` could not be read).
    #[error("setting up the resolver for forwarded dns names: {source}")]
    ForwardResolver {
        /// The underlying failure.
        #[source]
        source: hickory_resolver::net::NetError,
    },
    /// Serving stopped because of an error rather than a shutdown request.
    #[error("serving dns on {addr}: {source}")]
    Serve {
        /// The address the server was listening on.
        addr: SocketAddr,
        /// The underlying failure, as reported by hickory.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

/// A DNS server bound on UDP and TCP on one port, not yet serving.
///
/// Binding happens in [`DnsServer::bind`], so queries sent after it returns are
/// queued by the kernel and answered once [`DnsServer::run`] is polled.
pub struct DnsServer {
    udp: UdpSocket,
    tcp: TcpListener,
    local_addr: SocketAddr,
    config: DnsConfig,
    forward: Option<Forward>,
}

impl fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsServer")
            .field("local_addr", &self.local_addr)
            .field("config", &self.config)
            .field("forward", &self.forward)
            .finish_non_exhaustive()
    }
}

impl DnsServer {
    /// Binds UDP and TCP on `addr` (port 0 allowed: both transports then share
    /// one free port) and returns the bound server; the actual address is
    /// available from [`DnsServer::local_addr`].
    pub async fn bind(addr: SocketAddr, config: DnsConfig) -> Result<DnsServer, DnsError> {
        let attempts = if addr.port() == 0 {
            EPHEMERAL_BIND_ATTEMPTS
        } else {
            1
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let udp = UdpSocket::bind(addr)
                .await
                .map_err(|source| DnsError::Bind {
                    transport: "udp",
                    addr,
                    source,
                })?;
            let local_addr = udp
                .local_addr()
                .map_err(|source| DnsError::LocalAddr { addr, source })?;
            match TcpListener::bind(local_addr).await {
                Ok(tcp) => {
                    debug!(%local_addr, "bound dns listeners (udp+tcp)");
                    return Ok(DnsServer {
                        udp,
                        tcp,
                        local_addr,
                        config,
                        forward: None,
                    });
                }
                Err(source) if source.kind() == io::ErrorKind::AddrInUse && attempt < attempts => {
                    debug!(
                        %local_addr,
                        "ephemeral udp port is taken for tcp, trying another port"
                    );
                }
                Err(source) => {
                    return Err(DnsError::Bind {
                        transport: "tcp",
                        addr: local_addr,
                        source,
                    })
                }
            }
        }
    }

    /// Forwards the names of `forward` to real resolvers instead of answering
    /// them with the configured addresses.
    #[must_use]
    pub fn with_forward(mut self, forward: Forward) -> DnsServer {
        self.forward = Some(forward);
        self
    }

    /// The address both listeners are bound to (with the actual port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` flips to true, then returns promptly, releasing the port.
    ///
    /// Open TCP connections are closed on shutdown. If the sending side of
    /// `shutdown` is dropped the server shuts down too, since nobody could stop
    /// it any more.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), DnsError> {
        let DnsServer {
            udp,
            tcp,
            local_addr,
            config,
            forward,
        } = self;

        let mut server = Server::new(AnswerEverything { config, forward });
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
        let token = server.shutdown_token().clone();
        info!(%local_addr, ?config, "dns server listening (udp+tcp)");

        let stop = async move {
            if shutdown.wait_for(|stop| *stop).await.is_err() {
                debug!(%local_addr, "dns shutdown sender dropped, stopping");
            }
            token.cancel();
            // The serving branch finishes once the cancellation has been seen.
            std::future::pending::<Infallible>().await
        };

        let result = tokio::select! {
            result = server.block_until_done() => result,
            never = stop => match never {},
        };
        match result {
            Ok(()) => {
                info!(%local_addr, "dns server stopped");
                Ok(())
            }
            Err(source) => Err(DnsError::Serve {
                addr: local_addr,
                source: Box::new(source),
            }),
        }
    }
}

/// The request handler: every name exists and resolves to the configured addresses.
struct AnswerEverything {
    config: DnsConfig,
    forward: Option<Forward>,
}

/// Whether `name` cannot exist: under `invalid.` (RFC 6761 §6.4), or not a
/// host name (RFC 1123 §2.1 letters, digits, hyphens; plus `_`).
pub fn is_invalid_name(name: &Name) -> bool {
    let mut labels = name.iter().peekable();
    let mut last: &[u8] = &[];
    while let Some(label) = labels.next() {
        let valid = !label.is_empty()
            && label
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
            && label.first() != Some(&b'-')
            && label.last() != Some(&b'-');
        if !valid {
            return true;
        }
        if labels.peek().is_none() {
            last = label;
        }
    }
    last.eq_ignore_ascii_case(b"invalid")
}

/// The answer to one question.
enum Answer {
    Records(Vec<Record>),
    Empty(ResponseCode),
}

impl AnswerEverything {
    /// The answer to one question: forwarded, `NXDOMAIN` or made up.
    async fn respond(&self, query: &LowerQuery) -> Answer {
        let name = query.original().name();
        if is_invalid_name(name) {
            debug!(%name, "invalid name, answering NXDOMAIN");
            return Answer::Empty(ResponseCode::NXDomain);
        }
        let hint_type = matches!(query.query_type(), RecordType::HTTPS | RecordType::SVCB);
        match &self.forward {
            Some(forward) if forward.covers(name) && !hint_type => {
                match forward.ask(name, query.query_type()).await {
                    Forwarded::Answers(records) => Answer::Records(records),
                    Forwarded::Empty(code) => Answer::Empty(code),
                    Forwarded::Failed => Answer::Empty(ResponseCode::ServFail),
                }
            }
            _ => Answer::Records(self.answer(query).into_iter().collect()),
        }
    }

    /// The made-up answer record for one question, if the question has one.
    fn answer(&self, query: &LowerQuery) -> Option<Record> {
        if !matches!(query.query_class(), DNSClass::IN | DNSClass::ANY) {
            return None;
        }
        let rdata = match query.query_type() {
            RecordType::A => RData::A(A(self.config.v4?)),
            RecordType::AAAA => RData::AAAA(AAAA(self.config.v6?)),
            _ => return None,
        };
        // The original (not lower-cased) name, so that clients using 0x20 case
        // randomisation see their own spelling echoed back.
        Some(Record::from_rdata(
            query.original().name().clone(),
            self.config.ttl,
            rdata,
        ))
    }
}

#[async_trait]
impl RequestHandler for AnswerEverything {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let response_edns = request.edns.as_ref().map(|requested| {
            let mut edns = Edns::new();
            edns.set_max_payload(requested.max_payload().max(512));
            edns.set_version(EDNS_VERSION);
            edns
        });

        let mut response_code = if request.metadata.message_type != MessageType::Query {
            ResponseCode::FormErr
        } else if request.metadata.op_code != OpCode::Query {
            ResponseCode::NotImp
        } else if request
            .edns
            .as_ref()
            .is_some_and(|edns| edns.version() > EDNS_VERSION)
        {
            ResponseCode::BADVERS
        } else if request.queries.is_empty() {
            ResponseCode::FormErr
        } else {
            ResponseCode::NoError
        };

        let mut answers: Vec<Record> = Vec::new();
        if response_code == ResponseCode::NoError {
            for query in request.queries.queries() {
                match self.respond(query).await {
                    Answer::Records(records) => answers.extend(records),
                    // One question per message in practice; with several,
                    // the first failure is the message's code.
                    Answer::Empty(code) => {
                        if response_code == ResponseCode::NoError {
                            response_code = code;
                        }
                    }
                }
            }
        }

        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.response_code = response_code;
        metadata.authoritative = matches!(
            response_code,
            ResponseCode::NoError | ResponseCode::NXDomain
        );
        // Every name is answered here, so to a stub resolver recursion is available.
        metadata.recursion_available = true;

        let response = MessageResponseBuilder::new(&request.queries, response_edns.as_ref()).build(
            metadata,
            answers.iter(),
            iter::empty(),
            iter::empty(),
            iter::empty(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                warn!(src = %request.src(), %error, "sending dns response failed");
                let mut metadata = Metadata::response_from_request(&request.metadata);
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}
