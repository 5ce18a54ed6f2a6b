//! Admin writes: `POST /v1/questions` (create or replace) and `DELETE /v1/questions/{id}`.
//! Each goes to the engine's single writer (`Engine::apply_async`), which validates it like the
//! corpus loader, makes the corpus files durable, indexes a new generation and swaps it in before
//! the request is answered; a client that hangs up early changes nothing about the outcome.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{ApiError, ApiJson, AppState};
use crate::corpus::QuestionEntry;
use crate::engine::Change;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpsertBody {
    topic: String,
    question: QuestionEntry,
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if state.config.api_keys.is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "writes_disabled",
            "Writes are disabled",
            "this server has no API keys configured (ASKMARK_API_KEYS), so it refuses writes",
        ));
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match presented {
        Some(key) if state.config.api_keys.iter().any(|allowed| constant_time_eq(allowed.as_bytes(), key.as_bytes())) => Ok(()),
        _ => Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", "send Authorization: Bearer <api key>")),
    }
}

/// Compares without an early exit, so timing does not reveal how much of a key matched.
fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len() && left.iter().zip(right).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// Creates or replaces a question (validated like the corpus files), indexes it and writes it back.
#[utoipa::path(post, path = "/v1/questions", request_body = UpsertBody, security(("api_key" = [])), responses(
    (status = 200, description = "replaced", body = crate::corpus::Question),
    (status = 201, description = "created", body = crate::corpus::Question),
    (status = 401, description = "unauthorized", body = super::error::Problem),
    (status = 403, description = "writes_disabled", body = super::error::Problem),
    (status = 422, description = "invalid_entry, with every problem", body = super::error::Problem),
))]
pub(super) async fn upsert_question(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<UpsertBody>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let id = body.question.id.clone();
    let applied = state.engine().apply_async(Change::Upsert { topic: body.topic, entry: body.question }).await?;
    tracing::info!(id, created = applied.created, "question upserted");
    let question = applied.question.ok_or_else(ApiError::internal)?;
    let status = if applied.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(question)).into_response())
}

/// Deletes a question no other question names as a follow-up.
#[utoipa::path(delete, path = "/v1/questions/{id}", params(("id" = String, Path)), security(("api_key" = [])), responses(
    (status = 204, description = "deleted"),
    (status = 401, description = "unauthorized", body = super::error::Problem),
    (status = 404, description = "question_not_found", body = super::error::Problem),
    (status = 409, description = "question_in_use", body = super::error::Problem),
))]
pub(super) async fn delete_question(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    state.engine().apply_async(Change::Delete { id: id.clone() }).await?;
    tracing::info!(id, "question deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}
