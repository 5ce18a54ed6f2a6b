//! Related-question evaluation on `eval/related.toml`: for each question, the questions an
//! interviewer would accept next (grade 2, or 1 for "partially"), judged without looking at the
//! output. Reports precision@3 of the neighbour tail (the non-curated part of the list) and
//! nDCG@5 of the whole list, for each way of finding neighbours.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::InternalError;
use crate::search::{RelatedHit, RelatedReason};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Judgement {
    pub id: String,
    pub relevant: Vec<String>,
    #[serde(default)]
    pub partially: Vec<String>,
}

impl Judgement {
    /// 2 for a clearly good next question, 1 for an acceptable one, 0 otherwise.
    pub fn grade(&self, id: &str) -> u8 {
        if self.relevant.iter().any(|r| r == id) {
            2
        } else if self.partially.iter().any(|p| p == id) {
            1
        } else {
            0
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JudgementsFile {
    questions: Vec<Judgement>,
}

pub fn load_judgements(path: &Path) -> Result<Vec<Judgement>, InternalError> {
    let text = std::fs::read_to_string(path).map_err(InternalError::io(format!("read {}", path.display())))?;
    let file: JudgementsFile = toml::from_str(&text).map_err(|error| InternalError::Index(format!("invalid {}: {error}", path.display())))?;
    Ok(file.questions)
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Metrics {
    /// Share of the first three places after the curated follow-ups (questions leading here and
    /// neighbours) that are acceptable (grade ≥ 1);
    /// a question whose list has no neighbour counts its missing places as neither.
    pub precision_at_3: f64,
    /// Neighbours shown per question among the first three places after the follow-ups.
    pub neighbours_shown: f64,
    /// nDCG@5 of the whole list with grades 2 / 1 / 0.
    pub ndcg_at_5: f64,
}

/// Scores one list against one judgement: (acceptable neighbours, neighbours shown, nDCG@5).
pub fn score_list(list: &[RelatedHit], judgement: &Judgement) -> (usize, usize, f64) {
    let tail: Vec<&RelatedHit> = list.iter().filter(|hit| hit.reason != RelatedReason::FollowUp).take(3).collect();
    let acceptable = tail.iter().filter(|hit| judgement.grade(&hit.id) > 0).count();
    let gain = |grade: u8| f64::from((1u32 << grade) - 1);
    let dcg: f64 = list.iter().take(5).enumerate().map(|(i, hit)| gain(judgement.grade(&hit.id)) / ((i + 2) as f64).log2()).sum();
    let mut ideal_grades: Vec<u8> = judgement.relevant.iter().map(|_| 2).chain(judgement.partially.iter().map(|_| 1)).collect();
    ideal_grades.sort_unstable_by(|a, b| b.cmp(a));
    let ideal: f64 = ideal_grades.iter().take(5).enumerate().map(|(i, g)| gain(*g) / ((i + 2) as f64).log2()).sum();
    (acceptable, tail.len(), if ideal > 0.0 { dcg / ideal } else { 0.0 })
}

/// Mean metrics over lists keyed by question id.
pub fn evaluate(lists: &HashMap<String, Vec<RelatedHit>>, judgements: &[Judgement]) -> Metrics {
    let (mut acceptable, mut shown, mut ndcg) = (0usize, 0usize, 0.0);
    for judgement in judgements {
        let list = lists.get(&judgement.id).map_or(&[][..], Vec::as_slice);
        let (a, s, n) = score_list(list, judgement);
        acceptable += a;
        shown += s;
        ndcg += n;
    }
    let questions = judgements.len().max(1) as f64;
    Metrics {
        precision_at_3: if shown == 0 { 0.0 } else { acceptable as f64 / shown as f64 },
        neighbours_shown: shown as f64 / questions,
        ndcg_at_5: ndcg / questions,
    }
}
