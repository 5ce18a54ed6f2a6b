//! Search and related questions over one index generation: BM25 and vector kNN run side by side
//! and are fused with weighted reciprocal rank fusion; every hit says how it was found.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::corpus::{Corpus, Difficulty, Question};
use crate::embed::{cosine, Embedder};
use crate::error::{Error, InternalError, UserError};
use crate::index::Generation;
use crate::lexical::Snippet;
use crate::vectors::{SearchFilter, VectorHit, VectorName};

pub const MAX_QUERY_CHARS: usize = 500;
pub const MAX_LIMIT: usize = 50;
/// How deep each side looks before fusion.
const CANDIDATE_DEPTH: usize = 100;
const SNIPPET_CHARS: usize = 180;
/// Two related questions closer than this are near-duplicates of each other; one is dropped.
const NEAR_DUPLICATE_COSINE: f32 = 0.9;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Hybrid,
    Lexical,
    Semantic,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Lexical, Mode::Semantic, Mode::Hybrid];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Hybrid => "hybrid",
            Mode::Lexical => "lexical",
            Mode::Semantic => "semantic",
        }
    }

    pub fn parse(text: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|mode| mode.as_str() == text)
    }
}

/// Weighted reciprocal rank fusion: `score = Σ weight / (k + rank)` over the rankings a document
/// appears in (ranks from 1). Tuned with `askmark eval search --tune`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FusionParams {
    pub k: f32,
    pub lexical_weight: f32,
    pub semantic_weight: f32,
    /// How much the answer vector counts against the question vector in the semantic ranking.
    pub answer_weight: f32,
}

impl Default for FusionParams {
    /// From `askmark eval search --tune` on eval/queries.toml: answer_weight 0.75 wins in every
    /// fold; k 10 with lexical_weight 0.8 is best on all queries and was chosen by one fold.
    fn default() -> FusionParams {
        FusionParams { k: 10.0, lexical_weight: 0.8, semantic_weight: 1.0, answer_weight: 0.75 }
    }
}

/// One fused document: its score and its 1-based rank in each input ranking.
#[derive(Debug, Clone, PartialEq)]
pub struct Fused {
    pub id: String,
    pub score: f32,
    pub lexical_rank: Option<usize>,
    pub semantic_rank: Option<usize>,
}

/// Fuses two rankings (ids best first). Ties keep the order of first appearance, lexical first.
pub fn fuse(lexical: &[String], semantic: &[String], params: &FusionParams) -> Vec<Fused> {
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    let mut fused: Vec<Fused> = Vec::new();
    let rankings = [(lexical, params.lexical_weight, true), (semantic, params.semantic_weight, false)];
    for (ranking, weight, is_lexical) in rankings {
        for (position, id) in ranking.iter().enumerate() {
            let rank = position + 1;
            let slot = *by_id.entry(id.as_str()).or_insert_with(|| {
                fused.push(Fused { id: id.clone(), score: 0.0, lexical_rank: None, semantic_rank: None });
                fused.len() - 1
            });
            let entry = &mut fused[slot];
            let first_time = if is_lexical { entry.lexical_rank.is_none() } else { entry.semantic_rank.is_none() };
            if !first_time {
                continue;
            }
            entry.score += weight / (params.k + rank as f32);
            if is_lexical {
                entry.lexical_rank = Some(rank);
            } else {
                entry.semantic_rank = Some(rank);
            }
        }
    }
    fused.sort_by(|a, b| b.score.total_cmp(&a.score));
    fused
}

#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub query: String,
    pub mode: Mode,
    pub filter: SearchFilter,
    pub limit: usize,
    pub offset: usize,
}

impl SearchRequest {
    pub fn new(query: impl Into<String>) -> SearchRequest {
        SearchRequest { query: query.into(), mode: Mode::Hybrid, filter: SearchFilter::default(), limit: 10, offset: 0 }
    }

    fn validate(&self) -> Result<(), UserError> {
        let chars = self.query.chars().count();
        if self.query.trim().is_empty() {
            return Err(UserError::InvalidQuery("the query is empty".into()));
        }
        if chars > MAX_QUERY_CHARS {
            return Err(UserError::InvalidQuery(format!("the query has {chars} characters, at most {MAX_QUERY_CHARS} are allowed")));
        }
        if !(1..=MAX_LIMIT).contains(&self.limit) {
            return Err(UserError::InvalidQuery(format!("limit must be between 1 and {MAX_LIMIT}")));
        }
        if self.offset + self.limit > CANDIDATE_DEPTH {
            return Err(UserError::InvalidQuery(format!("offset + limit must be at most {CANDIDATE_DEPTH}")));
        }
        Ok(())
    }
}

/// How a hit was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MatchedBy {
    Lexical,
    Semantic,
    Both,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchHit {
    pub id: String,
    pub question: String,
    pub topic: String,
    pub difficulty: Difficulty,
    pub score: f32,
    pub lexical_rank: Option<usize>,
    pub semantic_rank: Option<usize>,
    pub matched_by: MatchedBy,
    pub snippet: Snippet,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchResults {
    pub query: String,
    pub mode: Mode,
    pub total: usize,
    pub results: Vec<SearchHit>,
    pub took_ms: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RelatedReason {
    FollowUp,
    Similar,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RelatedHit {
    pub id: String,
    pub question: String,
    pub topic: String,
    pub difficulty: Difficulty,
    pub reason: RelatedReason,
    pub similarity: f32,
}

/// Everything a query needs: the corpus, one loaded generation and the model.
#[derive(Clone)]
pub struct Engine {
    pub corpus: Arc<Corpus>,
    pub generation: Arc<Generation>,
    pub embedder: Arc<dyn Embedder>,
    pub fusion: FusionParams,
}

impl Engine {
    fn question(&self, id: &str) -> Result<&Question, Error> {
        self.corpus.get(id).ok_or_else(|| UserError::QuestionNotFound(id.to_string()).into())
    }

    pub fn embed_query(&self, query: &str) -> Result<Vec<f32>, InternalError> {
        let mut vectors = self.embedder.embed(&[query])?;
        vectors.pop().ok_or_else(|| InternalError::Model("no embedding returned".into()))
    }

    /// Both nearest-neighbour lists for `query_vector`: on the question vectors and on the
    /// answer vectors.
    pub fn vector_hits(&self, query_vector: &[f32], filter: &SearchFilter) -> Result<(Vec<VectorHit>, Vec<VectorHit>), InternalError> {
        let store = &self.generation.vectors;
        Ok((
            store.search(VectorName::Question, query_vector, filter, CANDIDATE_DEPTH)?,
            store.search(VectorName::Answer, query_vector, filter, CANDIDATE_DEPTH)?,
        ))
    }

    pub fn search(&self, request: &SearchRequest) -> Result<SearchResults, Error> {
        let started = Instant::now();
        request.validate()?;
        if let Some(topic) = &request.filter.topic {
            if !self.corpus.topics().iter().any(|t| &t.id == topic) {
                return Err(UserError::InvalidFilter(format!("unknown topic {topic:?}")).into());
            }
        }
        let lexical: Vec<String> = match request.mode {
            Mode::Semantic => Vec::new(),
            Mode::Lexical | Mode::Hybrid => self
                .generation
                .lexical
                .search(&request.query, &request.filter, CANDIDATE_DEPTH)?
                .into_iter()
                .map(|hit| hit.question_id)
                .collect(),
        };
        let semantic: Vec<String> = match request.mode {
            Mode::Lexical => Vec::new(),
            Mode::Semantic | Mode::Hybrid => {
                let query_vector = self.embed_query(&request.query)?;
                let (question_hits, answer_hits) = self.vector_hits(&query_vector, &request.filter)?;
                semantic_ranking(&question_hits, &answer_hits, self.fusion.answer_weight)
            }
        };
        let params = match request.mode {
            Mode::Hybrid => self.fusion,
            Mode::Lexical | Mode::Semantic => FusionParams { lexical_weight: 1.0, semantic_weight: 1.0, ..self.fusion },
        };
        let fused = fuse(&lexical, &semantic, &params);
        let total = fused.len();
        let mut results = Vec::new();
        for item in fused.into_iter().skip(request.offset).take(request.limit) {
            let Some(question) = self.corpus.get(&item.id) else { continue };
            let matched_by = match (item.lexical_rank, item.semantic_rank) {
                (Some(_), Some(_)) => MatchedBy::Both,
                (Some(_), None) => MatchedBy::Lexical,
                _ => MatchedBy::Semantic,
            };
            results.push(SearchHit {
                id: item.id,
                question: question.entry.question.clone(),
                topic: question.topic.clone(),
                difficulty: question.entry.difficulty,
                score: item.score,
                lexical_rank: item.lexical_rank,
                semantic_rank: item.semantic_rank,
                matched_by,
                snippet: self.generation.lexical.snippet(&request.query, &question.entry.answer, SNIPPET_CHARS)?,
            });
        }
        Ok(SearchResults {
            query: request.query.clone(),
            mode: request.mode,
            total,
            results,
            took_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    /// Curated follow-ups first, then nearest neighbours; never the question itself and never
    /// two near-duplicates of each other.
    pub fn related(&self, id: &str, limit: usize) -> Result<Vec<RelatedHit>, Error> {
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(UserError::InvalidQuery(format!("limit must be between 1 and {MAX_LIMIT}")).into());
        }
        let question = self.question(id)?;
        let embeddings = &self.generation.embeddings;
        let own_vector = &embeddings
            .get(id)
            .ok_or_else(|| InternalError::Index(format!("no embeddings for {id}")))?
            .question;
        let mut chosen: Vec<RelatedHit> = Vec::new();
        let mut chosen_vectors: Vec<&[f32]> = Vec::new();
        for follow_up in question.entry.follow_ups.iter().take(limit) {
            let Some(other) = self.corpus.get(follow_up) else { continue };
            let Some(vectors) = embeddings.get(follow_up) else { continue };
            chosen_vectors.push(&vectors.question);
            chosen.push(related_hit(other, RelatedReason::FollowUp, cosine(own_vector, &vectors.question)));
        }
        if chosen.len() < limit {
            let neighbours = self.generation.vectors.search(VectorName::Question, own_vector, &SearchFilter::default(), CANDIDATE_DEPTH)?;
            for neighbour in neighbours {
                if chosen.len() >= limit {
                    break;
                }
                if neighbour.question_id == id || chosen.iter().any(|hit| hit.id == neighbour.question_id) {
                    continue;
                }
                let (Some(other), Some(vectors)) = (self.corpus.get(&neighbour.question_id), embeddings.get(&neighbour.question_id)) else {
                    continue;
                };
                if cosine(own_vector, &vectors.question) >= 0.98
                    || chosen_vectors.iter().any(|v| cosine(v, &vectors.question) >= NEAR_DUPLICATE_COSINE)
                {
                    continue;
                }
                chosen_vectors.push(&vectors.question);
                chosen.push(related_hit(other, RelatedReason::Similar, neighbour.score));
            }
        }
        Ok(chosen)
    }
}

/// Question ids by semantic closeness: `max(q, (1 - w)·q + w·a)` where `q` and `a` are the
/// cosines to the question and to the answer vector, so a close answer can lift a question but
/// never pull down a question that matches well on its own.
pub fn semantic_ranking(question_hits: &[VectorHit], answer_hits: &[VectorHit], answer_weight: f32) -> Vec<String> {
    let mut best: HashMap<&str, f32> = question_hits.iter().map(|hit| (hit.question_id.as_str(), hit.score)).collect();
    for hit in answer_hits {
        let question_score = best.get(hit.question_id.as_str()).copied().unwrap_or(0.0);
        let blended = (1.0 - answer_weight) * question_score + answer_weight * hit.score;
        let entry = best.entry(hit.question_id.as_str()).or_insert(f32::MIN);
        *entry = entry.max(blended);
    }
    let mut ranking: Vec<(&str, f32)> = best.into_iter().collect();
    ranking.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    ranking.into_iter().map(|(id, _)| id.to_string()).collect()
}

fn related_hit(question: &Question, reason: RelatedReason, similarity: f32) -> RelatedHit {
    RelatedHit {
        id: question.entry.id.clone(),
        question: question.entry.question.clone(),
        topic: question.topic.clone(),
        difficulty: question.entry.difficulty,
        reason,
        similarity,
    }
}
