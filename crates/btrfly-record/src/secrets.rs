//! Nothing secret in a tag: what the recorder leaves out of what it stores.
//!
//! - **URLs**: credentials in a URL (`https://user:password@host/`) are
//!   never stored; a query is stored only as far as the recording key uses
//!   it. A key that ignores the query (pip's files, the OCI storage
//!   redirects aliased to a blob's key) stores the URL without it, so a
//!   signed query (`X-Amz-Signature`, `Signature`, `sig`, tokens) never
//!   reaches the tag; a key that holds some query parameters as variance
//!   (an OCI token request's `service`) keeps exactly those.
//! - **Response headers**: `Set-Cookie` and `Set-Cookie2` are not stored
//!   (a replayed session cookie is someone's login). Request credentials
//!   (`Authorization`, `Cookie`, `Proxy-Authorization`) never enter a key,
//!   even when a `Vary` names them: playback accepts any credential.
//! - **Token answers** (an adapter says which: OCI bearer-token answers):
//!   the token fields of the JSON body are replaced by a placeholder shaped
//!   like a JWT before the body is stored; clients only pass a token back,
//!   and playback accepts any `Authorization`.

use btrfly_core::RecordingKey;

/// Response headers never stored.
pub const UNSTORED_RESPONSE_HEADERS: &[&str] = &["set-cookie", "set-cookie2"];

/// Request headers that never enter a key, even when a `Vary` names them.
pub const UNKEYED_REQUEST_HEADERS: &[&str] = &["authorization", "cookie", "proxy-authorization"];

/// JSON fields of a token answer whose values are replaced.
pub const TOKEN_FIELDS: &[&str] = &["token", "access_token", "refresh_token", "id_token"];

/// What a stored token answer carries instead of the token: a JWT-shaped
/// value (`{"alg":"none"}` . `{"btrfly":"placeholder"}` . `placeholder`)
/// that clients pass back unread.
pub const PLACEHOLDER_TOKEN: &str =
    "eyJhbGciOiJub25lIn0.eyJidHJmbHkiOiJwbGFjZWhvbGRlciJ9.cGxhY2Vob2xkZXI";

/// Largest token answer the recorder reads whole to replace its tokens.
pub const MAX_TOKEN_ANSWER: usize = 1024 * 1024;

/// The URL to store for a request to `url` recorded under `key`: without
/// user information, and with only the query parameters the key uses (all
/// of them when the key's identity holds the query). A URL that does not
/// parse is stored as given (it never reached an upstream).
pub fn stored_url(url: &str, key: &RecordingKey) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_owned();
    };
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    if parsed.query().is_some() && !key.primary.contains('?') {
        let kept: Vec<(String, String)> = parsed
            .query_pairs()
            .filter(|(k, v)| key.variance.get(k.as_ref()) == Some(&v.to_string()))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if kept.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(kept);
        }
    }
    parsed.to_string()
}

/// A token answer's body with its tokens replaced by
/// [`PLACEHOLDER_TOKEN`]. A body that is not a JSON object becomes
/// `{"token": PLACEHOLDER}`: it is never stored as it came.
pub fn redact_token_answer(body: &[u8]) -> Vec<u8> {
    let mut value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        _ => serde_json::json!({ "token": PLACEHOLDER_TOKEN }),
    };
    if let Some(map) = value.as_object_mut() {
        for field in TOKEN_FIELDS {
            if let Some(v) = map.get_mut(*field) {
                *v = serde_json::Value::String(PLACEHOLDER_TOKEN.to_owned());
            }
        }
    }
    serde_json::to_vec(&value).unwrap_or_else(|_| PLACEHOLDER_TOKEN.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_only_what_the_key_uses() {
        let file = RecordingKey::new("pip", "GET https://files.example.test:443/p/x-1.0.tar.gz");
        assert_eq!(
            stored_url(
                "https://files.example.test/p/x-1.0.tar.gz?X-Amz-Signature=abc123&X-Amz-Credential=k",
                &file
            ),
            "https://files.example.test/p/x-1.0.tar.gz"
        );
        let exact = RecordingKey::new("files", "GET https://files.example.test:443/q?a=1&b=2");
        assert_eq!(
            stored_url("https://files.example.test/q?a=1&b=2", &exact),
            "https://files.example.test/q?a=1&b=2"
        );
        let mut token = RecordingKey::new("oci", "GET token https://auth.example.test:443/token");
        token
            .variance
            .insert("service".into(), "registry.example.test".into());
        assert_eq!(
            stored_url(
                "https://auth.example.test/token?scope=repository%3Aa%3Apull&service=registry.example.test&client_secret=s3cr3t",
                &token
            ),
            "https://auth.example.test/token?service=registry.example.test"
        );
        assert_eq!(
            stored_url("https://user:pa55word@files.example.test/x", &file),
            "https://files.example.test/x"
        );
    }

    #[test]
    fn token_answers_keep_their_shape_without_the_token() {
        let body = br#"{"token":"real-secret","access_token":"real-secret","expires_in":300,"issued_at":"2026-01-01T00:00:00Z"}"#;
        let out = redact_token_answer(body);
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("real-secret"), "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["token"], PLACEHOLDER_TOKEN);
        assert_eq!(v["access_token"], PLACEHOLDER_TOKEN);
        assert_eq!(v["expires_in"], 300);
        let odd = redact_token_answer(b"not json real-secret");
        assert!(!String::from_utf8_lossy(&odd).contains("real-secret"));
    }
}
