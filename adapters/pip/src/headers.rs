//! Response heads, normalised while recording.
//!
//! A recorded head is replayed for as long as the tag lives, so the parts
//! that only describe the moment of the fetch or the edge that served it
//! are dropped, and caching is restated for what btrfly guarantees:
//!
//! - **per-fetch headers** (`Date`, `Age`, `Expires`, `Set-Cookie`, `Via`,
//!   CDN and request-id headers, `Alt-Svc`, reporting headers): dropped.
//!   A replay months later must not claim to be from then, advertise an
//!   upstream endpoint or set the upstream's cookies.
//! - **validators** (`ETag`, `Last-Modified`): dropped. They differ between
//!   mirrors and edges for the same bytes, and a client that revalidates
//!   with them against another tag's recording would keep a stale copy.
//! - **`Cache-Control`/`Pragma`**: an index page is frozen per tag, and
//!   another tag may hold another version of it, so pages become
//!   `no-cache` (a caching client asks again and gets the tag's page).
//!   A distribution file never changes: a successful file response becomes
//!   `max-age=31536000, immutable`.
//!
//! Everything else (content type and encoding, `Vary`, the index's own
//! headers such as `X-PyPI-Last-Serial`, which describe the body) is kept.

use btrfly_core::Mutability;
use http::header::{HeaderMap, HeaderValue, CACHE_CONTROL, PRAGMA};

/// Headers about the fetch, not the resource.
pub const VOLATILE: &[&str] = &[
    "date",
    "age",
    "expires",
    "set-cookie",
    "via",
    "etag",
    "last-modified",
    "x-cache",
    "x-cache-hits",
    "x-served-by",
    "x-timer",
    "x-request-id",
    "x-amz-request-id",
    "x-amz-id-2",
    "x-amz-cf-id",
    "x-amz-cf-pop",
    "cf-ray",
    "cf-cache-status",
    "server-timing",
    "alt-svc",
    "report-to",
    "nel",
];

/// A page: revalidate every time. (`no-cache`, not `no-store`: nothing
/// secret is in it, it just must not be reused without asking.)
pub const PAGE_CACHE_CONTROL: &str = "no-cache";
/// A distribution file: the same bytes forever.
pub const FILE_CACHE_CONTROL: &str = "max-age=31536000, immutable";

/// Normalises a response head in place; applying it twice changes nothing
/// more.
pub fn normalize(mutability: Mutability, status: u16, headers: &mut HeaderMap) {
    for name in VOLATILE {
        headers.remove(*name);
    }
    headers.remove(PRAGMA);
    let cache = match mutability {
        Mutability::Immutable if matches!(status, 200 | 206) => FILE_CACHE_CONTROL,
        _ => PAGE_CACHE_CONTROL,
    };
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
}
