//! Read-only endpoints: health, search, topics, questions and related questions.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::Problem;
use super::{on_blocking_pool, ApiError, ApiPath, ApiQuery, AppState, ErrorCode};
use crate::corpus::{Difficulty, Question, Source};
use crate::error::UserError;
use crate::search::{Mode, RelatedHit, SearchRequest, SearchResults};
use crate::filter::SearchFilter;

#[derive(Serialize, ToSchema)]
pub(super) struct Health {
    status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health)))]
pub(super) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Serialize, ToSchema)]
pub(super) struct Readiness {
    status: &'static str,
    questions: usize,
    lexical_documents: u64,
    vectors: usize,
    vector_store: String,
    model: String,
}

/// The index and the model are loaded and the vector store answers.
#[utoipa::path(get, path = "/readyz", responses((status = 200, body = Readiness), (status = 503, description = "the vector store does not answer", body = Problem)))]
pub(super) async fn readyz(State(state): State<Arc<AppState>>) -> Result<Json<Readiness>, ApiError> {
    let engine = state.engine().clone();
    // A Qdrant server may take seconds to answer: ask it on the blocking pool.
    let status = on_blocking_pool(move || Ok(engine.snapshot().status())).await?;
    let vectors = status.vectors.map_err(|error| ApiError::new(ErrorCode::NotReady, error.to_string()))?;
    Ok(Json(Readiness {
        status: "ready",
        questions: status.questions,
        lexical_documents: status.lexical_documents,
        vectors,
        vector_store: status.vector_store,
        model: state.engine().embedder().model().id.clone(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct SearchParams {
    /// The query, 1 to 500 characters, not all blank.
    #[param(required = true, min_length = 1, max_length = 500, pattern = r"[^\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")]
    q: Option<String>,
    /// Results per page, 1 to 50 (default 10).
    #[param(minimum = 1, maximum = 50)]
    limit: Option<usize>,
    /// Results to skip, at most 50 (default 0): search ranks the best 100 candidates.
    #[param(minimum = 0, maximum = 50)]
    offset: Option<usize>,
    /// Only this topic id (one of `GET /v1/topics`).
    topic: Option<String>,
    #[param(value_type = Option<Difficulty>)]
    difficulty: Option<String>,
    /// Comma-separated tags that must all be present.
    tags: Option<String>,
    /// hybrid (default), lexical or semantic.
    #[param(value_type = Option<Mode>)]
    mode: Option<String>,
}

/// Largest search `offset`: with `limit` at most `MAX_LIMIT` (50), a page ends within the 100
/// candidates search ranks, and `offset + limit` cannot overflow.
const MAX_SEARCH_OFFSET: usize = 50;

impl SearchParams {
    fn into_request(self) -> Result<SearchRequest, ApiError> {
        let query = self.q.ok_or_else(|| invalid_query("the q parameter is required"))?;
        let mode = match self.mode.as_deref() {
            None => Mode::Hybrid,
            Some(text) => Mode::parse(text).ok_or_else(|| invalid_query("mode must be hybrid, lexical or semantic"))?,
        };
        let offset = self.offset.unwrap_or(0);
        if offset > MAX_SEARCH_OFFSET {
            return Err(invalid_query(format!("offset must be at most {MAX_SEARCH_OFFSET}")));
        }
        let difficulty = match self.difficulty.as_deref() {
            None => None,
            Some(text) => Some(Difficulty::parse(text).ok_or_else(|| invalid_filter("difficulty must be junior, mid or senior"))?),
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
            offset,
        })
    }
}

fn invalid_query(detail: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidQuery, detail)
}

fn invalid_filter(detail: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidFilter, detail)
}

/// Questions ranked by a hybrid of BM25 and semantic similarity; every hit says how it was found.
#[utoipa::path(get, path = "/v1/search", params(SearchParams), responses(
    (status = 200, body = SearchResults),
    (status = 400, description = "a bad parameter or filter", body = Problem),
    (status = 503, description = "no job slot freed in time, or the vector store does not answer (mode=lexical still works)", body = Problem),
))]
pub(super) async fn search(State(state): State<Arc<AppState>>, ApiQuery(params): ApiQuery<SearchParams>) -> Result<Json<SearchResults>, ApiError> {
    let request = params.into_request()?;
    Ok(Json(state.run_cpu(move |engine| engine.search(&request).map_err(ApiError::from)).await?))
}

#[derive(Serialize, ToSchema)]
pub(super) struct TopicSummary {
    id: String,
    title: String,
    questions: usize,
}

#[derive(Serialize, ToSchema)]
pub(super) struct Topics {
    topics: Vec<TopicSummary>,
}

/// Topics with their question counts, in corpus order.
#[utoipa::path(get, path = "/v1/topics", responses((status = 200, body = Topics)))]
pub(super) async fn topics(State(state): State<Arc<AppState>>) -> Json<Topics> {
    let snapshot = state.engine().snapshot();
    let topics = snapshot
        .corpus()
        .topic_counts()
        .into_iter()
        .map(|(topic, questions)| TopicSummary { id: topic.id.clone(), title: topic.title.clone(), questions })
        .collect();
    Json(Topics { topics })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListParams {
    /// Items per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
    /// Items to skip, at most 1 000 000 (default 0); past the end the page is empty.
    #[param(minimum = 0, maximum = 1_000_000)]
    offset: Option<usize>,
    /// Only this topic id (one of `GET /v1/topics`).
    topic: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct QuestionSummary {
    id: String,
    question: String,
    topic: String,
    difficulty: Difficulty,
    tags: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct QuestionList {
    total: usize,
    items: Vec<QuestionSummary>,
}

/// Largest page of `GET /v1/questions`.
const MAX_PAGE: usize = 500;
/// Largest `offset` of `GET /v1/questions`: far past any corpus, and a bound the OpenAPI
/// document can state (a bare integer would invite numbers past `u64`).
const MAX_LIST_OFFSET: usize = 1_000_000;

/// Questions in corpus order, optionally of one topic.
#[utoipa::path(get, path = "/v1/questions", params(ListParams), responses(
    (status = 200, body = QuestionList),
    (status = 400, description = "a bad parameter or filter", body = Problem),
))]
pub(super) async fn list_questions(State(state): State<Arc<AppState>>, ApiQuery(params): ApiQuery<ListParams>) -> Result<Json<QuestionList>, ApiError> {
    let limit = params.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(invalid_query(format!("limit must be between 1 and {MAX_PAGE}")));
    }
    let offset = params.offset.unwrap_or(0);
    if offset > MAX_LIST_OFFSET {
        return Err(invalid_query(format!("offset must be at most {MAX_LIST_OFFSET}")));
    }
    let snapshot = state.engine().snapshot();
    if let Some(topic) = &params.topic {
        if !snapshot.corpus().topics().iter().any(|t| &t.id == topic) {
            return Err(invalid_filter(format!("unknown topic {topic:?}")));
        }
    }
    let matching: Vec<&Question> =
        snapshot.corpus().questions().iter().filter(|q| params.topic.as_ref().is_none_or(|t| &q.topic == t)).collect();
    let items = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|q| QuestionSummary {
            id: q.entry.id.clone(),
            question: q.entry.question.clone(),
            topic: q.topic.clone(),
            difficulty: q.entry.difficulty,
            tags: q.entry.tags.clone(),
        })
        .collect();
    Ok(Json(QuestionList { total: matching.len(), items }))
}

#[derive(Serialize, ToSchema)]
pub(super) struct FollowUpRef {
    id: String,
    question: String,
}

/// A full entry, its follow-ups resolved to their question texts.
#[derive(Serialize, ToSchema)]
pub(super) struct QuestionDetail {
    id: String,
    question: String,
    topic: String,
    source: Source,
    difficulty: Difficulty,
    tags: Vec<String>,
    answer: String,
    key_points: Vec<String>,
    misconceptions: Vec<String>,
    alternatives: Vec<String>,
    follow_ups: Vec<FollowUpRef>,
}

/// One question with its reference answer, rubric and follow-ups.
#[utoipa::path(get, path = "/v1/questions/{id}", params(("id" = String, Path)), responses(
    (status = 200, body = QuestionDetail),
    (status = 400, description = "an id that is not UTF-8 once decoded", body = Problem),
    (status = 404, description = "no question with this id", body = Problem),
))]
pub(super) async fn question(State(state): State<Arc<AppState>>, ApiPath(id): ApiPath<String>) -> Result<Json<QuestionDetail>, ApiError> {
    let snapshot = state.engine().snapshot();
    let question = snapshot.corpus().get(&id).ok_or_else(|| UserError::QuestionNotFound(id.clone()))?;
    let entry = &question.entry;
    let follow_ups = entry
        .follow_ups
        .iter()
        .filter_map(|id| snapshot.corpus().get(id).map(|q| FollowUpRef { id: q.entry.id.clone(), question: q.entry.question.clone() }))
        .collect();
    Ok(Json(QuestionDetail {
        id: entry.id.clone(),
        question: entry.question.clone(),
        topic: question.topic.clone(),
        source: entry.source,
        difficulty: entry.difficulty,
        tags: entry.tags.clone(),
        answer: entry.answer.clone(),
        key_points: entry.key_points.clone(),
        misconceptions: entry.misconceptions.clone(),
        alternatives: entry.alternatives.clone(),
        follow_ups,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct RelatedParams {
    /// 1 to 50 (default 5).
    #[param(minimum = 1, maximum = 50)]
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct Related {
    results: Vec<RelatedHit>,
}

/// Curated follow-ups first, then nearest neighbours, each with the reason it was chosen.
#[utoipa::path(get, path = "/v1/questions/{id}/related", params(("id" = String, Path), RelatedParams), responses(
    (status = 200, body = Related),
    (status = 400, description = "a bad limit, or an id that is not UTF-8 once decoded", body = Problem),
    (status = 404, description = "no question with this id", body = Problem),
    (status = 503, description = "no job slot freed in time, or the vector store does not answer", body = Problem),
))]
pub(super) async fn related(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<RelatedParams>,
) -> Result<Json<Related>, ApiError> {
    let limit = params.limit.unwrap_or(5);
    let results = state.run_cpu(move |engine| engine.related(&id, limit).map_err(ApiError::from)).await?;
    Ok(Json(Related { results }))
}
