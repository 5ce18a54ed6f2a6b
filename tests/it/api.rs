//! The real router over the real index, driven with `oneshot`, plus one request on a bound port.


use std::sync::Arc;

use askmark::api::{router, AppState, ServerConfig};
use askmark::error::InternalError;
use askmark::index::Generation;
use askmark::lexical::LexicalIndex;
use askmark::engine::Engine;
use askmark::filter::SearchFilter;
use askmark::vectors::{VectorName, VectorStore};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::common::{ENGINE, MODELS};

pub(crate) fn app() -> axum::Router {
    app_with(ServerConfig::default())
}

pub(crate) async fn get(uri: &str) -> (StatusCode, String, Value) {
    let response = app().oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, content_type, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

pub(crate) async fn assert_problem(uri: &str, status: StatusCode, code: &str) {
    let (actual, content_type, body) = get(uri).await;
    assert_eq!(actual, status, "{uri}: {body}");
    assert_eq!(content_type, "application/problem+json", "{uri}");
    assert_eq!(body["code"], code, "{uri}: {body}");
    assert_eq!(body["status"], status.as_u16());
    assert!(body["title"].is_string() && body["detail"].is_string() && body["type"].is_string());
}

#[tokio::test]
async fn health_and_readiness() {
    let (status, _, body) = get("/healthz").await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (status, _, body) = get("/readyz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["vectors"], body["questions"]);
    assert_eq!(body["lexical_documents"], body["questions"]);
}

#[tokio::test]
async fn search_returns_explained_hits() {
    let (status, content_type, body) = get("/v1/search?q=how+does+asyncio+differ+from+threads&limit=5").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    assert_eq!(body["query"], "how does asyncio differ from threads");
    assert_eq!(body["mode"], "hybrid");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    for hit in results {
        for field in ["id", "question", "topic", "difficulty", "score", "lexical_rank", "semantic_rank", "matched_by", "snippet"] {
            assert!(hit.get(field).is_some(), "missing {field} in {hit}");
        }
    }
    assert!(body["total"].as_u64().unwrap() >= 5);
    assert!(body["took_ms"].is_number());
}

#[tokio::test]
async fn bad_search_requests_are_problems_with_stable_codes() {
    assert_problem("/v1/search", StatusCode::BAD_REQUEST, "invalid_query").await;
    assert_problem("/v1/search?q=", StatusCode::BAD_REQUEST, "invalid_query").await;
    assert_problem("/v1/search?q=gil&limit=0", StatusCode::BAD_REQUEST, "invalid_query").await;
    assert_problem("/v1/search?q=gil&limit=lots", StatusCode::BAD_REQUEST, "invalid_query").await;
    assert_problem("/v1/search?q=gil&mode=magic", StatusCode::BAD_REQUEST, "invalid_query").await;
    assert_problem("/v1/search?q=gil&colour=blue", StatusCode::BAD_REQUEST, "invalid_query").await;
    assert_problem("/v1/search?q=gil&difficulty=expert", StatusCode::BAD_REQUEST, "invalid_filter").await;
    assert_problem("/v1/search?q=gil&topic=cooking", StatusCode::BAD_REQUEST, "invalid_filter").await;
    assert_problem("/v1/questions/no-such-question", StatusCode::NOT_FOUND, "question_not_found").await;
    assert_problem("/v1/questions/no-such-question/related", StatusCode::NOT_FOUND, "question_not_found").await;
    assert_problem("/v2/anything", StatusCode::NOT_FOUND, "route_not_found").await;
}

#[tokio::test]
async fn a_question_comes_with_its_follow_ups_resolved() {
    let (status, _, body) = get("/v1/questions/gil").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], "gil");
    assert!(body["answer"].as_str().unwrap().len() > 200);
    let follow_ups = body["follow_ups"].as_array().unwrap();
    assert!(follow_ups.len() >= 2);
    for follow_up in follow_ups {
        let id = follow_up["id"].as_str().unwrap();
        assert_eq!(follow_up["question"].as_str().unwrap(), ENGINE.snapshot().corpus().get(id).unwrap().entry.question);
    }
}

#[tokio::test]
async fn related_and_topics() {
    let (status, _, body) = get("/v1/questions/gil/related?limit=4").await;
    assert_eq!(status, StatusCode::OK);
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(results[0]["reason"], "follow_up");
    let (status, _, body) = get("/v1/topics").await;
    assert_eq!(status, StatusCode::OK);
    let topics = body["topics"].as_array().unwrap();
    assert_eq!(topics.len(), ENGINE.snapshot().corpus().topics().len());
    let total: u64 = topics.iter().map(|t| t["questions"].as_u64().unwrap()).sum();
    assert_eq!(total as usize, ENGINE.snapshot().corpus().questions().len());
}

#[tokio::test]
async fn a_real_server_answers_on_a_bound_port() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app()).await });
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /v1/search?q=decorators&limit=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.to_lowercase().contains("x-request-id:"), "{response}");
    assert!(response.contains("\"id\":\"decorators\""), "{response}");
    server.abort();
}

pub(crate) async fn post(uri: &str, content_type: &str, body: impl Into<Body>) -> (StatusCode, String, Value) {
    let request = Request::post(uri).header("content-type", content_type).body(body.into()).unwrap();
    let response = app().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, content_type, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn review_returns_a_verdict() {
    let body = serde_json::json!({
        "question_id": "gil",
        "answer": "The GIL is a CPython lock that lets one thread run Python bytecode at a time, so threads do not speed up \
                   CPU-bound code but help with I/O-bound work because blocking I/O releases the GIL."
    });
    let (status, _, verdict) = post("/v1/review", "application/json", body.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{verdict}");
    for field in ["score", "grade", "key_points", "reference_similarity", "flags", "contradictions", "feedback", "took_ms"] {
        assert!(verdict.get(field).is_some(), "missing {field}: {verdict}");
    }
    let points = verdict["key_points"].as_array().unwrap();
    assert_eq!(points.len(), ENGINE.snapshot().corpus().get("gil").unwrap().entry.key_points.len());
    assert!(points.iter().all(|p| p["covered"].is_boolean() || p["covered"] == "partially"));
}

#[tokio::test]
async fn bad_review_requests_are_problems_with_stable_codes() {
    let check = |status: StatusCode, code: &'static str, (actual, content_type, body): (StatusCode, String, Value)| {
        assert_eq!(actual, status, "{body}");
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(body["code"], code, "{body}");
    };
    check(StatusCode::BAD_REQUEST, "invalid_json", post("/v1/review", "application/json", "{\"answer\": ").await);
    check(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", post("/v1/review", "text/plain", "hello").await);
    check(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", post("/v1/review", "application/json", r#"{"question_id": "gil"}"#).await);
    check(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
        post("/v1/review", "application/json", r#"{"question_id": "gil", "answer": "x", "colour": "blue"}"#).await,
    );
    check(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_review",
        post("/v1/review", "application/json", r#"{"question_id": "gil", "question": "why?", "answer": "x"}"#).await,
    );
    check(StatusCode::BAD_REQUEST, "invalid_answer", post("/v1/review", "application/json", r#"{"question_id": "gil", "answer": " "}"#).await);
    check(
        StatusCode::NOT_FOUND,
        "question_not_found",
        post("/v1/review", "application/json", r#"{"question_id": "nope", "answer": "an answer"}"#).await,
    );
    let huge = serde_json::json!({"question_id": "gil", "answer": "word ".repeat(20_000)}).to_string();
    check(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", post("/v1/review", "application/json", huge).await);
}

pub(crate) fn app_with(config: ServerConfig) -> axum::Router {
    router(AppState::new((**ENGINE).clone(), config))
}

fn review_request() -> Request<Body> {
    let body = serde_json::json!({"question_id": "generators", "answer": "A generator function uses yield and produces values lazily, one at a time."});
    Request::post("/v1/review").header("content-type", "application/json").body(Body::from(body.to_string())).unwrap()
}

#[tokio::test]
async fn reviews_are_rate_limited_per_client() {
    let app = app_with(ServerConfig { reviews_per_minute: std::num::NonZeroU32::new(2).unwrap(), ..ServerConfig::default() });
    for _ in 0..2 {
        assert_eq!(app.clone().oneshot(review_request()).await.unwrap().status(), StatusCode::OK);
    }
    let limited = app.clone().oneshot(review_request()).await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["retry-after"], "30", "two reviews a minute: the next one is allowed 30 s later");
    let body: Value = serde_json::from_slice(&limited.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["code"], "rate_limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_saturated_server_answers_overloaded_after_a_short_wait() {
    let app = app_with(ServerConfig { max_cpu_jobs: 1, queue_timeout: std::time::Duration::from_millis(20), ..ServerConfig::default() });
    let requests = (0..24).map(|_| app.clone().oneshot(review_request()));
    let responses = join_all_spawned(requests).await;
    let overloaded: Vec<_> = responses.iter().filter(|r| r.status() == StatusCode::SERVICE_UNAVAILABLE).collect();
    assert!(!overloaded.is_empty(), "24 concurrent reviews with one permit and a 20 ms queue");
    assert!(responses.iter().any(|r| r.status() == StatusCode::OK), "the permit serves some of them");
    assert!(overloaded.iter().all(|r| r.headers()["retry-after"] == "1"));
    assert!(responses.iter().all(|r| matches!(r.status(), StatusCode::OK | StatusCode::SERVICE_UNAVAILABLE)));
}

async fn join_all_spawned<F: std::future::Future<Output = Result<axum::response::Response, std::convert::Infallible>> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<axum::response::Response> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut responses = Vec::new();
    for handle in handles {
        responses.push(handle.await.unwrap().unwrap());
    }
    responses
}

#[tokio::test]
async fn metrics_openapi_docs_and_the_page_are_served() {
    // A query no other test sends: its embedding is computed here, whatever ran before.
    let _ = get("/v1/search?q=which+metrics+does+a+served+search+record").await;
    let response = app().oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    let text = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(text.contains("http_requests_total{route=\"/v1/search\""), "{text}");
    assert!(text.contains("http_request_duration_seconds_bucket"), "{text}");
    assert!(text.contains("askmark_embedding_seconds"), "{text}");
    assert!(text.contains("askmark_index_questions"), "{text}");

    let (status, content_type, spec) = get("/openapi.json").await;
    assert_eq!((status, content_type.as_str()), (StatusCode::OK, "application/json"));
    for path in ["/v1/search", "/v1/review", "/v1/questions", "/v1/questions/{id}", "/v1/questions/{id}/related", "/v1/topics"] {
        assert!(spec["paths"].get(path).is_some(), "{path} missing from the spec");
    }
    assert!(spec["components"]["schemas"].get("SearchResults").is_some());

    for (path, needle) in [("/", "askmark"), ("/docs", "/openapi.json"), ("/assets/app.js", "/v1/search"), ("/assets/style.css", "body")] {
        let response = app().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let text = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        assert!(text.contains(needle), "{path}");
        assert!(!text.contains("cdn.") && !text.contains("unpkg"), "{path} must work offline");
    }
}

#[tokio::test]
async fn a_wrong_method_and_cors_preflight() {
    let response = app().oneshot(Request::put("/v1/search").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let app = app_with(ServerConfig { cors_origins: vec!["https://practice.example".into()], ..ServerConfig::default() });
    let preflight = Request::options("/v1/search")
        .header("origin", "https://practice.example")
        .header("access-control-request-method", "GET")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(preflight).await.unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], "https://practice.example");
    let other = Request::get("/healthz").header("origin", "https://evil.example").body(Body::empty()).unwrap();
    assert!(app.oneshot(other).await.unwrap().headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn the_question_list_pages_and_filters() {
    let (status, _, body) = get("/v1/questions?topic=concurrency&limit=3").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"].as_array().unwrap().len(), 3);
    let in_topic = ENGINE.snapshot().corpus().questions().iter().filter(|q| q.topic == "concurrency").count();
    assert_eq!(body["total"].as_u64().unwrap() as usize, in_topic);
    assert!(body["items"].as_array().unwrap().iter().all(|i| i["topic"] == "concurrency"));
    assert_problem("/v1/questions?limit=0", StatusCode::BAD_REQUEST, "invalid_query").await;
    assert_problem("/v1/questions?topic=cooking", StatusCode::BAD_REQUEST, "invalid_filter").await;
}

/// A vector store whose server does not answer, as `QdrantStore` reports it when Qdrant is down.
struct UnreachableStore;

impl VectorStore for UnreachableStore {
    fn upsert(&self, _: &[askmark::vectors::VectorPoint]) -> Result<(), InternalError> {
        Err(unreachable_error())
    }
    fn delete(&self, _: &[String]) -> Result<(), InternalError> {
        Err(unreachable_error())
    }
    fn search(&self, _: VectorName, _: &[f32], _: &SearchFilter, _: usize) -> Result<Vec<askmark::vectors::PointHit>, InternalError> {
        Err(unreachable_error())
    }
    fn count(&self) -> Result<usize, InternalError> {
        Err(unreachable_error())
    }
    fn flush(&self) -> Result<(), InternalError> {
        Ok(())
    }
    fn describe(&self) -> String {
        "qdrant server at http://127.0.0.1:1 (down)".into()
    }
}

fn unreachable_error() -> InternalError {
    InternalError::VectorStoreUnavailable("Qdrant at http://127.0.0.1:1: transport error".into())
}

/// The real engine with its vectors in `store`.
pub(crate) fn app_over(store: Arc<dyn VectorStore>, config: ServerConfig) -> axum::Router {
    let snapshot = ENGINE.snapshot();
    let generation = snapshot.generation();
    let replaced = Generation {
        dir: generation.dir.clone(),
        manifest: generation.manifest.clone(),
        lexical: LexicalIndex::open(&generation.dir.join("lexical")).unwrap(),
        vectors: store,
        content: generation.content.clone(),
        questions_by_point: generation.questions_by_point.clone(),
        embeddings: generation.embeddings.clone(),
    };
    let index = crate::common::index_dir(&generation.dir.join("../.."));
    let engine = Engine::from_parts(snapshot.corpus().clone(), replaced, MODELS.clone(), index).unwrap();
    router(AppState::new(engine, config))
}

pub(crate) fn unreachable_app(config: ServerConfig) -> axum::Router {
    app_over(Arc::new(UnreachableStore), config)
}

#[tokio::test]
async fn without_its_vector_store_a_replica_degrades_to_lexical_search_and_is_not_ready() {
    let app = unreachable_app(ServerConfig::default());
    let send = |uri: &str| app.clone().oneshot(Request::get(uri).body(Body::empty()).unwrap());

    let hybrid = send("/v1/search?q=what+is+the+gil").await.unwrap();
    assert_eq!(hybrid.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(hybrid.headers()["retry-after"], "1");
    let body: Value = serde_json::from_slice(&hybrid.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["code"], "vector_store_unavailable", "{body}");

    let lexical = send("/v1/search?q=what+is+the+gil&mode=lexical").await.unwrap();
    assert_eq!(lexical.status(), StatusCode::OK);
    let ready = send("/readyz").await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
}
