//! Answer review: rates a candidate's free-text answer against a question's reference answers
//! and rubric (key points). Several signals are combined instead of trusting one cosine:
//! sentence-level similarity to each key point, lexical coverage of the key terms, whole-answer
//! similarity to each reference, and checks (too short, restated question, keyword salad, off
//! topic, contradiction) that cap the score whatever the similarity. The combination is a linear
//! model fitted on `eval/answers.toml` (`askmark eval review --fit`), with printable weights.

use std::collections::HashSet;
use std::time::Instant;

use serde::{Deserialize, Serialize, Serializer};
use unicode_segmentation::UnicodeSegmentation;

use crate::embed::cosine;
use crate::error::{Error, UserError};
use crate::lexical;
use crate::search::Engine;

pub const MAX_ANSWER_CHARS: usize = 10_000;
pub const MAX_REFERENCES: usize = 5;
pub const MAX_REFERENCE_CHARS: usize = 5_000;
const MIN_WORDS: usize = 12;
/// A key point is covered when its combined evidence reaches this, partially from the lower bound.
const COVERED: f32 = 0.7;
const PARTIALLY_COVERED: f32 = 0.58;
/// Scores of answers flagged as not answering at all stay below this.
const FLAGGED_CEILING: f32 = 25.0;
/// A sentence states a misconception when it is this close to it and this much closer to it than
/// to any key point (chosen on the training split of eval/answers.toml: the embedding sees topic
/// better than truth, so the bar is high to keep correct answers from being flagged).
const MISCONCEPTION_MATCH: f32 = 0.85;
const MISCONCEPTION_MARGIN: f32 = 0.03;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    Covered,
    Partially,
    Missed,
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
    /// The candidate's sentence (or pair of sentences) closest to the point.
    pub evidence: Option<String>,
    pub similarity: f32,
    /// Share of the point's key terms the whole answer uses.
    pub term_coverage: f32,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Contradiction {
    pub misconception: String,
    pub evidence: String,
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
    /// Mean over key points of the combined evidence, 0–1.
    pub key_point_evidence: f32,
    /// Covered key points (partially counts half) over all key points.
    pub key_points_covered: f32,
    /// Best cosine of the whole answer to a reference answer.
    pub reference_similarity: f32,
    /// Share of the rubric's distinct key terms the answer uses.
    pub term_coverage: f32,
    /// Similarity to this question's reference minus the best other question's.
    pub topic_margin: f32,
    /// Best similarity of an answer sentence to one of the question's misconceptions, and how
    /// much closer that sentence is to the misconception than to any key point.
    pub misconception_similarity: f32,
    pub misconception_margin: f32,
    /// 1 when the answer states a known misconception (the `contradiction` flag), else 0.
    pub contradiction: f32,
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
    /// Known misconceptions the answer states, with the sentence that states them.
    pub contradictions: Vec<Contradiction>,
    pub feedback: String,
    pub signals: Signals,
    pub took_ms: f64,
}

/// The fitted linear combination: `score = 100 × (bias + Σ weight × feature)`, clamped to 0–100.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoreModel {
    pub bias: f32,
    pub key_point_evidence: f32,
    pub key_points_covered: f32,
    pub reference_similarity: f32,
    pub term_coverage: f32,
    pub contradiction: f32,
    /// Lowest scores of the partial, good and excellent bands, calibrated on the labelled set so
    /// that a band means what the human grades behind it mean.
    pub band_cut_offs: [f32; 3],
}

impl ScoreModel {
    pub const FEATURES: [&'static str; 5] =
        ["key_point_evidence", "key_points_covered", "reference_similarity", "term_coverage", "contradiction"];

    /// The committed fit (`eval/review-model.json`).
    pub fn fitted() -> ScoreModel {
        serde_json::from_str(include_str!("../eval/review-model.json")).expect("eval/review-model.json is a valid score model")
    }

    pub fn features(signals: &Signals) -> [f32; 5] {
        [
            signals.key_point_evidence,
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
            key_point_evidence: weights[0],
            key_points_covered: weights[1],
            reference_similarity: weights[2],
            term_coverage: weights[3],
            contradiction: weights[4],
        }
    }

    pub fn weights(&self) -> [f32; 5] {
        [self.key_point_evidence, self.key_points_covered, self.reference_similarity, self.term_coverage, self.contradiction]
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
    let mut score = raw;
    if is_disqualified(flags) {
        score = score.min(FLAGGED_CEILING);
    }
    score
}

/// Sentences of `text` (Unicode sentence boundaries), trimmed, without empty ones.
pub fn sentences(text: &str) -> Vec<String> {
    text.unicode_sentences()
        .flat_map(|sentence| sentence.split('\n'))
        .map(|s| s.trim().to_string())
        .filter(|s| s.chars().any(char::is_alphanumeric))
        .collect()
}

/// Words that glue statements together; a list of terms has almost none.
const FUNCTION_WORDS: &[&str] = &[
    "a", "an", "the", "is", "are", "was", "were", "be", "been", "it", "its", "this", "that", "these", "those", "to",
    "of", "in", "on", "for", "with", "by", "as", "at", "from", "and", "or", "but", "so", "if", "when", "then",
    "because", "which", "who", "what", "can", "will", "would", "should", "do", "does", "you", "we", "they", "i",
    "not", "no", "has", "have", "each", "one", "only", "than", "into", "there", "while", "where", "also", "all",
];

fn words(text: &str) -> Vec<String> {
    text.unicode_words().map(str::to_lowercase).collect()
}

fn function_word_ratio(text: &str) -> f32 {
    let all = words(text);
    if all.is_empty() {
        return 0.0;
    }
    all.iter().filter(|w| FUNCTION_WORDS.contains(&w.as_str())).count() as f32 / all.len() as f32
}

struct Rubric<'a> {
    question_id: Option<String>,
    question: &'a str,
    question_vector: Vec<f32>,
    references: Vec<Vec<f32>>,
    key_points: Vec<String>,
    key_point_vectors: Vec<Vec<f32>>,
    misconceptions: Vec<String>,
    misconception_vectors: Vec<Vec<f32>>,
}

impl Engine {
    /// Reviews `answer` against `target`.
    pub fn review(&self, target: &Target, answer: &str) -> Result<Review, Error> {
        self.review_with(target, answer, &ScoreModel::fitted())
    }

    /// Reviews with an explicit score model (the eval fits and compares models with this).
    pub fn review_with(&self, target: &Target, answer: &str, model: &ScoreModel) -> Result<Review, Error> {
        let started = Instant::now();
        validate_answer(answer)?;
        let (rubric, question_text_owned);
        match target {
            Target::Corpus(id) => {
                let question = self.corpus.get(id).ok_or_else(|| UserError::QuestionNotFound(id.clone()))?;
                let embeddings = self
                    .generation
                    .embeddings
                    .get(id)
                    .ok_or_else(|| crate::error::InternalError::Index(format!("no embeddings for {id}")))?;
                rubric = Rubric {
                    question_id: Some(id.clone()),
                    question: &question.entry.question,
                    question_vector: embeddings.question.clone(),
                    references: embeddings.references.clone(),
                    key_points: question.entry.key_points.clone(),
                    key_point_vectors: embeddings.key_points.clone(),
                    misconceptions: question.entry.misconceptions.clone(),
                    misconception_vectors: embeddings.misconceptions.clone(),
                };
            }
            Target::AdHoc { question, references, key_points } => {
                validate_ad_hoc(question, references, key_points)?;
                question_text_owned = question.clone();
                let key_points: Vec<String> = if key_points.is_empty() {
                    references.iter().flat_map(|r| sentences(r)).filter(|s| words(s).len() >= 6).take(7).collect()
                } else {
                    key_points.clone()
                };
                let texts: Vec<&str> = std::iter::once(question.as_str())
                    .chain(references.iter().map(String::as_str))
                    .chain(key_points.iter().map(String::as_str))
                    .collect();
                let mut vectors = self.embedder.embed(&texts)?.into_iter();
                let question_vector = vectors.next().unwrap_or_default();
                let reference_vectors: Vec<Vec<f32>> = vectors.by_ref().take(references.len()).collect();
                rubric = Rubric {
                    question_id: None,
                    question: &question_text_owned,
                    question_vector,
                    references: reference_vectors,
                    key_points,
                    key_point_vectors: vectors.collect(),
                    misconceptions: Vec::new(),
                    misconception_vectors: Vec::new(),
                };
            }
        }
        let mut review = self.assess(&rubric, answer, model)?;
        review.took_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(review)
    }

    fn assess(&self, rubric: &Rubric, answer: &str, model: &ScoreModel) -> Result<Review, Error> {
        let answer_sentences = sentences(answer);
        let texts: Vec<&str> = answer_sentences.iter().map(String::as_str).collect();
        let sentence_vectors: Vec<Vec<f32>> = if texts.is_empty() { Vec::new() } else { self.embedder.embed(&texts)? };
        // The whole answer is represented by the mean of its sentences: embedding a 250-token
        // text costs more than all its short sentences together (attention is quadratic).
        let answer_vector = mean_direction(&sentence_vectors);

        let answer_terms: HashSet<String> = lexical::terms(answer).into_iter().collect();
        let question_terms: HashSet<String> = lexical::terms(rubric.question).into_iter().collect();
        let mut flags = Vec::new();
        let mut verdicts = Vec::new();
        let mut rubric_terms: HashSet<String> = HashSet::new();
        // Cosine of every key point (rows) with every sentence (columns), computed once.
        let point_sentence: Vec<Vec<f32>> = rubric
            .key_point_vectors
            .iter()
            .map(|point| sentence_vectors.iter().map(|sentence| cosine(point, sentence)).collect())
            .collect();
        for (point, similarities) in rubric.key_points.iter().zip(&point_sentence) {
            let closest = similarities.iter().copied().enumerate().max_by(|a, b| a.1.total_cmp(&b.1));
            let similarity = closest.map_or(0.0, |(_, similarity)| similarity.max(0.0));
            let point_terms: HashSet<String> = lexical::terms(point).into_iter().filter(|t| !question_terms.contains(t)).collect();
            let term_coverage = if point_terms.is_empty() {
                0.0
            } else {
                point_terms.iter().filter(|t| answer_terms.contains(*t)).count() as f32 / point_terms.len() as f32
            };
            rubric_terms.extend(point_terms);
            let evidence_strength = key_point_evidence(similarity, term_coverage);
            let covered = if evidence_strength >= COVERED {
                Coverage::Covered
            } else if evidence_strength >= PARTIALLY_COVERED {
                Coverage::Partially
            } else {
                Coverage::Missed
            };
            let evidence = closest.map(|(sentence, _)| answer_sentences[sentence].clone());
            verdicts.push(KeyPointVerdict {
                point: point.clone(),
                covered,
                evidence: if covered == Coverage::Missed { None } else { evidence },
                similarity,
                term_coverage,
            });
        }
        let sentence_point_similarity: Vec<f32> =
            (0..sentence_vectors.len()).map(|sentence| point_sentence.iter().map(|row| row[sentence]).fold(0.0, f32::max)).collect();
        let mut contradictions = Vec::new();
        let (mut misconception_similarity, mut misconception_margin) = (0.0f32, -1.0f32);
        for (statement, vector) in rubric.misconceptions.iter().zip(&rubric.misconception_vectors) {
            let Some((sentence, similarity)) = sentence_vectors
                .iter()
                .enumerate()
                .map(|(i, v)| (i, cosine(vector, v)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
            else {
                continue;
            };
            let margin = similarity - sentence_point_similarity[sentence];
            if similarity > misconception_similarity {
                (misconception_similarity, misconception_margin) = (similarity, margin);
            }
            if similarity >= MISCONCEPTION_MATCH && margin >= MISCONCEPTION_MARGIN {
                contradictions.push(Contradiction { misconception: statement.clone(), evidence: answer_sentences[sentence].clone(), similarity });
            }
        }
        if !contradictions.is_empty() {
            flags.push(Flag::Contradiction);
        }
        let contradiction = if contradictions.is_empty() { 0.0 } else { 1.0 };
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
        let word_count = words(answer).len();
        let point_count = verdicts.len().max(1) as f32;
        let signals = Signals {
            key_point_evidence: verdicts.iter().map(|v| key_point_evidence(v.similarity, v.term_coverage)).sum::<f32>() / point_count,
            key_points_covered: verdicts
                .iter()
                .map(|v| match v.covered {
                    Coverage::Covered => 1.0,
                    Coverage::Partially => 0.5,
                    Coverage::Missed => 0.0,
                })
                .sum::<f32>()
                / point_count,
            reference_similarity,
            term_coverage: if rubric_terms.is_empty() {
                0.0
            } else {
                rubric_terms.iter().filter(|t| answer_terms.contains(*t)).count() as f32 / rubric_terms.len() as f32
            },
            topic_margin: reference_similarity - best_other,
            misconception_similarity,
            misconception_margin,
            contradiction,
            words: word_count,
        };

        if word_count < MIN_WORDS {
            flags.push(Flag::TooShort);
        }
        let new_terms = answer_terms.iter().filter(|t| !question_terms.contains(*t)).count();
        if cosine(&answer_vector, &rubric.question_vector) >= 0.8 && new_terms <= 4 {
            flags.push(Flag::RestatesQuestion);
        }
        if word_count >= 5 && function_word_ratio(answer) < 0.12 {
            flags.push(Flag::KeywordStuffing);
        }
        if signals.topic_margin < -0.05 && best_other > 0.5 {
            flags.push(Flag::OffTopic);
        }
        flags.sort();
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

/// The normalised mean of unit vectors (zero when there are none).
pub fn mean_direction(vectors: &[Vec<f32>]) -> Vec<f32> {
    let Some(first) = vectors.first() else { return Vec::new() };
    let mut sum = vec![0.0f32; first.len()];
    for vector in vectors {
        for (total, value) in sum.iter_mut().zip(vector) {
            *total += value;
        }
    }
    let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        sum.iter_mut().for_each(|x| *x /= norm);
    }
    sum
}

/// One number for how well a key point is evidenced: the sentence similarity, lifted a little
/// when the answer also uses the point's own terms.
pub fn key_point_evidence(similarity: f32, term_coverage: f32) -> f32 {
    (0.8 * similarity + 0.2 * term_coverage).clamp(0.0, 1.0)
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
    if question.trim().is_empty() {
        return Err(UserError::InvalidReview("the question is empty".into()));
    }
    if references.is_empty() || references.len() > MAX_REFERENCES {
        return Err(UserError::InvalidReview(format!("give between 1 and {MAX_REFERENCES} reference answers")));
    }
    if references.iter().any(|r| r.trim().is_empty() || r.chars().count() > MAX_REFERENCE_CHARS) {
        return Err(UserError::InvalidReview(format!("each reference answer needs 1 to {MAX_REFERENCE_CHARS} characters")));
    }
    if key_points.len() > 12 || key_points.iter().any(|p| p.trim().is_empty() || p.chars().count() > 300) {
        return Err(UserError::InvalidReview("at most 12 key points of 1 to 300 characters each".into()));
    }
    Ok(())
}

fn feedback(grade: Band, verdicts: &[KeyPointVerdict], flags: &[Flag], contradictions: &[Contradiction]) -> String {
    let covered: Vec<&str> = verdicts.iter().filter(|v| v.covered == Coverage::Covered).map(|v| v.point.as_str()).collect();
    let mut missed: Vec<&KeyPointVerdict> = verdicts.iter().filter(|v| v.covered != Coverage::Covered).collect();
    missed.sort_by(|a, b| a.similarity.total_cmp(&b.similarity));
    let mut parts = Vec::new();
    if flags.contains(&Flag::OffTopic) {
        parts.push("This reads as an answer to a different question; re-read what was asked.".to_string());
    } else if flags.contains(&Flag::KeywordStuffing) {
        parts.push("The answer lists terms without saying anything about them; explain how they relate.".to_string());
    } else if flags.contains(&Flag::RestatesQuestion) {
        parts.push("The answer restates the question instead of answering it.".to_string());
    } else if flags.contains(&Flag::TooShort) {
        parts.push("The answer is too short to show understanding; explain the idea and give an example.".to_string());
    } else if !covered.is_empty() {
        parts.push(format!("Good: you covered {} of {} key points, e.g. \"{}\"", covered.len(), verdicts.len(), covered[0]));
    }
    if let Some(first) = contradictions.first() {
        parts.push(format!(
            "Careful: \"{}\" reads like a common mistake: {}",
            first.evidence.trim_end_matches('.'),
            first.misconception
        ));
    }
    match missed.as_slice() {
        [] => parts.push(format!("Overall: {}.", grade.as_str().replace('_', " "))),
        [only] => parts.push(format!("Missing: \"{}\"", only.point)),
        [first, second, ..] => parts.push(format!("Most important missing points: \"{}\" and \"{}\"", first.point, second.point)),
    }
    parts.join(" ")
}
