//! The HTTP layer: thin axum handlers over the core `Engine`. CPU work (embedding, index search)
//! runs on the blocking pool behind a bounded number of permits; a request waits for one at most
//! the queue timeout, then gets a 503 `overloaded` instead of waiting in an unbounded queue. Admin writes
//! go to the engine's single writer, which finishes them whether or not the client waits; readers
//! see the old or the new corpus, never half of one.

mod admin;
mod auth;
mod error;
mod extract;
mod openapi;
mod read;
mod review;
mod serve;
mod web;

use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::error_handling::HandleErrorLayer;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{BoxError, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use auth::{api_keys, BlankApiKeys};
pub use error::{ApiError, ErrorCode};
pub use extract::{ApiJson, ApiPath, ApiQuery};
pub use serve::{serve, ConnectionLimits};

use crate::engine::Engine;

/// Largest request body accepted; a review answer is at most 10 000 characters.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest request target (path and query); a search query is at most 500 characters.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most request headers, and their total size (names and values). hyper's own limits are far
/// above these, so a request over them is answered here, as problem+json.
pub const MAX_HEADERS: usize = 100;
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// What an operator can tune; every field has a flag and an environment variable in `main.rs`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Embedding/search jobs running at once.
    pub max_cpu_jobs: usize,
    /// How long a request may wait for a free job slot before it is answered 503 overloaded:
    /// a short, bounded queue, so a burst is served instead of bounced, and a flood is not.
    pub queue_timeout: Duration,
    /// Bearer keys allowed to write; empty means writes are refused.
    pub api_keys: Vec<String>,
    /// Reviews one client may request per minute.
    pub reviews_per_minute: NonZeroU32,
    /// Origins allowed to call the API from a browser on another origin; empty means same-origin only.
    pub cors_origins: Vec<String>,
    pub request_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            max_cpu_jobs: 8,
            queue_timeout: Duration::from_millis(100),
            api_keys: Vec::new(),
            reviews_per_minute: NonZeroU32::new(60).expect("non-zero"),
            cors_origins: Vec::new(),
            request_timeout: Duration::from_secs(30),
        }
    }
}

pub struct AppState {
    engine: Engine,
    cpu_permits: Arc<Semaphore>,
    review_limiter: review::ClientLimiter,
    config: ServerConfig,
}

impl AppState {
    pub fn new(engine: Engine, config: ServerConfig) -> Arc<AppState> {
        Arc::new(AppState {
            engine,
            cpu_permits: Arc::new(Semaphore::new(config.max_cpu_jobs.max(1))),
            review_limiter: review::ClientLimiter::new(config.reviews_per_minute),
            config,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Runs CPU-bound work on the blocking pool, with the caller's tracing span, once a permit is
    /// free; 503 overloaded when none frees up within the queue timeout.
    async fn run_cpu<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        F: FnOnce(&Engine) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let waiting = tokio::time::timeout(self.config.queue_timeout, self.cpu_permits.clone().acquire_owned());
        let Ok(Ok(permit)) = waiting.await else {
            metrics::counter!("askmark_overloaded_total").increment(1);
            return Err(ApiError::from(ErrorCode::Overloaded));
        };
        let engine = self.engine.clone();
        on_blocking_pool(move || {
            let _permit = permit;
            work(&engine)
        })
        .await
    }
}

/// Runs `work` on the blocking pool inside the caller's tracing span.
async fn on_blocking_pool<T, F>(work: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work)).await.map_err(|join_error| {
        tracing::error!(error = %join_error, "blocking task failed");
        ApiError::internal()
    })?
}

/// The process-wide Prometheus recorder, installed on first use.
fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("seconds".into()),
                &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0],
            )
            .expect("bucket list is not empty")
            .install_recorder()
            .expect("no other metrics recorder is installed")
    })
}

async fn track_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let labels = [("route", route), ("method", method), ("status", response.status().as_u16().to_string())];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    response
}

/// 414 and 431 as problem+json, for request lines and headers over our limits.
async fn limit_request_head(request: Request, next: Next) -> Response {
    let uri_bytes = request.uri().path_and_query().map_or(0, |target| target.as_str().len());
    if uri_bytes > MAX_URI_BYTES {
        return ApiError::new(ErrorCode::UriTooLong, format!("the request target has {uri_bytes} bytes, at most {MAX_URI_BYTES} are allowed"))
            .into_response();
    }
    let headers = request.headers();
    let header_bytes: usize = headers.iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    if headers.len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        let detail = format!("at most {MAX_HEADERS} headers of {MAX_HEADER_BYTES} bytes in all are allowed");
        return ApiError::new(ErrorCode::HeadersTooLarge, detail).into_response();
    }
    next.run(request).await
}

/// The request timeout's error as problem+json; the router itself never fails.
async fn timed_out(error: BoxError) -> ApiError {
    if error.is::<tower::timeout::error::Elapsed>() {
        return ApiError::from(ErrorCode::RequestTimeout);
    }
    tracing::error!(error = %error, "request failed in a middleware");
    ApiError::internal()
}

/// Server errors are logged at ERROR, except 503s: those are designed answers to load or to an
/// unreachable vector store (counted in metrics, the cause logged at WARN where it is known).
fn log_failure(failure: ServerErrorsFailureClass, latency: Duration, _span: &tracing::Span) {
    let latency_ms = latency.as_millis();
    match failure {
        ServerErrorsFailureClass::StatusCode(StatusCode::SERVICE_UNAVAILABLE) => tracing::debug!(latency_ms, "service unavailable"),
        ServerErrorsFailureClass::StatusCode(status) => tracing::error!(%status, latency_ms, "response failed"),
        ServerErrorsFailureClass::Error(error) => tracing::error!(%error, latency_ms, "response failed"),
    }
}

fn cors(origins: &[String]) -> CorsLayer {
    let allowed: Vec<HeaderValue> = origins.iter().filter_map(|origin| HeaderValue::from_str(origin).ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([axum::http::header::CONTENT_TYPE, axum::http::header::AUTHORIZATION])
}

/// The whole service: the same router serves `main` and the tests.
pub fn router(state: Arc<AppState>) -> Router {
    prometheus();
    state.engine.record_index_size();
    let request_id = HeaderName::from_static("x-request-id");
    let timeout = state.config.request_timeout;
    let cors = cors(&state.config.cors_origins);
    Router::new()
        .route("/healthz", get(read::healthz))
        .route("/readyz", get(read::readyz))
        .route("/metrics", get(|| async { prometheus().render() }))
        .route("/openapi.json", get(openapi::spec))
        .route("/v1/search", get(read::search))
        .route("/v1/topics", get(read::topics))
        .route("/v1/questions", get(read::list_questions).post(admin::upsert_question))
        .route("/v1/questions/{id}", get(read::question).delete(admin::delete_question))
        .route("/v1/questions/{id}/related", get(read::related))
        .route("/v1/review", post(review::review))
        .merge(web::routes())
        .route_layer(middleware::from_fn(track_metrics))
        .fallback(|| async { ApiError::from(ErrorCode::RouteNotFound) })
        .method_not_allowed_fallback(|| async { ApiError::from(ErrorCode::MethodNotAllowed) })
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CompressionLayer::new())
        .layer(cors)
        .layer(ServiceBuilder::new().layer(HandleErrorLayer::new(timed_out)).timeout(timeout))
        .layer(middleware::from_fn(limit_request_head))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().on_failure(log_failure))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}
