//! btrfly-mirror: the explicit mirror's background fetcher.
//!
//! Entries are declared through the control API (`POST /v1/mirror`) and
//! kept in the store (`mirror/<id>.json`, [`btrfly_store::Store`]). The
//! [`Fetcher`] of every replica looks for `pending` entries — when woken by
//! a declaration on its own replica, every [`FetcherConfig::poll`]
//! otherwise (entries declared through another replica, entries left
//! pending by a restart) — and fetches each one **through the server's own
//! proxy listener**, as the client of an internal record session on the
//! reserved tag [`btrfly_core::mirror::MIRROR_TAG`]. So the upstream
//! resolution, trust store, egress policy, digest verification and the
//! adapters' keys are the record path's own: there is no second way out.
//!
//! * A file (`http(s)://` URL): one `GET`. With a declared sha256 the
//!   session is given that digest as a hint for the URL, so the recorder
//!   verifies the body while it streams and records nothing on a mismatch;
//!   the entry then ends `failed` with the recorder's reason (both digests).
//! * An image by digest: the version check (`GET /v2/`, with the bearer
//!   token dance when the registry asks for it), the manifest by digest,
//!   for an index (multi-platform image) every manifest it lists, then each
//!   manifest's config and layers. The OCI adapter keys all of them by
//!   digest and the recorder verifies them; the fetcher checks each
//!   manifest's bytes against its digest too before following it.
//!
//! Entries are attempted one at a time, oldest first. A failure worth
//! retrying (the upstream unreachable, a 5xx, 408 or 429, a body that
//! could not be recorded) is retried with a doubling delay — meanwhile the
//! other entries go ahead —
//! ([`FetcherConfig::first_delay`] up to [`FetcherConfig::max_delay`],
//! [`FetcherConfig::attempts`] attempts in all, counted in the entry so a
//! restart goes on counting); then the entry ends `failed` with the last
//! reason. A digest mismatch, another 4xx or a malformed manifest fails at
//! once. Entries are never deleted.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use btrfly_core::mirror::mirror_tag;
use btrfly_core::{
    canonical_url, DigestHint, MirrorEntry, MirrorSource, MirrorState, Mode, Sha256,
};
use btrfly_session::{LiveSession, SessionRegistry};
use sha2::Digest as _;
use time::OffsetDateTime;
use tokio::sync::{watch, Notify};

/// How the fetcher reaches the proxy and how hard it tries.
#[derive(Clone, Debug)]
pub struct FetcherConfig {
    /// The proxy listener to fetch through (a concrete address, e.g.
    /// `127.0.0.1:3128` for a listener on `0.0.0.0:3128`).
    pub proxy: SocketAddr,
    /// btrfly's CA certificate (PEM): the only root the fetcher trusts,
    /// since every TLS connection it makes ends at btrfly's listener.
    pub ca_pem: String,
    /// How often the store is looked at for pending entries without a
    /// wake-up.
    pub poll: Duration,
    /// Attempts per entry before it ends `failed` (at least 1).
    pub attempts: u32,
    /// The delay before the second attempt; it doubles after each one.
    pub first_delay: Duration,
    /// The longest delay between attempts.
    pub max_delay: Duration,
    /// The longest a single request may take, body included.
    pub request_timeout: Duration,
}

impl FetcherConfig {
    /// Defaults for a proxy at `proxy` trusting `ca_pem`: a look every 5 s,
    /// 5 attempts, 1 s doubling to 60 s, one hour per request.
    pub fn new(proxy: SocketAddr, ca_pem: String) -> FetcherConfig {
        FetcherConfig {
            proxy,
            ca_pem,
            poll: Duration::from_secs(5),
            attempts: 5,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            request_timeout: Duration::from_secs(3600),
        }
    }

    /// The delay after attempt `n` (1-based) failed.
    pub fn delay_after(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1));
        self.first_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Why one attempt did not store an entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Trouble {
    /// Worth another attempt (the upstream or the store may recover).
    #[error("{0}")]
    Transient(String),
    /// Another attempt would end the same (a digest mismatch, a 404, a
    /// malformed manifest): the entry fails now.
    #[error("{0}")]
    Permanent(String),
}

/// Whether an upstream answer's status is worth another attempt.
pub fn transient_status(status: http::StatusCode) -> bool {
    status.is_server_error()
        || status == http::StatusCode::REQUEST_TIMEOUT
        || status == http::StatusCode::TOO_MANY_REQUESTS
}

/// The background fetcher of one replica (see the crate docs).
pub struct Fetcher {
    sessions: Arc<SessionRegistry>,
    config: FetcherConfig,
    wake: Arc<Notify>,
}

impl Fetcher {
    /// A fetcher over `sessions`' store, woken by `wake` (notified when an
    /// entry is declared on this replica).
    pub fn new(
        sessions: Arc<SessionRegistry>,
        config: FetcherConfig,
        wake: Arc<Notify>,
    ) -> Fetcher {
        Fetcher {
            sessions,
            config,
            wake,
        }
    }

    /// Fetches pending entries until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        // When each entry waiting for a retry is due (this process's
        // memory: after a restart every pending entry is due at once).
        let mut due: HashMap<String, Instant> = HashMap::new();
        loop {
            if *shutdown.borrow() {
                return;
            }
            self.pass(&mut due, &shutdown).await;
            let now = Instant::now();
            let next = due
                .values()
                .map(|at| at.saturating_duration_since(now))
                .min()
                .map_or(self.config.poll, |d| d.min(self.config.poll));
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(next) => {}
                r = shutdown.changed() => if r.is_err() { return },
            }
        }
    }

    /// One look at the store: one attempt at every pending entry that is
    /// due, oldest first. An entry waiting for its retry does not hold up
    /// the others.
    async fn pass(&self, due: &mut HashMap<String, Instant>, shutdown: &watch::Receiver<bool>) {
        let entries = match self.sessions.store().list_mirror_entries().await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("mirror: listing the entries: {e}");
                return;
            }
        };
        self.count(&entries);
        due.retain(|id, _| {
            entries
                .iter()
                .any(|e| &e.id == id && e.state == MirrorState::Pending)
        });
        let mut changed = false;
        for entry in entries {
            if entry.state != MirrorState::Pending
                || due.get(&entry.id).is_some_and(|at| *at > Instant::now())
            {
                continue;
            }
            if *shutdown.borrow() {
                return;
            }
            changed = true;
            let id = entry.id.clone();
            match self.fetch_once(entry).await {
                Some(delay) => {
                    due.insert(id, Instant::now() + delay);
                }
                None => {
                    due.remove(&id);
                }
            }
        }
        if changed {
            if let Ok(entries) = self.sessions.store().list_mirror_entries().await {
                self.count(&entries);
            }
        }
    }

    fn count(&self, entries: &[MirrorEntry]) {
        let metrics = self.sessions.metrics();
        for state in [
            MirrorState::Pending,
            MirrorState::Stored,
            MirrorState::Failed,
        ] {
            let n = entries.iter().filter(|e| e.state == state).count();
            metrics.set_mirror_entries(state.as_str(), n as u64);
        }
    }

    /// One attempt at `entry`, its new state written to the store; the
    /// delay before the next attempt when it stays pending.
    async fn fetch_once(&self, entry: MirrorEntry) -> Option<Duration> {
        let store = self.sessions.store().clone();
        // Another replica may have finished it meanwhile.
        let mut entry = match store.get_mirror_entry(&entry.id).await {
            Ok(Some(now)) if now.state == MirrorState::Pending => now,
            Ok(_) => return None,
            Err(e) => {
                tracing::warn!(id = %entry.id, "mirror: reading the entry: {e}");
                return Some(self.config.poll);
            }
        };
        entry.attempts = entry.attempts.saturating_add(1);
        tracing::info!(id = %entry.id, source = %entry.source, attempt = entry.attempts, "mirror: fetching");
        let outcome = self.attempt(&entry).await;
        entry.updated_at = OffsetDateTime::now_utc();
        let retry = match outcome {
            Ok(()) => {
                entry.state = MirrorState::Stored;
                entry.reason = None;
                None
            }
            Err(Trouble::Permanent(why)) => {
                entry.state = MirrorState::Failed;
                entry.reason = Some(why);
                None
            }
            Err(Trouble::Transient(why)) if entry.attempts >= self.config.attempts.max(1) => {
                entry.state = MirrorState::Failed;
                entry.reason = Some(format!("gave up after {} attempts: {why}", entry.attempts));
                None
            }
            Err(Trouble::Transient(why)) => {
                entry.reason = Some(why);
                Some(self.config.delay_after(entry.attempts))
            }
        };
        if let Err(e) = store.put_mirror_entry(&entry).await {
            tracing::warn!(id = %entry.id, "mirror: writing the entry: {e}");
            return Some(self.config.poll);
        }
        match entry.state {
            MirrorState::Stored => {
                tracing::info!(id = %entry.id, source = %entry.source, "mirror: stored");
            }
            MirrorState::Failed => {
                tracing::warn!(id = %entry.id, source = %entry.source, reason = entry.reason.as_deref().unwrap_or(""), "mirror: failed");
            }
            MirrorState::Pending => {
                tracing::info!(id = %entry.id, reason = entry.reason.as_deref().unwrap_or(""), "mirror: will retry");
            }
        }
        retry
    }

    /// One attempt: a record session on the mirror tag, the downloads
    /// through the proxy, the session stopped (and the tag sealed).
    async fn attempt(&self, entry: &MirrorEntry) -> Result<(), Trouble> {
        let new = self
            .sessions
            .create(mirror_tag(), Mode::Record, true)
            .await
            .map_err(|e| {
                Trouble::Transient(format!("starting the mirror's record session: {e}"))
            })?;
        let session = new.session.clone();
        let id = session.info.id.to_string();
        let fetched = match self.client(&id, &new.secret) {
            Ok(client) => match &entry.source {
                MirrorSource::Url { url, sha256 } => {
                    fetch_file(&client, &session, url, sha256.as_ref()).await
                }
                MirrorSource::Image {
                    registry,
                    repository,
                    digest,
                } => {
                    let image = Image {
                        client: &client,
                        session: &session,
                        base: format!("https://{registry}"),
                        repository,
                        token: None,
                    };
                    image.fetch(digest).await
                }
            },
            Err(e) => Err(e),
        };
        let summary = self.sessions.stop_with(&id, true).await.map_err(|e| {
            Trouble::Transient(format!("stopping the mirror's record session: {e}"))
        })?;
        // A body the recorder refused (its digest did not match) is why
        // whatever the client saw went wrong (a cut body, a 502).
        if summary.refused > 0 {
            return Err(Trouble::Permanent(summary.errors.join("; ")));
        }
        fetched?;
        if summary.egress_refused > 0 {
            return Err(Trouble::Permanent(summary.errors.join("; ")));
        }
        if summary.unrecorded > 0 || summary.recorded == 0 {
            let why = if summary.errors.is_empty() {
                "nothing was recorded".to_owned()
            } else {
                summary.errors.join("; ")
            };
            return Err(Trouble::Transient(why));
        }
        Ok(())
    }

    /// An HTTP client whose every request goes through the proxy listener
    /// as session `id`, trusting only btrfly's CA.
    fn client(&self, id: &str, secret: &str) -> Result<reqwest::Client, Trouble> {
        let broken =
            |e: reqwest::Error| Trouble::Transient(format!("the mirror's HTTP client: {e}"));
        let proxy = reqwest::Proxy::all(format!("http://{}", self.config.proxy))
            .map_err(broken)?
            .basic_auth(id, secret);
        let ca = reqwest::Certificate::from_pem(self.config.ca_pem.as_bytes()).map_err(broken)?;
        reqwest::Client::builder()
            .proxy(proxy)
            .tls_certs_only([ca])
            .timeout(self.config.request_timeout)
            .user_agent(concat!("btrfly-mirror/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(broken)
    }
}

/// A request error as [`Trouble`]: transient (the connection, a timeout,
/// a body cut short) unless the session refused the body (its digest did
/// not match), which is permanent and says why.
fn request_trouble(session: &LiveSession, url: &str, e: &reqwest::Error) -> Trouble {
    if let Ok(uri) = url.parse::<http::Uri>() {
        if let Some(why) = session.refusal(&canonical_url(&uri)) {
            return Trouble::Permanent(why);
        }
    }
    Trouble::Transient(format!("GET {url}: {}", error_chain(e)))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        src = s.source();
    }
    msg
}

fn status_trouble(url: &str, status: http::StatusCode) -> Trouble {
    let why = format!("GET {url}: the upstream answered {status}");
    if transient_status(status) {
        Trouble::Transient(why)
    } else {
        Trouble::Permanent(why)
    }
}

/// Reads a body to its end, streaming: its sha256 and length.
async fn drain(
    session: &LiveSession,
    url: &str,
    mut resp: reqwest::Response,
) -> Result<(String, u64), Trouble> {
    let mut hasher = sha2::Sha256::new();
    let mut len = 0u64;
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                hasher.update(&chunk);
                len += chunk.len() as u64;
            }
            Ok(None) => break,
            Err(e) => return Err(request_trouble(session, url, &e)),
        }
    }
    Ok((hex::encode(hasher.finalize()), len))
}

/// A file: one `GET` through the proxy, verified by the recorder against
/// `sha256` (the session's hint) and here once more.
async fn fetch_file(
    client: &reqwest::Client,
    session: &LiveSession,
    url: &str,
    sha256: Option<&Sha256>,
) -> Result<(), Trouble> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| Trouble::Permanent(format!("{url}: {e}")))?;
    if let Some(expected) = sha256 {
        session.add_hints(vec![DigestHint {
            url: canonical_url(&uri),
            digest: btrfly_core::ExpectedDigest::Sha256(expected.clone()),
        }]);
    }
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| request_trouble(session, url, &e))?;
    if !resp.status().is_success() {
        return Err(status_trouble(url, resp.status()));
    }
    let (actual, len) = drain(session, url, resp).await?;
    if let Some(expected) = sha256 {
        if expected.as_str() != actual {
            return Err(Trouble::Permanent(format!(
                "{url}: body sha256 {actual} does not match the declared {expected}"
            )));
        }
    }
    tracing::debug!(url, sha256 = %actual, bytes = len, "mirror: file fetched");
    Ok(())
}

/// The manifest media types asked for (OCI and Docker; an index or list
/// brings every platform).
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Manifests are small JSON documents; a larger one is refused.
const MAX_MANIFEST: usize = 4 * 1024 * 1024;

/// How deep indexes may nest (an index of indexes is allowed once).
const MAX_DEPTH: u32 = 3;

/// One image's fetch (OCI distribution spec, pull).
struct Image<'a> {
    client: &'a reqwest::Client,
    session: &'a LiveSession,
    /// `https://registry[:port]`.
    base: String,
    repository: &'a str,
    /// The bearer token, when the registry asked for one.
    token: Option<String>,
}

impl Image<'_> {
    async fn fetch(mut self, digest: &Sha256) -> Result<(), Trouble> {
        self.ping().await?;
        let mut manifests = vec![(digest.to_string(), 0u32)];
        let mut blobs: Vec<String> = Vec::new();
        while let Some((hex, depth)) = manifests.pop() {
            let doc = self.manifest(&hex).await?;
            let bad = |why: &str| Trouble::Permanent(format!("manifest sha256:{hex}: {why}"));
            if let Some(children) = doc.get("manifests").and_then(|m| m.as_array()) {
                if depth >= MAX_DEPTH {
                    return Err(bad("indexes nest too deep"));
                }
                for child in children {
                    let d = child
                        .get("digest")
                        .and_then(|d| d.as_str())
                        .ok_or_else(|| bad("an index entry has no digest"))?;
                    manifests.push((sha256_of(d).map_err(|w| bad(&w))?, depth + 1));
                }
                continue;
            }
            let config = doc
                .get("config")
                .and_then(|c| c.get("digest"))
                .and_then(|d| d.as_str())
                .ok_or_else(|| bad("no config digest"))?;
            blobs.push(sha256_of(config).map_err(|w| bad(&w))?);
            for layer in doc
                .get("layers")
                .and_then(|l| l.as_array())
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let d = layer
                    .get("digest")
                    .and_then(|d| d.as_str())
                    .ok_or_else(|| bad("a layer has no digest"))?;
                blobs.push(sha256_of(d).map_err(|w| bad(&w))?);
            }
        }
        blobs.sort();
        blobs.dedup();
        for hex in blobs {
            self.blob(&hex).await?;
        }
        Ok(())
    }

    fn get(&self, url: &str) -> reqwest::RequestBuilder {
        let req = self.client.get(url);
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// The version check (`GET /v2/`), recorded so a client's own check is
    /// answered in playback; on a `401` with a bearer challenge, the token.
    async fn ping(&mut self) -> Result<(), Trouble> {
        let url = format!("{}/v2/", self.base);
        let resp = self
            .get(&url)
            .send()
            .await
            .map_err(|e| request_trouble(self.session, &url, &e))?;
        let status = resp.status();
        let challenge = resp
            .headers()
            .get(http::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        drain(self.session, &url, resp).await?;
        if status.is_success() {
            return Ok(());
        }
        if status != http::StatusCode::UNAUTHORIZED {
            return Err(status_trouble(&url, status));
        }
        let Some(challenge) = challenge.as_deref().and_then(bearer_challenge) else {
            return Err(Trouble::Permanent(format!(
                "GET {url}: 401 without a bearer challenge: the mirror fetches anonymous pulls only"
            )));
        };
        let mut token_url = reqwest::Url::parse(&challenge.realm).map_err(|e| {
            Trouble::Permanent(format!("the token realm {:?}: {e}", challenge.realm))
        })?;
        {
            let mut q = token_url.query_pairs_mut();
            if let Some(s) = &challenge.service {
                q.append_pair("service", s);
            }
            q.append_pair("scope", &format!("repository:{}:pull", self.repository));
        }
        let token_url = token_url.to_string();
        let resp = self
            .client
            .get(&token_url)
            .send()
            .await
            .map_err(|e| request_trouble(self.session, &token_url, &e))?;
        if !resp.status().is_success() {
            return Err(status_trouble(&token_url, resp.status()));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| request_trouble(self.session, &token_url, &e))?;
        let doc: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| Trouble::Permanent(format!("the token answer of {token_url}: {e}")))?;
        let token = doc
            .get("token")
            .or_else(|| doc.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| {
                Trouble::Permanent(format!("the token answer of {token_url} has no token"))
            })?;
        self.token = Some(token.to_owned());
        Ok(())
    }

    /// A manifest by digest, checked against it, as JSON.
    async fn manifest(&self, hex: &str) -> Result<serde_json::Value, Trouble> {
        let url = format!(
            "{}/v2/{}/manifests/sha256:{hex}",
            self.base, self.repository
        );
        let mut resp = self
            .get(&url)
            .header(http::header::ACCEPT, MANIFEST_ACCEPT)
            .send()
            .await
            .map_err(|e| request_trouble(self.session, &url, &e))?;
        if !resp.status().is_success() {
            return Err(status_trouble(&url, resp.status()));
        }
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    if body.len() + c.len() > MAX_MANIFEST {
                        return Err(Trouble::Permanent(format!(
                            "GET {url}: a manifest larger than {MAX_MANIFEST} bytes"
                        )));
                    }
                    body.extend_from_slice(&c);
                }
                Ok(None) => break,
                Err(e) => return Err(request_trouble(self.session, &url, &e)),
            }
        }
        let actual = hex::encode(sha2::Sha256::digest(&body));
        if actual != hex {
            return Err(Trouble::Permanent(format!(
                "GET {url}: manifest sha256 {actual} does not match the declared {hex}"
            )));
        }
        serde_json::from_slice(&body)
            .map_err(|e| Trouble::Permanent(format!("GET {url}: not a JSON manifest: {e}")))
    }

    /// A blob by digest, streamed through (the recorder verifies it).
    async fn blob(&self, hex: &str) -> Result<(), Trouble> {
        let url = format!("{}/v2/{}/blobs/sha256:{hex}", self.base, self.repository);
        let resp = self
            .get(&url)
            .send()
            .await
            .map_err(|e| request_trouble(self.session, &url, &e))?;
        if !resp.status().is_success() {
            return Err(status_trouble(&url, resp.status()));
        }
        let (actual, _) = drain(self.session, &url, resp).await?;
        if actual != hex {
            return Err(Trouble::Permanent(format!(
                "GET {url}: blob sha256 {actual} does not match its digest {hex}"
            )));
        }
        Ok(())
    }
}

/// The hex of a `sha256:HEX` digest.
fn sha256_of(digest: &str) -> Result<String, String> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("{digest}: only sha256 digests are mirrored"))?;
    Sha256::new(hex)
        .map(|d| d.to_string())
        .map_err(|e| format!("{digest}: {e}"))
}

/// A `Bearer realm="…",service="…"` challenge (RFC 6750 §3).
#[derive(Debug, PartialEq, Eq)]
struct Challenge {
    realm: String,
    service: Option<String>,
}

fn bearer_challenge(value: &str) -> Option<Challenge> {
    let (scheme, params) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut service = None;
    let mut rest = params.trim();
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=')?;
        let name = name.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            match after.find(',') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            }
        };
        match name.as_str() {
            "realm" => realm = Some(value.to_owned()),
            "service" => service = Some(value.to_owned()),
            _ => {}
        }
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge {
        realm: realm?,
        service,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_limit() {
        let mut c = FetcherConfig::new("127.0.0.1:1".parse().expect("addr"), String::new());
        c.first_delay = Duration::from_secs(1);
        c.max_delay = Duration::from_secs(5);
        let d: Vec<u64> = (1..=5).map(|n| c.delay_after(n).as_secs()).collect();
        assert_eq!(d, [1, 2, 4, 5, 5]);
        assert_eq!(c.delay_after(100), Duration::from_secs(5));
    }

    #[test]
    fn which_statuses_are_retried() {
        use http::StatusCode as S;
        for s in [
            S::BAD_GATEWAY,
            S::SERVICE_UNAVAILABLE,
            S::TOO_MANY_REQUESTS,
            S::REQUEST_TIMEOUT,
        ] {
            assert!(transient_status(s), "{s}");
        }
        for s in [S::NOT_FOUND, S::FORBIDDEN, S::UNAUTHORIZED, S::GONE] {
            assert!(!transient_status(s), "{s}");
        }
    }

    #[test]
    fn bearer_challenges() {
        assert_eq!(
            bearer_challenge(
                r#"Bearer realm="https://auth.example.test/token",service="registry.example.test",scope="repository:a:pull""#
            ),
            Some(Challenge {
                realm: "https://auth.example.test/token".into(),
                service: Some("registry.example.test".into()),
            })
        );
        assert_eq!(
            bearer_challenge("bearer realm=https://auth.example.test/t"),
            Some(Challenge {
                realm: "https://auth.example.test/t".into(),
                service: None
            })
        );
        assert_eq!(bearer_challenge(r#"Basic realm="x""#), None);
        assert_eq!(bearer_challenge(r#"Bearer service="x""#), None);
    }

    #[test]
    fn digests_are_sha256_only() {
        let d = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(sha256_of(&format!("sha256:{d}")), Ok(d.to_owned()));
        assert!(sha256_of(&format!("sha512:{d}")).is_err());
        assert!(sha256_of("sha256:00").is_err());
    }
}
