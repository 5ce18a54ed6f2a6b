//! The JSON shapes of the public endpoints, pinned with insta snapshots.
//!
//! Every field name, id, rank, text and flag is kept; numbers that depend on floating point
//! (scores, similarities) and timings are replaced by placeholders, so a snapshot changes when the
//! contract or the ranking changes and not when the last digit of a cosine does.

use axum::http::StatusCode;
use serde_json::Value;

use crate::api::{get, post};

/// Replaces every non-integer number and every timing with a placeholder.
fn shape(value: Value) -> Value {
    match value {
        Value::Number(n) if n.is_f64() => Value::String("[float]".into()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| match key.as_str() {
                    "took_ms" => (key, Value::String("[ms]".into())),
                    "score" => (key, Value::String("[score]".into())),
                    _ => (key, shape(value)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(shape).collect()),
        other => other,
    }
}

async fn get_ok(uri: &str) -> Value {
    let (status, _, body) = get(uri).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    shape(body)
}

#[tokio::test]
async fn search_shape() {
    insta::assert_json_snapshot!(get_ok("/v1/search?q=how+does+asyncio+differ+from+threads&limit=3").await);
}

#[tokio::test]
async fn search_with_filters_shape() {
    insta::assert_json_snapshot!(get_ok("/v1/search?q=dictionary+ordering&limit=2&mode=lexical&topic=data-structures&difficulty=junior").await);
}

#[tokio::test]
async fn question_list_shape() {
    insta::assert_json_snapshot!(get_ok("/v1/questions?limit=2&topic=concurrency").await);
}

#[tokio::test]
async fn question_shape() {
    insta::assert_json_snapshot!(get_ok("/v1/questions/gil").await);
}

#[tokio::test]
async fn related_shape() {
    insta::assert_json_snapshot!(get_ok("/v1/questions/gil/related?limit=4").await);
}

#[tokio::test]
async fn topics_shape() {
    insta::assert_json_snapshot!(get_ok("/v1/topics").await);
}

#[tokio::test]
async fn review_shape() {
    let body = serde_json::json!({
        "question_id": "gil",
        "answer": "The GIL is a mutex in CPython that lets only one thread execute Python bytecode at a time. \
                   Because of it, threads do not speed up CPU-bound Python code. Threads still help with I/O-bound \
                   work, because blocking I/O releases the GIL. For CPU-bound work use multiprocessing."
    });
    let (status, _, verdict) = post("/v1/review", "application/json", body.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{verdict}");
    insta::assert_json_snapshot!(shape(verdict));
}

#[tokio::test]
async fn problem_shape() {
    let (status, content_type, body) = get("/v1/questions/no-such-question").await;
    assert_eq!((status, content_type.as_str()), (StatusCode::NOT_FOUND, "application/problem+json"));
    insta::assert_json_snapshot!(shape(body));
}
