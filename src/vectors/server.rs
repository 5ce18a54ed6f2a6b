//! A collection on a Qdrant server or cluster, through `qdrant-client` (gRPC).
//!
//! The trait is synchronous (callers are CPU-pool threads and the CLI), the client is async: every
//! call runs on one small process-wide runtime and the caller waits on a channel, which works from
//! any thread. Transient failures (unavailable, deadline exceeded, resource exhausted) are retried
//! with backoff; every call has a connect and a request timeout, so a server that is down gives a
//! clear error within seconds instead of a hang.

use std::collections::HashMap;
use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::vectors_config::Config;
use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, CreateAliasBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    DeletePointsBuilder, Distance, FieldType, Filter, PointStruct, PointsIdsList, QueryPointsBuilder,
    UpsertPointsBuilder, VectorParamsBuilder, VectorsConfigBuilder,
};
use qdrant_client::{Payload, Qdrant, QdrantError};

use super::{point_id, PointHit, VectorName, VectorPoint, VectorStore};
use crate::error::InternalError;
use crate::filter::SearchFilter;

/// Where the server is and how to reach it.
#[derive(Clone, PartialEq, Eq)]
pub struct QdrantConfig {
    /// gRPC address, e.g. `http://localhost:6334` (`https://` for TLS).
    pub url: String,
    pub api_key: Option<String>,
    /// Alias that always names the newest collection; collections are `<alias>-<hash>`.
    pub alias: String,
}

impl std::fmt::Debug for QdrantConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QdrantConfig")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("alias", &self.alias)
            .finish()
    }
}

/// Points per upsert request.
const UPSERT_BATCH: usize = 256;
/// Attempts per call, with doubling backoff from `FIRST_BACKOFF` between them.
const ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("qdrant-client")
        .enable_all()
        .build()
        .expect("a tokio runtime for the Qdrant client")
});

pub struct QdrantStore {
    client: Qdrant,
    url: String,
    collection: String,
}

fn is_transient(error: &QdrantError) -> bool {
    match error {
        QdrantError::ResourceExhaustedError { .. } => true,
        QdrantError::ResponseError { status } => match status.code() {
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Aborted | tonic::Code::Unknown => true,
            // qdrant-client reports a refused or failed connection as Internal.
            tonic::Code::Internal => status.message().starts_with("Failed to connect"),
            _ => false,
        },
        _ => false,
    }
}

fn already_exists(error: &QdrantError) -> bool {
    matches!(error, QdrantError::ResponseError { status } if status.code() == tonic::Code::AlreadyExists)
}

fn store_error(error: impl std::fmt::Display) -> InternalError {
    InternalError::VectorStore(error.to_string())
}

impl QdrantStore {
    fn connect(config: &QdrantConfig, collection: &str) -> Result<QdrantStore, InternalError> {
        let _runtime = RUNTIME.enter();
        let client = Qdrant::from_url(&config.url)
            .api_key(config.api_key.clone())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .skip_compatibility_check()
            .build()
            .map_err(|error| store_error(format!("Qdrant client for {}: {error}", config.url)))?;
        Ok(QdrantStore { client, url: config.url.clone(), collection: collection.to_string() })
    }

    /// Runs `call` with the client and this store's collection name on the client runtime,
    /// retrying transient failures, and waits for it.
    fn call<T, F, Fut>(&self, what: &str, call: F) -> Result<T, QdrantError>
    where
        T: Send + 'static,
        F: Fn(Qdrant, String) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, QdrantError>> + Send,
    {
        let (client, collection) = (self.client.clone(), self.collection.clone());
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        let what = what.to_string();
        RUNTIME.spawn(async move {
            let mut backoff = FIRST_BACKOFF;
            let mut attempt = 1;
            let result = loop {
                match call(client.clone(), collection.clone()).await {
                    Err(error) if attempt < ATTEMPTS && is_transient(&error) => {
                        tracing::warn!(%error, attempt, operation = %what, "transient Qdrant error, retrying");
                        tokio::time::sleep(backoff).await;
                        backoff *= 2;
                        attempt += 1;
                    }
                    other => break other,
                }
            };
            let _ = sender.send(result);
        });
        receiver.recv().unwrap_or_else(|_| Err(QdrantError::Io(std::io::Error::other("the Qdrant client task stopped"))))
    }

    fn failed<'a>(&'a self, what: &'a str) -> impl Fn(QdrantError) -> InternalError + 'a {
        move |error| {
            let message = format!("Qdrant at {} ({what} on {}): {error}", self.url, self.collection);
            if is_transient(&error) {
                InternalError::VectorStoreUnavailable(message)
            } else {
                InternalError::VectorStore(message)
            }
        }
    }

    /// Opens `collection` for a new index generation: creates it with both named vectors and the
    /// payload indexes when missing, and checks an existing one matches `dimension` and cosine.
    pub fn create(config: &QdrantConfig, collection: &str, dimension: usize) -> Result<QdrantStore, InternalError> {
        let store = QdrantStore::connect(config, collection)?;
        let exists = store.call("check collection", |client, name| async move { client.collection_exists(name).await });
        if !exists.map_err(store.failed("check collection"))? {
            let created = store.call("create collection", move |client, name| {
                let mut vectors = VectorsConfigBuilder::default();
                for vector in [VectorName::Question, VectorName::Answer] {
                    vectors.add_named_vector_params(vector.as_str(), VectorParamsBuilder::new(dimension as u64, Distance::Cosine));
                }
                let request = CreateCollectionBuilder::new(name).vectors_config(vectors);
                async move { client.create_collection(request).await }
            });
            match created {
                Err(error) if already_exists(&error) => {}
                other => {
                    other.map_err(store.failed("create collection"))?;
                }
            }
        }
        store.check_vectors(dimension)?;
        for field in ["topic", "difficulty", "tags"] {
            store
                .call("create payload index", move |client, name| {
                    let request = CreateFieldIndexCollectionBuilder::new(name, field, FieldType::Keyword).wait(true);
                    async move { client.create_field_index(request).await }
                })
                .map_err(store.failed("create payload index"))?;
        }
        Ok(store)
    }

    /// Opens an existing collection that an index generation was built into.
    pub fn open(config: &QdrantConfig, collection: &str, dimension: usize) -> Result<QdrantStore, InternalError> {
        let store = QdrantStore::connect(config, collection)?;
        store.check_vectors(dimension)?;
        Ok(store)
    }

    fn check_vectors(&self, dimension: usize) -> Result<(), InternalError> {
        let info = self
            .call("read collection", |client, name| async move { client.collection_info(name).await })
            .map_err(self.failed("read collection"))?;
        let vectors = info
            .result
            .and_then(|info| info.config)
            .and_then(|config| config.params)
            .and_then(|params| params.vectors_config)
            .and_then(|vectors| vectors.config);
        let expected = |name: VectorName| format!("{}: {dimension}-d cosine", name.as_str());
        let found = match vectors {
            Some(Config::ParamsMap(map)) => map.map,
            Some(Config::Params(params)) => HashMap::from([(String::new(), params)]),
            None => HashMap::new(),
        };
        for name in [VectorName::Question, VectorName::Answer] {
            let matches = found.get(name.as_str()).is_some_and(|params| {
                params.size == dimension as u64 && params.distance == Distance::Cosine as i32
            });
            if !matches {
                let actual: Vec<String> =
                    found.iter().map(|(name, p)| format!("{name:?}: {}-d {:?}", p.size, Distance::try_from(p.distance))).collect();
                return Err(store_error(format!(
                    "Qdrant collection {} at {} does not match the model: expected {}, found [{}]; \
                     re-index into a new collection (askmark index --force) or point ASKMARK_QDRANT_COLLECTION elsewhere",
                    self.collection,
                    self.url,
                    expected(name),
                    actual.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// Points `alias` at this collection, in one atomic server-side operation.
    pub fn publish_as(&self, alias: &str) -> Result<(), InternalError> {
        let alias = alias.to_string();
        self.call("switch alias", move |client, collection| {
            let request = CreateAliasBuilder::new(collection, alias.clone());
            async move { client.create_alias(request).await }
        })
        .map(drop)
        .map_err(self.failed("switch alias"))
    }

    /// Deletes a collection that no index generation uses any more.
    pub fn delete_collection(config: &QdrantConfig, collection: &str) -> Result<(), InternalError> {
        let store = QdrantStore::connect(config, collection)?;
        store
            .call("delete collection", |client, name| async move { client.delete_collection(name).await })
            .map(drop)
            .map_err(store.failed("delete collection"))
    }
}

fn to_filter(filter: &SearchFilter) -> Option<Filter> {
    if filter.is_empty() {
        return None;
    }
    Some(Filter::must(filter.conditions().into_iter().map(|(key, value)| Condition::matches(key, value.to_string()))))
}

impl VectorStore for QdrantStore {
    fn upsert(&self, points: &[VectorPoint]) -> Result<(), InternalError> {
        for batch in points.chunks(UPSERT_BATCH) {
            let structs = batch
                .iter()
                .map(|point| {
                    let payload = Payload::try_from(serde_json::to_value(&point.payload).map_err(store_error)?).map_err(store_error)?;
                    let vectors = HashMap::from([
                        (VectorName::Question.as_str().to_string(), point.question.clone()),
                        (VectorName::Answer.as_str().to_string(), point.answer.clone()),
                    ]);
                    Ok(PointStruct::new(point_id(&point.payload.id).to_string(), vectors, payload))
                })
                .collect::<Result<Vec<_>, InternalError>>()?;
            self.call("upsert", move |client, name| {
                let request = UpsertPointsBuilder::new(name, structs.clone()).wait(true);
                async move { client.upsert_points(request).await }
            })
            .map_err(self.failed("upsert"))?;
        }
        Ok(())
    }

    fn delete(&self, question_ids: &[String]) -> Result<(), InternalError> {
        let ids: Vec<_> = question_ids.iter().map(|id| point_id(id).to_string().into()).collect();
        self.call("delete", move |client, name| {
            let request = DeletePointsBuilder::new(name).points(PointsIdsList { ids: ids.clone() }).wait(true);
            async move { client.delete_points(request).await }
        })
        .map(drop)
        .map_err(self.failed("delete"))
    }

    fn search(&self, vector: VectorName, query: &[f32], filter: &SearchFilter, limit: usize)
        -> Result<Vec<PointHit>, InternalError> {
        let (query, filter) = (query.to_vec(), to_filter(filter));
        let response = self
            .call("search", move |client, name| {
                let mut request =
                    QueryPointsBuilder::new(name).query(query.clone()).using(vector.as_str()).limit(limit as u64).with_payload(false);
                if let Some(filter) = &filter {
                    request = request.filter(filter.clone());
                }
                async move { client.query(request).await }
            })
            .map_err(self.failed("search"))?;
        Ok(response
            .result
            .into_iter()
            .filter_map(|point| match point.id?.point_id_options? {
                PointIdOptions::Uuid(uuid) => Some(PointHit { point: uuid.parse().ok()?, score: point.score }),
                PointIdOptions::Num(_) => None,
            })
            .collect())
    }

    fn count(&self) -> Result<usize, InternalError> {
        let response = self
            .call("count", |client, name| {
                let request = CountPointsBuilder::new(name).exact(true);
                async move { client.count(request).await }
            })
            .map_err(self.failed("count"))?;
        Ok(response.result.map_or(0, |result| result.count as usize))
    }

    /// Writes wait for the server to apply them, so there is nothing left to flush.
    fn flush(&self) -> Result<(), InternalError> {
        Ok(())
    }

    fn describe(&self) -> String {
        format!("qdrant server at {}, collection {}", self.url, self.collection)
    }
}
