//! What goes wrong in the store, and what to fix.

use btrfly_core::Sha256;

/// What went wrong in the store; every variant names where.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be set up.
    #[error("storage backend {backend}: {source}")]
    Backend {
        /// `fs`, `memory`, `s3` or `gcs`.
        backend: &'static str,
        /// What OpenDAL said.
        source: opendal::Error,
    },
    /// An operation on an object failed.
    #[error("storage {op} {path}: {source}")]
    Io {
        /// `read`, `write`, `list`, …
        op: &'static str,
        /// The object.
        path: String,
        /// What OpenDAL said.
        source: opendal::Error,
    },
    /// An object does not hold the JSON it should.
    #[error("storage: {path} holds malformed data: {source}")]
    Malformed {
        /// The object.
        path: String,
        /// What the parser said.
        source: serde_json::Error,
    },
    /// Reading an object's bytes failed midway.
    #[error("storage: reading {path}: {source}")]
    Read {
        /// The object.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The start-up probe read back other bytes than it wrote.
    #[error("storage: the probe object {path} read back different bytes")]
    ProbeMismatch {
        /// The probe object.
        path: String,
    },
    /// A name that cannot name a storage object (it was not checked
    /// where it came from).
    #[error("storage: invalid {what} {name:?}")]
    InvalidName {
        /// What it should name.
        what: &'static str,
        /// The name as given.
        name: String,
    },
    /// An object created "if not exists" kept being removed and created
    /// again by others while this tried.
    #[error("storage: {0} kept changing while this replica tried to create it; try again")]
    Contended(String),
    /// A blob an entry points at is not there.
    #[error("storage: blob {0} is missing")]
    MissingBlob(Sha256),
    /// A body did not have the digest it was written with.
    #[error("storage: body digest mismatch: expected sha256 {expected}, got {actual}")]
    DigestMismatch {
        /// The digest expected.
        expected: Sha256,
        /// The digest of what was written.
        actual: Sha256,
    },
    /// A token answer too large to be read whole and have its tokens
    /// replaced (btrfly-record's `secrets`).
    #[error("storage: a token answer larger than {0} bytes is not recorded")]
    TokenAnswerTooLarge(u64),
    /// A body's writer went away before the body ended.
    #[error("storage: recording aborted before the body ended")]
    Aborted,
    /// The configuration cannot work (found before any request is made).
    #[error("storage backend {backend}: {problem}")]
    Config {
        /// `s3` or `gcs`.
        backend: &'static str,
        /// What to fix.
        problem: ConfigProblem,
    },
    /// The start-up probe failed; `advice` says what to fix.
    #[error("storage backend {backend} ({location}): {doing}: {advice}")]
    Unusable {
        /// `fs`, `s3`, `gcs`.
        backend: &'static str,
        /// The directory, or the bucket and endpoint.
        location: String,
        /// What the probe was doing.
        doing: &'static str,
        /// What to fix.
        advice: Advice,
        /// What OpenDAL said.
        source: opendal::Error,
    },
}

/// A store configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigProblem {
    /// S3 without a region.
    #[error("no region: set storage.s3.region, or AWS_REGION in the environment")]
    NoRegion,
    /// A credential file that cannot be read.
    #[error("{key} {}: cannot read it: {source}", path.display())]
    CredentialFile {
        /// Where the path came from.
        key: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// Why it cannot be read.
        source: std::io::Error,
    },
    /// A file that is not a Google credential.
    #[error("{key} {}: not a Google credential file (JSON with a \"type\", e.g. a service-account key)", path.display())]
    NotCredentialFile {
        /// Where the path came from.
        key: &'static str,
        /// The file.
        path: std::path::PathBuf,
    },
}

/// What to fix when the start-up probe fails, by backend and error kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advice {
    /// The bucket does not exist.
    NoBucket(&'static str),
    /// S3 refused the credentials.
    S3Credentials,
    /// GCS refused the credentials.
    GcsCredentials,
    /// The bucket's settings do not work.
    Settings(&'static str),
    /// The directory is not writable.
    FsPermission,
    /// Nothing more specific is known.
    Failed,
}

impl std::fmt::Display for Advice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Advice::NoBucket(b) => write!(f, "the bucket does not exist (create it, or fix storage.{b}.bucket)"),
            Advice::S3Credentials => f.write_str("the credentials were refused (check storage.s3.access_key_id and secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"),
            Advice::GcsCredentials => f.write_str("the credentials were refused (check storage.gcs.credential_path or GOOGLE_APPLICATION_CREDENTIALS)"),
            Advice::Settings(b) => write!(f, "the [storage.{b}] settings do not work"),
            Advice::FsPermission => f.write_str("permission denied (fix storage.root or its permissions)"),
            Advice::Failed => f.write_str("failed"),
        }
    }
}

/// A store result.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An operation on `path` failed.
pub(crate) fn io<'a>(
    op: &'static str,
    path: &'a str,
) -> impl FnOnce(opendal::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}
