//! Answer-review evaluation on `eval/answers.toml`: human-graded candidate answers (0–5). Every
//! fourth answer is held out; the score model is fitted on the rest by least squares and both
//! splits are reported: Pearson and Spearman between score and grade, pairwise ordering accuracy
//! within each question, the confusion of grade bands, and the highest score of answers that must
//! not score well.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::{Error, InternalError};
use crate::eval::external::ExternalObservation;
use crate::review::{final_score, is_disqualified, Band, Flag, ScoreModel, ScoreModels, Signals, Target, MAX_REFERENCES};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LabelledAnswer {
    pub question_id: String,
    pub kind: String,
    pub grade: u8,
    pub reason: String,
    pub answer: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswersFile {
    answers: Vec<LabelledAnswer>,
}

/// Kinds of answers that must never score above [`NOT_AN_ANSWER_CEILING`].
pub const MUST_SCORE_LOW: [&str; 4] = ["wrong", "keyword_salad", "restated", "other_question"];
pub const NOT_AN_ANSWER_CEILING: f32 = 40.0;

pub fn load_answers(path: &Path) -> Result<Vec<LabelledAnswer>, InternalError> {
    let text = std::fs::read_to_string(path).map_err(InternalError::io(format!("read {}", path.display())))?;
    let file: AnswersFile =
        toml::from_str(&text).map_err(|error| InternalError::Index(format!("invalid {}: {error}", path.display())))?;
    Ok(file.answers)
}

/// The held-out split: every fourth question (in order of first appearance) with all its
/// answers, so the fit never sees those questions and each split holds every kind of answer.
pub fn held_out_questions(answers: &[LabelledAnswer]) -> Vec<String> {
    let mut questions: Vec<&str> = Vec::new();
    for answer in answers {
        if !questions.contains(&answer.question_id.as_str()) {
            questions.push(&answer.question_id);
        }
    }
    questions.into_iter().enumerate().filter(|(i, _)| i % 4 == 3).map(|(_, q)| q.to_string()).collect()
}

/// What the reviewer measured for one labelled answer; independent of the score model.
#[derive(Serialize)]
pub struct Observation {
    pub rubric: Rubric,
    pub label: LabelledAnswer,
    pub signals: Signals,
    pub flags: Vec<Flag>,
    pub held_out: bool,
    /// Per key point: the judge's best entailment, best passage similarity and key-term coverage.
    pub point_entailments: Vec<f32>,
    pub point_similarities: Vec<f32>,
    pub point_term_coverage: Vec<f32>,
}

/// How the labelled answers are reviewed: against their corpus question's rubric, or ad hoc
/// against the question's text and reference answers only (as a user without the corpus would).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rubric {
    Corpus,
    AdHoc,
}

pub fn observe(engine: &Engine, answers: &[LabelledAnswer], rubric: Rubric) -> Result<Vec<Observation>, Error> {
    let models = ScoreModels::fitted();
    let held_out = held_out_questions(answers);
    let snapshot = engine.snapshot();
    answers
        .iter()
        .map(|label| {
            let target = match rubric {
                Rubric::Corpus => Target::Corpus(label.question_id.clone()),
                Rubric::AdHoc => {
                    let entry = &snapshot
                        .corpus()
                        .get(&label.question_id)
                        .ok_or_else(|| InternalError::Index(format!("{} is not in the corpus", label.question_id)))?
                        .entry;
                    let references = std::iter::once(&entry.answer).chain(&entry.alternatives).take(MAX_REFERENCES).cloned().collect();
                    Target::AdHoc { question: entry.question.clone(), references, key_points: Vec::new() }
                }
            };
            let review = engine.review_with(&target, &label.answer, &models)?;
            Ok(Observation {
                rubric,
                label: label.clone(),
                signals: review.signals,
                flags: review.flags,
                held_out: held_out.contains(&label.question_id),
                point_entailments: review.key_points.iter().map(|p| p.entailment).collect(),
                point_similarities: review.key_points.iter().map(|p| p.similarity).collect(),
                point_term_coverage: review.key_points.iter().map(|p| p.term_coverage).collect(),
            })
        })
        .collect()
}

/// One answer the score model is fitted on: its signals and flags, the score it deserves on 0–1,
/// and how much it counts.
#[derive(Clone)]
pub struct FitRow {
    pub signals: Signals,
    pub flags: Vec<Flag>,
    pub target: f64,
    pub weight: f64,
}

impl FitRow {
    /// A graded answer of `eval/answers.toml`: it deserves `grade / 5`.
    pub fn of_observation(observation: &Observation) -> FitRow {
        FitRow { signals: observation.signals, flags: observation.flags.clone(), target: f64::from(observation.label.grade) / 5.0, weight: 1.0 }
    }
}

/// Answers of one origin for the ad-hoc fit, with the question each answers (a cross-validation
/// fold never splits a question).
pub struct FitSource {
    pub rows: Vec<FitRow>,
    pub questions: Vec<String>,
}

impl FitSource {
    /// Graded answers of `eval/answers.toml`.
    pub fn ours(observed: &[&Observation]) -> FitSource {
        FitSource {
            rows: observed.iter().map(|o| FitRow::of_observation(o)).collect(),
            questions: observed.iter().map(|o| o.label.question_id.clone()).collect(),
        }
    }

    /// Public graded answers of one split: each deserves what its label says.
    pub fn public(observed: &[ExternalObservation]) -> FitSource {
        FitSource {
            rows: observed
                .iter()
                .map(|o| FitRow { signals: o.signals, flags: o.flags.clone(), target: o.answer.label.target(&o.answer.raw_label), weight: 1.0 })
                .collect(),
            questions: observed.iter().map(|o| o.answer.question.clone()).collect(),
        }
    }
}

/// The shares of the ad-hoc fit's weight tried for our answers; the rest is split evenly over the
/// public train splits.
pub const OUR_SHARES: [f64; 8] = [0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 1.0];
const FOLDS: u64 = 4;

/// How one share of our answers fared in cross-validation on the training answers.
pub struct ShareReport {
    pub share: f64,
    /// Pearson of score and grade on our left-out questions (mean over folds).
    pub our_pearson: f64,
    /// AUC of the score for correct answers on the public left-out questions (mean over folds and splits).
    pub public_auc: f64,
}

impl ShareReport {
    /// What the share is chosen by: ours and the public answers count alike.
    pub fn merit(&self) -> f64 {
        (self.our_pearson + self.public_auc) / 2.0
    }
}

/// A question's fold: FNV-1a of its text, so folds are stable across runs and machines.
fn fold_of(question: &str) -> u64 {
    question.bytes().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3)) % FOLDS
}

/// The ad-hoc fit's rows without the questions of `left_out`: ours weigh `our_share` in total,
/// each public source an even part of the rest, and weights average 1 so that the ridge
/// penalty means the same as in an unweighted fit.
fn blend(ours: &FitSource, public: &[FitSource], our_share: f64, left_out: Option<u64>) -> Vec<FitRow> {
    let kept = |source: &FitSource| -> Vec<FitRow> {
        source.rows.iter().zip(&source.questions).filter(|(_, q)| Some(fold_of(q)) != left_out).map(|(row, _)| row.clone()).collect()
    };
    let mut parts = vec![(kept(ours), our_share)];
    parts.extend(public.iter().map(|source| (kept(source), (1.0 - our_share) / public.len().max(1) as f64)));
    let total: usize = parts.iter().filter(|(_, share)| *share > 0.0).map(|(rows, _)| rows.len()).sum();
    parts
        .into_iter()
        .filter(|(rows, share)| *share > 0.0 && !rows.is_empty())
        .flat_map(|(rows, share)| {
            let weight = share * total as f64 / rows.len() as f64;
            rows.into_iter().map(move |row| FitRow { weight, ..row })
        })
        .collect()
}

/// Scores of the rows of `source` whose question is in `fold`, with their targets.
fn validation(model: &ScoreModel, source: &FitSource, fold: u64) -> (Vec<f64>, Vec<f64>) {
    source
        .rows
        .iter()
        .zip(&source.questions)
        .filter(|(_, q)| fold_of(q) == fold)
        .map(|(row, _)| (f64::from(final_score(model.raw_score(&row.signals), &row.flags)), row.target))
        .unzip()
}

/// Cross-validates every share in [`OUR_SHARES`] on the training answers (folds by question).
pub fn cross_validate_shares(ours: &FitSource, public: &[FitSource]) -> Vec<ShareReport> {
    OUR_SHARES
        .iter()
        .filter_map(|&share| {
            let (mut pearsons, mut aucs) = (Vec::new(), Vec::new());
            for fold in 0..FOLDS {
                let model = fit(&blend(ours, public, share, Some(fold)), &[])?;
                let (scores, targets) = validation(&model, ours, fold);
                pearsons.push(pearson(&scores, &targets));
                for source in public {
                    let (scores, targets) = validation(&model, source, fold);
                    let (correct, rest): (Vec<(f64, f64)>, Vec<(f64, f64)>) = scores.into_iter().zip(targets).partition(|(_, t)| *t >= 1.0);
                    let auc = crate::eval::external::auc(&correct.iter().map(|c| c.0).collect::<Vec<_>>(), &rest.iter().map(|r| r.0).collect::<Vec<_>>());
                    if auc.is_finite() {
                        aucs.push(auc);
                    }
                }
            }
            let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len().max(1) as f64;
            Some(ShareReport { share, our_pearson: mean(&pearsons), public_auc: mean(&aucs) })
        })
        .collect()
}

/// The ad-hoc score model: the share of our answers with the best cross-validated merit, then
/// fitted on all training answers with it; its bands are calibrated on `banded`.
/// Without public answers only ours count: nothing to cross-validate, no reports.
pub fn fit_ad_hoc(ours: &FitSource, public: &[FitSource], banded: &[&Observation]) -> Option<(ScoreModel, Vec<ShareReport>, f64)> {
    if public.is_empty() {
        return Some((fit(&ours.rows, banded)?, Vec::new(), 1.0));
    }
    let reports = cross_validate_shares(ours, public);
    let best = reports.iter().max_by(|a, b| a.merit().total_cmp(&b.merit()))?.share;
    Some((fit(&blend(ours, public, best, None), banded)?, reports, best))
}

/// The sign each feature's weight must have (in `ScoreModel::FEATURES` order).
const WEIGHT_SIGNS: [f64; 5] = [1.0, 1.0, 1.0, 1.0, -1.0];

/// Weighted least-squares fit of the target on the features, over the answers no flag
/// disqualifies (their score is capped whatever the model says); the bands are then calibrated
/// on the project's graded answers (`banded`), whose human grades say what a band means.
pub fn fit(rows: &[FitRow], banded: &[&Observation]) -> Option<ScoreModel> {
    let weighted: Vec<([f64; 6], f64)> = rows
        .iter()
        .filter(|row| !is_disqualified(&row.flags))
        .map(|row| {
            let f = ScoreModel::features(&row.signals).map(f64::from);
            let scale = row.weight.sqrt();
            ([1.0, f[0], f[1], f[2], f[3], f[4]].map(|x| x * scale), row.target * scale)
        })
        .collect();
    // Evidence of a good answer must never lower a score and a contradiction never raise it:
    // while a weight has the wrong sign, the worst one's signal carries no usable information
    // here, so it is left out (weight 0) and the rest fitted again.
    let mut left_out = [false; 6];
    let solution = loop {
        let kept: Vec<([f64; 6], f64)> =
            weighted.iter().map(|(x, y)| (std::array::from_fn(|i| if left_out[i] { 0.0 } else { x[i] }), *y)).collect();
        let solution = least_squares(&kept, 1e-3)?;
        let wrong = (1..6).filter(|&i| !left_out[i] && solution[i] * WEIGHT_SIGNS[i - 1] < 0.0);
        match wrong.min_by(|&a, &b| (solution[a] * WEIGHT_SIGNS[a - 1]).total_cmp(&(solution[b] * WEIGHT_SIGNS[b - 1]))) {
            Some(worst) => left_out[worst] = true,
            None => break std::array::from_fn::<f64, 6, _>(|i| if left_out[i] { 0.0 } else { solution[i] }),
        }
    };
    let weights = [solution[1], solution[2], solution[3], solution[4], solution[5]].map(|w| w as f32);
    let linear = ScoreModel::from_weights(solution[0] as f32, weights, [40.0, 70.0, 90.0]);
    let scored: Vec<(f32, Band)> = banded
        .iter()
        .filter(|o| !o.flags.contains(&Flag::OffTopic))
        .map(|o| (final_score(linear.raw_score(&o.signals), &o.flags).round(), human_band(&o.label)))
        .collect();
    Some(ScoreModel { band_cut_offs: calibrate_bands(&scored), ..linear })
}

/// The band cut-offs (whole scores, increasing) under which the most answers land in their
/// human band; ties go to the cut-offs closest to 20 × grade.
pub fn calibrate_bands(scored: &[(f32, Band)]) -> [f32; 3] {
    let agreement = |cut_offs: [f32; 3]| scored.iter().filter(|(score, human)| Band::of_score(*score, &[], cut_offs) == *human).count();
    let distance = |c: [f32; 3]| (c[0] - 40.0).abs() + (c[1] - 70.0).abs() + (c[2] - 90.0).abs();
    let mut best = ([40.0, 70.0, 90.0], 0usize);
    for partial in 1..=98u8 {
        for good in partial + 1..=99 {
            for excellent in good + 1..=100 {
                let cut_offs = [partial, good, excellent].map(f32::from);
                let agreeing = agreement(cut_offs);
                if agreeing > best.1 || (agreeing == best.1 && distance(cut_offs) < distance(best.0)) {
                    best = (cut_offs, agreeing);
                }
            }
        }
    }
    best.0
}

/// Solves the ridge-regularised normal equations `(XᵀX + λI) w = Xᵀy` (the bias unregularised)
/// by Gaussian elimination with partial pivoting.
pub fn least_squares<const N: usize>(rows: &[([f64; N], f64)], ridge: f64) -> Option<[f64; N]> {
    let mut matrix = [[0.0f64; N]; N];
    let mut rhs = [0.0f64; N];
    for (x, y) in rows {
        for i in 0..N {
            rhs[i] += x[i] * y;
            for j in 0..N {
                matrix[i][j] += x[i] * x[j];
            }
        }
    }
    for (i, row) in matrix.iter_mut().enumerate().skip(1) {
        row[i] += ridge * rows.len() as f64;
    }
    for column in 0..N {
        let pivot = (column..N).max_by(|&a, &b| matrix[a][column].abs().total_cmp(&matrix[b][column].abs()))?;
        if matrix[pivot][column].abs() < 1e-12 {
            return None;
        }
        matrix.swap(column, pivot);
        rhs.swap(column, pivot);
        for row in column + 1..N {
            let factor = matrix[row][column] / matrix[column][column];
            for k in column..N {
                matrix[row][k] -= factor * matrix[column][k];
            }
            rhs[row] -= factor * rhs[column];
        }
    }
    let mut solution = [0.0f64; N];
    for row in (0..N).rev() {
        let tail: f64 = (row + 1..N).map(|k| matrix[row][k] * solution[k]).sum();
        solution[row] = (rhs[row] - tail) / matrix[row][row];
    }
    Some(solution)
}

pub fn pearson(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    if xs.len() < 2 {
        return 0.0;
    }
    let (mean_x, mean_y) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let covariance: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mean_x) * (y - mean_y)).sum();
    let spread_x: f64 = xs.iter().map(|x| (x - mean_x).powi(2)).sum::<f64>().sqrt();
    let spread_y: f64 = ys.iter().map(|y| (y - mean_y).powi(2)).sum::<f64>().sqrt();
    if spread_x == 0.0 || spread_y == 0.0 {
        0.0
    } else {
        covariance / (spread_x * spread_y)
    }
}

/// Ranks from 1 with ties given their average rank.
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && values[order[end + 1]] == values[order[start]] {
            end += 1;
        }
        let rank = (start + end) as f64 / 2.0 + 1.0;
        for &index in &order[start..=end] {
            ranks[index] = rank;
        }
        start = end + 1;
    }
    ranks
}

pub fn spearman(xs: &[f64], ys: &[f64]) -> f64 {
    pearson(&average_ranks(xs), &average_ranks(ys))
}

/// Share of same-question answer pairs with different grades that the scores order the same
/// way (a score tie counts half).
pub fn pairwise_accuracy(items: &[(&str, f64, u8)]) -> f64 {
    let (mut agree, mut pairs) = (0.0, 0usize);
    for (i, a) in items.iter().enumerate() {
        for b in &items[i + 1..] {
            if a.0 != b.0 || a.2 == b.2 {
                continue;
            }
            pairs += 1;
            let score_order = a.1.total_cmp(&b.1);
            if score_order == std::cmp::Ordering::Equal {
                agree += 0.5;
            } else if score_order == a.2.cmp(&b.2) {
                agree += 1.0;
            }
        }
    }
    if pairs == 0 {
        0.0
    } else {
        agree / pairs as f64
    }
}

/// The band a human grade stands for; answers to another question are off topic whatever their grade.
pub fn human_band(label: &LabelledAnswer) -> Band {
    if label.kind == "other_question" {
        return Band::OffTopic;
    }
    match label.grade {
        5 => Band::Excellent,
        4 => Band::Good,
        2 | 3 => Band::Partial,
        _ => Band::Weak,
    }
}

pub struct SplitReport {
    pub answers: usize,
    pub pearson: f64,
    pub spearman: f64,
    pub pairwise: f64,
    pub band_agreement: f64,
    /// Rows: human band; columns: predicted band; both in `Band` order.
    pub confusion: BTreeMap<(Band, Band), usize>,
    /// Highest score among answers that must score low, with its kind and question.
    pub worst_must_score_low: Option<(f32, String, String)>,
    pub must_score_low_above_ceiling: usize,
}

pub fn report(observations: &[&Observation], model: &ScoreModel) -> SplitReport {
    let scored: Vec<(f32, Band, &Observation)> = observations
        .iter()
        .map(|o| {
            let score = final_score(model.raw_score(&o.signals), &o.flags).round();
            (score, Band::of_score(score, &o.flags, model.band_cut_offs), *o)
        })
        .collect();
    let scores: Vec<f64> = scored.iter().map(|(s, _, _)| f64::from(*s)).collect();
    let grades: Vec<f64> = scored.iter().map(|(_, _, o)| f64::from(o.label.grade)).collect();
    let items: Vec<(&str, f64, u8)> =
        scored.iter().map(|(s, _, o)| (o.label.question_id.as_str(), f64::from(*s), o.label.grade)).collect();
    let mut confusion = BTreeMap::new();
    for (_, band, observation) in &scored {
        *confusion.entry((human_band(&observation.label), *band)).or_insert(0) += 1;
    }
    let agreeing: usize = confusion.iter().filter(|((human, predicted), _)| human == predicted).map(|(_, n)| n).sum();
    let low: Vec<&(f32, Band, &Observation)> = scored.iter().filter(|(_, _, o)| MUST_SCORE_LOW.contains(&o.label.kind.as_str())).collect();
    SplitReport {
        answers: scored.len(),
        pearson: pearson(&scores, &grades),
        spearman: spearman(&scores, &grades),
        pairwise: pairwise_accuracy(&items),
        band_agreement: agreeing as f64 / scored.len().max(1) as f64,
        confusion,
        worst_must_score_low: low
            .iter()
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(s, _, o)| (*s, o.label.kind.clone(), o.label.question_id.clone())),
        must_score_low_above_ceiling: low.iter().filter(|(s, _, _)| *s > NOT_AN_ANSWER_CEILING).count(),
    }
}
