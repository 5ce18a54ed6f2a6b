//! The HTTP contract: one table of error codes that README and the OpenAPI document repeat, a
//! document that describes what is sent, problem+json for every error the stack produces, and
//! the regressions found on the way (each test is named after what broke).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use askmark::api::{ErrorCode, ServerConfig};
use askmark::error::InternalError;
use askmark::filter::SearchFilter;
use askmark::vectors::{PointHit, VectorName, VectorPoint, VectorStore};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::api::{app, app_over, app_with, assert_problem, get, post, unreachable_app};
use crate::common::{repo, ENGINE};

/// The codes of README's error table, in its order, with the status each row gives.
fn readme_error_codes() -> Vec<(String, u16)> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let table = readme.split("### Error codes").nth(1).expect("README has an Error codes section");
    table
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            (cells[1].trim_matches('`').to_string(), cells[2].parse().expect("a status"))
        })
        .collect()
}

#[tokio::test]
async fn readme_and_openapi_list_exactly_the_error_codes() {
    let all: Vec<(String, u16)> = ErrorCode::ALL.iter().map(|code| (code.as_str().to_string(), code.status().as_u16())).collect();
    assert_eq!(readme_error_codes(), all, "README's error table, in ErrorCode::ALL's order");

    let (_, _, spec) = get("/openapi.json").await;
    let in_spec: Vec<&str> = spec["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
        .as_array()
        .expect("Problem.code is an enum")
        .iter()
        .map(|code| code.as_str().unwrap())
        .collect();
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
    assert_eq!(in_spec, codes);
}

#[test]
fn error_codes_are_unique_snake_case_strings() {
    let mut seen = std::collections::HashSet::new();
    for code in ErrorCode::ALL {
        let text = code.as_str();
        assert!(seen.insert(text), "{text} appears twice");
        assert!(text.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{text}");
        assert!(code.status().is_client_error() || code.status().is_server_error(), "{text}");
    }
}

/// The response schemas the document declares, resolved for one operation and status.
fn declared(spec: &Value, path: &str, method: &str, status: &str) -> Value {
    spec["paths"][path][method]["responses"][status].clone()
}

#[tokio::test]
async fn the_openapi_document_describes_what_is_sent() {
    let (_, _, spec) = get("/openapi.json").await;
    let schemas = &spec["components"]["schemas"];
    let covered = &schemas["KeyPointVerdict"]["properties"]["covered"];
    assert_eq!(covered["oneOf"], json!([{"type": "boolean"}, {"type": "string", "enum": ["partially"]}]), "{covered}");

    let question = &schemas["Question"];
    assert_eq!(question["additionalProperties"], json!(false), "{question}");
    assert!(question["properties"].get("topic").is_some() && question["properties"].get("answer").is_some(), "{question}");
    assert!(question["required"].as_array().unwrap().contains(&json!("topic")));

    let topics: Vec<Value> = ENGINE.snapshot().corpus().topics().iter().map(|topic| json!(topic.id)).collect();
    let search = &spec["paths"]["/v1/search"]["get"];
    let parameter = |name: &str| search["parameters"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap().clone();
    assert_eq!(parameter("topic")["schema"]["enum"], json!(topics));
    assert_eq!((parameter("limit")["schema"]["minimum"].as_u64(), parameter("limit")["schema"]["maximum"].as_u64()), (Some(1), Some(50)));
    assert_eq!(parameter("offset")["schema"]["maximum"].as_u64(), Some(50));
    assert_eq!(parameter("q")["required"], json!(true));
    assert_eq!(parameter("q")["schema"]["maxLength"].as_u64(), Some(500));
    assert!(parameter("mode")["schema"].to_string().contains("#/components/schemas/Mode"));
    assert_eq!(schemas["Mode"]["enum"], json!(["hybrid", "lexical", "semantic"]));

    for (path, methods) in spec["paths"].as_object().unwrap() {
        for (method, operation) in methods.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            for status in ["408", "414", "431", "500"] {
                assert!(responses.contains_key(status), "{method} {path} does not declare {status}");
            }
            for (status, response) in responses.iter().filter(|(status, _)| status.parse::<u16>().unwrap() >= 400) {
                let content: Vec<&String> = response["content"].as_object().unwrap().keys().collect();
                assert_eq!(content, ["application/problem+json"], "{method} {path} {status}");
            }
        }
    }
    for (path, method, status) in [
        ("/v1/review", "post", "400"),
        ("/v1/review", "post", "413"),
        ("/v1/review", "post", "415"),
        ("/v1/review", "post", "422"),
        ("/v1/review", "post", "429"),
        ("/v1/review", "post", "503"),
        ("/v1/questions", "post", "400"),
        ("/v1/questions", "post", "413"),
        ("/v1/questions", "post", "415"),
        ("/v1/questions", "post", "422"),
        ("/v1/questions/{id}", "get", "400"),
        ("/v1/questions/{id}", "delete", "400"),
        ("/v1/questions/{id}/related", "get", "503"),
        ("/v1/search", "get", "503"),
        ("/readyz", "get", "503"),
    ] {
        assert!(declared(&spec, path, method, status).is_object(), "{method} {path} does not declare {status}");
    }
}

#[tokio::test]
async fn a_review_validates_against_its_declared_schema_shape() {
    let body = json!({"question_id": "gil", "answer": "The GIL lets one thread run Python bytecode at a time, so threads help I/O."});
    let (status, _, verdict) = post("/v1/review", "application/json", body.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{verdict}");
    for point in verdict["key_points"].as_array().unwrap() {
        let covered = &point["covered"];
        assert!(covered.is_boolean() || covered == "partially", "{covered}");
    }
}

#[tokio::test]
async fn a_bad_path_escape_is_a_problem_not_plain_text() {
    assert_problem("/v1/questions/%ff", StatusCode::BAD_REQUEST, "invalid_path").await;
    assert_problem("/v1/questions/%ff/related", StatusCode::BAD_REQUEST, "invalid_path").await;
}

async fn send(app: axum::Router, request: Request<Body>) -> (StatusCode, String, Value) {
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, content_type, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn assert_is_problem((status, content_type, body): (StatusCode, String, Value), expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(content_type, "application/problem+json");
    assert_eq!((body["code"].as_str(), body["status"].as_u64()), (Some(code), Some(u64::from(expected.as_u16()))), "{body}");
}

#[tokio::test]
async fn a_long_uri_and_too_many_headers_are_problems() {
    let long = format!("/v1/search?q={}", "a".repeat(askmark::api::MAX_URI_BYTES));
    assert_is_problem(send(app(), Request::get(long).body(Body::empty()).unwrap()).await, StatusCode::URI_TOO_LONG, "uri_too_long");

    let mut request = Request::get("/healthz");
    for number in 0..=askmark::api::MAX_HEADERS {
        request = request.header(format!("x-header-{number}"), "value");
    }
    let response = send(app(), request.body(Body::empty()).unwrap()).await;
    assert_is_problem(response, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large");

    let huge = Request::get("/healthz").header("x-huge", "v".repeat(askmark::api::MAX_HEADER_BYTES)).body(Body::empty()).unwrap();
    assert_is_problem(send(app(), huge).await, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large");
}

#[tokio::test]
async fn a_request_timeout_is_a_problem_not_an_empty_408() {
    let app = app_with(ServerConfig { request_timeout: Duration::from_millis(1), ..ServerConfig::default() });
    let body = json!({"question_id": "gil", "answer": "The GIL is a lock. ".repeat(200)});
    let request = Request::post("/v1/review").header("content-type", "application/json").body(Body::from(body.to_string())).unwrap();
    assert_is_problem(send(app, request).await, StatusCode::REQUEST_TIMEOUT, "request_timeout");
}

#[tokio::test]
async fn invalid_review_is_422_whether_the_shape_or_the_content_is_wrong() {
    let both = json!({"question_id": "gil", "question": "Why?", "answer": "Because."});
    assert_is_problem(post("/v1/review", "application/json", both.to_string()).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_review");
    let no_references = json!({"question": "What is a closure?", "references": [], "answer": "A function with its scope."});
    let response = post("/v1/review", "application/json", no_references.to_string()).await;
    assert_is_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_review");
}

#[tokio::test]
async fn an_ad_hoc_question_has_a_length_limit() {
    let review = |question: String| {
        json!({"question": question, "references": ["A closure keeps the variables of the scope it was defined in."], "answer": "A function that remembers its scope."})
            .to_string()
    };
    let (status, _, body) = post("/v1/review", "application/json", review("What is a closure?".into())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let too_long = review("What is a closure? ".repeat(120));
    assert_is_problem(post("/v1/review", "application/json", too_long).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_review");
}

#[tokio::test]
async fn a_huge_search_offset_is_a_clear_400_not_an_overflow() {
    assert_problem("/v1/search?q=gil&offset=18446744073709551615", StatusCode::BAD_REQUEST, "invalid_query").await;
    assert_problem("/v1/search?q=gil&offset=51", StatusCode::BAD_REQUEST, "invalid_query").await;
    assert_problem("/v1/questions?offset=18446744073709551616", StatusCode::BAD_REQUEST, "invalid_query").await;
    assert_problem("/v1/questions?offset=1000001", StatusCode::BAD_REQUEST, "invalid_query").await;
    let (status, _, body) = get("/v1/search?q=gil&offset=50&limit=50").await;
    assert_eq!(status, StatusCode::OK, "the documented maxima together are accepted: {body}");
}

/// The real store, answering `count` only after `delay`, as a slow Qdrant server would.
struct SlowStore {
    inner: Arc<dyn VectorStore>,
    delay: Duration,
}

impl VectorStore for SlowStore {
    fn upsert(&self, points: &[VectorPoint]) -> Result<(), InternalError> {
        self.inner.upsert(points)
    }
    fn delete(&self, ids: &[String]) -> Result<(), InternalError> {
        self.inner.delete(ids)
    }
    fn search(&self, name: VectorName, vector: &[f32], filter: &SearchFilter, limit: usize) -> Result<Vec<PointHit>, InternalError> {
        self.inner.search(name, vector, filter, limit)
    }
    fn count(&self) -> Result<usize, InternalError> {
        std::thread::sleep(self.delay);
        self.inner.count()
    }
    fn flush(&self) -> Result<(), InternalError> {
        self.inner.flush()
    }
    fn describe(&self) -> String {
        "slow".into()
    }
}

/// On a single-threaded runtime, a readiness check that blocked its worker would stall every
/// other request until the vector store answered.
#[tokio::test(flavor = "current_thread")]
async fn readyz_waits_for_the_vector_store_off_the_async_workers() {
    let store = Arc::new(SlowStore { inner: ENGINE.snapshot().generation().vectors.clone(), delay: Duration::from_millis(800) });
    let app = app_over(store, ServerConfig::default());
    let readiness = tokio::spawn(app.clone().oneshot(Request::get("/readyz").body(Body::empty()).unwrap()));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let started = Instant::now();
    let health = app.clone().oneshot(Request::get("/healthz").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert!(started.elapsed() < Duration::from_millis(400), "healthz waited {:?}", started.elapsed());
    assert!(!readiness.is_finished(), "readyz is still waiting for the store");
    assert_eq!(readiness.await.unwrap().unwrap().status(), StatusCode::OK);
}

/// Collects formatted log lines.
#[derive(Clone, Default)]
struct LogLines(Arc<Mutex<Vec<u8>>>);

impl Write for LogLines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn review_request() -> Request<Body> {
    let body = json!({"question_id": "generators", "answer": "A generator function uses yield and produces values lazily, one at a time."});
    Request::post("/v1/review").header("content-type", "application/json").body(Body::from(body.to_string())).unwrap()
}

/// Every task of a current-thread runtime runs on this thread, so the thread's subscriber sees
/// every log line of these requests.
#[tokio::test(flavor = "current_thread")]
async fn designed_503s_and_429s_are_not_logged_as_errors() {
    let lines = LogLines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt().with_max_level(tracing::Level::TRACE).with_ansi(false).with_writer(move || writer.clone()).finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let unreachable = unreachable_app(ServerConfig::default());
    let response = unreachable.oneshot(Request::get("/v1/search?q=gil").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);

    let config = ServerConfig {
        max_cpu_jobs: 1,
        queue_timeout: Duration::from_millis(5),
        reviews_per_minute: std::num::NonZeroU32::new(6).unwrap(),
        ..ServerConfig::default()
    };
    let busy = app_with(config);
    let requests: Vec<_> = (0..8).map(|_| tokio::spawn(busy.clone().oneshot(review_request()))).collect();
    let mut statuses = Vec::new();
    for request in requests {
        statuses.push(request.await.unwrap().unwrap().status());
    }
    assert!(statuses.contains(&StatusCode::SERVICE_UNAVAILABLE), "{statuses:?}");
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");

    let logged = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let unavailable = logged.lines().filter(|line| line.contains("service unavailable")).count();
    assert!(unavailable >= 2, "the subscriber saw the 503s: {logged}");
    let errors: Vec<&str> = logged.lines().filter(|line| line.contains("ERROR")).collect();
    assert!(errors.is_empty(), "{errors:#?}");
}
