//! Which backend a store uses and how to reach it: the store's own option
//! types, so that it knows nothing of btrfly's configuration file (the
//! server maps `[storage]` onto them).

use std::path::PathBuf;

/// The backend of a store.
#[derive(Clone, Debug)]
pub enum StoreOptions {
    /// A directory.
    Fs {
        /// Where blobs and tag indexes live.
        root: PathBuf,
    },
    /// Process memory.
    Memory,
    /// An S3 (or S3-compatible) bucket.
    S3(S3Options),
    /// A Google Cloud Storage bucket.
    Gcs(GcsOptions),
}

/// An S3 bucket. What is left out comes from the usual AWS environment
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
/// `AWS_REGION` or `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`).
#[derive(Clone, Debug, Default)]
pub struct S3Options {
    /// The bucket.
    pub bucket: String,
    /// `http(s)://host:port` of the S3 API.
    pub endpoint: Option<String>,
    /// Signing region.
    pub region: Option<String>,
    /// Key prefix inside the bucket.
    pub prefix: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Session token.
    pub session_token: Option<String>,
    /// `bucket.host/key` requests instead of `host/bucket/key`.
    pub virtual_host_style: bool,
}

/// A Google Cloud Storage bucket. Credentials left out come from
/// `GOOGLE_APPLICATION_CREDENTIALS`, the gcloud well-known file, then the
/// VM metadata server.
#[derive(Clone, Debug, Default)]
pub struct GcsOptions {
    /// The bucket.
    pub bucket: String,
    /// `http(s)://host:port` of the JSON API.
    pub endpoint: Option<String>,
    /// Key prefix inside the bucket.
    pub prefix: Option<String>,
    /// A service-account (or authorized-user) JSON key file.
    pub credential_path: Option<PathBuf>,
    /// Send unsigned requests (an emulator).
    pub allow_anonymous: bool,
}

/// Deadlines of an object store's operations (S3, GCS), per attempt: each
/// attempt that passes its deadline fails as temporary and is retried (up
/// to 5 times, with backoff), then the operation fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreTimeouts {
    /// `stat`, `delete` and other operations without a body. Default 30 s.
    pub operation: std::time::Duration,
    /// Opening a read, write or listing, and each call on it (a chunk
    /// read or written): a deadline per call, so a large blob that keeps
    /// moving is never cut. Default 10 s.
    pub io: std::time::Duration,
}

impl Default for StoreTimeouts {
    fn default() -> Self {
        StoreTimeouts {
            operation: std::time::Duration::from_secs(30),
            io: std::time::Duration::from_secs(10),
        }
    }
}
