//! Shared vocabulary of btrfly.
//!
//! Every other crate speaks in these types: the [`RecordingKey`] that names a
//! recorded exchange, the [`Mode`] of a session, the [`Entry`] a tag index
//! holds, the [`Adapter`] trait through which ecosystem adapters (files,
//! pip, OCI, ...) turn a request into a key, and the validated newtypes
//! ([`Sha256`], [`SessionId`], [`Tag`], [`HostPattern`], [`Origin`]) that
//! make sure what reaches a storage path or a key was checked once. The
//! control API's wire types are in [`api`], its tokens' scopes in
//! [`token`], what the explicit mirror may hold in [`mirror`].

pub mod adapter;
pub mod api;
pub mod coding;
pub mod digest;
pub mod entry;
pub mod expected;
pub mod host;
pub mod key;
pub mod mirror;
pub mod purl;
pub mod session;
pub mod token;

pub use adapter::{
    canonical_url, Adapter, Classification, DigestHint, HeadError, RequestHead, MAX_INSPECTED_BODY,
};
pub use digest::{is_sha256_hex, sha256_hex, DigestError, Sha256};
pub use entry::{Entry, FieldValue, Mutability, TagMeta, VaryRecord};
pub use expected::{ExpectedDigest, ExpectedDigestError, H1Of};
pub use host::{HostPattern, HostPatternError, Origin};
pub use key::{vary_names, vary_value, RecordingKey, BODY_VARIANCE, NEVER_VARY, VARY_PREFIX};
pub use mirror::{MirrorEntry, MirrorSource, MirrorSourceError, MirrorState};
pub use purl::{purl, purl_with};
pub use session::{
    Mode, ModeError, SessionId, SessionIdError, SessionInfo, Summary, Tag, TagError,
};
pub use token::{Scope, ScopeError, TokenId, TokenIdError, TokenName, TokenNameError};
