//! Admin writes through the real router on a copy of part of the corpus: validation, auth,
//! write-back to the corpus file, re-indexing, and reads that never fail during a write.

use std::sync::Arc;

use askmark::api::{router, AppState, ServerConfig};
use askmark::corpus::Corpus;
use askmark::engine::Engine;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::common::{self, fixture_corpus, MODELS};

/// Fields drop in order: the router (and its index) before the folders it uses.
struct Fixture {
    app: axum::Router,
    corpus_dir: tempfile::TempDir,
    _index_dir: tempfile::TempDir,
}

fn fixture(api_keys: &[&str]) -> Fixture {
    let corpus_dir = fixture_corpus("09-concurrency.toml");
    let index_dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(corpus_dir.path(), common::index_dir(index_dir.path()), MODELS.clone()).unwrap();
    let config = ServerConfig { api_keys: api_keys.iter().map(|k| k.to_string()).collect(), ..ServerConfig::default() };
    let app = router(AppState::new(engine, config));
    Fixture { app, corpus_dir, _index_dir: index_dir }
}

async fn send(app: &axum::Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn upsert(body: &Value, key: Option<&str>) -> Request<Body> {
    let mut request = Request::post("/v1/questions").header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    request.body(Body::from(body.to_string())).unwrap()
}

fn new_question() -> Value {
    json!({
        "topic": "concurrency",
        "question": {
            "id": "event-loop-starvation",
            "question": "What starves an asyncio event loop, and how do you find the culprit?",
            "source": "added",
            "difficulty": "senior",
            "tags": ["asyncio", "debugging"],
            "answer": "An event loop runs one callback at a time, so any coroutine that computes for long stretches \
                or calls blocking functions without awaiting stops every other task: timers fire late, sockets back up \
                and health checks fail. The usual culprits are CPU-heavy parsing, synchronous HTTP clients, time.sleep \
                and blocking database drivers called from async code. To find them, run with asyncio debug mode \
                (PYTHONASYNCIODEBUG=1 or asyncio.run(main(), debug=True)); the loop then logs every callback slower \
                than loop.slow_callback_duration, which defaults to 100 milliseconds, with the task that ran it. A \
                sampling profiler such as py-spy shows where the thread spends its time. The fixes are to move \
                blocking calls to a worker thread with asyncio.to_thread, to send CPU-bound work to a process pool \
                with run_in_executor, to use async-native client libraries, and to break long loops with an \
                occasional await asyncio.sleep(0) so other tasks get a turn. Starvation is the main quokkaflux risk \
                of cooperative scheduling.",
            "key_points": [
                "An event loop runs one callback at a time, so a coroutine that blocks or computes stalls every task.",
                "Asyncio debug mode logs callbacks slower than slow_callback_duration, 100 ms by default.",
                "Blocking calls move to asyncio.to_thread and CPU-bound work to a process pool executor."
            ],
            "follow_ups": ["asyncio-usage", "asyncio-blocking-calls"]
        }
    })
}

#[tokio::test]
async fn writes_need_a_configured_key() {
    let without_keys = fixture(&[]);
    let (status, body) = send(&without_keys.app, upsert(&new_question(), Some("anything"))).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("writes_disabled")));

    let with_keys = fixture(&["s3cret"]);
    for key in [None, Some("wrong")] {
        let (status, body) = send(&with_keys.app, upsert(&new_question(), key)).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")), "{key:?}");
    }
    let delete = Request::delete("/v1/questions/gil").body(Body::empty()).unwrap();
    assert_eq!(send(&with_keys.app, delete).await.0, StatusCode::UNAUTHORIZED);
}

fn search_quokkaflux() -> Request<Body> {
    search_lexical("quokkaflux")
}

fn search_lexical(query: &str) -> Request<Body> {
    Request::get(format!("/v1/search?q={query}&mode=lexical")).body(Body::empty()).unwrap()
}

/// The same search before and after each write: a page cached for one corpus is never served
/// for the next.
#[tokio::test]
async fn an_upsert_is_searchable_and_written_back_and_a_delete_removes_it() {
    let fixture = fixture(&["s3cret"]);
    let (status, before) = send(&fixture.app, search_quokkaflux()).await;
    assert_eq!((status, before["total"].as_u64()), (StatusCode::OK, Some(0)), "{before}");

    let (status, body) = send(&fixture.app, upsert(&new_question(), Some("s3cret"))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["id"], "event-loop-starvation");

    let (status, results) = send(&fixture.app, search_quokkaflux()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(results["results"][0]["id"], "event-loop-starvation", "{results}");
    // The typo corrector learns the new question's words with the write.
    let (_, misspelt) = send(&fixture.app, search_lexical("quokaflux")).await;
    assert_eq!(misspelt["results"][0]["id"], "event-loop-starvation", "{misspelt}");

    let on_disk = Corpus::load_dir(fixture.corpus_dir.path()).unwrap();
    assert_eq!(on_disk.get("event-loop-starvation").unwrap().topic, "concurrency");

    let (status, _) = send(&fixture.app, upsert(&new_question(), Some("s3cret"))).await;
    assert_eq!(status, StatusCode::OK, "replacing an entry answers 200");

    let delete = Request::delete("/v1/questions/event-loop-starvation").header("authorization", "Bearer s3cret").body(Body::empty()).unwrap();
    assert_eq!(send(&fixture.app, delete).await.0, StatusCode::NO_CONTENT);
    let get = Request::get("/v1/questions/event-loop-starvation").body(Body::empty()).unwrap();
    assert_eq!(send(&fixture.app, get).await.1["code"], "question_not_found");
    assert!(Corpus::load_dir(fixture.corpus_dir.path()).unwrap().get("event-loop-starvation").is_none());
    assert_eq!(send(&fixture.app, search_quokkaflux()).await.1["total"], 0);
}

#[tokio::test]
async fn invalid_entries_and_referenced_deletes_are_refused_with_every_problem() {
    let fixture = fixture(&["s3cret"]);
    let mut invalid = new_question();
    invalid["question"]["answer"] = json!("Too short.");
    invalid["question"]["follow_ups"] = json!(["no-such-question"]);
    let (status, body) = send(&fixture.app, upsert(&invalid, Some("s3cret"))).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_entry")), "{body}");
    let messages: Vec<&str> = body["problems"].as_array().unwrap().iter().map(|p| p["message"].as_str().unwrap()).collect();
    assert!(messages.iter().any(|m| m.contains("answer has 2 words")), "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("1 follow-ups")), "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("resolves to no question")), "{messages:?}");

    let referenced = Corpus::load_dir(fixture.corpus_dir.path()).unwrap().questions()[1].id().to_string();
    let delete = Request::delete(format!("/v1/questions/{referenced}")).header("authorization", "Bearer s3cret").body(Body::empty()).unwrap();
    let (status, body) = send(&fixture.app, delete).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("question_in_use")), "{body}");
}

#[tokio::test]
async fn searches_during_writes_see_the_old_or_the_new_corpus_never_an_error() {
    let fixture = Arc::new(fixture(&["s3cret"]));
    let reader = {
        let fixture = fixture.clone();
        tokio::spawn(async move {
            let mut seen_new = false;
            for _ in 0..200 {
                let request = Request::get("/v1/search?q=quokkaflux+event+loop&mode=lexical").body(Body::empty()).unwrap();
                let (status, body) = send(&fixture.app, request).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                seen_new |= body["results"].as_array().unwrap().iter().any(|hit| hit["id"] == "event-loop-starvation");
                tokio::task::yield_now().await;
            }
            seen_new
        })
    };
    let (status, _) = send(&fixture.app, upsert(&new_question(), Some("s3cret"))).await;
    assert_eq!(status, StatusCode::CREATED);
    reader.await.unwrap();
    let after = Request::get("/v1/search?q=quokkaflux&mode=lexical").body(Body::empty()).unwrap();
    assert_eq!(send(&fixture.app, after).await.1["results"][0]["id"], "event-loop-starvation");
}

#[tokio::test]
async fn an_anonymous_write_is_refused_before_its_body_is_read() {
    let with_keys = fixture(&["s3cret"]);
    let not_json = Request::post("/v1/questions").header("content-type", "application/json").body(Body::from("{\"topic\": 1}")).unwrap();
    let (status, body) = send(&with_keys.app, not_json).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")), "{body}");
    assert!(!body.to_string().contains("topic"), "nothing about the body's schema leaks: {body}");

    let without_keys = fixture(&[]);
    let (status, body) = send(&without_keys.app, upsert(&json!({}), None)).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("writes_disabled")), "{body}");
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive_and_only_the_exact_key_passes() {
    let fixture = fixture(&["s3cret"]);
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let request = Request::delete("/v1/questions/no-such-question").header("authorization", format!("{scheme} s3cret")).body(Body::empty()).unwrap();
        let (status, body) = send(&fixture.app, request).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("question_not_found")), "{scheme}: {body}");
    }
    for key in ["s3cre", "s3crett", "S3CRET", "", "s3cret s3cret"] {
        let request = Request::delete("/v1/questions/no-such-question").header("authorization", format!("Bearer {key}")).body(Body::empty()).unwrap();
        assert_eq!(send(&fixture.app, request).await.0, StatusCode::UNAUTHORIZED, "{key:?}");
    }
    let basic = Request::delete("/v1/questions/no-such-question").header("authorization", "Basic s3cret").body(Body::empty()).unwrap();
    assert_eq!(send(&fixture.app, basic).await.0, StatusCode::UNAUTHORIZED);
}

#[test]
fn blank_api_keys_are_ignored_and_a_list_of_only_blanks_is_refused() {
    let keys = |list: &[&str]| askmark::api::api_keys(&list.iter().map(|key| key.to_string()).collect::<Vec<_>>());
    assert_eq!(keys(&["", " s3cret ", "  "]).unwrap(), ["s3cret"]);
    assert!(keys(&["", " ", ""]).is_err(), "\", ,\" must not enable writes with a blank key");
    assert!(keys(&[]).unwrap().is_empty(), "no keys: writes disabled");
}
