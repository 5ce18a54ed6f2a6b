//! Shared fixtures: the real model and an index of the real corpus, each built once.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use askmark::embed::{Embedder, SEARCH_MODEL};
use askmark::index::IndexDir;
use askmark::engine::{Engine, Models};
use askmark::vectors::{QdrantConfig, VectorBackend};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The real sentence model and the real judge, loaded once.
pub static MODELS: LazyLock<Models> =
    LazyLock::new(|| Models::load(&repo().join("models"), SEARCH_MODEL, 2, 1).expect("the models are set up (run scripts/setup-model)"));

pub static EMBEDDER: LazyLock<Arc<dyn Embedder>> = LazyLock::new(|| MODELS.embedder.clone());

/// The backend under test: a Qdrant server when `ASKMARK_QDRANT_URL` is set, else the embedded
/// store. Each test run uses its own alias, so runs never share collections.
pub static BACKEND: LazyLock<VectorBackend> =
    LazyLock::new(|| VectorBackend::from_env(&format!("askmark-test-{}", std::process::id())));

/// The server's settings when the tests run against one.
pub fn server() -> Option<QdrantConfig> {
    match &*BACKEND {
        VectorBackend::Qdrant(config) => Some(config.clone()),
        VectorBackend::Embedded => None,
    }
}

/// An index folder on the backend under test.
pub fn index_dir(path: &Path) -> IndexDir {
    IndexDir::new(path).with_backend(BACKEND.clone())
}

/// The real corpus indexed into a temporary folder that lives as long as the test binary.
pub static ENGINE: LazyLock<Arc<Engine>> = LazyLock::new(|| {
    let folder = Box::leak(Box::new(tempfile::tempdir().expect("temp dir")));
    let engine = Engine::open(&repo().join("corpus"), index_dir(folder.path()), MODELS.clone()).expect("engine opens");
    Arc::new(engine)
});

/// Copies the named corpus files into a fresh folder, for tests that change a corpus.
pub fn corpus_copy(files: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for file in files {
        std::fs::copy(repo().join("corpus").join(file), dir.path().join(file)).expect("copy corpus file");
    }
    dir
}

pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write file");
}

/// A one-topic corpus cut from the real one (follow-ups rewired to stay inside it), small enough
/// to index in a couple of seconds.
pub fn fixture_corpus(topic_file: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = std::fs::read_to_string(repo().join("corpus").join(topic_file)).expect("corpus file");
    let mut file: toml::Table = toml::from_str(&text).expect("corpus toml");
    let questions = file["questions"].as_array_mut().expect("questions");
    let ids: Vec<String> = questions.iter().map(|q| q["id"].as_str().unwrap().to_string()).collect();
    for (position, question) in questions.iter_mut().enumerate() {
        let others: Vec<toml::Value> = (1..=2).map(|step| toml::Value::String(ids[(position + step) % ids.len()].clone())).collect();
        question.as_table_mut().unwrap().insert("follow_ups".into(), toml::Value::Array(others));
    }
    write(&dir.path().join(topic_file), &toml::to_string(&file).expect("serialize"));
    dir
}
