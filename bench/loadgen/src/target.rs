//! What the load client is told: the URLs to fetch, the proxy to go
//! through, and the static name overrides for direct connections.

use std::collections::HashMap;
use std::net::IpAddr;

use base64::Engine as _;
use http::HeaderValue;

/// Errors in the load client's inputs (URL list, `--proxy`, `--resolve`).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("url {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("proxy {proxy:?}: {reason}")]
    Proxy { proxy: String, reason: String },
    #[error("resolve {entry:?}: {reason} (expected HOST:PORT:ADDRESS, like curl --resolve)")]
    Resolve { entry: String, reason: String },
}

/// One request to make: an `https` URL split into what the connection
/// needs (host, port) and what the request line needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name as written in the URL (lower case, no brackets for IPv6).
    pub host: String,
    /// Port, 443 when the URL has none.
    pub port: u16,
    /// `host:port` as sent in `CONNECT`, `Host` and `:authority`.
    pub authority: String,
    /// Origin-form request target: path and query (RFC 9112 §3.2.1).
    pub path_and_query: String,
    /// The whole URL (the HTTP/2 request's `:scheme`, `:authority`, `:path`).
    pub url: String,
}

impl Target {
    /// Parses one `https://host[:port]/path[?query]` URL.
    ///
    /// # Errors
    /// [`InputError::Url`] for anything but an absolute `https` URL with a
    /// host.
    pub fn parse(raw: &str) -> Result<Target, InputError> {
        let err = |reason: &str| InputError::Url {
            url: raw.to_owned(),
            reason: reason.to_owned(),
        };
        let url = url::Url::parse(raw).map_err(|e| err(&e.to_string()))?;
        if url.scheme() != "https" {
            return Err(err("only https URLs are supported"));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(err("no host")),
        };
        let port = url.port_or_known_default().unwrap_or(443);
        let authority = match url.host() {
            Some(url::Host::Ipv6(_)) => format!("[{host}]:{port}"),
            _ => format!("{host}:{port}"),
        };
        let mut path_and_query = url.path().to_owned();
        if let Some(q) = url.query() {
            path_and_query.push('?');
            path_and_query.push_str(q);
        }
        Ok(Target {
            host,
            port,
            authority,
            path_and_query,
            url: url.to_string(),
        })
    }

    /// Parses a URL list: one URL per line; blank lines and lines starting
    /// with `#` are skipped.
    ///
    /// # Errors
    /// The first line that is not a valid URL (see [`Target::parse`]).
    pub fn parse_list(text: &str) -> Result<Vec<Target>, InputError> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(Target::parse)
            .collect()
    }
}

/// An explicit proxy: where to connect, and the `Proxy-Authorization`
/// header (RFC 9110 §11.7.2, Basic scheme of RFC 7617) built from the URL's
/// user and password, as clients do with `HTTPS_PROXY`.
#[derive(Debug, Clone)]
pub struct Proxy {
    /// `host:port` of the proxy.
    pub addr: String,
    /// `Basic base64(user:password)`, when the URL carries a user.
    pub authorization: Option<HeaderValue>,
}

impl Proxy {
    /// Parses `http://[user[:password]@]host[:port]` (the form of the
    /// `HTTPS_PROXY` that `btrfly start` exports). User and password are
    /// percent-decoded. The port defaults to 3128.
    ///
    /// # Errors
    /// [`InputError::Proxy`] for another scheme, a missing host, or a
    /// credential that is not valid in a header.
    pub fn parse(raw: &str) -> Result<Proxy, InputError> {
        let err = |reason: &str| InputError::Proxy {
            // Never echo the credential back.
            proxy: redact(raw),
            reason: reason.to_owned(),
        };
        let url = url::Url::parse(raw).map_err(|e| err(&e.to_string()))?;
        if url.scheme() != "http" {
            return Err(err("only http:// proxies are supported"));
        }
        let host = url.host_str().ok_or_else(|| err("no host"))?;
        let port = url.port().unwrap_or(3128);
        let authorization = if url.username().is_empty() {
            None
        } else {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            let user = decode(url.username());
            let password = decode(url.password().unwrap_or(""));
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            let value = HeaderValue::from_str(&format!("Basic {token}"))
                .map_err(|_| err("credential is not valid in a header"))?;
            Some(value)
        };
        Ok(Proxy {
            addr: format!("{host}:{port}"),
            authorization,
        })
    }
}

/// The URL without its user information, for messages.
fn redact(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "<unparsable proxy URL>".to_owned(),
    }
}

/// Static overrides for direct connections, like `curl --resolve
/// HOST:PORT:ADDRESS`; the port may be `*` for every port.
#[derive(Debug, Clone, Default)]
pub struct Resolve {
    exact: HashMap<(String, u16), IpAddr>,
    any_port: HashMap<String, IpAddr>,
}

impl Resolve {
    /// Adds one `HOST:PORT:ADDRESS` entry (`ADDRESS` may be a bracketed
    /// IPv6 address).
    ///
    /// # Errors
    /// [`InputError::Resolve`] for a malformed entry.
    pub fn add(&mut self, entry: &str) -> Result<(), InputError> {
        let err = |reason: &str| InputError::Resolve {
            entry: entry.to_owned(),
            reason: reason.to_owned(),
        };
        let mut parts = entry.splitn(3, ':');
        let (Some(host), Some(port), Some(addr)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(err("missing part"));
        };
        if host.is_empty() {
            return Err(err("empty host"));
        }
        let addr: IpAddr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| err("not an IP address"))?;
        let host = host.to_ascii_lowercase();
        if port == "*" {
            self.any_port.insert(host, addr);
        } else {
            let port: u16 = port.parse().map_err(|_| err("not a port number"))?;
            self.exact.insert((host, port), addr);
        }
        Ok(())
    }

    /// The override for `host:port`, if any.
    pub fn lookup(&self, host: &str, port: u16) -> Option<IpAddr> {
        let host = host.to_ascii_lowercase();
        self.exact
            .get(&(host.clone(), port))
            .or_else(|| self.any_port.get(&host))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_into_authority_and_origin_form() {
        let t = Target::parse("https://Files.Example.Test:8443/a/b.bin?x=1").unwrap();
        assert_eq!(t.host, "files.example.test");
        assert_eq!(t.port, 8443);
        assert_eq!(t.authority, "files.example.test:8443");
        assert_eq!(t.path_and_query, "/a/b.bin?x=1");
        let d = Target::parse("https://files.example.test/").unwrap();
        assert_eq!(d.authority, "files.example.test:443");
        let v6 = Target::parse("https://[::1]:9/x").unwrap();
        assert_eq!(v6.authority, "[::1]:9");
        assert_eq!(v6.host, "::1");
    }

    #[test]
    fn url_lists_skip_comments_and_reject_plain_http() {
        let list =
            Target::parse_list("# files\nhttps://a.example.test/1\n\n https://a.example.test/2 \n")
                .unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].path_and_query, "/2");
        let e =
            Target::parse_list("https://a.example.test/1\nhttp://a.example.test/2").unwrap_err();
        assert!(e.to_string().contains("only https"), "{e}");
    }

    #[test]
    fn proxy_credentials_become_basic_authorization() {
        let p = Proxy::parse("http://sess%2D1:s3cr%40t@127.0.0.1:4000").unwrap();
        assert_eq!(p.addr, "127.0.0.1:4000");
        // base64("sess-1:s3cr@t")
        assert_eq!(p.authorization.unwrap(), "Basic c2Vzcy0xOnMzY3JAdA==");
        let none = Proxy::parse("http://127.0.0.1").unwrap();
        assert!(none.authorization.is_none());
        assert_eq!(none.addr, "127.0.0.1:3128");
        let e = Proxy::parse("https://user:secret@127.0.0.1:1").unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    #[test]
    fn resolve_entries_match_host_and_port() {
        let mut r = Resolve::default();
        r.add("files.example.test:8443:127.0.0.1").unwrap();
        r.add("any.example.test:*:[::1]").unwrap();
        assert_eq!(
            r.lookup("FILES.example.test", 8443),
            Some("127.0.0.1".parse().unwrap())
        );
        assert_eq!(r.lookup("files.example.test", 443), None);
        assert_eq!(
            r.lookup("any.example.test", 1),
            Some("::1".parse().unwrap())
        );
        assert!(r.add("files.example.test:x:127.0.0.1").is_err());
        assert!(r.add("files.example.test:1:localhost").is_err());
        assert!(r.add("files.example.test").is_err());
    }
}
