//! `GET /openapi.json`, generated from the handlers' and types' annotations.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, read, review};

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
    modifiers(&BearerKey)
)]
struct ApiDoc;

pub(super) async fn spec() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
