//! Sentence embeddings: the `Embedder` trait and its fastembed implementation over a local ONNX
//! model folder, run by the ONNX Runtime library that setup took from a registry package: by
//! default the committed search model (all-MiniLM-L6-v2 fine-tuned on the project's training
//! queries, int8), or the base model setup exports. Nothing here ever downloads a model.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use fastembed::{InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel};
use serde::{Deserialize, Serialize};

use crate::error::InternalError;
use crate::pool::{spread, Gate, Pool, Priority};

/// Turns texts into unit-length vectors; cosine similarity is then a dot product.
pub trait Embedder: Send + Sync {
    fn embed_with(&self, texts: &[&str], priority: Priority) -> Result<Vec<Vec<f32>>, InternalError>;
    fn model(&self) -> &ModelInfo;

    /// Cores no model run holds right now: a caller may do other work beside its own model run
    /// on the spare ones (none on a busy machine, where that would only add threads).
    fn idle_cores(&self) -> usize {
        0
    }

    /// Whether the model's vocabulary holds `word` (lower case) whole: a word it was trained
    /// on, which a spelling corrector should leave alone ("folder" is no typo of "older").
    fn knows_word(&self, _word: &str) -> bool {
        false
    }

    /// Embeds as batch work (answers, index builds): a waiting search goes first.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, InternalError> {
        self.embed_with(texts, Priority::Batch)
    }
}

/// What identifies a model in an index manifest: a mismatch forces a rebuild.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub id: String,
    pub dimension: usize,
    pub max_length: usize,
    /// sha256 of the ONNX graph and of the tokenizer, as setup recorded them.
    pub onnx_sha256: String,
    pub tokenizer_sha256: String,
}

/// The default sentence model: the folder under `models/` of the committed search model
/// (`scripts/train-search-model` rebuilds it).
pub const SEARCH_MODEL: &str = "search";
/// The base checkpoint as `scripts/setup-model` exports it (fp32), for comparisons.
pub const BASE_MODEL: &str = "all-MiniLM-L6-v2";

/// Where setup put the model and the ONNX Runtime library.
#[derive(Debug, Clone)]
pub struct ModelPaths {
    pub manifest: PathBuf,
    pub model_dir: PathBuf,
    pub onnxruntime_library: PathBuf,
}

impl ModelPaths {
    /// The sentence model in folder `model` under `models_dir` (model.onnx, the tokenizer files
    /// and manifest.json), in the layout `scripts/setup-model` checks.
    pub fn under(models_dir: &Path, model: &str) -> ModelPaths {
        let model_dir = models_dir.join(model);
        ModelPaths {
            manifest: model_dir.join("manifest.json"),
            model_dir,
            onnxruntime_library: models_dir.join("onnxruntime").join("libonnxruntime.so"),
        }
    }
}

/// Several ONNX Runtime sessions of the same model, so concurrent requests embed in parallel.
pub struct FastEmbedder {
    models: Pool<TextEmbedding>,
    gate: Arc<Gate>,
    info: ModelInfo,
    /// The tokenizer's whole words (no "##" continuation pieces).
    words: HashSet<String>,
}

/// The process's ONNX Runtime, loaded once from the library setup took from a registry package
/// and shared by every session (the embedder's and the judge's).
pub fn onnx_runtime(library: &Path) -> Result<ort::environment::Environment, InternalError> {
    static ENVIRONMENT: OnceLock<ort::environment::Environment> = OnceLock::new();
    if let Some(environment) = ENVIRONMENT.get() {
        return Ok(environment.clone());
    }
    let environment = ort::init_from(library)
        .map_err(|error| InternalError::Model(format!(
            "cannot load onnx runtime from {}: {error} (run scripts/setup-model)",
            library.display()
        )))?
        .with_telemetry(false)
        .build()
        .map_err(|error| InternalError::Model(format!("cannot start onnx runtime: {error}")))?;
    Ok(ENVIRONMENT.get_or_init(|| environment).clone())
}

/// A model folder's manifest.json (written by scripts/setup-model or scripts/ship_search_model.py).
#[derive(Deserialize)]
struct SetupManifest {
    model: String,
    dimension: usize,
    max_length: usize,
    model_onnx_sha256: String,
    tokenizer_json_sha256: String,
}

fn read(path: &Path) -> Result<Vec<u8>, InternalError> {
    std::fs::read(path).map_err(|source| InternalError::Model(format!(
        "cannot read {}: {source} (run scripts/setup-model)",
        path.display()
    )))
}

impl FastEmbedder {
    /// Loads `sessions` sessions of the model, each with `threads` intra-op threads; every run
    /// passes `gate` first.
    pub fn load(paths: &ModelPaths, sessions: usize, threads: usize, gate: Arc<Gate>) -> Result<FastEmbedder, InternalError> {
        let manifest: SetupManifest = serde_json::from_slice(&read(&paths.manifest)?)
            .map_err(|error| InternalError::Model(format!("invalid model manifest.json: {error}")))?;
        let onnx = read(&paths.model_dir.join("model.onnx"))?;
        let tokenizer_file = read(&paths.model_dir.join("tokenizer.json"))?;
        let onnx_sha256 = crate::corpus::sha256_hex(&onnx);
        if onnx_sha256 != manifest.model_onnx_sha256 {
            return Err(InternalError::Model(format!(
                "model.onnx checksum {onnx_sha256} differs from the manifest's {} (run scripts/setup-model)",
                manifest.model_onnx_sha256
            )));
        }
        let tokenizer_files = TokenizerFiles {
            tokenizer_file,
            config_file: read(&paths.model_dir.join("config.json"))?,
            special_tokens_map_file: read(&paths.model_dir.join("special_tokens_map.json"))?,
            tokenizer_config_file: read(&paths.model_dir.join("tokenizer_config.json"))?,
        };
        let environment = onnx_runtime(&paths.onnxruntime_library)?;
        let mut models = Vec::new();
        for _ in 0..sessions.max(1) {
            let options = InitOptionsUserDefined::new()
                .with_environment(environment.clone())
                .with_max_length(manifest.max_length)
                .with_intra_threads(threads.max(1));
            let model = UserDefinedEmbeddingModel::new(onnx.clone(), tokenizer_files.clone()).with_pooling(Pooling::Mean);
            models.push(
                TextEmbedding::try_new_from_user_defined(model, options)
                    .map_err(|error| InternalError::Model(format!("cannot load the embedding model: {error}")))?,
            );
        }
        // Every session holds the same tokenizer; its WordPiece vocabulary without the "##"
        // continuation pieces is the model's whole words.
        let words = models[0].tokenizer.get_vocab(false).into_keys().filter(|piece| !piece.starts_with("##")).collect();
        Ok(FastEmbedder {
            words,
            models: Pool::new(models),
            gate,
            info: ModelInfo {
                id: manifest.model,
                dimension: manifest.dimension,
                max_length: manifest.max_length,
                onnx_sha256,
                tokenizer_sha256: manifest.tokenizer_json_sha256,
            },
        })
    }
}

impl Embedder for FastEmbedder {
    /// One model run per text: a text's embedding never depends on what it is embedded with. An
    /// int8 model quantises its activations with one scale per run, so batching a sentence with
    /// a longer one moved its embedding by up to 0.05 in cosine (tests/data/embedding-sentences.txt,
    /// the search model), while runs of one text each cost no more than batches of eight (review
    /// answers of 180-260 words: 89 vs 99 ms int8, 188 vs 180 ms fp32, 1 thread). A search waits
    /// at most one text's run for a core. Several texts are spread over the sessions the gate has free.
    fn embed_with(&self, texts: &[&str], priority: Priority) -> Result<Vec<Vec<f32>>, InternalError> {
        let started = std::time::Instant::now();
        let vectors = spread(texts, self.gate.free().min(self.models.size()), |text| -> Result<Vec<f32>, InternalError> {
            let _core = self.gate.enter(priority);
            let embedded = self
                .models
                .take()
                .embed(&[*text], Some(1))
                .map_err(|error| InternalError::Model(format!("embedding failed: {error}")))?;
            let [vector] = <[Vec<f32>; 1]>::try_from(embedded).map_err(|embedded| {
                InternalError::Model(format!("the model returned {} embeddings for one text", embedded.len()))
            })?;
            Ok(vector)
        })?;
        metrics::histogram!("askmark_embedding_seconds").record(started.elapsed().as_secs_f64());
        metrics::counter!("askmark_embedded_texts_total").increment(texts.len() as u64);
        debug_assert!(vectors.iter().all(|v| v.len() == self.info.dimension));
        Ok(vectors)
    }

    fn model(&self) -> &ModelInfo {
        &self.info
    }

    fn idle_cores(&self) -> usize {
        self.gate.free()
    }

    fn knows_word(&self, word: &str) -> bool {
        self.words.contains(word)
    }
}

/// The normalised mean of unit vectors (zero when there are none).
pub fn mean_direction<V: AsRef<[f32]>>(vectors: &[V]) -> Vec<f32> {
    let Some(first) = vectors.first() else { return Vec::new() };
    let mut sum = vec![0.0f32; first.as_ref().len()];
    for vector in vectors {
        for (total, value) in sum.iter_mut().zip(vector.as_ref()) {
            *total += value;
        }
    }
    let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        sum.iter_mut().for_each(|x| *x /= norm);
    }
    sum
}

/// Cosine of two unit vectors. Summed in eight independent lanes, so the compiler can use SIMD
/// (a single running sum is a chain of dependent additions it may not reorder).
pub fn cosine(left: &[f32], right: &[f32]) -> f32 {
    const LANES: usize = 8;
    let length = left.len().min(right.len());
    let (left, right) = (left[..length].chunks_exact(LANES), right[..length].chunks_exact(LANES));
    let tail: f32 = left.remainder().iter().zip(right.remainder()).map(|(a, b)| a * b).sum();
    let mut lanes = [0.0f32; LANES];
    for (l, r) in left.zip(right) {
        for ((lane, a), b) in lanes.iter_mut().zip(l).zip(r) {
            *lane += a * b;
        }
    }
    lanes.iter().sum::<f32>() + tail
}
