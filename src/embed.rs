//! Sentence embeddings: the `Embedder` trait and its fastembed implementation over a local ONNX
//! export of all-MiniLM-L6-v2, run by the ONNX Runtime library that setup took from a registry
//! package. Nothing here ever downloads a model.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use fastembed::{InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel};
use serde::{Deserialize, Serialize};

use crate::error::InternalError;

/// Turns texts into unit-length vectors; cosine similarity is then a dot product.
pub trait Embedder: Send + Sync {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, InternalError>;
    fn model(&self) -> &ModelInfo;
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

pub struct FastEmbedder {
    model: Mutex<TextEmbedding>,
    info: ModelInfo,
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
    /// Loads the model; `threads` caps ONNX Runtime's intra-op threads.
    pub fn load(paths: &ModelPaths, threads: usize) -> Result<FastEmbedder, InternalError> {
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
        let environment = ort::init_from(&paths.onnxruntime_library)
            .map_err(|error| InternalError::Model(format!(
                "cannot load onnx runtime from {}: {error} (run scripts/setup-model)",
                paths.onnxruntime_library.display()
            )))?
            .with_telemetry(false)
            .build()
            .map_err(|error| InternalError::Model(format!("cannot start onnx runtime: {error}")))?;
        let options = InitOptionsUserDefined::new()
            .with_environment(environment)
            .with_max_length(manifest.max_length)
            .with_intra_threads(threads.max(1));
        let model = UserDefinedEmbeddingModel::new(onnx, tokenizer_files).with_pooling(Pooling::Mean);
        let embedding = TextEmbedding::try_new_from_user_defined(model, options)
            .map_err(|error| InternalError::Model(format!("cannot load the embedding model: {error}")))?;
        Ok(FastEmbedder {
            model: Mutex::new(embedding),
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
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, InternalError> {
        let mut model = self.model.lock().map_err(|_| InternalError::Model("embedding model lock poisoned".into()))?;
        let started = std::time::Instant::now();
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&position| texts[position].len());
        let mut vectors = vec![Vec::new(); texts.len()];
        for positions in order.chunks(BATCH) {
            let batch: Vec<&str> = positions.iter().map(|&position| texts[position]).collect();
            let embedded = model
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

/// Cosine of two unit vectors.
pub fn cosine(left: &[f32], right: &[f32]) -> f32 {
    left.iter().zip(right).map(|(a, b)| a * b).sum()
}
