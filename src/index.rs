//! Index generations: `askmark index` builds a complete generation aside (tantivy, the vectors,
//! every embedding, a manifest), then swaps the `current` symlink to it in one rename. Readers
//! hold an `Arc<Generation>` and never see a half-built index. Unchanged questions (same content
//! hash, same model) reuse the previous generation's embeddings.
//!
//! Vectors live in a qdrant-edge shard inside the generation folder, or on a Qdrant server in a
//! collection named by the corpus and model (so replicas building the same corpus share it and
//! re-indexing is idempotent); the server alias then moves to it atomically.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tracing::info;

use crate::corpus::{Corpus, Question};
use crate::embed::{mean_direction, Embedder, ModelInfo};
use crate::error::InternalError;
use crate::lexical::LexicalIndex;
use crate::vectors::{point_id, PointPayload, VectorBackend, VectorLocation, VectorPoint, VectorStore};

/// Bumped when the on-disk layout changes; a different format forces a rebuild.
const FORMAT_VERSION: u32 = 2;
/// Generations kept besides `current`, for readers still holding one.
const GENERATIONS_KEPT: usize = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub model: ModelInfo,
    pub corpus_hash: String,
    pub questions: usize,
    pub topics: usize,
    pub embedded_questions: usize,
    pub reused_questions: usize,
    pub built_at_unix: u64,
    pub build_ms: u64,
    #[serde(default)]
    pub vectors: VectorLocation,
}

/// Every embedding of one question, so search and review never embed reference text at
/// request time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuestionEmbeddings {
    pub content_hash: String,
    pub question: Vec<f32>,
    /// The main answer first, then the alternatives.
    pub references: Vec<Vec<f32>>,
    pub key_points: Vec<Vec<f32>>,
    pub misconceptions: Vec<Vec<f32>>,
}

impl QuestionEmbeddings {
    /// What the question is about: the direction of its reference answer and key points together.
    pub fn content(&self) -> Vec<f32> {
        let parts: Vec<&[f32]> = self.references.iter().take(1).chain(&self.key_points).map(Vec::as_slice).collect();
        mean_direction(&parts)
    }
}

pub type EmbeddingTable = BTreeMap<String, QuestionEmbeddings>;

/// One loaded, immutable index generation.
pub struct Generation {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub lexical: LexicalIndex,
    pub vectors: Arc<dyn VectorStore>,
    pub embeddings: EmbeddingTable,
    /// Each question's content vector (`QuestionEmbeddings::content`), computed once at open.
    pub content: BTreeMap<String, Vec<f32>>,
    /// The question of each vector point (`point_id`), so searches need not read payloads.
    pub questions_by_point: HashMap<uuid::Uuid, String>,
}

/// The `index/` folder.
#[derive(Debug, Clone)]
pub struct IndexDir {
    root: PathBuf,
    backend: VectorBackend,
}

/// Why the current generation cannot serve this corpus and model, if it cannot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Staleness {
    Missing,
    FormatChanged,
    ModelChanged,
    CorpusChanged,
    BackendChanged,
}

impl IndexDir {
    /// An index folder whose generations keep their vectors embedded.
    pub fn new(root: impl Into<PathBuf>) -> IndexDir {
        IndexDir { root: root.into(), backend: VectorBackend::Embedded }
    }

    pub fn with_backend(self, backend: VectorBackend) -> IndexDir {
        IndexDir { backend, ..self }
    }

    fn current_link(&self) -> PathBuf {
        self.root.join("current")
    }

    fn generations(&self) -> PathBuf {
        self.root.join("generations")
    }

    pub fn current_manifest(&self) -> Option<Manifest> {
        let text = std::fs::read(self.current_link().join("manifest.json")).ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub fn staleness(&self, corpus: &Corpus, model: &ModelInfo) -> Option<Staleness> {
        let Some(manifest) = self.current_manifest() else {
            return Some(Staleness::Missing);
        };
        if manifest.format != FORMAT_VERSION {
            Some(Staleness::FormatChanged)
        } else if &manifest.model != model {
            Some(Staleness::ModelChanged)
        } else if manifest.corpus_hash != corpus.hash() {
            Some(Staleness::CorpusChanged)
        } else if !self.backend.serves(&manifest.vectors) {
            Some(Staleness::BackendChanged)
        } else {
            None
        }
    }

    /// Opens the generation `current` points to.
    pub fn open_current(&self) -> Result<Generation, InternalError> {
        let dir = std::fs::canonicalize(self.current_link())
            .map_err(InternalError::io(format!("no index at {} (run askmark index)", self.current_link().display())))?;
        self.open_generation(&dir)
    }

    /// Builds a generation for `corpus` aside, swaps `current` to it and returns it loaded.
    pub fn build(&self, corpus: &Corpus, embedder: &dyn Embedder) -> Result<Generation, InternalError> {
        let started = Instant::now();
        let previous_embeddings = self
            .current_manifest()
            .filter(|manifest| manifest.format == FORMAT_VERSION && &manifest.model == embedder.model())
            .and_then(|_| read_embeddings(&self.current_link()).ok())
            .unwrap_or_default();
        let generations = self.generations();
        std::fs::create_dir_all(&generations).map_err(InternalError::io(format!("create {}", generations.display())))?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let name = format!("{}-{}", now.as_millis(), &corpus.hash()[..12]);
        let staging = generations.join(format!(".building-{name}"));
        let result = self.build_into(&staging, corpus, embedder, previous_embeddings);
        let (embedded, reused, vectors) = match result {
            Ok(counts) => counts,
            Err(error) => {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(error);
            }
        };
        let manifest = Manifest {
            format: FORMAT_VERSION,
            model: embedder.model().clone(),
            corpus_hash: corpus.hash(),
            questions: corpus.questions().len(),
            topics: corpus.topics().len(),
            embedded_questions: embedded,
            reused_questions: reused,
            built_at_unix: now.as_secs(),
            build_ms: started.elapsed().as_millis() as u64,
            vectors,
        };
        write_json(&staging.join("manifest.json"), &manifest)?;
        let final_dir = generations.join(&name);
        std::fs::rename(&staging, &final_dir).map_err(InternalError::io("move the new generation into place"))?;
        self.swap_current(&name)?;
        self.remove_old_generations(&name);
        info!(questions = manifest.questions, embedded, reused, build_ms = manifest.build_ms, generation = %name, "index built");
        self.open_generation(&final_dir)
    }

    /// Removes what builds interrupted by a crash left behind: `.building-*` generations and
    /// staged `current` links. Only the process that owns this folder calls it, at start-up.
    pub fn remove_interrupted_builds(&self) {
        let leftovers = |folder: &Path, prefix: &str| -> Vec<PathBuf> {
            let Ok(entries) = std::fs::read_dir(folder) else { return Vec::new() };
            entries
                .filter_map(|entry| entry.ok())
                .filter(|entry| entry.file_name().to_string_lossy().starts_with(prefix))
                .map(|entry| entry.path())
                .collect()
        };
        for staging in leftovers(&self.generations(), ".building-") {
            match std::fs::remove_dir_all(&staging) {
                Ok(()) => tracing::warn!(folder = %staging.display(), "removed an index build a crash interrupted"),
                Err(error) => tracing::warn!(%error, folder = %staging.display(), "could not remove an interrupted index build"),
            }
        }
        for link in leftovers(&self.root, ".current-") {
            let _ = std::fs::remove_file(link);
        }
    }

    /// Points `current` at `generations/<name>` with a rename, which is atomic on POSIX.
    fn swap_current(&self, name: &str) -> Result<(), InternalError> {
        let staged_link = self.root.join(format!(".current-{name}"));
        let target = Path::new("generations").join(name);
        std::os::unix::fs::symlink(&target, &staged_link).map_err(InternalError::io("create the new current link"))?;
        std::fs::rename(&staged_link, self.current_link()).map_err(InternalError::io("swap the current link"))
    }

    fn remove_old_generations(&self, keep: &str) {
        let Ok(entries) = std::fs::read_dir(self.generations()) else { return };
        let mut names: Vec<String> = entries
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| !name.starts_with('.') && name != keep)
            .collect();
        names.sort();
        let (removed, kept) = names.split_at(names.len().saturating_sub(GENERATIONS_KEPT));
        let location = |name: &str| read_manifest(&self.generations().join(name)).ok().map(|manifest| manifest.vectors);
        let in_use: Vec<VectorLocation> = kept.iter().map(String::as_str).chain([keep]).filter_map(location).collect();
        for name in removed {
            if let Some(unused) = location(name) {
                self.backend.retire(&unused, &in_use);
            }
            let _ = std::fs::remove_dir_all(self.generations().join(name));
        }
    }

    /// Builds everything of a generation into `dir`; on a server, the vectors go into the
    /// corpus's collection and the alias moves to it. Returns (embedded, reused, location).
    fn build_into(
        &self,
        dir: &Path,
        corpus: &Corpus,
        embedder: &dyn Embedder,
        previous: EmbeddingTable,
    ) -> Result<(usize, usize, VectorLocation), InternalError> {
        std::fs::create_dir_all(dir).map_err(InternalError::io(format!("create {}", dir.display())))?;
        LexicalIndex::build(&dir.join("lexical"), corpus.questions())?;
        let (embeddings, embedded, reused) = embed_corpus(corpus, embedder, previous)?;
        let points = vector_points(corpus.questions(), &embeddings);
        let model = embedder.model();
        let location = self.backend.create(dir, &content_key(corpus, model), model.dimension, &points)?;
        write_json(&dir.join("embeddings.json"), &embeddings)?;
        Ok((embedded, reused, location))
    }

    fn open_generation(&self, dir: &Path) -> Result<Generation, InternalError> {
        let manifest = read_manifest(dir)?;
        let vectors = self.backend.open(dir, &manifest.vectors, manifest.model.dimension)?;
        let embeddings = read_embeddings(dir)?;
        Ok(Generation {
            dir: dir.to_path_buf(),
            lexical: LexicalIndex::open(&dir.join("lexical"))?,
            vectors,
            content: embeddings.iter().map(|(id, vectors)| (id.clone(), vectors.content())).collect(),
            questions_by_point: embeddings.keys().map(|id| (point_id(id), id.clone())).collect(),
            embeddings,
            manifest,
        })
    }
}

/// 16 hex digits naming one corpus and model (a server collection is `<alias>-<key>`).
fn content_key(corpus: &Corpus, model: &ModelInfo) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{}\n{}\n{}\n{}", corpus.hash(), model.id, model.dimension, model.onnx_sha256));
    digest.iter().take(8).map(|byte| format!("{byte:02x}")).collect()
}

fn read_manifest(dir: &Path) -> Result<Manifest, InternalError> {
    let bytes = std::fs::read(dir.join("manifest.json")).map_err(InternalError::io(format!("read manifest in {}", dir.display())))?;
    serde_json::from_slice(&bytes).map_err(|error| InternalError::Index(format!("invalid manifest in {}: {error}", dir.display())))
}

/// Embeds every question whose content changed; reuses the rest.
pub fn embed_corpus(
    corpus: &Corpus,
    embedder: &dyn Embedder,
    mut previous: EmbeddingTable,
) -> Result<(EmbeddingTable, usize, usize), InternalError> {
    let progress = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(corpus.questions().len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    progress.set_style(
        indicatif::ProgressStyle::with_template("embedding {bar:40} {pos}/{len} questions ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut table = EmbeddingTable::new();
    let (mut embedded, mut reused) = (0, 0);
    for question in corpus.questions() {
        let hash = question.content_hash();
        let cached = previous.remove(question.id()).filter(|cached| cached.content_hash == hash);
        let embeddings = match cached {
            Some(cached) => {
                reused += 1;
                cached
            }
            None => {
                embedded += 1;
                embed_question(question, embedder)?
            }
        };
        table.insert(question.id().to_string(), embeddings);
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok((table, embedded, reused))
}

pub fn embed_question(question: &Question, embedder: &dyn Embedder) -> Result<QuestionEmbeddings, InternalError> {
    let entry = &question.entry;
    let texts: Vec<&str> = std::iter::once(entry.question.as_str())
        .chain(question.references())
        .chain(entry.key_points.iter().map(String::as_str))
        .chain(entry.misconceptions.iter().map(String::as_str))
        .collect();
    let vectors = embedder.embed(&texts)?;
    if vectors.len() != texts.len() {
        return Err(InternalError::Model("the model returned fewer embeddings than texts".into()));
    }
    let mut vectors = vectors.into_iter();
    let question_vector = vectors.next().unwrap_or_default();
    let references: Vec<Vec<f32>> = vectors.by_ref().take(1 + entry.alternatives.len()).collect();
    let key_points: Vec<Vec<f32>> = vectors.by_ref().take(entry.key_points.len()).collect();
    let misconceptions: Vec<Vec<f32>> = vectors.collect();
    Ok(QuestionEmbeddings { content_hash: question.content_hash(), question: question_vector, references, key_points, misconceptions })
}

pub fn vector_points(questions: &[Question], embeddings: &EmbeddingTable) -> Vec<VectorPoint> {
    questions
        .iter()
        .filter_map(|question| {
            let vectors = embeddings.get(question.id())?;
            Some(VectorPoint {
                payload: PointPayload {
                    id: question.id().to_string(),
                    topic: question.topic.clone(),
                    difficulty: question.entry.difficulty,
                    tags: question.entry.tags.clone(),
                },
                question: vectors.question.clone(),
                answer: vectors.references[0].clone(),
            })
        })
        .collect()
}

fn read_embeddings(dir: &Path) -> Result<EmbeddingTable, InternalError> {
    let bytes = std::fs::read(dir.join("embeddings.json")).map_err(InternalError::io("read embeddings.json"))?;
    serde_json::from_slice(&bytes).map_err(|error| InternalError::Index(format!("invalid embeddings.json: {error}")))
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), InternalError> {
    let bytes = serde_json::to_vec(value).map_err(|error| InternalError::Index(error.to_string()))?;
    std::fs::write(path, bytes).map_err(InternalError::io(format!("write {}", path.display())))
}
