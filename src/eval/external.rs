//! Review quality on public graded answers nobody here wrote: SciEntsBank and Beetle
//! (SemEval-2013 Task 7, 3-way labels) and SAF (English), as gzipped JSON Lines in
//! `../shared/data/asag` (see its README for fields, splits and licences).
//!
//! Each answer is reviewed ad hoc against its question and reference answers, exactly as a user
//! would call `POST /v1/review`. The review's verdict maps to the 3-way labels (a contradiction
//! flag → contradictory; a score in the good band or above → correct; else incorrect) and is
//! compared side by side with the plain answer↔reference cosine of the same sentence model.
//! Train splits feed the score model's fit; test splits are only ever reported.

use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::{Error, InternalError};
use crate::review::{Flag, ScoreModel, Signals, Target};

/// The public test splits, reported one by one.
pub const TEST_SPLITS: [&str; 7] = [
    "scientsbank_test_ua",
    "scientsbank_test_uq",
    "scientsbank_test_ud",
    "beetle_test_ua",
    "beetle_test_uq",
    "saf_en_test_ua",
    "saf_en_test_uq",
];
/// The public train splits, used by the score model's fit.
pub const TRAIN_SPLITS: [&str; 3] = ["scientsbank_train", "beetle_train", "saf_en_train"];

/// The 3-way label, with SAF's grades folded in (partially correct and incorrect are not correct
/// and contradict nothing in particular).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    Correct,
    Incorrect,
    Contradictory,
}

impl Label {
    pub const ALL: [Label; 3] = [Label::Correct, Label::Incorrect, Label::Contradictory];

    fn parse(text: &str) -> Option<Label> {
        match text {
            "correct" | "Correct" => Some(Label::Correct),
            "incorrect" | "Incorrect" | "Partially correct" => Some(Label::Incorrect),
            "contradictory" => Some(Label::Contradictory),
            _ => None,
        }
    }

    /// What a score model should aim at for this label, on 0–1 (SAF's partially correct
    /// answers sit between right and wrong).
    pub fn target(self, raw: &str) -> f64 {
        match (self, raw) {
            (Label::Correct, _) => 1.0,
            (Label::Incorrect, "Partially correct") => 0.5,
            (Label::Incorrect, _) => 0.3,
            (Label::Contradictory, _) => 0.0,
        }
    }
}

#[derive(Deserialize)]
struct Row {
    question: String,
    reference: String,
    #[serde(default)]
    references: Vec<String>,
    answer: String,
    label: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct GradedAnswer {
    pub question: String,
    pub references: Vec<String>,
    pub answer: String,
    pub label: Label,
    pub raw_label: String,
}

/// Reads `<dir>/<split>.jsonl.gz`.
pub fn load_split(dir: &Path, split: &str) -> Result<Vec<GradedAnswer>, InternalError> {
    let path = dir.join(format!("{split}.jsonl.gz"));
    let file = std::fs::File::open(&path).map_err(InternalError::io(format!("open {}", path.display())))?;
    let mut answers = Vec::new();
    for (number, line) in BufReader::new(flate2::read::GzDecoder::new(file)).lines().enumerate() {
        let line = line.map_err(InternalError::io(format!("read {}", path.display())))?;
        if line.trim().is_empty() {
            continue;
        }
        let invalid = |what: String| InternalError::Index(format!("{}:{}: {what}", path.display(), number + 1));
        let row: Row = serde_json::from_str(&line).map_err(|error| invalid(error.to_string()))?;
        let label = Label::parse(&row.label).ok_or_else(|| invalid(format!("unknown label {:?}", row.label)))?;
        let mut unique: Vec<String> = Vec::new();
        for reference in std::iter::once(row.reference).chain(row.references) {
            if !reference.trim().is_empty() && !unique.iter().any(|seen| seen.trim() == reference.trim()) {
                unique.push(reference);
            }
        }
        unique.truncate(crate::review::MAX_REFERENCES);
        answers.push(GradedAnswer { question: row.question, references: unique, answer: row.answer, label, raw_label: row.label });
    }
    Ok(answers)
}

/// What the review and the cosine baseline said about one public answer.
#[derive(Serialize)]
pub struct ExternalObservation {
    pub answer: GradedAnswer,
    pub signals: Signals,
    pub flags: Vec<Flag>,
    /// Plain cosine of the answer and its closest reference (the baseline).
    pub cosine: f32,
}

/// Reviews every answer (on `threads` threads; the engine's model sessions serve them in parallel).
pub fn observe(engine: &Engine, answers: Vec<GradedAnswer>, threads: usize) -> Result<Vec<ExternalObservation>, Error> {
    let answers: Vec<GradedAnswer> = answers.into_iter().filter(|answer| !answer.answer.trim().is_empty()).collect();
    let chunk = answers.len().div_ceil(threads.max(1)).max(1);
    let results: Vec<Result<Vec<ExternalObservation>, Error>> = std::thread::scope(|scope| {
        let workers: Vec<_> = answers
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(|answer| observe_one(engine, answer)).collect::<Result<Vec<_>, Error>>()))
            .collect();
        workers.into_iter().map(|worker| worker.join().unwrap_or_else(|_| Err(InternalError::Index("a review thread panicked".into()).into()))).collect()
    });
    let mut observations = Vec::new();
    for part in results {
        observations.extend(part?);
    }
    Ok(observations)
}

fn observe_one(engine: &Engine, answer: &GradedAnswer) -> Result<ExternalObservation, Error> {
    let target = Target::AdHoc { question: answer.question.clone(), references: answer.references.clone(), key_points: Vec::new() };
    let review = engine.review(&target, &answer.answer)?;
    Ok(ExternalObservation { cosine: review.reference_similarity.similarity, signals: review.signals, flags: review.flags, answer: answer.clone() })
}

/// Every `step`-th answer, so that at most `limit` remain (spread over the whole split).
pub fn spread_sample(answers: Vec<GradedAnswer>, limit: usize) -> Vec<GradedAnswer> {
    let step = answers.len().div_ceil(limit.max(1)).max(1);
    answers.into_iter().step_by(step).collect()
}

/// The review's 3-way verdict.
pub fn verdict(model: &ScoreModel, observation: &ExternalObservation) -> Label {
    let score = crate::review::final_score(model.raw_score(&observation.signals), &observation.flags);
    if observation.flags.contains(&Flag::Contradiction) {
        Label::Contradictory
    } else if score >= model.band_cut_offs[1] {
        Label::Correct
    } else {
        Label::Incorrect
    }
}

pub struct Metrics {
    pub macro_f1: f64,
    pub accuracy_2way: f64,
    pub auc: f64,
}

/// 3-way macro-F1 over the labels present, 2-way (correct or not) accuracy, and the AUC of
/// `scores` for telling correct answers from the rest.
pub fn metrics(gold: &[Label], predicted: &[Label], scores: &[f64]) -> Metrics {
    let present: Vec<Label> = Label::ALL.into_iter().filter(|label| gold.contains(label)).collect();
    let f1s: Vec<f64> = present
        .iter()
        .map(|label| {
            let count = |g: bool, p: bool| gold.iter().zip(predicted).filter(|(x, y)| (*x == label) == g && (*y == label) == p).count() as f64;
            let (tp, false_positives, false_negatives) = (count(true, true), count(false, true), count(true, false));
            if tp == 0.0 { 0.0 } else { 2.0 * tp / (2.0 * tp + false_positives + false_negatives) }
        })
        .collect();
    let agree = gold.iter().zip(predicted).filter(|(g, p)| (**g == Label::Correct) == (**p == Label::Correct)).count();
    let positives: Vec<f64> = gold.iter().zip(scores).filter(|(g, _)| **g == Label::Correct).map(|(_, s)| *s).collect();
    let negatives: Vec<f64> = gold.iter().zip(scores).filter(|(g, _)| **g != Label::Correct).map(|(_, s)| *s).collect();
    Metrics {
        macro_f1: f1s.iter().sum::<f64>() / f1s.len().max(1) as f64,
        accuracy_2way: agree as f64 / gold.len().max(1) as f64,
        auc: auc(&positives, &negatives),
    }
}

/// Probability that a random positive outscores a random negative (ties count half).
pub fn auc(positives: &[f64], negatives: &[f64]) -> f64 {
    if positives.is_empty() || negatives.is_empty() {
        return f64::NAN;
    }
    let mut sorted = negatives.to_vec();
    sorted.sort_by(f64::total_cmp);
    let total: f64 = positives
        .iter()
        .map(|score| {
            let below = sorted.partition_point(|n| n < score);
            let ties = sorted[below..].partition_point(|n| n <= score);
            below as f64 + 0.5 * ties as f64
        })
        .sum();
    total / (positives.len() * negatives.len()) as f64
}

/// The cosine baseline's cut: the threshold that best separates correct answers on a train
/// split (it has no notion of contradiction, so it predicts correct or incorrect only).
pub fn best_cosine_threshold(train: &[ExternalObservation]) -> f32 {
    let mut candidates: Vec<f32> = train.iter().map(|o| o.cosine).collect();
    candidates.sort_by(f32::total_cmp);
    candidates.dedup();
    let accuracy = |threshold: f32| train.iter().filter(|o| (o.cosine >= threshold) == (o.answer.label == Label::Correct)).count();
    candidates.into_iter().max_by_key(|threshold| accuracy(*threshold)).unwrap_or(0.5)
}
