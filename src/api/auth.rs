//! Who may write: bearer keys from `ASKMARK_API_KEYS`, checked before a write's body is read, so
//! an anonymous client learns nothing about the body's schema.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState, ErrorCode};

/// The configured keys, blanks dropped; `Err` when keys were given but every one is blank
/// (`", ,"`), which would otherwise look like a server with writes enabled.
pub fn api_keys(configured: &[String]) -> Result<Vec<String>, BlankApiKeys> {
    let keys: Vec<String> = configured.iter().map(|key| key.trim()).filter(|key| !key.is_empty()).map(String::from).collect();
    if keys.is_empty() && !configured.is_empty() {
        return Err(BlankApiKeys);
    }
    Ok(keys)
}

#[derive(Debug, thiserror::Error)]
#[error("every API key given is blank; give real keys or none (writes are then refused)")]
pub struct BlankApiKeys;

/// Proof that the request carries an allowed bearer key; extract it before the body.
pub(super) struct WriteAccess;

impl FromRequestParts<Arc<AppState>> for WriteAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let allowed = &state.config.api_keys;
        if allowed.is_empty() {
            return Err(ApiError::new(
                ErrorCode::WritesDisabled,
                "this server has no API keys configured (ASKMARK_API_KEYS), so it refuses writes",
            ));
        }
        let presented = parts.headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok()).and_then(bearer_token);
        match presented {
            Some(key) if is_allowed(allowed, key) => Ok(WriteAccess),
            _ => Err(ApiError::new(ErrorCode::Unauthorized, "send Authorization: Bearer <api key>")),
        }
    }
}

/// The token of a `Bearer` credential; the scheme is case-insensitive (RFC 9110 §11.1).
fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Compares digests in constant time against every key, so neither the length of a key nor how
/// much of it matched shows in the timing.
fn is_allowed(allowed: &[String], presented: &str) -> bool {
    let presented = Sha256::digest(presented.as_bytes());
    let matches = allowed.iter().fold(subtle::Choice::from(0), |found, key| found | Sha256::digest(key.as_bytes()).ct_eq(&presented));
    matches.into()
}
