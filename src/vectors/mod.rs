//! Vector storage behind one trait, so the embedded store and a Qdrant server are a configuration
//! switch. Both use the same point ids (UUID v5 of the question id), named vectors and payload.
//! This module stores and finds vectors; it never computes embeddings.

mod edge;
mod server;

pub use edge::EdgeStore;
pub use server::{QdrantConfig, QdrantStore};

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::corpus::Difficulty;
use crate::error::InternalError;
use crate::filter::SearchFilter;

/// Where index generations keep their vectors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum VectorBackend {
    /// A qdrant-edge shard inside each generation folder: no server to run.
    #[default]
    Embedded,
    /// A Qdrant server or cluster: one collection per corpus and model, behind an alias.
    Qdrant(QdrantConfig),
}

impl VectorBackend {
    /// The backend `ASKMARK_QDRANT_URL` and `ASKMARK_QDRANT_API_KEY` select (for the benchmark and
    /// tests; the CLI reads the same variables through its flags), with collections under `alias`.
    pub fn from_env(alias: &str) -> VectorBackend {
        let var = |name: &str| std::env::var(name).ok();
        VectorBackend::choose(var("ASKMARK_QDRANT_URL"), var("ASKMARK_QDRANT_API_KEY"), alias)
    }

    /// A Qdrant server when `url` is given, else the embedded store; empty values count as unset.
    pub fn choose(url: Option<String>, api_key: Option<String>, alias: &str) -> VectorBackend {
        match url.filter(|url| !url.is_empty()) {
            Some(url) => VectorBackend::Qdrant(QdrantConfig {
                url,
                api_key: api_key.filter(|key| !key.is_empty()),
                alias: alias.to_string(),
            }),
            None => VectorBackend::Embedded,
        }
    }

    /// Whether vectors at `location` belong to this backend (else the index is rebuilt).
    pub fn serves(&self, location: &VectorLocation) -> bool {
        match (self, location) {
            (VectorBackend::Embedded, VectorLocation::Embedded) => true,
            (VectorBackend::Qdrant(config), VectorLocation::Qdrant { url, collection }) => {
                url == &config.url && collection.starts_with(&format!("{}-", config.alias))
            }
            _ => false,
        }
    }

    /// Stores the points of a generation being built in `dir`: in `dir/vectors`, or on the
    /// server in the collection `<alias>-<key>` (`key` names the content, so replicas building
    /// the same corpus share it), which the alias then moves to. Returns where they went.
    pub fn create(&self, dir: &Path, key: &str, dimension: usize, points: &[VectorPoint]) -> Result<VectorLocation, InternalError> {
        match self {
            VectorBackend::Embedded => {
                let store = EdgeStore::create(&dir.join(EMBEDDED_FOLDER), dimension)?;
                store.upsert(points)?;
                store.flush()?;
                Ok(VectorLocation::Embedded)
            }
            VectorBackend::Qdrant(config) => {
                let collection = format!("{}-{key}", config.alias);
                let store = QdrantStore::create(config, &collection, dimension)?;
                store.upsert(points)?;
                store.publish_as(&config.alias)?;
                Ok(VectorLocation::Qdrant { url: config.url.clone(), collection })
            }
        }
    }

    /// Opens the vectors of the generation in `dir`, stored at `location`.
    pub fn open(&self, dir: &Path, location: &VectorLocation, dimension: usize) -> Result<Arc<dyn VectorStore>, InternalError> {
        match (location, self) {
            (VectorLocation::Embedded, _) => Ok(Arc::new(EdgeStore::open(&dir.join(EMBEDDED_FOLDER))?)),
            (VectorLocation::Qdrant { url, collection }, VectorBackend::Qdrant(config)) => {
                let config = QdrantConfig { url: url.clone(), ..config.clone() };
                Ok(Arc::new(QdrantStore::open(&config, collection, dimension)?))
            }
            (VectorLocation::Qdrant { url, .. }, VectorBackend::Embedded) => Err(InternalError::Index(format!(
                "the index in {} keeps its vectors on the Qdrant server at {url}: pass --qdrant-url (or ASKMARK_QDRANT_URL)",
                dir.display()
            ))),
        }
    }

    /// Frees what a removed generation stored outside its folder, unless a kept generation
    /// shares it (an embedded store goes with the folder).
    pub fn retire(&self, location: &VectorLocation, in_use: &[VectorLocation]) {
        if let (VectorBackend::Qdrant(config), VectorLocation::Qdrant { collection, .. }) = (self, location) {
            if !in_use.contains(location) {
                if let Err(error) = QdrantStore::delete_collection(config, collection) {
                    tracing::warn!(%error, %collection, "could not delete an unused Qdrant collection");
                }
            }
        }
    }
}

/// The folder of a generation that holds its embedded store.
const EMBEDDED_FOLDER: &str = "vectors";

/// Where a generation's vectors are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case")]
pub enum VectorLocation {
    /// `vectors/` inside the generation folder.
    #[default]
    Embedded,
    Qdrant { url: String, collection: String },
}

/// The two named vectors of every point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorName {
    Question,
    Answer,
}

impl VectorName {
    pub fn as_str(self) -> &'static str {
        match self {
            VectorName::Question => "question",
            VectorName::Answer => "answer",
        }
    }
}

/// Payload stored with each point; filters run on these fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointPayload {
    pub id: String,
    pub topic: String,
    pub difficulty: Difficulty,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct VectorPoint {
    pub payload: PointPayload,
    pub question: Vec<f32>,
    pub answer: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VectorHit {
    pub question_id: String,
    pub score: f32,
}

/// A point a search found, by its id (`point_id` of its question): reading the payload back
/// costs more than the search itself, so the caller maps ids to questions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointHit {
    pub point: uuid::Uuid,
    pub score: f32,
}

pub trait VectorStore: Send + Sync {
    /// Inserts or replaces points by question id.
    fn upsert(&self, points: &[VectorPoint]) -> Result<(), InternalError>;
    fn delete(&self, question_ids: &[String]) -> Result<(), InternalError>;
    /// Nearest points by cosine on one named vector, best first.
    fn search(&self, vector: VectorName, query: &[f32], filter: &SearchFilter, limit: usize)
        -> Result<Vec<PointHit>, InternalError>;
    fn count(&self) -> Result<usize, InternalError>;
    fn flush(&self) -> Result<(), InternalError>;
    /// A short name for logs and `/readyz`.
    fn describe(&self) -> String;
}

/// Point id of a question: stable across builds and backends.
pub fn point_id(question_id: &str) -> uuid::Uuid {
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6a1f_3c2e_9b4d_4e8a_a1c7_52d0_f3e8_b901);
    uuid::Uuid::new_v5(&NAMESPACE, question_id.as_bytes())
}
