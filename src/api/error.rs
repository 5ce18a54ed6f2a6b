//! One error shape for every failure: `application/problem+json` with a stable snake_case
//! `code`. Every code, with its status and title, lives in `ErrorCode` and nowhere else; core
//! errors map to codes through exhaustive matches, so a new core error cannot silently become a
//! 500. Internal details are logged, never sent.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::{Error, InternalError, UserError};

/// Declares the codes and `ErrorCode::ALL` from one list, so `ALL` cannot miss a code.
macro_rules! error_codes {
    ($($code:ident),+ $(,)?) => {
        /// Every error the API sends; the string, status and title are in `ErrorCode::describe`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode {
            $($code),+
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$code),+];
        }
    };
}

error_codes! {
    InvalidQuery,
    InvalidFilter,
    InvalidPath,
    QuestionNotFound,
    RouteNotFound,
    MethodNotAllowed,
    InvalidJson,
    InvalidBody,
    UnreadableBody,
    UnsupportedMediaType,
    PayloadTooLarge,
    UriTooLong,
    HeadersTooLarge,
    RequestTimeout,
    InvalidAnswer,
    InvalidReview,
    InvalidEntry,
    QuestionInUse,
    Unauthorized,
    WritesDisabled,
    RateLimited,
    Overloaded,
    VectorStoreUnavailable,
    NotReady,
    Internal,
}

impl ErrorCode {
    /// The code's stable string, HTTP status and title: the one table of errors.
    fn describe(self) -> (&'static str, StatusCode, &'static str) {
        match self {
            ErrorCode::InvalidQuery => ("invalid_query", StatusCode::BAD_REQUEST, "Invalid query"),
            ErrorCode::InvalidFilter => ("invalid_filter", StatusCode::BAD_REQUEST, "Invalid filter"),
            ErrorCode::InvalidPath => ("invalid_path", StatusCode::BAD_REQUEST, "Invalid path"),
            ErrorCode::QuestionNotFound => ("question_not_found", StatusCode::NOT_FOUND, "Question not found"),
            ErrorCode::RouteNotFound => ("route_not_found", StatusCode::NOT_FOUND, "No such route"),
            ErrorCode::MethodNotAllowed => ("method_not_allowed", StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"),
            ErrorCode::InvalidJson => ("invalid_json", StatusCode::BAD_REQUEST, "Malformed JSON"),
            ErrorCode::InvalidBody => ("invalid_body", StatusCode::UNPROCESSABLE_ENTITY, "Invalid request body"),
            ErrorCode::UnreadableBody => ("unreadable_body", StatusCode::BAD_REQUEST, "Unreadable request body"),
            ErrorCode::UnsupportedMediaType => ("unsupported_media_type", StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported media type"),
            ErrorCode::PayloadTooLarge => ("payload_too_large", StatusCode::PAYLOAD_TOO_LARGE, "Payload too large"),
            ErrorCode::UriTooLong => ("uri_too_long", StatusCode::URI_TOO_LONG, "URI too long"),
            ErrorCode::HeadersTooLarge => ("headers_too_large", StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "Request headers too large"),
            ErrorCode::RequestTimeout => ("request_timeout", StatusCode::REQUEST_TIMEOUT, "Request timeout"),
            ErrorCode::InvalidAnswer => ("invalid_answer", StatusCode::BAD_REQUEST, "Invalid answer"),
            ErrorCode::InvalidReview => ("invalid_review", StatusCode::UNPROCESSABLE_ENTITY, "Invalid review request"),
            ErrorCode::InvalidEntry => ("invalid_entry", StatusCode::UNPROCESSABLE_ENTITY, "Invalid question entry"),
            ErrorCode::QuestionInUse => ("question_in_use", StatusCode::CONFLICT, "Question in use"),
            ErrorCode::Unauthorized => ("unauthorized", StatusCode::UNAUTHORIZED, "Unauthorized"),
            ErrorCode::WritesDisabled => ("writes_disabled", StatusCode::FORBIDDEN, "Writes are disabled"),
            ErrorCode::RateLimited => ("rate_limited", StatusCode::TOO_MANY_REQUESTS, "Too many reviews"),
            ErrorCode::Overloaded => ("overloaded", StatusCode::SERVICE_UNAVAILABLE, "Server busy"),
            ErrorCode::VectorStoreUnavailable => ("vector_store_unavailable", StatusCode::SERVICE_UNAVAILABLE, "Vector store unavailable"),
            ErrorCode::NotReady => ("not_ready", StatusCode::SERVICE_UNAVAILABLE, "Not ready"),
            ErrorCode::Internal => ("internal", StatusCode::INTERNAL_SERVER_ERROR, "Internal error"),
        }
    }

    pub fn as_str(self) -> &'static str {
        self.describe().0
    }

    pub fn status(self) -> StatusCode {
        self.describe().1
    }

    pub fn title(self) -> &'static str {
        self.describe().2
    }

    /// Every code answered with this status, for the OpenAPI document.
    pub fn with_status(status: StatusCode) -> impl Iterator<Item = ErrorCode> {
        ErrorCode::ALL.iter().copied().filter(move |code| code.status() == status)
    }
}

/// A problem to send: the code decides the status and title; `retry_after` becomes the
/// `Retry-After` header (every 503 has one, one second unless the cause knows better).
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub detail: String,
    pub retry_after: Option<Duration>,
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
    #[schema(value_type = Option<Vec<Object>>)]
    problems: Option<serde_json::Value>,
}

/// How long a client should wait before retrying a 503 whose cause gives no better estimate.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> ApiError {
        let retry_after = (code.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(DEFAULT_RETRY_AFTER);
        ApiError { code, detail: detail.into(), retry_after, extra: None }
    }

    pub fn retry_after(self, wait: Duration) -> ApiError {
        ApiError { retry_after: Some(wait), ..self }
    }

    fn with_problems(self, problems: &crate::corpus::CorpusProblems) -> ApiError {
        ApiError { extra: serde_json::to_value(&problems.0).ok(), ..self }
    }

    pub fn internal() -> ApiError {
        ApiError::new(ErrorCode::Internal, "the server failed to process the request")
    }
}

impl From<ErrorCode> for ApiError {
    /// The code with a generic detail, for errors whose title says it all.
    fn from(code: ErrorCode) -> ApiError {
        let detail = match code {
            ErrorCode::RouteNotFound => "no route matches this path",
            ErrorCode::MethodNotAllowed => "this route does not take that method",
            ErrorCode::Overloaded => "too many requests are being processed; retry shortly",
            ErrorCode::RequestTimeout => "the request took too long and was abandoned",
            _ => code.title(),
        };
        ApiError::new(code, detail)
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
        match &error {
            UserError::QuestionNotFound(_) => ApiError::new(ErrorCode::QuestionNotFound, detail),
            UserError::InvalidQuery(_) => ApiError::new(ErrorCode::InvalidQuery, detail),
            UserError::InvalidFilter(_) => ApiError::new(ErrorCode::InvalidFilter, detail),
            UserError::InvalidAnswer(_) => ApiError::new(ErrorCode::InvalidAnswer, detail),
            UserError::InvalidReview(_) => ApiError::new(ErrorCode::InvalidReview, detail),
            UserError::QuestionInUse(problems) => ApiError::new(ErrorCode::QuestionInUse, detail).with_problems(problems),
            UserError::InvalidEntry(problems) => ApiError::new(ErrorCode::InvalidEntry, detail).with_problems(problems),
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
                tracing::warn!(error = %error, "vector store unavailable");
                ApiError::new(
                    ErrorCode::VectorStoreUnavailable,
                    "the vector store did not answer; lexical search still works (mode=lexical); retry shortly",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        let problem = Problem {
            kind: format!("https://askmark.dev/problems/{}", self.code.as_str()),
            title: self.code.title(),
            status: status.as_u16(),
            detail: self.detail,
            code: self.code.as_str(),
            problems: self.extra,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(wait) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds(wait)));
        }
        if self.code == ErrorCode::Unauthorized {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Whole seconds, rounded up so a client that waits that long is let through, and at least one.
fn retry_after_seconds(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}
