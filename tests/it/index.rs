use std::sync::Arc;

use askmark::corpus::Corpus;
use askmark::embed::{Embedder, ModelInfo};
use askmark::engine::Engine;
use askmark::error::InternalError;
use askmark::index::{IndexDir, Staleness};
use askmark::pool::Priority;

use crate::common::{self, fixture_corpus, EMBEDDER, MODELS};

fn generation_names(index: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(index.join("generations"))
        .map(|entries| entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

fn change_first_answer(corpus_dir: &std::path::Path) {
    let path = corpus_dir.join("09-concurrency.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let changed = text.replacen("answer = \"\"\"", "answer = \"\"\"In short: it depends on the workload. ", 1);
    assert_ne!(text, changed);
    std::fs::write(&path, changed).unwrap();
}

#[test]
fn a_rebuild_embeds_only_the_questions_that_changed() {
    let corpus_dir = fixture_corpus("09-concurrency.toml");
    let index_dir = tempfile::tempdir().unwrap();
    let index = common::index_dir(index_dir.path());
    let corpus = Corpus::load_dir(corpus_dir.path()).unwrap();
    let first = index.build(&corpus, EMBEDDER.as_ref()).unwrap();
    let total = corpus.questions().len();
    assert_eq!((first.manifest.embedded_questions, first.manifest.reused_questions), (total, 0));
    assert_eq!(first.manifest.questions, total);
    assert_eq!(first.vectors.count().unwrap(), total);
    assert_eq!(first.lexical.num_docs() as usize, total);
    assert_eq!(index.staleness(&corpus, EMBEDDER.model()), None);

    change_first_answer(corpus_dir.path());
    let changed = Corpus::load_dir(corpus_dir.path()).unwrap();
    assert_eq!(index.staleness(&changed, EMBEDDER.model()), Some(Staleness::CorpusChanged));
    let second = index.build(&changed, EMBEDDER.as_ref()).unwrap();
    assert_eq!((second.manifest.embedded_questions, second.manifest.reused_questions), (1, total - 1));
    assert_eq!(index.current_manifest().unwrap(), second.manifest);
    assert_eq!(generation_names(index_dir.path()).len(), 2, "the previous generation stays for readers holding it");
}

/// Fails every call: a build that needs the model must fail and leave `current` alone.
struct BrokenModel(ModelInfo);

impl Embedder for BrokenModel {
    fn embed_with(&self, _texts: &[&str], _priority: Priority) -> Result<Vec<Vec<f32>>, InternalError> {
        Err(InternalError::Model("the model crashed".into()))
    }
    fn model(&self) -> &ModelInfo {
        &self.0
    }
}

#[test]
fn a_failed_build_leaves_the_current_index_untouched() {
    let corpus_dir = fixture_corpus("09-concurrency.toml");
    let index_dir = tempfile::tempdir().unwrap();
    let index = IndexDir::new(index_dir.path());
    let corpus = Corpus::load_dir(corpus_dir.path()).unwrap();
    let built = index.build(&corpus, EMBEDDER.as_ref()).unwrap();
    let before = generation_names(index_dir.path());

    change_first_answer(corpus_dir.path());
    let changed = Corpus::load_dir(corpus_dir.path()).unwrap();
    let broken: Arc<dyn Embedder> = Arc::new(BrokenModel(EMBEDDER.model().clone()));
    let error = index.build(&changed, broken.as_ref()).err().expect("the build fails");
    assert!(error.to_string().contains("the model crashed"), "{error}");

    assert_eq!(generation_names(index_dir.path()), before, "no partial generation is left behind");
    assert_eq!(index.current_manifest().unwrap(), built.manifest);
    let busy = index.open_current().err().expect("the store is held by `built`");
    assert!(busy.to_string().contains("open in another askmark process"), "{busy}");
    drop(built);
    let reopened = index.open_current().unwrap();
    assert_eq!(reopened.vectors.count().unwrap(), corpus.questions().len());
}

#[test]
fn opening_an_up_to_date_index_does_not_rebuild_it() {
    let corpus_dir = fixture_corpus("08-advanced.toml");
    let index_dir = tempfile::tempdir().unwrap();
    Engine::open(corpus_dir.path(), common::index_dir(index_dir.path()), MODELS.clone()).unwrap();
    let after_first = generation_names(index_dir.path());
    let engine = Engine::open(corpus_dir.path(), common::index_dir(index_dir.path()), MODELS.clone()).unwrap();
    assert_eq!(generation_names(index_dir.path()), after_first);
    assert_eq!(after_first.len(), 1);
    assert_eq!(engine.snapshot().manifest().model, *EMBEDDER.model());
}

#[test]
fn dropping_a_generation_whose_folder_was_removed_does_not_panic() {
    let corpus_dir = fixture_corpus("08-advanced.toml");
    let index_dir = tempfile::tempdir().unwrap();
    let index = IndexDir::new(index_dir.path());
    let generation = index.build(&Corpus::load_dir(corpus_dir.path()).unwrap(), EMBEDDER.as_ref()).unwrap();
    std::fs::remove_dir_all(&generation.dir).unwrap();
    drop(generation);
}
