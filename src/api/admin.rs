//! Admin writes: `POST /v1/questions` (create or replace) and `DELETE /v1/questions/{id}`.
//! Each goes to the engine's single writer (`Engine::apply_async`), which validates it like the
//! corpus loader, makes the corpus files durable, indexes a new generation and swaps it in before
//! the request is answered; a client that hangs up early changes nothing about the outcome.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::auth::WriteAccess;
use super::{ApiError, ApiJson, ApiPath, AppState};
use crate::corpus::QuestionEntry;
use crate::engine::Change;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpsertBody {
    topic: String,
    question: QuestionEntry,
}

/// Creates or replaces a question (validated like the corpus files), indexes it and writes it back.
#[utoipa::path(post, path = "/v1/questions", request_body = UpsertBody, security(("api_key" = [])), responses(
    (status = 200, description = "replaced", body = crate::corpus::Question),
    (status = 201, description = "created", body = crate::corpus::Question),
    (status = 400, description = "malformed JSON or an unreadable body", body = super::error::Problem),
    (status = 401, description = "no valid bearer key", body = super::error::Problem),
    (status = 403, description = "the server has no API keys", body = super::error::Problem),
    (status = 413, description = "the body is over 64 KiB", body = super::error::Problem),
    (status = 415, description = "the body is not application/json", body = super::error::Problem),
    (status = 422, description = "a body of the wrong shape, or an entry that breaks the corpus rules (every problem listed)", body = super::error::Problem),
))]
pub(super) async fn upsert_question(
    State(state): State<Arc<AppState>>,
    _access: WriteAccess,
    ApiJson(body): ApiJson<UpsertBody>,
) -> Result<Response, ApiError> {
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
    (status = 400, description = "an id that is not UTF-8 once decoded", body = super::error::Problem),
    (status = 401, description = "no valid bearer key", body = super::error::Problem),
    (status = 403, description = "the server has no API keys", body = super::error::Problem),
    (status = 404, description = "no question with this id", body = super::error::Problem),
    (status = 409, description = "another question names it as a follow-up", body = super::error::Problem),
))]
pub(super) async fn delete_question(
    State(state): State<Arc<AppState>>,
    _access: WriteAccess,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    state.engine().apply_async(Change::Delete { id: id.clone() }).await?;
    tracing::info!(id, "question deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}
