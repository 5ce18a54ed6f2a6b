//! Sentence embeddings: the `Embedder` trait and its fastembed implementation over a local ONNX
//! export of all-MiniLM-L6-v2, run by the ONNX Runtime library that setup took from a registry
//! package. Nothing here ever downloads a model.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use fastembed::{InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel};
use serde::{Deserialize, Serialize};

use crate::error::InternalError;
use crate::pool::{Gate, Pool, Priority};

/// Turns texts into unit-length vectors; cosine similarity is then a dot product.
pub trait Embedder: Send + Sync {
    fn embed_with(&self, texts: &[&str], priority: Priority) -> Result<Vec<Vec<f32>>, InternalError>;
    fn model(&self) -> &ModelInfo;

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

/// Where setup put the model and the ONNX Runtime library.
#[derive(Debug, Clone)]
pub struct ModelPaths {
    pub manifest: PathBuf,
    pub model_dir: PathBuf,
    pub onnxruntime_library: PathBuf,
}

impl ModelPaths {
    /// The layout `scripts/setup-model` writes under `models_dir`.
    pub fn under(models_dir: &Path) -> ModelPaths {
        ModelPaths {
            manifest: models_dir.join("manifest.json"),
            model_dir: models_dir.join("all-MiniLM-L6-v2"),
            onnxruntime_library: models_dir.join("onnxruntime").join("libonnxruntime.so"),
        }
    }
}

/// Several ONNX Runtime sessions of the same model, so concurrent requests embed in parallel.
pub struct FastEmbedder {
    models: Pool<TextEmbedding>,
    gate: Arc<Gate>,
    info: ModelInfo,
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

/// `models/manifest.json`, written by scripts/setup-model.
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
        Ok(FastEmbedder {
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

/// Texts per model call.
const BATCH: usize = 8;

impl Embedder for FastEmbedder {
    /// Texts go to the model shortest first, `BATCH` at a time: a batch is padded to its longest
    /// text, so one long sentence (a code line, a list) no longer makes every short sentence of an
    /// answer pay for its length.
    fn embed_with(&self, texts: &[&str], priority: Priority) -> Result<Vec<Vec<f32>>, InternalError> {
        let started = std::time::Instant::now();
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&position| texts[position].len());
        let mut vectors = vec![Vec::new(); texts.len()];
        for positions in order.chunks(BATCH) {
            let batch: Vec<&str> = positions.iter().map(|&position| texts[position]).collect();
            // A pass and a session per batch, not per call: a long answer's sentences never hold
            // the model for longer than one batch, so a search waits at most one batch.
            let _core = self.gate.enter(priority);
            let embedded = self
                .models
                .take()
                .embed(&batch, Some(BATCH))
                .map_err(|error| InternalError::Model(format!("embedding failed: {error}")))?;
            if embedded.len() != batch.len() {
                return Err(InternalError::Model(format!("the model returned {} embeddings for {} texts", embedded.len(), batch.len())));
            }
            for (&position, vector) in positions.iter().zip(embedded) {
                vectors[position] = vector;
            }
        }
        metrics::histogram!("askmark_embedding_seconds").record(started.elapsed().as_secs_f64());
        metrics::counter!("askmark_embedded_texts_total").increment(texts.len() as u64);
        debug_assert!(vectors.iter().all(|v| v.len() == self.info.dimension));
        Ok(vectors)
    }

    fn model(&self) -> &ModelInfo {
        &self.info
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

/// Cosine of two unit vectors.
pub fn cosine(left: &[f32], right: &[f32]) -> f32 {
    left.iter().zip(right).map(|(a, b)| a * b).sum()
}
