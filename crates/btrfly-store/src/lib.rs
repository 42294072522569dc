//! btrfly's storage, through OpenDAL.
//!
//! Layout of the object namespace (the same on every backend):
//!
//! ```text
//! blobs/sha256/<2 hex>/<64 hex>      response bodies, content-addressed, shared by all tags
//! tmp/<random>                       bodies being written; renamed into blobs/ once hashed
//! tags/<tag>/meta.json               TagMeta: created, sealed
//! tags/<tag>/entries/<key id>.json   one Entry per recorded exchange
//! tags/<tag>/index.json              all entries of a sealed tag in one object (a snapshot)
//! tags/<tag>/recorder.json          RecorderLease: the one record session recording the tag (created if not exists)
//! tags/<tag>/recorder-takeover/<id>.json  a replica's claim to remove the stale lease of session <id>
//! tags/<tag>/vary/<key id>/<n>.json  VaryRecord: request headers that select among a key's answers
//! sessions/<id>.json                 SessionInfo of running sessions
//! sessions/<id>/stats/<replica>.json one replica's counters for a session
//! identity.json                      the CA certificate and token digest every replica shares
//! tokens/<id>.json                   a control token: name, scope, sha256 of its secret
//! mirror/<id>.json                   an explicit mirror entry: source, note, who, state (never purged)
//! ```
//!
//! Commit protocol: a body is streamed into `tmp/`, hashed on the way; only
//! when the whole body arrived is it moved to its content address, and only
//! after that is the entry that points at it written. A reader therefore
//! never finds an entry whose blob is missing or partial, and a crashed
//! recording leaves at most garbage under `tmp/`. One object per entry means
//! concurrent writers never read-modify-write a shared index.
//!
//! Across replicas on one bucket the same rules make every write safe
//! without locks: two replicas storing the same body write two temp objects
//! and copy identical bytes to the same address (object stores replace an
//! object atomically, so a reader sees one whole copy); two replicas
//! committing the same key write two complete entries and the last one
//! stays; different keys never touch the same object. Sealing writes the
//! snapshot `index.json` first and then `meta.json` with the same
//! `sealed_at`; the snapshot is trusted only when the two agree, so a
//! re-recorded (`--force`) or half-sealed tag falls back to its entries.

mod backends;
mod blobs;
mod error;
mod identity;
mod integrity;
mod layout;
mod mirror;
mod options;
mod recorder;
mod sessions;
mod store;
mod tokens;
mod writer;

pub use error::{Advice, ConfigProblem, Result, StoreError};
pub use identity::{Identity, IdentityCheck};
pub use integrity::{is_blob_fault, EntryRef, ListedBlob, Sweep, DEFAULT_SWEEP_AGE};
pub use options::{GcsOptions, S3Options, StoreOptions, StoreTimeouts};
pub use recorder::RecorderLease;
pub use store::{BlobStream, Store, TagIndex};
pub use tokens::TokenRecord;
pub use writer::{BlobWriter, StoredBlob};
