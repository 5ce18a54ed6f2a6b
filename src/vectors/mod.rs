//! Vector storage behind one trait, so the embedded store and a Qdrant server are a configuration
//! switch. Both use the same point ids (UUID v5 of the question id), named vectors and payload.
//! This module stores and finds vectors; it never computes embeddings.

mod edge;
mod server;

pub use edge::EdgeStore;
pub use server::{QdrantConfig, QdrantStore};

use serde::Serialize;

use crate::corpus::Difficulty;
use crate::error::InternalError;

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

/// Restricts a search; an empty filter matches everything. Every given tag must be present.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchFilter {
    pub topic: Option<String>,
    pub difficulty: Option<Difficulty>,
    pub tags: Vec<String>,
}

impl SearchFilter {
    pub fn is_empty(&self) -> bool {
        self.topic.is_none() && self.difficulty.is_none() && self.tags.is_empty()
    }

    /// The (payload field, keyword) pairs a point must all match.
    pub fn conditions(&self) -> Vec<(&'static str, &str)> {
        let mut must = Vec::new();
        if let Some(topic) = &self.topic {
            must.push(("topic", topic.as_str()));
        }
        if let Some(difficulty) = self.difficulty {
            must.push(("difficulty", difficulty.as_str()));
        }
        must.extend(self.tags.iter().map(|tag| ("tags", tag.as_str())));
        must
    }

    /// The filter in Qdrant's JSON filter language (the embedded store's input).
    pub fn to_qdrant_json(&self) -> serde_json::Value {
        let must: Vec<serde_json::Value> =
            self.conditions().into_iter().map(|(key, value)| serde_json::json!({"key": key, "match": {"value": value}})).collect();
        serde_json::json!({ "must": must })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct VectorHit {
    pub question_id: String,
    pub score: f32,
}

pub trait VectorStore: Send + Sync {
    /// Inserts or replaces points by question id.
    fn upsert(&self, points: &[VectorPoint]) -> Result<(), InternalError>;
    fn delete(&self, question_ids: &[String]) -> Result<(), InternalError>;
    /// Nearest points by cosine on one named vector, best first.
    fn search(&self, vector: VectorName, query: &[f32], filter: &SearchFilter, limit: usize)
        -> Result<Vec<VectorHit>, InternalError>;
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
