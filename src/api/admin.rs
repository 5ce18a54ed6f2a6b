//! Admin writes: `POST /v1/questions` (create or replace) and `DELETE /v1/questions/{id}`.
//! A write is validated like the corpus loader, written back to its corpus file, indexed into a
//! new generation (reusing every unchanged embedding) and only then swapped in; a failed build
//! restores the file, so the corpus on disk and the index served never disagree for long.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::auth::WriteAccess;
use super::{on_blocking_pool, ApiError, ApiJson, ApiPath, AppState};
use crate::corpus::{Corpus, QuestionEntry};
use crate::error::{InternalError, UserError};
use crate::search::Engine;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpsertBody {
    topic: String,
    question: QuestionEntry,
}

enum Change {
    Upsert { topic: String, entry: QuestionEntry },
    Delete { id: String },
}

impl AppState {
    /// Applies one change end to end; the caller holds the write lock.
    fn apply(&self, change: Change) -> Result<(), ApiError> {
        let engine = self.engine();
        let (corpus, topic): (Corpus, String) = match change {
            Change::Upsert { topic, entry } => {
                (engine.corpus.with_upserted(&topic, entry).map_err(UserError::InvalidEntry)?, topic)
            }
            Change::Delete { id } => {
                let question = engine.corpus.get(&id).ok_or_else(|| UserError::QuestionNotFound(id.clone()))?;
                let topic = question.topic.clone();
                (engine.corpus.without(&id).map_err(UserError::QuestionInUse)?, topic)
            }
        };
        corpus.write_topic_file(&topic).map_err(InternalError::io("write the corpus file"))?;
        let generation = match self.index.build(&corpus, engine.embedder.as_ref()) {
            Ok(generation) => generation,
            Err(error) => {
                if let Err(restore) = engine.corpus.write_topic_file(&topic) {
                    tracing::error!(error = %restore, topic, "could not restore the corpus file after a failed build");
                }
                return Err(error.into());
            }
        };
        self.replace_engine(Engine {
            corpus: Arc::new(corpus),
            generation: Arc::new(generation),
            embedder: engine.embedder.clone(),
            fusion: engine.fusion,
        });
        Ok(())
    }

    async fn write(self: Arc<Self>, change: Change) -> Result<(), ApiError> {
        let _one_writer = self.writes.lock().await;
        let state = self.clone();
        on_blocking_pool(move || state.apply(change)).await
    }
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
    let existed = state.engine().corpus.get(&id).is_some();
    state.clone().write(Change::Upsert { topic: body.topic, entry: body.question }).await?;
    tracing::info!(id, existed, "question upserted");
    let engine = state.engine();
    let question = engine.corpus.get(&id).ok_or_else(ApiError::internal)?;
    let status = if existed { StatusCode::OK } else { StatusCode::CREATED };
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
    state.clone().write(Change::Delete { id: id.clone() }).await?;
    tracing::info!(id, "question deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}
