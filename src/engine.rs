//! The engine: every operation of the service, whoever calls it (HTTP, CLI, eval, benches).
//!
//! Reads (`search`, `related`, `review`, `snapshot`) work on an immutable `Snapshot` (one corpus
//! and the index generation built from it) and never wait for a write. Writes (`apply`) go to a
//! single writer thread the engine owns: it takes changes one at a time, in order, each against
//! the state the previous one left; makes the corpus files durable (journaled, so a move between
//! two topic files is one crash-safe step); builds a new index generation aside; swaps the
//! snapshot; and only then answers. A caller that stops waiting changes nothing about the
//! outcome: the change runs to completion either way.
//!
//! This module must never know about HTTP; the API maps its errors.

use std::path::Path;
use std::sync::{mpsc, Arc, RwLock};

use tokio::sync::oneshot;

use crate::corpus::{Corpus, Question, QuestionEntry};
use crate::embed::{Embedder, FastEmbedder, ModelPaths};
use crate::error::{Error, InternalError, UserError};
use crate::index::{Generation, IndexDir, Manifest, QuestionEmbeddings};
use crate::judge::{OnnxJudge, PairJudge};
use crate::pool::Gate;
use crate::review::{Review, Reviewer, ScoreModels, Target};
use crate::search::{
    FusionParams, QueryCache, RankingSignals, RelatedHit, RelatedParams, SearchRequest, SearchResults, Searcher,
};

/// The models the engine runs: the sentence embedder and the pair judge.
#[derive(Clone)]
pub struct Models {
    pub embedder: Arc<dyn Embedder>,
    pub judge: Arc<dyn PairJudge>,
}

impl Models {
    /// Loads both from the layout `scripts/setup-model` checks under `models_dir` (the sentence
    /// model from its folder `embedding_model`): `sessions` sessions of each model, `threads`
    /// intra-op threads per session, and one gate that lets `sessions` model runs in at a time
    /// (one per core by default), searches first.
    pub fn load(models_dir: &Path, embedding_model: &str, sessions: usize, threads: usize) -> Result<Models, InternalError> {
        let paths = ModelPaths::under(models_dir, embedding_model);
        let gate = Arc::new(Gate::new(sessions));
        let embedder = Arc::new(FastEmbedder::load(&paths, sessions, threads, gate.clone())?);
        let environment = crate::embed::onnx_runtime(&paths.onnxruntime_library)?;
        let judge = Arc::new(OnnxJudge::load(&OnnxJudge::folder(models_dir), &environment, sessions, threads, gate)?);
        Ok(Models { embedder, judge })
    }
}

/// Query embeddings kept: about 6 MB at 384 floats each.
const QUERY_CACHE_ENTRIES: usize = 4096;

/// One corpus and the index generation built from it; never changes once made.
pub struct Snapshot {
    corpus: Corpus,
    generation: Generation,
}

impl Snapshot {
    pub fn corpus(&self) -> &Corpus {
        &self.corpus
    }

    pub fn manifest(&self) -> &Manifest {
        &self.generation.manifest
    }

    /// The loaded generation itself, for tools and tests that look inside it.
    pub fn generation(&self) -> &Generation {
        &self.generation
    }

    /// The stored embeddings of one question (question, references, key points, misconceptions).
    pub fn embeddings(&self, id: &str) -> Option<&QuestionEmbeddings> {
        self.generation.embeddings.get(id)
    }

    /// What `/readyz` reports; the vector count asks the vector store, so it may fail.
    pub fn status(&self) -> IndexStatus {
        IndexStatus {
            questions: self.corpus.questions().len(),
            lexical_documents: self.generation.lexical.num_docs(),
            vectors: self.generation.vectors.count(),
            vector_store: self.generation.vectors.describe(),
        }
    }
}

pub struct IndexStatus {
    pub questions: usize,
    pub lexical_documents: u64,
    pub vectors: Result<usize, InternalError>,
    pub vector_store: String,
}

/// A write to the corpus.
#[derive(Debug, Clone)]
pub enum Change {
    /// Create or replace the question `entry.id` in `topic` (moving it there if it was elsewhere).
    Upsert { topic: String, entry: QuestionEntry },
    /// Delete a question no other question names as a follow-up.
    Delete { id: String },
}

/// What a write did.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The question as stored after an upsert; `None` after a delete.
    pub question: Option<Question>,
    /// Whether an upsert created the question (rather than replacing it).
    pub created: bool,
}

enum WriteJob {
    Apply(Change, oneshot::Sender<Result<Applied, Error>>),
    /// Answered once every job queued before it has finished.
    Barrier(oneshot::Sender<()>),
}

struct Shared {
    models: Models,
    index: IndexDir,
    fusion: FusionParams,
    query_cache: QueryCache,
    score_models: ScoreModels,
    current: RwLock<Arc<Snapshot>>,
}

impl Shared {
    fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Runs one change end to end. Only the writer thread calls this, so nothing else changes
    /// the corpus between reading the snapshot and swapping in the next one.
    fn apply(&self, change: Change) -> Result<Applied, Error> {
        let current = self.snapshot();
        let (corpus, touched, applied_id) = match change {
            Change::Upsert { topic, entry } => {
                let id = entry.id.clone();
                let previous_topic = current.corpus.get(&id).map(|q| q.topic.clone());
                let corpus = current.corpus.with_upserted(&topic, entry).map_err(UserError::InvalidEntry)?;
                let mut touched = vec![topic];
                touched.extend(previous_topic.filter(|previous| !touched.contains(previous)));
                (corpus, touched, Some(id))
            }
            Change::Delete { id } => {
                let question = current.corpus.get(&id).ok_or_else(|| UserError::QuestionNotFound(id.clone()))?;
                let touched = vec![question.topic.clone()];
                (current.corpus.without(&id).map_err(UserError::QuestionInUse)?, touched, None)
            }
        };
        let touched: Vec<&str> = touched.iter().map(String::as_str).collect();
        corpus.write_topic_files(&touched).map_err(InternalError::io("write the corpus files"))?;
        let generation = match self.index.build(&corpus, self.models.embedder.as_ref()) {
            Ok(generation) => generation,
            Err(error) => {
                if let Err(restore) = current.corpus.write_topic_files(&touched) {
                    tracing::error!(error = %restore, "could not restore the corpus files after a failed build");
                }
                return Err(error.into());
            }
        };
        let applied = match applied_id {
            Some(id) => Applied {
                created: current.corpus.get(&id).is_none(),
                question: corpus.get(&id).cloned(),
            },
            None => Applied { question: None, created: false },
        };
        self.swap(Snapshot { corpus, generation });
        Ok(applied)
    }

    fn swap(&self, snapshot: Snapshot) {
        record_index_size(&snapshot);
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(snapshot);
    }
}

fn record_index_size(snapshot: &Snapshot) {
    metrics::gauge!("askmark_index_questions").set(snapshot.corpus.questions().len() as f64);
    metrics::gauge!("askmark_index_lexical_documents").set(snapshot.generation.lexical.num_docs() as f64);
}

/// The service's door. Cheap to clone: clones share the snapshot and the writer.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
    writes: mpsc::Sender<WriteJob>,
}

impl Engine {
    /// Finishes a corpus write a crash interrupted, removes index builds a crash left behind,
    /// loads the corpus and opens its index, building a new generation when the current one is
    /// missing or was built from another corpus or model.
    pub fn open(corpus_dir: &Path, index: IndexDir, models: Models) -> Result<Engine, Error> {
        let embedder = models.embedder.clone();
        if Corpus::recover(corpus_dir).map_err(InternalError::io("recover the corpus journal"))? {
            tracing::warn!(corpus = %corpus_dir.display(), "finished a corpus write that a crash interrupted");
        }
        index.remove_interrupted_builds();
        let corpus = Corpus::load_dir(corpus_dir).map_err(UserError::InvalidEntry)?;
        let generation = match index.staleness(&corpus, embedder.model()) {
            None => index.open_current()?,
            Some(reason) => {
                tracing::info!(reason = ?reason, "index missing or stale, building");
                index.build(&corpus, embedder.as_ref())?
            }
        };
        Engine::from_parts(corpus, generation, models, index)
    }

    /// An engine over an already opened generation of `corpus`.
    pub fn from_parts(corpus: Corpus, generation: Generation, models: Models, index: IndexDir) -> Result<Engine, Error> {
        if generation.manifest.model.dimension != models.embedder.model().dimension {
            return Err(InternalError::Index("index dimension differs from the model's".into()).into());
        }
        let snapshot = Snapshot { corpus, generation };
        record_index_size(&snapshot);
        let shared = Arc::new(Shared {
            models,
            index,
            fusion: FusionParams::default(),
            query_cache: QueryCache::new(QUERY_CACHE_ENTRIES),
            score_models: ScoreModels::fitted(),
            current: RwLock::new(Arc::new(snapshot)),
        });
        let (writes, jobs) = mpsc::channel();
        // Weak: the last engine dropped closes the index at once, not when the thread notices.
        let writer = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("askmark-writer".into())
            .spawn(move || {
                for job in jobs {
                    match job {
                        WriteJob::Apply(change, reply) => {
                            let Some(shared) = writer.upgrade() else { return };
                            let _ = reply.send(shared.apply(change));
                        }
                        WriteJob::Barrier(reply) => {
                            let _ = reply.send(());
                        }
                    }
                }
            })
            .map_err(InternalError::io("start the writer thread"))?;
        Ok(Engine { shared, writes })
    }

    /// The current corpus and index; hold it for a consistent view across several reads.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.snapshot()
    }

    /// Records the current index's size in the metrics (a recorder installed after the index
    /// was opened has not seen it yet).
    pub fn record_index_size(&self) {
        record_index_size(&self.snapshot());
    }

    pub fn embedder(&self) -> &dyn Embedder {
        self.shared.models.embedder.as_ref()
    }

    pub fn fusion(&self) -> FusionParams {
        self.shared.fusion
    }

    pub fn search(&self, request: &SearchRequest) -> Result<SearchResults, Error> {
        let snapshot = self.snapshot();
        self.searcher(&snapshot).search(request)
    }

    /// Curated follow-ups, then nearest neighbours.
    pub fn related(&self, id: &str, limit: usize) -> Result<Vec<RelatedHit>, Error> {
        let snapshot = self.snapshot();
        self.searcher(&snapshot).related(id, limit)
    }

    /// `related` with other ways of finding neighbours (for the eval).
    pub fn related_with(&self, id: &str, limit: usize, params: &RelatedParams) -> Result<Vec<RelatedHit>, Error> {
        let snapshot = self.snapshot();
        self.searcher(&snapshot).related_with(id, limit, params)
    }

    /// What each ranking of the hybrid search says about `query`, before fusion (for the eval).
    pub fn ranking_signals(&self, query: &str) -> Result<RankingSignals, Error> {
        let snapshot = self.snapshot();
        Ok(self.searcher(&snapshot).ranking_signals(query)?)
    }

    pub fn review(&self, target: &Target, answer: &str) -> Result<Review, Error> {
        self.review_with(target, answer, &self.shared.score_models)
    }

    /// Reviews with explicit score models (the eval fits and compares models with this).
    pub fn review_with(&self, target: &Target, answer: &str, models: &ScoreModels) -> Result<Review, Error> {
        let snapshot = self.snapshot();
        let judge = self.shared.models.judge.as_ref();
        Reviewer { corpus: &snapshot.corpus, generation: &snapshot.generation, embedder: self.embedder(), judge, models }.review(target, answer)
    }

    /// Queues `change` for the writer; the receiver answers once it is durable and served.
    pub fn submit(&self, change: Change) -> oneshot::Receiver<Result<Applied, Error>> {
        let (reply, answer) = oneshot::channel();
        // A send fails only when the writer thread is gone; the dropped reply then says so.
        let _ = self.writes.send(WriteJob::Apply(change, reply));
        answer
    }

    /// Applies `change` and waits for it (for callers outside an async runtime, e.g. the CLI).
    pub fn apply(&self, change: Change) -> Result<Applied, Error> {
        self.submit(change).blocking_recv().map_err(|_| writer_gone())?
    }

    /// Applies `change` and waits for it without blocking the async runtime.
    pub async fn apply_async(&self, change: Change) -> Result<Applied, Error> {
        self.submit(change).await.map_err(|_| writer_gone())?
    }

    /// Waits until every write queued so far has finished (before the process exits).
    pub async fn finish_writes(&self) {
        let (reply, done) = oneshot::channel();
        if self.writes.send(WriteJob::Barrier(reply)).is_ok() {
            let _ = done.await;
        }
    }

    fn searcher<'a>(&'a self, snapshot: &'a Snapshot) -> Searcher<'a> {
        Searcher {
            corpus: &snapshot.corpus,
            generation: &snapshot.generation,
            embedder: self.embedder(),
            query_cache: &self.shared.query_cache,
            fusion: self.shared.fusion,
        }
    }
}

fn writer_gone() -> Error {
    InternalError::Index("the writer thread stopped".into()).into()
}
