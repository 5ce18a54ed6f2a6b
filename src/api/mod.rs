//! The HTTP layer: thin axum handlers over the core `Engine`. CPU work (embedding, index search)
//! runs on the blocking pool behind a bounded number of permits; when they are all taken the
//! request gets a fast 503 `overloaded` instead of waiting in an unbounded queue.

mod error;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;

use crate::corpus::Difficulty;
use crate::review::Target;
use crate::search::{Engine, Mode, SearchRequest};
use crate::vectors::SearchFilter;

/// Largest request body accepted; a review answer is at most 10 000 characters.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub struct AppState {
    engine: RwLock<Arc<Engine>>,
    cpu_permits: Arc<Semaphore>,
}

impl AppState {
    /// `max_cpu_jobs` bounds concurrent embedding/search work (running plus waiting for a core).
    pub fn new(engine: Engine, max_cpu_jobs: usize) -> Arc<AppState> {
        Arc::new(AppState { engine: RwLock::new(Arc::new(engine)), cpu_permits: Arc::new(Semaphore::new(max_cpu_jobs.max(1))) })
    }

    pub fn engine(&self) -> Arc<Engine> {
        self.engine.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Runs CPU-bound work on the blocking pool, with the caller's tracing span, if a permit is free.
    async fn run_cpu<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        F: FnOnce(&Engine) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let permit = self.cpu_permits.clone().try_acquire_owned().map_err(|_| ApiError::overloaded())?;
        let engine = self.engine();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let _permit = permit;
            work(&engine)
        })
        .await
        .map_err(|join_error| {
            tracing::error!(error = %join_error, "blocking task failed");
            ApiError::internal()
        })?
    }
}

/// `Json` with rejections in the problem+json shape: malformed JSON, a wrong content type, a
/// body over the limit and fields that do not fit each get their own code.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::rejection::JsonRejection;
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => {
                let detail = rejection.body_text();
                Err(match rejection {
                    JsonRejection::MissingJsonContentType(_) => ApiError::new(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "unsupported_media_type",
                        "Unsupported media type",
                        "send the body as application/json",
                    ),
                    JsonRejection::JsonSyntaxError(_) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", "Malformed JSON", detail),
                    JsonRejection::JsonDataError(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", "Invalid request body", detail),
                    JsonRejection::BytesRejection(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        "Payload too large",
                        format!("the request body is over {MAX_BODY_BYTES} bytes"),
                    ),
                    _ => ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", "Invalid request body", detail),
                })
            }
        }
    }
}

/// `Query` with rejections in the problem+json shape.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| ApiError::invalid_query(rejection.body_text()))
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/search", get(search))
        .route("/v1/topics", get(topics))
        .route("/v1/questions/{id}", get(question))
        .route("/v1/questions/{id}/related", get(related))
        .route("/v1/review", axum::routing::post(review))
        .fallback(|| async { ApiError::not_found_route() })
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CompressionLayer::new())
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, Duration::from_secs(30)))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let engine = state.engine();
    let vectors = engine.generation.vectors.count().map_err(|error| ApiError::not_ready(error.to_string()))?;
    Ok(Json(serde_json::json!({
        "status": "ready",
        "questions": engine.corpus.questions().len(),
        "lexical_documents": engine.generation.lexical.num_docs(),
        "vectors": vectors,
        "vector_store": engine.generation.vectors.describe(),
        "model": engine.embedder.model().id,
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchParams {
    q: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
    topic: Option<String>,
    difficulty: Option<String>,
    tags: Option<String>,
    mode: Option<String>,
}

impl SearchParams {
    fn into_request(self) -> Result<SearchRequest, ApiError> {
        let query = self.q.ok_or_else(|| ApiError::invalid_query("the q parameter is required"))?;
        let mode = match self.mode.as_deref() {
            None => Mode::Hybrid,
            Some(text) => Mode::parse(text).ok_or_else(|| ApiError::invalid_query("mode must be hybrid, lexical or semantic"))?,
        };
        let difficulty = match self.difficulty.as_deref() {
            None => None,
            Some(text) => Some(Difficulty::parse(text).ok_or_else(|| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_filter", "Invalid filter", "difficulty must be junior, mid or senior")
            })?),
        };
        let tags = self
            .tags
            .map(|tags| tags.split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect())
            .unwrap_or_default();
        Ok(SearchRequest {
            query,
            mode,
            filter: SearchFilter { topic: self.topic, difficulty, tags },
            limit: self.limit.unwrap_or(10),
            offset: self.offset.unwrap_or(0),
        })
    }
}

async fn search(State(state): State<Arc<AppState>>, ApiQuery(params): ApiQuery<SearchParams>) -> Result<Response, ApiError> {
    let request = params.into_request()?;
    let results = state.run_cpu(move |engine| engine.search(&request).map_err(ApiError::from)).await?;
    Ok(Json(results).into_response())
}

#[derive(Serialize)]
struct TopicSummary<'a> {
    id: &'a str,
    title: &'a str,
    questions: usize,
}

async fn topics(State(state): State<Arc<AppState>>) -> Response {
    let engine = state.engine();
    let topics: Vec<TopicSummary> = engine
        .corpus
        .topic_counts()
        .into_iter()
        .map(|(topic, questions)| TopicSummary { id: &topic.id, title: &topic.title, questions })
        .collect();
    Json(serde_json::json!({ "topics": topics })).into_response()
}

#[derive(Serialize)]
struct FollowUpRef<'a> {
    id: &'a str,
    question: &'a str,
}

async fn question(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let engine = state.engine();
    let question = engine.corpus.get(&id).ok_or(crate::error::UserError::QuestionNotFound(id.clone()))?;
    let follow_ups: Vec<FollowUpRef> = question
        .entry
        .follow_ups
        .iter()
        .filter_map(|id| engine.corpus.get(id).map(|q| FollowUpRef { id: &q.entry.id, question: &q.entry.question }))
        .collect();
    let mut body = serde_json::to_value(question).map_err(|_| ApiError::internal())?;
    body["follow_ups"] = serde_json::to_value(follow_ups).map_err(|_| ApiError::internal())?;
    Ok(Json(body).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RelatedParams {
    limit: Option<usize>,
}

async fn related(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<RelatedParams>,
) -> Result<Response, ApiError> {
    let limit = params.limit.unwrap_or(5);
    let results = state.run_cpu(move |engine| engine.related(&id, limit).map_err(ApiError::from)).await?;
    Ok(Json(serde_json::json!({ "results": results })).into_response())
}

/// Either a corpus question by id, or an ad-hoc question with its own references.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewBody {
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

async fn review(State(state): State<Arc<AppState>>, ApiJson(body): ApiJson<ReviewBody>) -> Result<Response, ApiError> {
    let (target, answer) = body.target()?;
    let verdict = state.run_cpu(move |engine| engine.review(&target, &answer).map_err(ApiError::from)).await?;
    Ok(Json(verdict).into_response())
}
