//! Opening a backend (fs, memory, S3, GCS) and proving it usable.

use std::path::Path;

use bytes::Bytes;
use opendal::{ErrorKind, Operator};

use crate::error::{Advice, ConfigProblem, Result, StoreError};
use crate::layout::random_id;
use crate::options::{GcsOptions, S3Options, StoreOptions, StoreTimeouts};
use crate::store::Store;

/// OpenDAL's HTTP services need a process-wide transport; btrfly's is
/// reqwest over rustls with ring (installed here when nothing else was).
fn install_http_transport() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    opendal_http_transport_reqwest::install_default();
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A prefix as an OpenDAL root: `/a/b/`.
fn prefix_root(prefix: Option<&str>) -> String {
    match prefix
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
    {
        Some(p) => format!("/{p}/"),
        None => "/".to_owned(),
    }
}

impl Store {
    /// Opens the backend `options` name. Nothing is checked yet: call
    /// [`Store::check`] before serving.
    ///
    /// # Errors
    /// A configuration that cannot work (see [`ConfigProblem`]), or a
    /// backend OpenDAL cannot set up.
    pub fn open(options: &StoreOptions) -> Result<Store> {
        Store::open_with(options, StoreTimeouts::default())
    }

    /// [`Store::open`] with the deadlines of object-store operations
    /// (`[storage] timeout_secs`, `io_timeout_secs`): a store that stops
    /// answering without refusing (a frozen endpoint, a dropped network)
    /// fails each attempt at its deadline, and the retries then give up,
    /// instead of holding the request forever. A filesystem or memory
    /// store has none.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn open_with(options: &StoreOptions, timeouts: StoreTimeouts) -> Result<Store> {
        match options {
            StoreOptions::Fs { root } => Store::fs(root),
            StoreOptions::Memory => Store::memory(),
            StoreOptions::S3(o) => Ok(Store::s3_operator(o)?.resilient(timeouts)),
            StoreOptions::Gcs(o) => Ok(Store::gcs_operator(o)?.resilient(timeouts)),
        }
    }

    /// An object store's layers: a deadline per attempt (inside), then
    /// retries of temporary failures with backoff (outside, so a timed-out
    /// attempt is retried and the retry's own state is never cut).
    fn resilient(mut self, timeouts: StoreTimeouts) -> Store {
        // Object stores answer 500/503 (SlowDown) now and then; OpenDAL
        // marks those (and a timed-out attempt) temporary and this retries
        // them with backoff: 0.25, 0.5, 1, 2 and 4 s (with jitter), so that
        // a store that is down is reported within seconds per operation,
        // not minutes (OpenDAL's default delays grow to 60 s).
        self.op = self
            .op
            .layer(
                opendal::layers::TimeoutLayer::new()
                    .with_timeout(timeouts.operation)
                    .with_io_timeout(timeouts.io),
            )
            .layer(
                opendal::layers::RetryLayer::new()
                    .with_jitter()
                    .with_min_delay(std::time::Duration::from_millis(250))
                    .with_max_delay(std::time::Duration::from_secs(4))
                    .with_max_times(5),
            );
        self
    }

    fn with_operator(
        backend: &'static str,
        location: String,
        builder: impl opendal::Builder,
    ) -> Result<Store> {
        let op =
            Operator::new(builder).map_err(|source| StoreError::Backend { backend, source })?;
        Ok(Store {
            op,
            backend,
            location: location.into(),
        })
    }

    /// A directory.
    ///
    /// # Errors
    /// OpenDAL cannot set up the backend.
    pub fn fs(root: &Path) -> Result<Store> {
        let builder = opendal::services::Fs::default().root(&root.to_string_lossy());
        Store::with_operator("fs", root.display().to_string(), builder)
    }

    /// Process memory (tests, throwaway servers).
    ///
    /// # Errors
    /// OpenDAL cannot set up the backend.
    pub fn memory() -> Result<Store> {
        Store::with_operator(
            "memory",
            "process memory".into(),
            opendal::services::Memory::default(),
        )
    }

    /// An S3 bucket. Settings left out of `c` come from the AWS environment.
    ///
    /// # Errors
    /// No region anywhere, or a backend OpenDAL cannot set up.
    pub fn s3(c: &S3Options) -> Result<Store> {
        Ok(Store::s3_operator(c)?.resilient(StoreTimeouts::default()))
    }

    fn s3_operator(c: &S3Options) -> Result<Store> {
        let region = c
            .region
            .clone()
            .or_else(|| env_var("AWS_REGION"))
            .or_else(|| env_var("AWS_DEFAULT_REGION"))
            .ok_or(StoreError::Config {
                backend: "s3",
                problem: ConfigProblem::NoRegion,
            })?;
        let endpoint = c.endpoint.clone().or_else(|| env_var("AWS_ENDPOINT_URL"));
        install_http_transport();
        let mut b = opendal::services::S3::default()
            .bucket(&c.bucket)
            .region(&region)
            .root(&prefix_root(c.prefix.as_deref()));
        if let Some(e) = &endpoint {
            b = b.endpoint(e);
        }
        if let (Some(ak), Some(sk)) = (&c.access_key_id, &c.secret_access_key) {
            b = b.access_key_id(ak).secret_access_key(sk);
            if let Some(t) = &c.session_token {
                b = b.session_token(t);
            }
        }
        if c.virtual_host_style {
            b = b.enable_virtual_host_style();
        }
        let location = format!(
            "bucket {} at {}{}",
            c.bucket,
            endpoint.as_deref().unwrap_or("AWS"),
            c.prefix
                .as_deref()
                .map(|p| format!(", prefix {p}"))
                .unwrap_or_default()
        );
        Store::with_operator("s3", location, b)
    }

    /// A GCS bucket. Credentials left out of `c` come from the Google
    /// environment.
    ///
    /// # Errors
    /// A credential file that cannot be read or is not one, or a backend
    /// OpenDAL cannot set up.
    pub fn gcs(c: &GcsOptions) -> Result<Store> {
        Ok(Store::gcs_operator(c)?.resilient(StoreTimeouts::default()))
    }

    fn gcs_operator(c: &GcsOptions) -> Result<Store> {
        let config_err = |problem: ConfigProblem| StoreError::Config {
            backend: "gcs",
            problem,
        };
        install_http_transport();
        let mut b = opendal::services::Gcs::default()
            .bucket(&c.bucket)
            .root(&prefix_root(c.prefix.as_deref()));
        if let Some(e) = &c.endpoint {
            b = b.endpoint(e);
        }
        if c.allow_anonymous {
            b = b
                .skip_signature()
                .disable_vm_metadata()
                .disable_config_load();
        } else {
            let (key, path) = match &c.credential_path {
                Some(p) => ("storage.gcs.credential_path", Some(p.clone())),
                None => (
                    "GOOGLE_APPLICATION_CREDENTIALS",
                    env_var("GOOGLE_APPLICATION_CREDENTIALS").map(Into::into),
                ),
            };
            if let Some(path) = path {
                // Read it here: a bad key file is a clear error at start,
                // not a failed request later.
                let text = std::fs::read_to_string(&path).map_err(|source| {
                    config_err(ConfigProblem::CredentialFile {
                        key,
                        path: path.clone(),
                        source,
                    })
                })?;
                let kind = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v.get("type")?.as_str().map(str::to_owned));
                if kind.is_none() {
                    return Err(config_err(ConfigProblem::NotCredentialFile {
                        key,
                        path: path.clone(),
                    }));
                }
                b = b.credential_path(&path.to_string_lossy());
            }
        }
        let location = format!(
            "bucket {} at {}{}",
            c.bucket,
            c.endpoint.as_deref().unwrap_or("Google Cloud Storage"),
            c.prefix
                .as_deref()
                .map(|p| format!(", prefix {p}"))
                .unwrap_or_default()
        );
        Store::with_operator("gcs", location, b)
    }

    /// This store (and its clones made afterwards) with every backend
    /// operation going through an OpenDAL `layer`: metrics, tracing, or
    /// the operation counting of tests.
    pub fn layer<L: opendal::raw::Layer>(self, layer: L) -> Store {
        Store {
            op: self.op.layer(layer),
            ..self
        }
    }

    /// This store with OpenDAL's Prometheus layer registered in
    /// `registry`: every backend operation counted and timed by operation
    /// (`opendal_operation_*`), failures by error kind
    /// (`opendal_operation_errors_total`). The `root` label is left out
    /// (it is where the data is, not how it goes).
    pub fn with_metrics(self, registry: &mut prometheus_client::registry::Registry) -> Store {
        let layer = opendal::layers::PrometheusClientLayer::builder()
            .disable_label_root(true)
            .register(registry);
        self.layer(layer)
    }

    /// `fs`, `memory`, `s3` or `gcs`.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Where the data is: a directory, or a bucket at an endpoint.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Turns a failed probe into advice naming what to fix, by the
    /// backend and OpenDAL's error kind. (OpenDAL files S3's
    /// `NoSuchBucket` under `ConfigInvalid`: the probe's request is valid,
    /// so for S3 that kind means the bucket.)
    fn unusable(&self, doing: &'static str, source: opendal::Error) -> StoreError {
        let b = self.backend;
        let advice = match (b, source.kind()) {
            ("s3" | "gcs", ErrorKind::NotFound) => Advice::NoBucket(b),
            ("s3", ErrorKind::ConfigInvalid) => Advice::NoBucket(b),
            ("s3", ErrorKind::PermissionDenied) => Advice::S3Credentials,
            ("gcs", ErrorKind::PermissionDenied) => Advice::GcsCredentials,
            ("gcs", ErrorKind::ConfigInvalid) => Advice::Settings(b),
            ("fs", ErrorKind::PermissionDenied) => Advice::FsPermission,
            _ => Advice::Failed,
        };
        StoreError::Unusable {
            backend: b,
            location: self.location.to_string(),
            doing,
            advice,
            source,
        }
    }

    /// Proves the backend is usable: writes, reads back and deletes a probe.
    ///
    /// # Errors
    /// [`StoreError::Unusable`], saying what to fix (a missing bucket,
    /// refused credentials).
    pub async fn check(&self) -> Result<()> {
        let path = format!("tmp/probe-{}", random_id());
        self.op
            .write_with(&path, Bytes::from_static(b"btrfly"))
            .content_type("application/octet-stream")
            .await
            .map_err(|e| self.unusable("writing a probe object", e))?;
        let back = self
            .op
            .read(&path)
            .await
            .map_err(|e| self.unusable("reading the probe object back", e))?;
        self.op
            .delete(&path)
            .await
            .map_err(|e| self.unusable("deleting the probe object", e))?;
        if back.to_bytes().as_ref() != b"btrfly" {
            return Err(StoreError::ProbeMismatch { path });
        }
        Ok(())
    }
}
