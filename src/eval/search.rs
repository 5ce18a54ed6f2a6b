//! Retrieval evaluation: `eval/queries.toml` (queries with the ids they should find) scored with
//! hit@1, hit@3, MRR@10 and nDCG@10 for each search mode, and a grid search of the fusion
//! parameters. Pure metric functions, checked by tests.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, InternalError};
use crate::engine::Engine;
use crate::search::{FusionParams, Mode, RankingSignals, RelevanceFloor};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalQuery {
    pub query: String,
    pub kind: String,
    pub relevant: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueriesFile {
    queries: Vec<EvalQuery>,
}

pub fn load_queries(path: &Path) -> Result<Vec<EvalQuery>, InternalError> {
    let text = std::fs::read_to_string(path).map_err(InternalError::io(format!("read {}", path.display())))?;
    let file: QueriesFile =
        toml::from_str(&text).map_err(|error| InternalError::Index(format!("invalid {}: {error}", path.display())))?;
    Ok(file.queries)
}

/// Mean metrics over a set of queries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Metrics {
    pub hit_at_1: f64,
    pub hit_at_3: f64,
    pub mrr_at_10: f64,
    pub ndcg_at_10: f64,
}

/// Metrics of one ranking against a set of relevant ids (binary relevance).
pub fn score_ranking(ranking: &[String], relevant: &[String]) -> Metrics {
    let is_relevant = |id: &String| relevant.contains(id);
    let top = &ranking[..ranking.len().min(10)];
    let first_relevant = top.iter().position(is_relevant);
    let dcg: f64 = top
        .iter()
        .enumerate()
        .filter(|(_, id)| is_relevant(id))
        .map(|(position, _)| 1.0 / ((position + 2) as f64).log2())
        .sum();
    let ideal: f64 = (0..relevant.len().min(10)).map(|position| 1.0 / ((position + 2) as f64).log2()).sum();
    Metrics {
        hit_at_1: f64::from(u8::from(first_relevant == Some(0))),
        hit_at_3: f64::from(u8::from(first_relevant.is_some_and(|p| p < 3))),
        mrr_at_10: first_relevant.map_or(0.0, |p| 1.0 / (p + 1) as f64),
        ndcg_at_10: if ideal > 0.0 { dcg / ideal } else { 0.0 },
    }
}

pub fn mean(all: &[Metrics]) -> Metrics {
    let n = all.len().max(1) as f64;
    Metrics {
        hit_at_1: all.iter().map(|m| m.hit_at_1).sum::<f64>() / n,
        hit_at_3: all.iter().map(|m| m.hit_at_3).sum::<f64>() / n,
        mrr_at_10: all.iter().map(|m| m.mrr_at_10).sum::<f64>() / n,
        ndcg_at_10: all.iter().map(|m| m.ndcg_at_10).sum::<f64>() / n,
    }
}

/// The raw signals of one query, computed once so fusion parameters can be varied cheaply.
pub struct QuerySignals {
    pub query: EvalQuery,
    pub signals: RankingSignals,
}

/// Python keywords that are not also common English function words: in a query they are either
/// the subject ("yield vs return") or noise that BM25 matches on a question's title ("does Python
/// pass arguments by reference" against the `pass` statement).
const PYTHON_KEYWORDS: [&str; 23] = [
    "pass", "yield", "return", "import", "def", "class", "lambda", "global", "nonlocal", "assert", "del", "raise", "async",
    "await", "try", "except", "finally", "while", "break", "continue", "match", "case", "else",
];

/// What "nothing matches" is decided on, for one query (`askmark eval search --observations`).
#[derive(Debug, Serialize)]
pub struct NoMatchObservation<'a> {
    pub query: &'a str,
    pub kind: &'a str,
    pub answerable: bool,
    pub best_semantic: f32,
    pub lexical_hits: usize,
    pub unknown_words: usize,
    /// The questions that answer it, and the first three of each mode's ranking.
    pub relevant: &'a [String],
    pub top3: BTreeMap<&'static str, Vec<String>>,
}

impl<'a> NoMatchObservation<'a> {
    pub fn of(signals: &'a QuerySignals, params: &FusionParams) -> NoMatchObservation<'a> {
        NoMatchObservation {
            query: &signals.query.query,
            kind: &signals.query.kind,
            answerable: !signals.query.relevant.is_empty(),
            best_semantic: signals.signals.relevance(params),
            lexical_hits: signals.signals.lexical.len(),
            unknown_words: signals.signals.unknown_words,
            relevant: &signals.query.relevant,
            top3: [Mode::Lexical, Mode::Semantic, Mode::Hybrid]
                .into_iter()
                .map(|mode| (mode.as_str(), ranking(signals, mode, params).into_iter().take(3).collect()))
                .collect(),
        }
    }
}

impl EvalQuery {
    /// Whether the query holds one of `PYTHON_KEYWORDS` as a word.
    pub fn has_python_keyword(&self) -> bool {
        self.query.split(|c: char| !c.is_alphanumeric() && c != '_').any(|word| PYTHON_KEYWORDS.contains(&word.to_lowercase().as_str()))
    }
}

pub fn collect_signals(engine: &Engine, queries: Vec<EvalQuery>) -> Result<Vec<QuerySignals>, Error> {
    queries
        .into_iter()
        .map(|query| {
            let signals = engine.ranking_signals(&query.query)?;
            Ok(QuerySignals { query, signals })
        })
        .collect()
}

/// The ranking a mode produces, exactly as search ranks.
pub fn ranking(signals: &QuerySignals, mode: Mode, params: &FusionParams) -> Vec<String> {
    signals.signals.rank(mode, params).into_iter().map(|fused| fused.id).collect()
}

/// Ranking metrics over the answerable queries (those with a relevant question) of `kind`.
pub fn evaluate(signals: &[&QuerySignals], mode: Mode, params: &FusionParams, kind: Option<&str>) -> Metrics {
    let scored: Vec<Metrics> = signals
        .iter()
        .filter(|s| !s.query.relevant.is_empty() && kind.is_none_or(|k| s.query.kind == k))
        .map(|s| score_ranking(&ranking(s, mode, params), &s.query.relevant))
        .collect();
    mean(&scored)
}

/// Grid search of the fusion parameters by mean of MRR@10 and nDCG@10 on hybrid, best first.
pub fn tune(signals: &[&QuerySignals]) -> Vec<(FusionParams, Metrics)> {
    let mut results = Vec::new();
    for lexical_weight in [0.0, 0.04, 0.08, 0.1, 0.12, 0.14, 0.16, 0.2, 0.3, 0.5] {
        for answer_weight in [0.0, 0.25, 0.5, 0.75] {
            for key_point_weight in [0.0, 0.3] {
                let params = FusionParams { lexical_weight, answer_weight, key_point_weight };
                results.push((params, evaluate(signals, Mode::Hybrid, &params, None)));
            }
        }
    }
    results.sort_by(|a, b| (b.1.mrr_at_10 + b.1.ndcg_at_10).total_cmp(&(a.1.mrr_at_10 + a.1.ndcg_at_10)));
    results
}

/// Honest tuning check: parameters chosen on the even-numbered queries are scored on the
/// odd-numbered ones and the other way round. Returns, per fold, the chosen parameters and their
/// metrics on the queries the choice never saw.
pub fn cross_check(signals: &[QuerySignals]) -> Vec<(FusionParams, Metrics)> {
    let fold = |parity: usize| -> Vec<&QuerySignals> { signals.iter().enumerate().filter(|(i, _)| i % 2 == parity).map(|(_, s)| s).collect() };
    [(fold(0), fold(1)), (fold(1), fold(0))]
        .into_iter()
        .filter_map(|(tuning, held_out)| {
            let (params, _) = tune(&tuning).into_iter().next()?;
            Some((params, evaluate(&held_out, Mode::Hybrid, &params, None)))
        })
        .collect()
}

/// How well a relevance floor tells the queries that match nothing in the corpus (no relevant
/// question) from the answerable ones.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NoMatch {
    /// Of the queries the floor says match nothing, the share that indeed match nothing.
    pub precision: f64,
    /// Of the queries that match nothing, the share the floor catches.
    pub recall: f64,
    /// Of the answerable queries, the share the floor wrongly empties.
    pub answerable_emptied: f64,
}

/// Hybrid hit@3 over `signals` when a query the floor empties counts as a miss.
pub fn hit_at_3_with_floor(signals: &[&QuerySignals], params: &FusionParams, floor: &RelevanceFloor) -> f64 {
    let scored: Vec<Metrics> = signals
        .iter()
        .map(|s| {
            if s.signals.matches_nothing(Mode::Hybrid, params, floor) {
                Metrics::default()
            } else {
                score_ranking(&ranking(s, Mode::Hybrid, params), &s.query.relevant)
            }
        })
        .collect();
    mean(&scored).hit_at_3
}

pub fn no_match(signals: &[&QuerySignals], mode: Mode, params: &FusionParams, floor: &RelevanceFloor) -> NoMatch {
    let (mut caught, mut flagged, mut nothing, mut emptied, mut answerable) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for s in signals {
        let flags = s.signals.matches_nothing(mode, params, floor);
        let matches_nothing = s.query.relevant.is_empty();
        flagged += f64::from(u8::from(flags));
        if matches_nothing {
            nothing += 1.0;
            caught += f64::from(u8::from(flags));
        } else {
            answerable += 1.0;
            emptied += f64::from(u8::from(flags));
        }
    }
    let share = |part: f64, whole: f64| if whole > 0.0 { part / whole } else { 0.0 };
    NoMatch { precision: share(caught, flagged), recall: share(caught, nothing), answerable_emptied: share(emptied, answerable) }
}
