//! Extractors whose rejections use the problem+json shape, so malformed input never produces
//! axum's plain-text errors.

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;

use super::{ApiError, ErrorCode, MAX_BODY_BYTES};

/// `Json` with rejections in the problem+json shape: malformed JSON, a wrong content type, a
/// body over the limit, a body that cannot be read and fields that do not fit each get their own
/// code.
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
                    JsonRejection::MissingJsonContentType(_) => {
                        ApiError::new(ErrorCode::UnsupportedMediaType, "send the body as application/json")
                    }
                    JsonRejection::JsonSyntaxError(_) => ApiError::new(ErrorCode::InvalidJson, detail),
                    JsonRejection::JsonDataError(_) => ApiError::new(ErrorCode::InvalidBody, detail),
                    JsonRejection::BytesRejection(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                        ApiError::new(ErrorCode::PayloadTooLarge, format!("the request body is over {MAX_BODY_BYTES} bytes"))
                    }
                    _ => ApiError::new(ErrorCode::UnreadableBody, detail),
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
            .map_err(|rejection| ApiError::new(ErrorCode::InvalidQuery, rejection.body_text()))
    }
}

/// `Path` with rejections in the problem+json shape: a segment that does not decode to UTF-8
/// (`/v1/questions/%ff`) is an `invalid_path`.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|rejection| ApiError::new(ErrorCode::InvalidPath, rejection.body_text()))
    }
}
