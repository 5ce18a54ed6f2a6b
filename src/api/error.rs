//! One error shape for every failure: `application/problem+json` with a stable snake_case
//! `code`. Core errors map here through an exhaustive match, so a new core error cannot silently
//! become a 500. Internal details are logged, never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::{Error, InternalError, UserError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub extra: Option<serde_json::Value>,
}

/// RFC 9457 problem details, plus a stable snake_case `code`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    detail: String,
    /// Stable machine-readable error code, e.g. `invalid_query`.
    code: &'static str,
    /// For invalid entries: every problem found, with file and question.
    #[serde(skip_serializing_if = "Option::is_none")]
    problems: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, title: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError { status, code, title, detail: detail.into(), extra: None }
    }

    pub fn invalid_query(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", "Invalid query", detail)
    }

    pub fn not_found_route() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "No such route", "no route matches this path")
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "Method not allowed", "this route does not take that method")
    }

    pub fn overloaded() -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", "Server busy", "too many requests are being processed; retry shortly")
    }

    pub fn not_ready(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "Not ready", detail)
    }

    pub fn internal() -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error", "the server failed to process the request")
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> ApiError {
        match error {
            Error::User(user) => user.into(),
            Error::Internal(internal) => internal.into(),
        }
    }
}

impl From<UserError> for ApiError {
    fn from(error: UserError) -> ApiError {
        let detail = error.to_string();
        match error {
            UserError::QuestionNotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "question_not_found", "Question not found", detail),
            UserError::InvalidQuery(_) => ApiError::invalid_query(detail),
            UserError::InvalidFilter(_) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_filter", "Invalid filter", detail),
            UserError::InvalidAnswer(_) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_answer", "Invalid answer", detail),
            UserError::InvalidReview(_) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_review", "Invalid review request", detail),
            UserError::QuestionInUse(problems) => ApiError {
                extra: serde_json::to_value(&problems.0).ok(),
                ..ApiError::new(StatusCode::CONFLICT, "question_in_use", "Question in use", detail)
            },
            UserError::InvalidEntry(problems) => ApiError {
                extra: serde_json::to_value(&problems.0).ok(),
                ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_entry", "Invalid question entry", detail)
            },
        }
    }
}

impl From<InternalError> for ApiError {
    fn from(error: InternalError) -> ApiError {
        match &error {
            InternalError::Io { .. }
            | InternalError::Lexical(_)
            | InternalError::VectorStore(_)
            | InternalError::Model(_)
            | InternalError::Index(_) => {
                tracing::error!(error = %error, "internal error");
                ApiError::internal()
            }
            InternalError::VectorStoreUnavailable(_) => {
                tracing::error!(error = %error, "vector store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "vector_store_unavailable",
                    "Vector store unavailable",
                    "the vector store did not answer; lexical search still works (mode=lexical); retry shortly",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = Problem {
            kind: format!("https://askmark.dev/problems/{}", self.code),
            title: self.title,
            status: self.status.as_u16(),
            detail: self.detail,
            code: self.code,
            problems: self.extra,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
