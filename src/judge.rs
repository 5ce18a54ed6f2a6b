//! The pair judge: a cross-encoder that reads a candidate's text and a reference statement
//! together and says whether the text entails, contradicts or is neutral to the statement. A
//! bi-encoder sees topic, not truth ("`is` compares values" sits as close to the rubric as the
//! correct statement); the judge reads both texts at once, so it can tell them apart.
//!
//! The model is trained by `scripts/train_judge.py`, shipped as int8 ONNX in `models/judge/`
//! with a manifest whose checksum is verified here, and run by the same ONNX Runtime as the
//! embedder. Sessions are pooled, so concurrent reviews judge in parallel.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::InternalError;
use std::sync::Arc;

use crate::pool::{spread, Gate, Pool, Priority};

/// Probabilities of one (candidate, statement) pair.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Verdict {
    pub entailment: f32,
    pub neutral: f32,
    pub contradiction: f32,
}

/// Judges (candidate, statement) pairs.
pub trait PairJudge: Send + Sync {
    fn judge(&self, pairs: &[(&str, &str)]) -> Result<Vec<Verdict>, InternalError>;
}

/// `models/judge/manifest.json`, written by scripts/train_judge.py.
#[derive(Deserialize)]
struct JudgeManifest {
    labels: Vec<String>,
    max_length: usize,
    judge_onnx_sha256: String,
    tokenizer_json_sha256: String,
}

pub struct OnnxJudge {
    sessions: Pool<ort::session::Session>,
    gate: Arc<Gate>,
    tokenizer: Tokenizer,
}

impl OnnxJudge {
    /// The judge's folder in the layout setup and the training script use.
    pub fn folder(models_dir: &Path) -> PathBuf {
        models_dir.join("judge")
    }

    /// Loads the judge from `folder`, checking its files against the manifest; `sessions`
    /// sessions of `threads` intra-op threads each, every run passing `gate` first.
    pub fn load(
        folder: &Path,
        environment: &ort::environment::Environment,
        sessions: usize,
        threads: usize,
        gate: Arc<Gate>,
    ) -> Result<OnnxJudge, InternalError> {
        let read = |name: &str| {
            std::fs::read(folder.join(name)).map_err(|error| InternalError::Model(format!("cannot read {}: {error}", folder.join(name).display())))
        };
        let manifest: JudgeManifest = serde_json::from_slice(&read("manifest.json")?)
            .map_err(|error| InternalError::Model(format!("invalid judge manifest.json: {error}")))?;
        if manifest.labels != ["entailment", "neutral", "contradiction"] {
            return Err(InternalError::Model(format!("the judge's labels are {:?}, expected entailment, neutral, contradiction", manifest.labels)));
        }
        let onnx = read("judge.onnx")?;
        let tokenizer_file = read("tokenizer.json")?;
        for (name, bytes, expected) in
            [("judge.onnx", &onnx, &manifest.judge_onnx_sha256), ("tokenizer.json", &tokenizer_file, &manifest.tokenizer_json_sha256)]
        {
            let actual = crate::corpus::sha256_hex(bytes);
            if &actual != expected {
                return Err(InternalError::Model(format!("{name} checksum {actual} differs from the judge manifest's {expected}")));
            }
        }
        let mut tokenizer =
            Tokenizer::from_bytes(&tokenizer_file).map_err(|error| InternalError::Model(format!("invalid judge tokenizer: {error}")))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: manifest.max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|error| InternalError::Model(format!("judge tokenizer truncation: {error}")))?;
        let load_error = |error: &dyn std::fmt::Display| InternalError::Model(format!("cannot load the judge: {error}"));
        let mut pool = Vec::new();
        for _ in 0..sessions.max(1) {
            let mut builder = ort::session::Session::builder(environment)
                .map_err(|error| load_error(&error))?
                .with_optimization_level(ort::session::builder::GraphOptimizationLevel::Level3)
                .map_err(|error| load_error(&error))?
                .with_intra_threads(threads.max(1))
                .map_err(|error| load_error(&error))?;
            pool.push(builder.commit_from_memory(&onnx).map_err(|error| load_error(&error))?);
        }
        Ok(OnnxJudge { sessions: Pool::new(pool), gate, tokenizer })
    }

    fn run(&self, pair: (&str, &str)) -> Result<Verdict, InternalError> {
        let model_error = |error: &dyn std::fmt::Display| InternalError::Model(format!("judge: {error}"));
        let encoding = self.tokenizer.encode(pair, true).map_err(|error| model_error(&error))?;
        let shape = [1, encoding.get_ids().len()];
        let tensor = |values: &[u32]| {
            ort::value::Tensor::from_array((shape, values.iter().map(|&v| i64::from(v)).collect::<Vec<i64>>()))
                .map_err(|error| model_error(&error))
        };
        let inputs = ort::inputs![
            "input_ids" => tensor(encoding.get_ids())?,
            "attention_mask" => tensor(encoding.get_attention_mask())?,
            "token_type_ids" => tensor(encoding.get_type_ids())?,
        ];
        let _core = self.gate.enter(Priority::Batch);
        let mut session = self.sessions.take();
        let outputs = session.run(inputs).map_err(|error| model_error(&error))?;
        let (_, logits) = outputs["logits"].try_extract_tensor::<f32>().map_err(|error| model_error(&error))?;
        if logits.len() != 3 {
            return Err(InternalError::Model(format!("the judge returned {} logits for one pair", logits.len())));
        }
        Ok(softmax(logits))
    }
}

impl PairJudge for OnnxJudge {
    /// One model run per pair: a verdict never depends on the pairs judged with it. The int8
    /// judge quantises its activations with one scale per run, so in batches of 8 a pair's
    /// probabilities moved by up to 0.38 and 4% of the verdicts flipped (96 key-point pairs of
    /// the corpus), while runs of one pair cost no more (8.2 vs 8.6 ms a pair, 1 thread).
    /// Pairs are spread over the sessions the gate has free.
    fn judge(&self, pairs: &[(&str, &str)]) -> Result<Vec<Verdict>, InternalError> {
        let started = std::time::Instant::now();
        let verdicts = spread(pairs, self.gate.free().min(self.sessions.size()), |pair| self.run(*pair))?;
        metrics::histogram!("askmark_judge_seconds").record(started.elapsed().as_secs_f64());
        metrics::counter!("askmark_judged_pairs_total").increment(pairs.len() as u64);
        Ok(verdicts)
    }
}

fn softmax(logits: &[f32]) -> Verdict {
    let top = logits.iter().copied().fold(f32::MIN, f32::max);
    let exps: Vec<f32> = logits.iter().map(|l| (l - top).exp()).collect();
    let sum: f32 = exps.iter().sum();
    Verdict { entailment: exps[0] / sum, neutral: exps[1] / sum, contradiction: exps[2] / sum }
}
