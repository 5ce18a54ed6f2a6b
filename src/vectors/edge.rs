//! The embedded store: a qdrant-edge shard on disk inside an index generation.

use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};

use qdrant_edge::{
    CountRequest, Distance, EdgeConfigBuilder, EdgeShard, EdgeVectorParamsBuilder, Filter, NamedQuery,
    PayloadSchemaType, PointId, PointInsertOperations, PointOperations, PointStruct, QueryEnum, QueryRequest,
    ScoringQuery, UpdateOperation, VectorInternal, Vectors, WithPayloadInterface, WithVector,
};

use super::{point_id, PointHit, VectorName, VectorPoint, VectorStore};
use crate::error::InternalError;
use crate::filter::SearchFilter;

pub struct EdgeStore {
    /// Dropped by hand: qdrant-edge flushes on drop and panics when its folder is gone, which
    /// happens when an old generation is removed while a reader still holds it.
    shard: ManuallyDrop<EdgeShard>,
    path: PathBuf,
    description: String,
}

impl Drop for EdgeStore {
    fn drop(&mut self) {
        if self.path.join("segments").exists() {
            // SAFETY: `shard` is never used again; this is its only drop.
            unsafe { ManuallyDrop::drop(&mut self.shard) };
        } else {
            tracing::warn!(path = %self.path.display(), "vector store folder removed while open; skipping its final flush");
        }
    }
}

fn store_error(error: impl std::fmt::Display) -> InternalError {
    InternalError::VectorStore(error.to_string())
}

impl EdgeStore {
    /// Creates an empty shard at `path` with both named vectors and payload indexes.
    pub fn create(path: &Path, dimension: usize) -> Result<EdgeStore, InternalError> {
        std::fs::create_dir_all(path).map_err(InternalError::io(format!("create {}", path.display())))?;
        let config = EdgeConfigBuilder::new()
            .vector(VectorName::Question.as_str(), EdgeVectorParamsBuilder::new(dimension, Distance::Cosine).build())
            .vector(VectorName::Answer.as_str(), EdgeVectorParamsBuilder::new(dimension, Distance::Cosine).build())
            .build();
        let shard = EdgeShard::new(path, config).map_err(store_error)?;
        for field in ["topic", "difficulty", "tags"] {
            let index: qdrant_edge::CreateIndex = serde_json::from_value(serde_json::json!({
                "field_name": field,
                "field_schema": PayloadSchemaType::Keyword,
            }))
            .map_err(store_error)?;
            shard
                .update(UpdateOperation::FieldIndexOperation(qdrant_edge::FieldIndexOperations::CreateIndex(index)))
                .map_err(store_error)?;
        }
        Ok(EdgeStore::with_shard(shard, path))
    }

    fn with_shard(shard: EdgeShard, path: &Path) -> EdgeStore {
        EdgeStore { shard: ManuallyDrop::new(shard), path: path.to_path_buf(), description: format!("embedded qdrant-edge at {}", path.display()) }
    }

    pub fn open(path: &Path) -> Result<EdgeStore, InternalError> {
        let shard = EdgeShard::load(path, None).map_err(|error| {
            if error.to_string().contains("WouldBlock") {
                InternalError::VectorStore(format!(
                    "{} is open in another askmark process (is askmark serve running?): an embedded store \
                     is used by one process at a time; query the running server instead",
                    path.display()
                ))
            } else {
                store_error(error)
            }
        })?;
        Ok(EdgeStore::with_shard(shard, path))
    }
}

impl VectorStore for EdgeStore {
    fn upsert(&self, points: &[VectorPoint]) -> Result<(), InternalError> {
        let points = points
            .iter()
            .map(|point| {
                let payload = serde_json::to_value(&point.payload).map_err(store_error)?;
                let vectors = Vectors::new_named([
                    (VectorName::Question.as_str(), point.question.clone()),
                    (VectorName::Answer.as_str(), point.answer.clone()),
                ]);
                Ok(PointStruct::new(PointId::Uuid(point_id(&point.payload.id)), vectors, payload).into())
            })
            .collect::<Result<Vec<_>, InternalError>>()?;
        self.shard
            .update(UpdateOperation::PointOperation(PointOperations::UpsertPoints(PointInsertOperations::PointsList(points))))
            .map_err(store_error)
    }

    fn delete(&self, question_ids: &[String]) -> Result<(), InternalError> {
        let ids = question_ids.iter().map(|id| PointId::Uuid(point_id(id))).collect();
        self.shard
            .update(UpdateOperation::PointOperation(PointOperations::DeletePoints { ids }))
            .map_err(store_error)
    }

    fn search(&self, vector: VectorName, query: &[f32], filter: &SearchFilter, limit: usize)
        -> Result<Vec<PointHit>, InternalError> {
        let filter: Option<Filter> = if filter.is_empty() {
            None
        } else {
            Some(serde_json::from_value(filter.to_qdrant_json()).map_err(store_error)?)
        };
        let points = self
            .shard
            .query(QueryRequest {
                prefetches: vec![],
                query: Some(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
                    query: VectorInternal::Dense(query.to_vec()),
                    using: Some(vector.as_str().to_string()),
                }))),
                filter,
                score_threshold: None,
                limit,
                offset: 0,
                params: None,
                with_vector: WithVector::Bool(false),
                with_payload: WithPayloadInterface::Bool(false),
            })
            .map_err(store_error)?;
        Ok(points
            .into_iter()
            .filter_map(|point| match point.id {
                PointId::Uuid(uuid) => Some(PointHit { point: uuid, score: point.score }),
                PointId::NumId(_) => None,
            })
            .collect())
    }

    fn count(&self) -> Result<usize, InternalError> {
        self.shard.count(CountRequest { filter: None, exact: true }).map_err(store_error)
    }

    fn flush(&self) -> Result<(), InternalError> {
        self.shard.flush();
        Ok(())
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}
