//! Search and related questions over one index generation: BM25 and vector kNN run side by side
//! and are fused by score (the semantic score plus a weighted, normalised BM25 score); every hit
//! says how it was found.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::corpus::{Corpus, Difficulty, Question};
use crate::embed::{cosine, Embedder};
use crate::error::{Error, InternalError, UserError};
use crate::index::{EmbeddingTable, Generation, QuestionEmbeddings};
use crate::lexical::Snippet;
use crate::pool::Priority;
use crate::filter::SearchFilter;
use crate::vectors::{PointHit, VectorHit, VectorName};

pub const MAX_QUERY_CHARS: usize = 500;
pub const MAX_LIMIT: usize = 50;
/// How deep each side looks before fusion.
const CANDIDATE_DEPTH: usize = 100;
/// How deep in each semantic ranking questions get their key points read (reading them all cost
/// 6% of the CPU under load, in memory traffic): every table of `askmark eval search` is the same
/// at 30 as at 100; deeper questions rank by their question and answer vectors only.
const KEY_POINT_DEPTH: usize = 30;
const SNIPPET_CHARS: usize = 180;
/// A typo correction this many edits long is a guess, not taken as the query when deciding
/// whether anything matches.
const GUESSED_CORRECTION_EDITS: u8 = 2;
/// Two related questions closer than this are near-duplicates of each other; one is dropped.
const NEAR_DUPLICATE_COSINE: f32 = 0.9;
/// A neighbour whose question text is this close is the same question asked again.
const SAME_QUESTION_COSINE: f32 = 0.98;
/// Neighbours less related than this (content cosine plus shared tags) are not shown: a shorter
/// list beats a wrong one. Chosen with `askmark eval related` on eval/related.toml: the lowest
/// floor at which precision@3 of the tail (questions leading here, then neighbours) reaches 0.8;
/// the tail still shows more than one question per question on average.
pub const NEIGHBOUR_FLOOR: f32 = 0.75;
/// What sharing all tags adds to the content cosine of two questions (Jaccard of their tag sets
/// times this). The corpus's curated follow-ups say how much tags count: a logistic regression
/// of "is a curated follow-up" on the content cosine and the tag Jaccard over all pairs of
/// questions weighs them 1.14 : 1.
const TAG_WEIGHT: f32 = 1.0;

/// How `related` fills the list after the curated follow-ups.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RelatedParams {
    pub method: Neighbours,
    /// Neighbours less related than this are not shown.
    pub floor: f32,
    /// Whether the questions that name this one as their follow-up come next.
    pub leads_here: bool,
}

impl Default for RelatedParams {
    fn default() -> RelatedParams {
        RelatedParams { method: Neighbours::ContentAndTags, floor: NEIGHBOUR_FLOOR, leads_here: true }
    }
}

/// When a query matches nothing in the corpus, by the best semantic score any question gets
/// (`semantic_scores`, key points included): below `any` whatever the lexical side found, below
/// `without_lexical` when BM25 found no question either, below `with_unknown_word` when the query
/// holds a word the corpus has never seen (`LexicalIndex::unknown_words`: "argparse", "tkinter"
/// name what the corpus does not cover; a paraphrase of what it does cover rarely needs one).
/// `any` and `without_lexical` were chosen with `askmark eval search` on the eval's queries that
/// match nothing against the answerable ones: the highest recall of "no match" that empties at
/// most one answerable query (`without_lexical` made no difference from 0.35 to 0.50).
/// `with_unknown_word` was chosen on training queries only (`scripts/no_match_floor.py`): the
/// highest that empties no training query beyond what `any` empties, against the no-match
/// training queries of train/no-match.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RelevanceFloor {
    pub any: f32,
    pub without_lexical: f32,
    pub with_unknown_word: f32,
}

impl Default for RelevanceFloor {
    fn default() -> RelevanceFloor {
        RelevanceFloor {
            any: RELEVANCE_FLOOR_ANY,
            without_lexical: RELEVANCE_FLOOR_WITHOUT_LEXICAL,
            with_unknown_word: RELEVANCE_FLOOR_WITH_UNKNOWN_WORD,
        }
    }
}

const RELEVANCE_FLOOR_ANY: f32 = 0.3;
const RELEVANCE_FLOOR_WITHOUT_LEXICAL: f32 = 0.4;
const RELEVANCE_FLOOR_WITH_UNKNOWN_WORD: f32 = 0.38;
/// What a search that matches nothing says instead of results.
pub const NO_MATCH_HINT: &str =
    "Nothing in the corpus matches this query. Try other words, name the Python feature you mean, or browse a topic.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, Default, utoipa::ToSchema)]
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

/// Score fusion: a question's hybrid score is its semantic score (question, answer and closest
/// key point; `semantic_scores`) plus `lexical_weight` times its BM25 score over the query's best
/// BM25 score. Both sides keep their margins: a keyword query whose BM25 leader stands far ahead
/// gets it first, a paraphrase whose BM25 scores are all alike is ranked by meaning. Tuned with
/// `askmark eval search --tune`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FusionParams {
    pub lexical_weight: f32,
    /// How much the answer vector counts against the question vector in the semantic ranking.
    pub answer_weight: f32,
    /// What the cosine to a question's closest key point adds to its semantic score.
    pub key_point_weight: f32,
}

impl Default for FusionParams {
    /// lexical_weight 0.12 from the 267 held-out training queries (train/queries, the ones the
    /// search model never trained on; never the eval's): hybrid MRR@10 is flat from 0.11 to 0.14
    /// (0.939, hit@1 0.899, against 0.924 and 0.876 for weighted reciprocal rank fusion with k 5
    /// and lexical weight 0.4, the fusion before); 0.12 is the middle. answer_weight 0.75 won every
    /// fold of `--tune` on the eval with rank fusion; key_point_weight 0.3 is the best semantic
    /// hit@1 on the training queries (0.884 -> 0.902 from 0, with the search model before the one
    /// trained on this score).
    fn default() -> FusionParams {
        FusionParams { lexical_weight: 0.12, answer_weight: 0.75, key_point_weight: 0.3 }
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

/// Fuses two scored rankings (best first, as (id, score)): each document scores its semantic
/// score (or, when the semantic side did not find it, the lowest semantic score found, and 0 at
/// most) plus `lexical_weight` × its BM25 score / the best BM25 score. A document listed twice
/// in a ranking counts once, at its first place. Ties keep the order of first appearance,
/// lexical first.
pub fn fuse(lexical: &[(String, f32)], semantic: &[(String, f32)], lexical_weight: f32) -> Vec<Fused> {
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    let mut fused: Vec<Fused> = Vec::new();
    for (ranking, is_lexical) in [(lexical, true), (semantic, false)] {
        for (position, (id, _)) in ranking.iter().enumerate() {
            let slot = *by_id.entry(id.as_str()).or_insert_with(|| {
                fused.push(Fused { id: id.clone(), score: 0.0, lexical_rank: None, semantic_rank: None });
                fused.len() - 1
            });
            let rank = if is_lexical { &mut fused[slot].lexical_rank } else { &mut fused[slot].semantic_rank };
            rank.get_or_insert(position + 1);
        }
    }
    let not_found = semantic.iter().map(|(_, score)| *score).fold(0.0, f32::min);
    let best_bm25 = lexical.first().map_or(1.0, |(_, score)| *score).max(f32::MIN_POSITIVE);
    for item in &mut fused {
        let semantic_score = item.semantic_rank.map_or(not_found, |rank| semantic[rank - 1].1);
        let bm25 = item.lexical_rank.map_or(0.0, |rank| lexical[rank - 1].1 / best_bm25);
        item.score = semantic_score + lexical_weight * bm25;
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
    /// Set when nothing in the corpus matches the query (then `results` is empty): what to try.
    pub hint: Option<String>,
    /// The query as it was searched when some of its words were misspellings (each replaced by
    /// the closest word of the corpus), so a page can say "showing results for …".
    pub corrected_query: Option<String>,
    pub took_ms: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RelatedReason {
    /// One of the question's curated follow-ups.
    FollowUp,
    /// A question that names this one as its curated follow-up (what usually comes before it).
    LeadsHere,
    /// A neighbour by content and shared tags, above the floor.
    Similar,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RelatedHit {
    pub id: String,
    pub question: String,
    pub topic: String,
    pub difficulty: Difficulty,
    pub reason: RelatedReason,
    /// Cosine of the two questions' content (reference answer and key points).
    pub similarity: f32,
    /// Why it is related: a curated follow-up, the tags both share, or the closest key point.
    pub why: String,
}

/// The raw rankings of one query before fusion: computed once, so a mode's ranking (and the
/// eval's grid over fusion parameters) is a cheap function of them.
#[derive(Default)]
pub struct RankingSignals {
    /// Question ids by BM25, best first, with their BM25 scores.
    pub lexical: Vec<(String, f32)>,
    /// Nearest neighbours on the question vectors and on the answer vectors.
    pub question_hits: Vec<VectorHit>,
    pub answer_hits: Vec<VectorHit>,
    /// The cosine to the closest key point of each question those found (stored vectors).
    pub key_point_hits: Vec<VectorHit>,
    /// How many of the query's words the corpus has never seen (`LexicalIndex::unknown_words`;
    /// 0 in lexical mode, which decides "nothing matches" by BM25 alone).
    pub unknown_words: usize,
    /// When a correction needed `GUESSED_CORRECTION_EDITS` edits: the semantic side of the query
    /// as typed, on which "nothing matches" is judged.
    pub as_typed: Option<Box<RankingSignals>>,
    /// The query with its typos corrected, as both sides read it (none when nothing was).
    pub read_as: Option<String>,
}

impl RankingSignals {
    /// The ranking `mode` produces: one side alone, or both fused.
    pub fn rank(&self, mode: Mode, params: &FusionParams) -> Vec<Fused> {
        match mode {
            Mode::Lexical => fuse(&self.lexical, &[], 1.0),
            Mode::Semantic => fuse(&[], &semantic_ranking(self, params), 0.0),
            Mode::Hybrid => fuse(&self.lexical, &semantic_ranking(self, params), params.lexical_weight),
        }
    }

    /// The best semantic score of any question (0 when the semantic side did not run).
    pub fn best_semantic(&self, params: &FusionParams) -> f32 {
        semantic_scores(self, params.answer_weight, params.key_point_weight).into_values().fold(0.0, f32::max)
    }

    /// The best semantic score by which "nothing matches" is judged: of the query as typed when
    /// a correction was a guess (`as_typed`), else of the text searched.
    pub fn relevance(&self, params: &FusionParams) -> f32 {
        self.as_typed.as_deref().unwrap_or(self).best_semantic(params)
    }

    /// Whether nothing in the corpus matches the query: lexical mode found no question, or the
    /// closest question is below the floor.
    pub fn matches_nothing(&self, mode: Mode, params: &FusionParams, floor: &RelevanceFloor) -> bool {
        if mode == Mode::Lexical {
            return self.lexical.is_empty();
        }
        let best = self.relevance(params);
        best < floor.any
            || (self.lexical.is_empty() && best < floor.without_lexical)
            || (self.unknown_words > 0 && best < floor.with_unknown_word)
    }
}

/// What queries cost before: people repeat queries (and a page of results is often followed by
/// the next), and a search costs far more than a lookup. Query embeddings by query text, and
/// whole result pages by request and corpus (a page is never served for a corpus it was not
/// computed on). Bounded; sizes and hit rates are in `/metrics`.
pub struct QueryCache {
    vectors: quick_cache::sync::Cache<String, Arc<Vec<f32>>>,
    pages: quick_cache::sync::Cache<PageKey, Arc<SearchResults>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PageKey {
    corpus_hash: String,
    query: String,
    mode: Mode,
    filter: SearchFilter,
    limit: usize,
    offset: usize,
}

impl PageKey {
    fn new(generation: &Generation, request: &SearchRequest) -> PageKey {
        PageKey {
            corpus_hash: generation.manifest.corpus_hash.clone(),
            query: request.query.clone(),
            mode: request.mode,
            filter: request.filter.clone(),
            limit: request.limit,
            offset: request.offset,
        }
    }
}

impl QueryCache {
    /// Room for `capacity` query embeddings and as many result pages.
    pub fn new(capacity: usize) -> QueryCache {
        QueryCache { vectors: quick_cache::sync::Cache::new(capacity.max(1)), pages: quick_cache::sync::Cache::new(capacity.max(1)) }
    }

    fn page(&self, key: &PageKey) -> Option<Arc<SearchResults>> {
        let page = self.pages.get(key);
        match page {
            Some(_) => metrics::counter!("askmark_result_cache_hits_total").increment(1),
            None => metrics::counter!("askmark_result_cache_misses_total").increment(1),
        }
        page
    }

    fn keep_page(&self, key: PageKey, page: Arc<SearchResults>) {
        self.pages.insert(key, page);
        metrics::gauge!("askmark_result_cache_entries").set(self.pages.len() as f64);
    }

    fn holds(&self, query: &str) -> bool {
        self.vectors.peek(query).is_some()
    }

    fn embed(&self, embedder: &dyn Embedder, query: &str) -> Result<Arc<Vec<f32>>, InternalError> {
        if let Some(vector) = self.vectors.get(query) {
            metrics::counter!("askmark_query_cache_hits_total").increment(1);
            return Ok(vector);
        }
        metrics::counter!("askmark_query_cache_misses_total").increment(1);
        let vector = Arc::new(embedder.embed_with(&[query], Priority::Interactive)?.pop().ok_or_else(|| InternalError::Model("no embedding returned".into()))?);
        self.vectors.insert(query.to_string(), vector.clone());
        metrics::gauge!("askmark_query_cache_entries").set(self.vectors.len() as f64);
        Ok(vector)
    }
}

/// Search and related questions over one corpus and the generation built from it.
pub struct Searcher<'a> {
    pub corpus: &'a Corpus,
    pub generation: &'a Generation,
    pub embedder: &'a dyn Embedder,
    pub query_cache: &'a QueryCache,
    pub fusion: FusionParams,
}

impl Searcher<'_> {
    fn question(&self, id: &str) -> Result<&Question, Error> {
        self.corpus.get(id).ok_or_else(|| UserError::QuestionNotFound(id.to_string()).into())
    }

    /// The rankings `mode` needs (lexical mode never touches the model or the vector store).
    fn signals(&self, query: &str, filter: &SearchFilter, mode: Mode) -> Result<RankingSignals, InternalError> {
        // Both sides read the query with its typos corrected ("colection" matches no term, and
        // the model places it far from "collection"), but not the words the model knows:
        // "folder" is no typo of "older".
        let correction = self.generation.lexical.corrected(query, &|word| self.embedder.knows_word(word))?;
        let corrected = correction.text;
        let read_as = (correction.edits > 0).then(|| corrected.clone());
        let lexical_search = || -> Result<Vec<(String, f32)>, InternalError> {
            Ok(self.generation.lexical.search(&corrected, filter, CANDIDATE_DEPTH)?.into_iter().map(|hit| (hit.question_id, hit.score)).collect())
        };
        if mode == Mode::Lexical {
            return Ok(RankingSignals { lexical: lexical_search()?, read_as, ..RankingSignals::default() });
        }
        let embed = || self.query_cache.embed(self.embedder, &corrected);
        // A new query's embedding is most of a hybrid search: on an idle machine BM25 runs on a
        // spare core meanwhile instead of after it.
        let (lexical, query_vector) = match mode {
            Mode::Hybrid if !self.query_cache.holds(&corrected) && self.embedder.idle_cores() > 1 => std::thread::scope(|scope| {
                let lexical = scope.spawn(lexical_search);
                let query_vector = embed();
                let lexical = lexical.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                Ok::<_, InternalError>((lexical?, query_vector?))
            })?,
            Mode::Hybrid => (lexical_search()?, embed()?),
            _ => (Vec::new(), embed()?),
        };
        let unknown_words = self.generation.lexical.unknown_words(query)?;
        // A word one edit from a corpus word is a typo of it ("colection"); two edits away it may
        // be a name the corpus never mentions ("pyinstaller" becomes "installer"), so whether
        // the corpus holds anything on the query is then judged on the query as typed.
        let as_typed = if correction.edits >= GUESSED_CORRECTION_EDITS {
            let vector = self.query_cache.embed(self.embedder, query)?;
            Some(Box::new(RankingSignals { unknown_words, ..self.semantic_signals(&vector, filter)? }))
        } else {
            None
        };
        Ok(RankingSignals { lexical, unknown_words, as_typed, read_as, ..self.semantic_signals(&query_vector, filter)? })
    }

    /// The semantic side's rankings of a query's embedding.
    fn semantic_signals(&self, query_vector: &[f32], filter: &SearchFilter) -> Result<RankingSignals, InternalError> {
        let store = &self.generation.vectors;
        let questions = |hits: Vec<PointHit>| -> Vec<VectorHit> {
            hits.into_iter()
                .filter_map(|hit| {
                    let question_id = self.generation.questions_by_point.get(&hit.point)?.clone();
                    Some(VectorHit { question_id, score: hit.score })
                })
                .collect()
        };
        let question_hits = questions(store.search(VectorName::Question, query_vector, filter, CANDIDATE_DEPTH)?);
        let answer_hits = questions(store.search(VectorName::Answer, query_vector, filter, CANDIDATE_DEPTH)?);
        let candidates = question_hits.iter().take(KEY_POINT_DEPTH).chain(answer_hits.iter().take(KEY_POINT_DEPTH));
        let key_point_hits = closest_key_points(&self.generation.embeddings, query_vector, candidates);
        Ok(RankingSignals { question_hits, answer_hits, key_point_hits, ..RankingSignals::default() })
    }

    /// Both sides' rankings of `query` over the whole corpus.
    pub fn ranking_signals(&self, query: &str) -> Result<RankingSignals, InternalError> {
        self.signals(query, &SearchFilter::default(), Mode::Hybrid)
    }

    /// A page of results for `request`: from the cache when the same request was answered on
    /// this corpus before, else searched and kept.
    pub fn search(&self, request: &SearchRequest) -> Result<SearchResults, Error> {
        let started = Instant::now();
        request.validate()?;
        if let Some(topic) = &request.filter.topic {
            if !self.corpus.topics().iter().any(|t| &t.id == topic) {
                return Err(UserError::InvalidFilter(format!("unknown topic {topic:?}")).into());
            }
        }
        let key = PageKey::new(self.generation, request);
        let page = match self.query_cache.page(&key) {
            Some(page) => page,
            None => {
                let page = Arc::new(self.search_uncached(request)?);
                self.query_cache.keep_page(key, page.clone());
                page
            }
        };
        Ok(SearchResults { took_ms: started.elapsed().as_secs_f64() * 1000.0, ..SearchResults::clone(&page) })
    }

    fn search_uncached(&self, request: &SearchRequest) -> Result<SearchResults, Error> {
        let started = Instant::now();
        let signals = self.signals(&request.query, &request.filter, request.mode)?;
        // Whether a query is about anything in the corpus is asked of the whole corpus: a filter
        // narrows the results, it does not turn a query the corpus answers into "nothing matches".
        let unfiltered = if request.filter.is_empty() { None } else { Some(self.signals(&request.query, &SearchFilter::default(), request.mode)?) };
        let no_match = unfiltered.as_ref().unwrap_or(&signals).matches_nothing(request.mode, &self.fusion, &RelevanceFloor::default());
        let fused = if no_match { Vec::new() } else { signals.rank(request.mode, &self.fusion) };
        let total = fused.len();
        let page: Vec<(Fused, &Question)> = fused
            .into_iter()
            .skip(request.offset)
            .take(request.limit)
            .filter_map(|item| self.corpus.get(&item.id).map(|question| (item, question)))
            .collect();
        let answers: Vec<&str> = page.iter().map(|(_, question)| question.entry.answer.as_str()).collect();
        let snippets = self.generation.lexical.snippets(signals.read_as.as_deref().unwrap_or(&request.query), &answers, SNIPPET_CHARS)?;
        let results = page
            .into_iter()
            .zip(snippets)
            .map(|((item, question), snippet)| SearchHit {
                matched_by: match (item.lexical_rank, item.semantic_rank) {
                    (Some(_), Some(_)) => MatchedBy::Both,
                    (Some(_), None) => MatchedBy::Lexical,
                    _ => MatchedBy::Semantic,
                },
                id: item.id,
                question: question.entry.question.clone(),
                topic: question.topic.clone(),
                difficulty: question.entry.difficulty,
                score: item.score,
                lexical_rank: item.lexical_rank,
                semantic_rank: item.semantic_rank,
                snippet,
            })
            .collect();
        Ok(SearchResults {
            query: request.query.clone(),
            mode: request.mode,
            total,
            results,
            hint: no_match.then(|| NO_MATCH_HINT.to_string()),
            corrected_query: signals.read_as.clone(),
            took_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    /// Curated follow-ups first, then the questions that name this one as their follow-up, then
    /// the nearest neighbours by what the questions are about (`Neighbours::ContentAndTags`) above
    /// a floor, each with why it is related; never the question itself and never two
    /// near-duplicates of each other. Reads stored vectors only.
    pub fn related(&self, id: &str, limit: usize) -> Result<Vec<RelatedHit>, Error> {
        self.related_with(id, limit, &RelatedParams::default())
    }

    /// `related` with other ways of finding neighbours (for the eval).
    pub fn related_with(&self, id: &str, limit: usize, params: &RelatedParams) -> Result<Vec<RelatedHit>, Error> {
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(UserError::InvalidQuery(format!("limit must be between 1 and {MAX_LIMIT}")).into());
        }
        let question = self.question(id)?;
        let (embeddings, content) = (&self.generation.embeddings, &self.generation.content);
        let (Some(own), Some(own_content)) = (embeddings.get(id), content.get(id)) else {
            return Err(InternalError::Index(format!("no embeddings for {id}")).into());
        };
        let neighbours = self.neighbours(id, params.method)?;
        let leads_here = neighbours
            .iter()
            .filter(|(other, _)| params.leads_here && self.corpus.get(other).is_some_and(|q| q.entry.follow_ups.iter().any(|f| f == id)))
            .map(|(other, _)| (other, RelatedReason::LeadsHere));
        let similar = neighbours
            .iter()
            .take_while(|(_, relatedness)| *relatedness >= params.floor)
            .map(|(other, _)| (other, RelatedReason::Similar));
        let candidates = question.entry.follow_ups.iter().map(|f| (f, RelatedReason::FollowUp)).chain(leads_here).chain(similar);
        let mut chosen: Vec<RelatedHit> = Vec::new();
        let mut chosen_vectors: Vec<&[f32]> = Vec::new();
        for (other_id, reason) in candidates {
            if chosen.len() >= limit {
                break;
            }
            let (Some(other), Some(vectors), Some(other_content)) = (self.corpus.get(other_id), embeddings.get(other_id), content.get(other_id))
            else {
                continue;
            };
            if chosen.iter().any(|hit| &hit.id == other_id) {
                continue;
            }
            if reason != RelatedReason::FollowUp
                && (cosine(&own.question, &vectors.question) >= SAME_QUESTION_COSINE
                    || chosen_vectors.iter().any(|v| cosine(v, &vectors.question) >= NEAR_DUPLICATE_COSINE))
            {
                continue;
            }
            chosen_vectors.push(&vectors.question);
            let why = match reason {
                RelatedReason::FollowUp => "a curated follow-up".to_string(),
                RelatedReason::LeadsHere => "asks this question as a curated follow-up".to_string(),
                RelatedReason::Similar => why_related(question, other, own_content, vectors),
            };
            chosen.push(related_hit(other, reason, cosine(own_content, other_content), why));
        }
        Ok(chosen)
    }

    /// Every other question, closest first, by `method`.
    pub fn neighbours(&self, id: &str, method: Neighbours) -> Result<Vec<(String, f32)>, Error> {
        let own_tags = &self.question(id)?.entry.tags;
        let generation = self.generation;
        let own = method.vector(generation, id).ok_or_else(|| InternalError::Index(format!("no embeddings for {id}")))?;
        let mut ranked: Vec<(String, f32)> = generation
            .embeddings
            .keys()
            .filter(|other| other.as_str() != id)
            .filter_map(|other| method.vector(generation, other).map(|vector| (other, vector)))
            .map(|(other, vector)| {
                let mut score = cosine(own, vector);
                if method == Neighbours::ContentAndTags {
                    score += TAG_WEIGHT * self.corpus.get(other).map_or(0.0, |q| tag_overlap(own_tags, &q.entry.tags));
                }
                (other.clone(), score)
            })
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(ranked)
    }
}

/// How neighbours of a question are found (`askmark eval related` compares them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Neighbours {
    /// By the question's own text: many questions share a template ("Explain the concept of X
    /// in Python"), so the template weighs as much as the subject.
    QuestionText,
    /// By what the question is about: its reference answer and key points.
    Content,
    /// By content, and by the tags the questions share (Jaccard of the tag sets).
    ContentAndTags,
}

impl Neighbours {
    pub const ALL: [Neighbours; 3] = [Neighbours::QuestionText, Neighbours::Content, Neighbours::ContentAndTags];

    pub fn as_str(self) -> &'static str {
        match self {
            Neighbours::QuestionText => "question text",
            Neighbours::Content => "content (answer + key points)",
            Neighbours::ContentAndTags => "content + shared tags",
        }
    }

    fn vector<'g>(self, generation: &'g Generation, id: &str) -> Option<&'g [f32]> {
        match self {
            Neighbours::QuestionText => generation.embeddings.get(id).map(|e| e.question.as_slice()),
            Neighbours::Content | Neighbours::ContentAndTags => generation.content.get(id).map(Vec::as_slice),
        }
    }
}

/// Jaccard similarity of two tag lists: shared tags over all distinct tags.
fn tag_overlap(a: &[String], b: &[String]) -> f32 {
    let shared = a.iter().filter(|tag| b.contains(tag)).count();
    let all = a.len() + b.iter().filter(|tag| !a.contains(tag)).count();
    if all == 0 {
        0.0
    } else {
        shared as f32 / all as f32
    }
}

/// Why `other` is related to `question`: the tags they share, or else the key point of `other`
/// closest to what `question` is about.
fn why_related(question: &Question, other: &Question, own_content: &[f32], other_vectors: &QuestionEmbeddings) -> String {
    let shared: Vec<&str> =
        question.entry.tags.iter().filter(|tag| other.entry.tags.contains(tag)).map(String::as_str).collect();
    if !shared.is_empty() {
        return format!("both about {}", shared.join(", "));
    }
    other
        .entry
        .key_points
        .iter()
        .zip(&other_vectors.key_points)
        .max_by(|a, b| cosine(own_content, a.1).total_cmp(&cosine(own_content, b.1)))
        .map_or_else(|| "close in content".to_string(), |(point, _)| format!("close in content: {point}"))
}

/// Question ids by semantic closeness: `max(q, (1 - w)·q + w·a) + v·p` where `q` and `a` are the
/// cosines to the question and to the answer vector, so a close answer can lift a question but
/// never pull down a question that matches well on its own, and `p` the cosine to the question's
/// closest key point (a query that describes one idea of the answer).
fn semantic_ranking(signals: &RankingSignals, params: &FusionParams) -> Vec<(String, f32)> {
    let scores = semantic_scores(signals, params.answer_weight, params.key_point_weight);
    let mut ranking: Vec<(&str, f32)> = scores.into_iter().collect();
    ranking.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    ranking.into_iter().map(|(id, score)| (id.to_string(), score)).collect()
}

/// Each question's semantic score (see `semantic_ranking`), by question id.
fn semantic_scores(signals: &RankingSignals, answer_weight: f32, key_point_weight: f32) -> HashMap<&str, f32> {
    let mut best: HashMap<&str, f32> = signals.question_hits.iter().map(|hit| (hit.question_id.as_str(), hit.score)).collect();
    for hit in &signals.answer_hits {
        let question_score = best.get(hit.question_id.as_str()).copied().unwrap_or(0.0);
        let blended = (1.0 - answer_weight) * question_score + answer_weight * hit.score;
        let entry = best.entry(hit.question_id.as_str()).or_insert(f32::MIN);
        *entry = entry.max(blended);
    }
    for hit in &signals.key_point_hits {
        if let Some(score) = best.get_mut(hit.question_id.as_str()) {
            *score += key_point_weight * hit.score;
        }
    }
    best
}

/// For each question among `candidates` (once each), the cosine of `query` to its closest key
/// point, from the stored key-point vectors.
fn closest_key_points<'a>(embeddings: &EmbeddingTable, query: &[f32], candidates: impl Iterator<Item = &'a VectorHit>) -> Vec<VectorHit> {
    let mut seen = HashSet::new();
    candidates
        .filter(|hit| seen.insert(hit.question_id.as_str()))
        .filter_map(|hit| {
            let points = &embeddings.get(&hit.question_id)?.key_points;
            let score = points.iter().map(|point| cosine(query, point)).fold(f32::MIN, f32::max);
            (!points.is_empty()).then(|| VectorHit { question_id: hit.question_id.clone(), score })
        })
        .collect()
}

fn related_hit(question: &Question, reason: RelatedReason, similarity: f32, why: String) -> RelatedHit {
    RelatedHit {
        id: question.entry.id.clone(),
        question: question.entry.question.clone(),
        topic: question.topic.clone(),
        difficulty: question.entry.difficulty,
        reason,
        similarity,
        why,
    }
}
