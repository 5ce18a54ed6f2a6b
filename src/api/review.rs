//! `POST /v1/review`: a candidate's answer rated against a corpus question or ad-hoc references,
//! rate-limited per client because each review embeds the whole answer.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;

use super::{ApiError, ApiJson, AppState};
use crate::review::Target;

/// The peer's IP address when the server was started with connect info (tests use none).
pub(super) struct ClientIp(Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(address)| address.ip())))
    }
}

/// Per-client token buckets; a client is its IP address (requests without one share a bucket).
pub(super) struct ClientLimiter(DefaultKeyedRateLimiter<Option<IpAddr>>);

impl ClientLimiter {
    pub(super) fn new(per_minute: NonZeroU32) -> ClientLimiter {
        ClientLimiter(RateLimiter::keyed(Quota::per_minute(per_minute)))
    }

    fn check(&self, client: Option<IpAddr>) -> Result<(), ApiError> {
        self.0.check_key(&client).map_err(|_| {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "Too many reviews", "this client asked for too many reviews; retry in a minute")
        })
    }
}

/// Either a corpus question by id, or an ad-hoc question with its own references.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ReviewBody {
    question_id: Option<String>,
    question: Option<String>,
    #[serde(default)]
    references: Vec<String>,
    #[serde(default)]
    key_points: Vec<String>,
    answer: String,
}

impl ReviewBody {
    fn target(self) -> Result<(Target, String), ApiError> {
        let invalid = |detail: &str| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_review", "Invalid review request", detail);
        match (self.question_id, self.question) {
            (Some(id), None) if self.references.is_empty() && self.key_points.is_empty() => Ok((Target::Corpus(id), self.answer)),
            (Some(_), None) => Err(invalid("references and key_points go with an ad-hoc question, not with question_id")),
            (None, Some(question)) => {
                Ok((Target::AdHoc { question, references: self.references, key_points: self.key_points }, self.answer))
            }
            (Some(_), Some(_)) => Err(invalid("give either question_id or question, not both")),
            (None, None) => Err(invalid("give question_id, or question with references")),
        }
    }
}

/// Rates an answer: score, band, key points covered or missed with evidence, flags, feedback.
#[utoipa::path(post, path = "/v1/review", request_body = ReviewBody, responses(
    (status = 200, body = crate::review::Review),
    (status = 400, description = "invalid_json, invalid_answer", body = super::error::Problem),
    (status = 404, description = "question_not_found", body = super::error::Problem),
    (status = 413, description = "payload_too_large", body = super::error::Problem),
    (status = 415, description = "unsupported_media_type", body = super::error::Problem),
    (status = 422, description = "invalid_body, invalid_review", body = super::error::Problem),
    (status = 429, description = "rate_limited", body = super::error::Problem),
    (status = 503, description = "overloaded", body = super::error::Problem),
))]
pub(super) async fn review(
    State(state): State<Arc<AppState>>,
    ClientIp(client): ClientIp,
    ApiJson(body): ApiJson<ReviewBody>,
) -> Result<Response, ApiError> {
    state.review_limiter.check(client)?;
    let (target, answer) = body.target()?;
    let verdict = state.run_cpu(move |engine| engine.review(&target, &answer).map_err(ApiError::from)).await?;
    Ok(Json(verdict).into_response())
}
