//! `POST /v1/review`: a candidate's answer rated against a corpus question or ad-hoc references,
//! rate-limited per client because each review embeds the whole answer.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::Json;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, ApiJson, AppState, ErrorCode};
use super::openapi::NOT_BLANK;
use crate::review::{Target, MAX_ANSWER_CHARS, MAX_REFERENCES, MAX_REFERENCE_CHARS};

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

    /// Refuses a client over its quota, with `Retry-After` saying when its next review is allowed.
    fn check(&self, client: Option<IpAddr>) -> Result<(), ApiError> {
        self.0.check_key(&client).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.0.clock().now());
            ApiError::new(ErrorCode::RateLimited, "this client asked for too many reviews; retry after the Retry-After delay").retry_after(wait)
        })
    }
}

/// Longest ad-hoc question: a question, not a document (a corpus question is under 300; public
/// graded sets have questions with context of up to about 1,100).
pub(super) const MAX_AD_HOC_QUESTION_CHARS: usize = crate::review::MAX_QUESTION_CHARS;

/// Either a corpus question by id, or an ad-hoc question with its own references.
#[derive(Debug, Deserialize)]
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

/// Most key points of an ad-hoc review, and their length, as `review` validates them.
const MAX_KEY_POINTS: usize = 12;
const MAX_KEY_POINT_CHARS: usize = 300;

impl utoipa::ToSchema for ReviewBody {}

/// Written out because the two shapes exclude each other, which serde's one struct cannot say.
impl utoipa::PartialSchema for ReviewBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let text = |max_chars: usize| json!({"type": "string", "minLength": 1, "maxLength": max_chars, "pattern": NOT_BLANK});
        let answer = text(MAX_ANSWER_CHARS);
        let schema = json!({
            "description": "Either a corpus question by id, or an ad-hoc question with its own references.",
            "oneOf": [
                {
                    "title": "CorpusReview",
                    "type": "object",
                    "required": ["question_id", "answer"],
                    "additionalProperties": false,
                    "properties": {
                        "question_id": {"type": "string"},
                        "answer": answer,
                        "references": {"type": "array", "items": {"type": "string"}, "maxItems": 0},
                        "key_points": {"type": "array", "items": {"type": "string"}, "maxItems": 0},
                    },
                },
                {
                    "title": "AdHocReview",
                    "type": "object",
                    "required": ["question", "references", "answer"],
                    "additionalProperties": false,
                    "properties": {
                        "question": text(MAX_AD_HOC_QUESTION_CHARS),
                        "references": {"type": "array", "items": text(MAX_REFERENCE_CHARS), "minItems": 1, "maxItems": MAX_REFERENCES},
                        "key_points": {"type": "array", "items": text(MAX_KEY_POINT_CHARS), "maxItems": MAX_KEY_POINTS},
                        "answer": answer,
                    },
                },
            ],
        });
        serde_json::from_value(schema).expect("the review body schema is a valid schema")
    }
}

impl ReviewBody {
    fn target(self) -> Result<(Target, String), ApiError> {
        let invalid = |detail: String| ApiError::new(ErrorCode::InvalidReview, detail);
        match (self.question_id, self.question) {
            (Some(id), None) if self.references.is_empty() && self.key_points.is_empty() => Ok((Target::Corpus(id), self.answer)),
            (Some(_), None) => Err(invalid("references and key_points go with an ad-hoc question, not with question_id".into())),
            (None, Some(question)) if question.chars().count() > MAX_AD_HOC_QUESTION_CHARS => {
                Err(invalid(format!("the question has more than {MAX_AD_HOC_QUESTION_CHARS} characters")))
            }
            (None, Some(question)) => {
                Ok((Target::AdHoc { question, references: self.references, key_points: self.key_points }, self.answer))
            }
            (Some(_), Some(_)) => Err(invalid("give either question_id or question, not both".into())),
            (None, None) => Err(invalid("give question_id, or question with references".into())),
        }
    }
}

/// Rates an answer: score, band, key points covered or missed with evidence, flags, feedback.
#[utoipa::path(post, path = "/v1/review", request_body = ReviewBody, responses(
    (status = 200, body = crate::review::Review),
    (status = 400, description = "malformed JSON, an unreadable body, or a blank or over-long answer", body = super::error::Problem),
    (status = 404, description = "no question with this id", body = super::error::Problem),
    (status = 413, description = "the body is over 64 KiB", body = super::error::Problem),
    (status = 415, description = "the body is not application/json", body = super::error::Problem),
    (status = 422, description = "a body of the wrong shape, or both or neither of question_id and question", body = super::error::Problem),
    (status = 429, description = "too many reviews from this client", body = super::error::Problem),
    (status = 503, description = "no job slot freed in time", body = super::error::Problem),
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
