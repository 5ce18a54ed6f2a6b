//! What a search may return: the topic, difficulty and tags a caller restricts it to. Both
//! indexes (tantivy and the vector stores) translate the same filter.

use crate::corpus::Difficulty;

/// Restricts a search; an empty filter matches everything. Every given tag must be present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
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
