//! `GET /openapi.json`, generated from the handlers' and types' annotations, then completed with
//! what the annotations cannot say: every error is `application/problem+json` with one of
//! `ErrorCode::ALL`, every route may answer 408/414/431/500, topic parameters name the current
//! topics, and the two shapes serde writes by hand (`covered`, a flattened `Question`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, read, review, AppState, ErrorCode};

/// A string with at least one character that is not whitespace (as Rust's `str::trim` sees it),
/// for fields the server refuses when blank.
pub(super) const NOT_BLANK: &str = r"[^\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";

/// Statuses any route may answer, whatever its handler does: the request timeout, the limits on
/// the request line and headers, and an internal error.
const EVERY_ROUTE: [StatusCode; 4] = [
    StatusCode::REQUEST_TIMEOUT,
    StatusCode::URI_TOO_LONG,
    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    StatusCode::INTERNAL_SERVER_ERROR,
];

struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("api_key", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "askmark", description = "Search, related follow-ups and answer review over Python interview questions."),
    paths(
        read::healthz,
        read::readyz,
        read::search,
        read::topics,
        read::list_questions,
        read::question,
        read::related,
        review::review,
        admin::upsert_question,
        admin::delete_question,
    ),
    components(schemas(super::error::Problem)),
    modifiers(&BearerKey)
)]
struct ApiDoc;

pub(super) async fn spec(State(state): State<Arc<AppState>>) -> Json<Value> {
    let topics: Vec<String> = state.engine().snapshot().corpus().topics().iter().map(|topic| topic.id.clone()).collect();
    Json(document(&topics))
}

/// The whole document, with `topics` as the values a topic may take.
pub(super) fn document(topics: &[String]) -> Value {
    let mut spec = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serializes");
    let schemas = &mut spec["components"]["schemas"];
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
    schemas["Problem"]["properties"]["code"]["enum"] = json!(codes);
    schemas["KeyPointVerdict"]["properties"]["covered"] = json!({
        "description": "`true`, `false` or `\"partially\"`.",
        "oneOf": [{"type": "boolean"}, {"type": "string", "enum": ["partially"]}],
    });
    schemas["Question"] = with_topic(&schemas["QuestionEntry"]);
    schemas["UpsertBody"]["properties"]["topic"]["enum"] = json!(topics);
    let Some(paths) = spec["paths"].as_object_mut() else { return spec };
    for operation in paths.values_mut().filter_map(Value::as_object_mut).flat_map(|path| path.values_mut()) {
        complete_operation(operation, topics);
    }
    spec
}

/// `QuestionEntry` plus the `topic` serde flattens it with: one closed object, where utoipa's
/// `allOf` of a closed object and `topic` would refuse every question.
fn with_topic(entry: &Value) -> Value {
    let mut question = entry.clone();
    question["properties"]["topic"] = json!({"type": "string"});
    if let Some(required) = question["required"].as_array_mut() {
        required.push(json!("topic"));
    }
    question
}

fn complete_operation(operation: &mut Value, topics: &[String]) {
    if let Some(parameters) = operation.get_mut("parameters").and_then(Value::as_array_mut) {
        for parameter in parameters.iter_mut().filter(|parameter| parameter["name"] == "topic") {
            parameter["schema"]["enum"] = json!(topics);
        }
    }
    let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else { return };
    for status in EVERY_ROUTE {
        let description: Vec<&str> = ErrorCode::with_status(status).map(ErrorCode::as_str).collect();
        responses.entry(status.as_str()).or_insert_with(|| json!({"description": description.join(" or ")}));
    }
    let problem = json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}});
    for (status, response) in responses.iter_mut() {
        if status.parse::<u16>().is_ok_and(|status| status >= 400) {
            response["content"] = problem.clone();
        }
    }
}
