//! Answer review: rates a candidate's free-text answer against a question's reference answers
//! and rubric (key points).
//!
//! The bi-encoder picks, for every key point, the passage of the answer closest to it; the
//! pair judge (a trained cross-encoder, `judge`) then reads each (passage, key point) pair and
//! says whether the passage entails, contradicts or is neutral to the point. A key point is
//! covered when a passage entails it, and that passage is the evidence shown. A passage close to
//! one of the question's known misconceptions that the judge says entails it is a contradiction,
//! shown with the passage. Checks (restated question, keyword salad, off topic,
//! too short for what it covers) cap the score whatever the judge says.
//!
//! The score is a small linear model over these signals, fitted on the training splits of the
//! project's graded answers and of public graded data (`askmark eval review --fit`), with
//! printable weights and calibrated bands. The model work of one review is bounded: at most
//! `MAX_PASSAGES` passages are embedded and at most `CANDIDATES_PER_POINT` pairs per key point
//! (plus one per close misconception) are judged, whatever the answer's length or shape.

use std::collections::HashSet;
use std::sync::LazyLock;
use std::time::Instant;

use serde::{Deserialize, Serialize, Serializer};

use crate::corpus::Corpus;
use crate::embed::{cosine, mean_direction, Embedder};
use crate::error::{Error, InternalError, UserError};
use crate::index::Generation;
use crate::judge::{PairJudge, Verdict};
use crate::text;

pub const MAX_ANSWER_CHARS: usize = 10_000;
pub const MAX_QUESTION_CHARS: usize = 2_000;
pub const MAX_REFERENCES: usize = 5;
pub const MAX_REFERENCE_CHARS: usize = 5_000;
pub const MAX_KEY_POINTS: usize = 12;
pub const MAX_KEY_POINT_CHARS: usize = 300;

/// An answer is read as at most this many passages; beyond it, neighbouring sentences are joined.
const MAX_PASSAGES: usize = 48;
/// Passages the judge reads per key point, the closest by the bi-encoder first, and how close a
/// passage must be to be read at all: the judge is trained on statements about the point, and
/// an unrelated sentence can look like entailment to it (it overrates long, wordy premises).
/// One passage, not two: `eval review` held-out Spearman 0.538 -> 0.570 (corpus) and 0.615 ->
/// 0.621 (ad hoc), public AUC within 0.004, and a 200-word review judges 8.7 pairs, not 15.3.
const CANDIDATES_PER_POINT: usize = 1;
const MIN_CANDIDATE_COSINE: f32 = 0.4;
/// Judge probabilities: a key point is covered from `COVERED` entailment, partially from
/// `PARTIALLY_COVERED`; a passage states a known misconception from `STATES_MISCONCEPTION`
/// entailment of it.
const COVERED: f32 = 0.5;
const PARTIALLY_COVERED: f32 = 0.25;
/// The same from the bi-encoder (the previous review's rule, chosen on eval/answers.toml).
const COVERED_BY_SIMILARITY: f32 = 0.7;
const PARTIALLY_COVERED_BY_SIMILARITY: f32 = 0.58;
const STATES_MISCONCEPTION: f32 = 0.6;
/// Misconceptions are judged only against a passage at least this close to them (bi-encoder)
/// and closer to them than to any key point: the judge alone takes a correct sentence on the
/// same subject for the misconception.
const MISCONCEPTION_CANDIDATE_COSINE: f32 = 0.6;
/// The judge's entailment counts only for a passage the bi-encoder finds this close to the
/// point, or in an answer that uses this share of the point's own terms: on a long, correct,
/// on-topic sentence the judge can report entailment of points the sentence never mentions.
const JUDGE_SUPPORT_SIMILARITY: f32 = 0.75;
const JUDGE_SUPPORT_TERMS: f32 = 0.3;
/// An ad-hoc reference sentence becomes a key point from this many words.
const MIN_KEY_POINT_WORDS: usize = 3;
/// Scores of answers flagged as not answering at all stay below this.
const FLAGGED_CEILING: f32 = 25.0;
/// `too_short`: fewer words than this share of the main reference (and at least
/// `SHORT_MIN_WORDS`), while covering less than `SHORT_MAX_COVERAGE` of the key points.
const SHORT_SHARE_OF_REFERENCE: f32 = 0.15;
const SHORT_MIN_WORDS: usize = 8;
const SHORT_MAX_COVERAGE: f32 = 0.2;
/// `restates_question`: this close to the question while adding at most this many new terms.
const RESTATES_COSINE: f32 = 0.8;
const RESTATES_MAX_NEW_TERMS: usize = 4;
/// `keyword_stuffing`: at least this many words with fewer function words than this share.
const STUFFING_MIN_WORDS: usize = 5;
const STUFFING_MAX_FUNCTION_WORDS: f32 = 0.12;
/// `off_topic`: closer to another question's reference by this margin, and that one is close.
/// Chosen on the training answers of eval/answers.toml: answers to other questions sit at -0.26
/// or below, answers to the question itself at -0.14 or above (sibling questions share much of
/// their answers), so the cut is halfway; at -0.05 it capped 4 incomplete answers at 25.
const OFF_TOPIC_MARGIN: f32 = -0.2;
const OFF_TOPIC_OTHER_COSINE: f32 = 0.5;

/// What the answer is reviewed against.
#[derive(Debug, Clone)]
pub enum Target {
    Corpus(String),
    AdHoc { question: String, references: Vec<String>, key_points: Vec<String> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    TooShort,
    RestatesQuestion,
    KeywordStuffing,
    OffTopic,
    Contradiction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    OffTopic,
    Weak,
    Partial,
    Good,
    Excellent,
}

impl Band {
    /// The band a score falls in, given the lowest scores of partial, good and excellent.
    pub fn of_score(score: f32, flags: &[Flag], cut_offs: [f32; 3]) -> Band {
        if flags.contains(&Flag::OffTopic) {
            Band::OffTopic
        } else if score >= cut_offs[2] {
            Band::Excellent
        } else if score >= cut_offs[1] {
            Band::Good
        } else if score >= cut_offs[0] {
            Band::Partial
        } else {
            Band::Weak
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Band::OffTopic => "off_topic",
            Band::Weak => "weak",
            Band::Partial => "partial",
            Band::Good => "good",
            Band::Excellent => "excellent",
        }
    }
}

/// Best first: `min` of two verdicts is the better one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Coverage {
    Covered,
    Partially,
    Missed,
}

impl Coverage {
    /// Covered from `covered`, partially from `partially`.
    fn of_strength(strength: f32, covered: f32, partially: f32) -> Coverage {
        if strength >= covered {
            Coverage::Covered
        } else if strength >= partially {
            Coverage::Partially
        } else {
            Coverage::Missed
        }
    }

    fn of_entailment(entailment: f32) -> Coverage {
        Coverage::of_strength(entailment, COVERED, PARTIALLY_COVERED)
    }

    /// From the bi-encoder alone: the closest passage's cosine, lifted a little when the answer
    /// also uses the point's own terms.
    fn of_similarity(similarity: f32, term_coverage: f32) -> Coverage {
        let evidence = (0.8 * similarity + 0.2 * term_coverage).clamp(0.0, 1.0);
        Coverage::of_strength(evidence, COVERED_BY_SIMILARITY, PARTIALLY_COVERED_BY_SIMILARITY)
    }

    fn credit(self) -> f32 {
        match self {
            Coverage::Covered => 1.0,
            Coverage::Partially => 0.5,
            Coverage::Missed => 0.0,
        }
    }
}

impl Serialize for Coverage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Coverage::Covered => serializer.serialize_bool(true),
            Coverage::Missed => serializer.serialize_bool(false),
            Coverage::Partially => serializer.serialize_str("partially"),
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KeyPointVerdict {
    pub point: String,
    /// `true`, `false` or `"partially"`.
    #[schema(value_type = Object)]
    pub covered: Coverage,
    /// The passage of the answer that entails the point best (none when the point is missed).
    pub evidence: Option<String>,
    /// Bi-encoder cosine of the point and its closest passage.
    pub similarity: f32,
    /// The judge's probability that the evidence passage entails the point.
    pub entailment: f32,
    /// Share of the point's key terms the whole answer uses.
    pub term_coverage: f32,
}

/// A known misconception of the question that the answer states. (The judge's own
/// "contradicts a key point" class is not used for flags: on our answers it fires on correct
/// paraphrases; its probability is reported in `signals.contradiction` only.)
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Contradiction {
    pub misconception: String,
    /// The passage of the answer that states it.
    pub evidence: String,
    /// The judge's probability that the passage entails the misconception.
    pub similarity: f32,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReferenceSimilarity {
    pub similarity: f32,
    /// 0 is the main reference answer, 1.. the alternatives (or the ad-hoc references in order).
    pub reference: usize,
}

/// The signals the score is computed from, reported so a verdict can be explained.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Signals {
    /// Mean over key points of the judge's best entailment probability, 0–1.
    pub key_point_entailment: f32,
    /// Covered key points (partially counts half) over all key points.
    pub key_points_covered: f32,
    /// Best cosine of the whole answer to a reference answer.
    pub reference_similarity: f32,
    /// Share of the rubric's distinct key terms the answer uses.
    pub term_coverage: f32,
    /// The strongest contradiction found: the judge's probability that a passage contradicts a
    /// key point or entails a known misconception, 0–1.
    pub contradiction: f32,
    /// Similarity to this question's reference minus the best other question's.
    pub topic_margin: f32,
    pub words: usize,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Review {
    pub question_id: Option<String>,
    pub score: u8,
    pub grade: Band,
    pub key_points: Vec<KeyPointVerdict>,
    pub reference_similarity: ReferenceSimilarity,
    pub flags: Vec<Flag>,
    /// Statements of the answer that contradict the rubric, with the passage that says them.
    pub contradictions: Vec<Contradiction>,
    pub feedback: String,
    pub signals: Signals,
    pub took_ms: f64,
}

/// The fitted linear combination: `score = 100 × (bias + Σ weight × feature)`, clamped to 0–100.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreModel {
    pub bias: f32,
    pub key_point_entailment: f32,
    pub key_points_covered: f32,
    pub reference_similarity: f32,
    pub term_coverage: f32,
    pub contradiction: f32,
    /// Lowest scores of the partial, good and excellent bands, calibrated on the labelled set so
    /// that a band means what the human grades behind it mean.
    pub band_cut_offs: [f32; 3],
}

/// One score model per kind of rubric, because their signals mean different things: a corpus
/// question has curated key points and misconceptions; an ad-hoc review has only the references
/// a user gives (their sentences become the key points, nothing is a known misconception).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreModels {
    /// Fitted on the project's graded answers to corpus questions.
    pub corpus: ScoreModel,
    /// Fitted on public graded answers (train splits) and the project's answers reviewed ad hoc.
    pub ad_hoc: ScoreModel,
}

/// The committed fit, parsed once.
static FITTED: LazyLock<ScoreModels> = LazyLock::new(|| {
    serde_json::from_str(include_str!("../eval/review-model.json")).expect("eval/review-model.json is a valid score model")
});

impl ScoreModels {
    /// The committed fit (`eval/review-model.json`).
    pub fn fitted() -> ScoreModels {
        *FITTED
    }

    /// The model for reviews of a corpus question (`true`) or ad hoc (`false`).
    pub fn for_rubric(&self, corpus: bool) -> &ScoreModel {
        if corpus {
            &self.corpus
        } else {
            &self.ad_hoc
        }
    }
}

impl ScoreModel {
    pub const FEATURES: [&'static str; 5] =
        ["key_point_entailment", "key_points_covered", "reference_similarity", "term_coverage", "contradiction"];

    pub fn features(signals: &Signals) -> [f32; 5] {
        [
            signals.key_point_entailment,
            signals.key_points_covered,
            signals.reference_similarity,
            signals.term_coverage,
            signals.contradiction,
        ]
    }

    pub fn from_weights(bias: f32, weights: [f32; 5], band_cut_offs: [f32; 3]) -> ScoreModel {
        ScoreModel {
            bias,
            band_cut_offs,
            key_point_entailment: weights[0],
            key_points_covered: weights[1],
            reference_similarity: weights[2],
            term_coverage: weights[3],
            contradiction: weights[4],
        }
    }

    pub fn weights(&self) -> [f32; 5] {
        [self.key_point_entailment, self.key_points_covered, self.reference_similarity, self.term_coverage, self.contradiction]
    }

    /// The raw model output on 0–100, before flags cap it.
    pub fn raw_score(&self, signals: &Signals) -> f32 {
        let linear: f32 = self.bias + Self::features(signals).iter().zip(self.weights()).map(|(f, w)| f * w).sum::<f32>();
        (linear * 100.0).clamp(0.0, 100.0)
    }
}

/// Whether a flag says the answer does not answer at all (its score is capped, whatever the model says).
pub fn is_disqualified(flags: &[Flag]) -> bool {
    flags.iter().any(|f| matches!(f, Flag::TooShort | Flag::RestatesQuestion | Flag::KeywordStuffing | Flag::OffTopic))
}

/// Final score from the raw model output and the flags.
pub fn final_score(raw: f32, flags: &[Flag]) -> f32 {
    if is_disqualified(flags) {
        raw.min(FLAGGED_CEILING)
    } else {
        raw
    }
}

/// The passages an answer is read as: its sentences, joined in neighbouring groups when there
/// are more than `limit`, so the work stays bounded and nothing is dropped.
pub fn passages(answer: &str, limit: usize) -> Vec<String> {
    let sentences = text::sentences(answer);
    if sentences.len() <= limit {
        return sentences;
    }
    let per_passage = sentences.len().div_ceil(limit);
    sentences.chunks(per_passage).map(|group| group.join(" ")).collect()
}

/// A key point with the statements that count as stating it (itself, and for ad-hoc reviews
/// with several one-sentence references, the alternatives).
struct Point {
    text: String,
    vector: Vec<f32>,
    alternatives: Vec<String>,
}

struct Rubric<'a> {
    question_id: Option<String>,
    question: &'a str,
    question_vector: Vec<f32>,
    references: Vec<Vec<f32>>,
    main_reference_words: usize,
    points: Vec<Point>,
    misconceptions: Vec<(String, Vec<f32>)>,
}

/// Reviews answers against one corpus, the embeddings its generation stores, the judge and a
/// score model.
pub struct Reviewer<'a> {
    pub corpus: &'a Corpus,
    pub generation: &'a Generation,
    pub embedder: &'a dyn Embedder,
    pub judge: &'a dyn PairJudge,
    pub models: &'a ScoreModels,
}

impl Reviewer<'_> {
    /// Reviews `answer` against `target`.
    pub fn review(&self, target: &Target, answer: &str) -> Result<Review, Error> {
        let started = Instant::now();
        validate_answer(answer)?;
        let rubric = match target {
            Target::Corpus(id) => self.corpus_rubric(id)?,
            Target::AdHoc { question, references, key_points } => self.ad_hoc_rubric(question, references, key_points)?,
        };
        let mut review = self.assess(&rubric, answer)?;
        review.took_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(review)
    }

    fn corpus_rubric(&self, id: &str) -> Result<Rubric<'_>, Error> {
        let question = self.corpus.get(id).ok_or_else(|| UserError::QuestionNotFound(id.to_string()))?;
        let embeddings = self.generation.embeddings.get(id).ok_or_else(|| InternalError::Index(format!("no embeddings for {id}")))?;
        let entry = &question.entry;
        Ok(Rubric {
            question_id: Some(id.to_string()),
            question: &entry.question,
            question_vector: embeddings.question.clone(),
            references: embeddings.references.clone(),
            main_reference_words: text::word_count(&entry.answer),
            points: entry
                .key_points
                .iter()
                .zip(&embeddings.key_points)
                .map(|(text, vector)| Point { text: text.clone(), vector: vector.clone(), alternatives: Vec::new() })
                .collect(),
            misconceptions: entry.misconceptions.iter().cloned().zip(embeddings.misconceptions.iter().cloned()).collect(),
        })
    }

    /// Key points given, or else taken from the references: a one-sentence reference is itself
    /// the key point (several such references are alternative wordings of it); a longer main
    /// reference gives one key point per sentence.
    fn ad_hoc_rubric<'q>(&self, question: &'q str, references: &[String], key_points: &[String]) -> Result<Rubric<'q>, Error> {
        validate_ad_hoc(question, references, key_points)?;
        let main_sentences = text::sentences(&references[0]);
        let all_single_sentences = references.iter().all(|r| text::sentences(r).len() <= 1);
        let points: Vec<(String, Vec<String>)> = if !key_points.is_empty() {
            key_points.iter().map(|p| (p.clone(), Vec::new())).collect()
        } else if all_single_sentences {
            vec![(references[0].trim().to_string(), references[1..].iter().map(|r| r.trim().to_string()).collect())]
        } else {
            let long_enough: Vec<String> =
                main_sentences.iter().filter(|s| text::word_count(s) >= MIN_KEY_POINT_WORDS).take(MAX_KEY_POINTS).cloned().collect();
            if long_enough.is_empty() { main_sentences.into_iter().take(1).collect() } else { long_enough }
                .into_iter()
                .map(|p| (p, Vec::new()))
                .collect()
        };
        let texts: Vec<&str> = std::iter::once(question)
            .chain(references.iter().map(String::as_str))
            .chain(points.iter().map(|(p, _)| p.as_str()))
            .collect();
        let mut vectors = self.embedder.embed(&texts)?.into_iter();
        let question_vector = vectors.next().unwrap_or_default();
        let reference_vectors: Vec<Vec<f32>> = vectors.by_ref().take(references.len()).collect();
        Ok(Rubric {
            question_id: None,
            question,
            question_vector,
            references: reference_vectors,
            main_reference_words: text::word_count(&references[0]),
            points: points.into_iter().zip(vectors).map(|((text, alternatives), vector)| Point { text, vector, alternatives }).collect(),
            misconceptions: Vec::new(),
        })
    }

    fn assess(&self, rubric: &Rubric, answer: &str) -> Result<Review, Error> {
        let passages = passages(answer, MAX_PASSAGES);
        let word_count = text::word_count(answer);
        let passage_vectors: Vec<Vec<f32>> = if passages.is_empty() {
            Vec::new()
        } else {
            self.embedder.embed(&passages.iter().map(String::as_str).collect::<Vec<_>>())?
        };
        // The whole answer is represented by the mean of its passages: embedding a long text
        // costs more than its short sentences together (attention is quadratic).
        let answer_vector = mean_direction(&passage_vectors);

        // Which pairs the judge reads: every point with its closest passages, every close
        // misconception with its closest passage.
        let mut pairs: Vec<(usize, &str)> = Vec::new();
        let mut point_candidates: Vec<(Vec<(usize, usize, f32)>, f32)> = Vec::new();
        for point in &rubric.points {
            let mut ranked: Vec<(usize, f32)> = passage_vectors.iter().map(|v| cosine(&point.vector, v)).enumerate().collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
            let closest = ranked.first().map_or(0.0, |(_, similarity)| *similarity);
            ranked.retain(|(_, similarity)| *similarity >= MIN_CANDIDATE_COSINE);
            ranked.truncate(CANDIDATES_PER_POINT);
            let mut candidates = Vec::new();
            for (passage, similarity) in ranked {
                for statement in std::iter::once(&point.text).chain(&point.alternatives) {
                    candidates.push((pairs.len(), passage, similarity));
                    pairs.push((passage, statement.as_str()));
                }
            }
            point_candidates.push((candidates, closest));
        }
        // Per passage: its closest key point and how close.
        let closest_point: Vec<Option<(usize, f32)>> = passage_vectors
            .iter()
            .map(|v| rubric.points.iter().map(|p| cosine(&p.vector, v)).enumerate().max_by(|a, b| a.1.total_cmp(&b.1)))
            .collect();
        // (pair of the misconception, pair of the passage's closest point, passage, misconception)
        let mut misconception_pairs: Vec<(usize, Option<usize>, usize, usize)> = Vec::new();
        for (index, (statement, vector)) in rubric.misconceptions.iter().enumerate() {
            let closest = passage_vectors.iter().map(|v| cosine(vector, v)).enumerate().max_by(|a, b| a.1.total_cmp(&b.1));
            let candidate = closest.filter(|(passage, similarity)| {
                *similarity >= MISCONCEPTION_CANDIDATE_COSINE && closest_point[*passage].is_none_or(|(_, point)| *similarity > point)
            });
            if let Some((passage, _)) = candidate {
                // The passage against its closest point: already judged when the passage is one
                // of that point's candidates, else one more pair.
                let point_pair = closest_point[passage].map(|(point, _)| {
                    match point_candidates[point].0.iter().find(|c| c.1 == passage) {
                        Some(candidate) => candidate.0,
                        None => {
                            pairs.push((passage, rubric.points[point].text.as_str()));
                            pairs.len() - 1
                        }
                    }
                });
                misconception_pairs.push((pairs.len(), point_pair, passage, index));
                pairs.push((passage, statement.as_str()));
            }
        }
        let judged: Vec<Verdict> = if pairs.is_empty() {
            Vec::new()
        } else {
            let texts: Vec<(&str, &str)> = pairs.iter().map(|(passage, statement)| (passages[*passage].as_str(), *statement)).collect();
            self.judge.judge(&texts)?
        };

        let answer_terms: HashSet<String> = text::terms(answer).into_iter().collect();
        let question_terms: HashSet<String> = text::terms(rubric.question).into_iter().collect();
        let mut rubric_terms: HashSet<String> = HashSet::new();
        let mut verdicts = Vec::new();
        let mut contradictions = Vec::new();
        for (point, (candidates, closest)) in rubric.points.iter().zip(&point_candidates) {
            let point_terms: HashSet<String> = text::terms(&point.text).into_iter().filter(|t| !question_terms.contains(t)).collect();
            let term_coverage = share_present(&point_terms, &answer_terms);
            rubric_terms.extend(point_terms);
            let best = candidates.iter().max_by(|a, b| judged[a.0].entailment.total_cmp(&judged[b.0].entailment));
            let entailment = best.map_or(0.0, |c| judged[c.0].entailment);
            let similarity = closest.max(0.0);
            let supported = similarity >= JUDGE_SUPPORT_SIMILARITY || term_coverage >= JUDGE_SUPPORT_TERMS;
            let by_judge = if supported { Coverage::of_entailment(entailment) } else { Coverage::Missed };
            // The judge misses some close paraphrases, so a passage the bi-encoder finds very
            // close (with the point's terms) covers the point too; the evidence is the passage
            // that decided.
            let by_similarity = Coverage::of_similarity(similarity, term_coverage);
            let covered = by_judge.min(by_similarity);
            let deciding = if by_judge <= by_similarity { best } else { candidates.first() };
            verdicts.push(KeyPointVerdict {
                point: point.text.clone(),
                covered,
                evidence: deciding.filter(|_| covered != Coverage::Missed).map(|c| passages[c.1].clone()),
                similarity,
                entailment,
                term_coverage,
            });
        }
        for (pair, point_pair, passage, index) in &misconception_pairs {
            // The judge takes a passage that denies a misconception in the misconception's own
            // words for one that states it; such a passage entails a key point (its closest, or
            // any it was judged against) as much.
            let point_entailment = point_candidates
                .iter()
                .flat_map(|(candidates, _)| candidates)
                .filter(|c| c.1 == *passage)
                .map(|c| c.0)
                .chain(*point_pair)
                .map(|pair| judged[pair].entailment)
                .fold(0.0, f32::max);
            if judged[*pair].entailment >= STATES_MISCONCEPTION && judged[*pair].entailment > point_entailment {
                contradictions.push(Contradiction {
                    misconception: rubric.misconceptions[*index].0.clone(),
                    evidence: passages[*passage].clone(),
                    similarity: judged[*pair].entailment,
                });
            }
        }
        contradictions.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        let strongest_contradiction = point_candidates
            .iter()
            .flat_map(|(candidates, _)| candidates)
            .map(|c| judged[c.0].contradiction)
            .chain(misconception_pairs.iter().map(|(pair, _, _, _)| judged[*pair].entailment))
            .fold(0.0, f32::max);

        let (reference, reference_similarity) = rubric
            .references
            .iter()
            .enumerate()
            .map(|(i, v)| (i, cosine(&answer_vector, v)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((0, 0.0));
        let best_other = self
            .generation
            .embeddings
            .iter()
            .filter(|(id, _)| Some(id.as_str()) != rubric.question_id.as_deref())
            .map(|(_, e)| cosine(&answer_vector, &e.references[0]))
            .fold(f32::MIN, f32::max);
        let point_count = verdicts.len().max(1) as f32;
        let signals = Signals {
            key_point_entailment: verdicts.iter().map(|v| v.entailment).sum::<f32>() / point_count,
            key_points_covered: verdicts.iter().map(|v| v.covered.credit()).sum::<f32>() / point_count,
            reference_similarity,
            term_coverage: share_present(&rubric_terms, &answer_terms),
            contradiction: strongest_contradiction,
            topic_margin: reference_similarity - best_other,
            words: word_count,
        };

        let mut flags = Vec::new();
        if !contradictions.is_empty() {
            flags.push(Flag::Contradiction);
        }
        let short_limit = SHORT_MIN_WORDS.max((SHORT_SHARE_OF_REFERENCE * rubric.main_reference_words as f32) as usize);
        if word_count < short_limit && signals.key_points_covered < SHORT_MAX_COVERAGE {
            flags.push(Flag::TooShort);
        }
        let new_terms = answer_terms.iter().filter(|t| !question_terms.contains(*t)).count();
        if cosine(&answer_vector, &rubric.question_vector) >= RESTATES_COSINE && new_terms <= RESTATES_MAX_NEW_TERMS {
            flags.push(Flag::RestatesQuestion);
        }
        if word_count >= STUFFING_MIN_WORDS && text::function_word_ratio(answer) < STUFFING_MAX_FUNCTION_WORDS {
            flags.push(Flag::KeywordStuffing);
        }
        if signals.topic_margin < OFF_TOPIC_MARGIN && best_other > OFF_TOPIC_OTHER_COSINE {
            flags.push(Flag::OffTopic);
        }
        flags.sort();
        let model = self.models.for_rubric(rubric.question_id.is_some());
        let score = final_score(model.raw_score(&signals), &flags);
        let grade = Band::of_score(score, &flags, model.band_cut_offs);
        Ok(Review {
            question_id: rubric.question_id.clone(),
            score: score.round() as u8,
            grade,
            feedback: feedback(grade, &verdicts, &flags, &contradictions),
            key_points: verdicts,
            reference_similarity: ReferenceSimilarity { similarity: reference_similarity, reference },
            flags,
            contradictions,
            signals,
            took_ms: 0.0,
        })
    }
}

fn share_present(wanted: &HashSet<String>, present: &HashSet<String>) -> f32 {
    if wanted.is_empty() {
        0.0
    } else {
        wanted.iter().filter(|t| present.contains(*t)).count() as f32 / wanted.len() as f32
    }
}

fn validate_answer(answer: &str) -> Result<(), UserError> {
    if answer.trim().is_empty() {
        return Err(UserError::InvalidAnswer("the answer is empty".into()));
    }
    let chars = answer.chars().count();
    if chars > MAX_ANSWER_CHARS {
        return Err(UserError::InvalidAnswer(format!("the answer has {chars} characters, at most {MAX_ANSWER_CHARS} are allowed")));
    }
    Ok(())
}

fn validate_ad_hoc(question: &str, references: &[String], key_points: &[String]) -> Result<(), UserError> {
    if question.trim().is_empty() || question.chars().count() > MAX_QUESTION_CHARS {
        return Err(UserError::InvalidReview(format!("the question needs 1 to {MAX_QUESTION_CHARS} characters")));
    }
    if references.is_empty() || references.len() > MAX_REFERENCES {
        return Err(UserError::InvalidReview(format!("give between 1 and {MAX_REFERENCES} reference answers")));
    }
    if references.iter().any(|r| r.trim().is_empty() || r.chars().count() > MAX_REFERENCE_CHARS) {
        return Err(UserError::InvalidReview(format!("each reference answer needs 1 to {MAX_REFERENCE_CHARS} characters")));
    }
    if key_points.len() > MAX_KEY_POINTS || key_points.iter().any(|p| p.trim().is_empty() || p.chars().count() > MAX_KEY_POINT_CHARS) {
        return Err(UserError::InvalidReview(format!(
            "at most {MAX_KEY_POINTS} key points of 1 to {MAX_KEY_POINT_CHARS} characters each"
        )));
    }
    Ok(())
}

fn feedback(grade: Band, verdicts: &[KeyPointVerdict], flags: &[Flag], contradictions: &[Contradiction]) -> String {
    let covered: Vec<&str> = verdicts.iter().filter(|v| v.covered == Coverage::Covered).map(|v| v.point.as_str()).collect();
    let mut missed: Vec<&KeyPointVerdict> = verdicts.iter().filter(|v| v.covered != Coverage::Covered).collect();
    missed.sort_by(|a, b| a.entailment.total_cmp(&b.entailment));
    let mut parts = Vec::new();
    if flags.contains(&Flag::OffTopic) {
        parts.push("This reads as an answer to a different question; re-read what was asked.".to_string());
    } else if flags.contains(&Flag::KeywordStuffing) {
        parts.push("The answer lists terms without saying anything about them; explain how they relate.".to_string());
    } else if flags.contains(&Flag::RestatesQuestion) {
        parts.push("The answer restates the question instead of answering it.".to_string());
    } else if flags.contains(&Flag::TooShort) {
        parts.push("The answer is too short for what it covers; explain the idea and give an example.".to_string());
    } else if !covered.is_empty() {
        parts.push(format!("Good: you covered {} of {} key points, e.g. \"{}\"", covered.len(), verdicts.len(), covered[0]));
    }
    if let Some(first) = contradictions.first() {
        parts.push(format!("Careful: \"{}\" reads like a common mistake: {}", first.evidence.trim_end_matches('.'), first.misconception));
    }
    match missed.as_slice() {
        [] => parts.push(format!("Overall: {}.", grade.as_str().replace('_', " "))),
        [only] => parts.push(format!("Missing: \"{}\"", only.point)),
        [first, second, ..] => parts.push(format!("Most important missing points: \"{}\" and \"{}\"", first.point, second.point)),
    }
    parts.join(" ")
}
