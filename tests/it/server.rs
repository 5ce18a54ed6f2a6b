//! The Qdrant server backend. The whole suite runs against a server when `ASKMARK_QDRANT_URL`
//! is set (see `common::BACKEND`); the tests here check what only a server has: collections,
//! the alias, a dimension mismatch, and an unreachable server.


use askmark::corpus::Corpus;
use askmark::error::InternalError;
use askmark::filter::SearchFilter;
use askmark::index::IndexDir;
use askmark::engine::Engine;
use askmark::vectors::{QdrantConfig, QdrantStore, VectorBackend, VectorLocation, VectorName, VectorStore};

use crate::common::{self, fixture_corpus, EMBEDDER, MODELS};

/// The server under test. Server-only tests are `#[ignore]`d, so a run without a server reports
/// them as ignored; `scripts/test` includes them when `ASKMARK_QDRANT_URL` is set, and one run
/// without a server fails here instead of passing silently.
fn qdrant_server() -> QdrantConfig {
    common::server().expect("this test needs a Qdrant server: set ASKMARK_QDRANT_URL")
}

fn collection_of(location: &VectorLocation) -> String {
    match location {
        VectorLocation::Qdrant { collection, .. } => collection.clone(),
        VectorLocation::Embedded => panic!("built on the embedded store"),
    }
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    let corpus_dir = fixture_corpus("13-build-systems.toml");
    let index_dir = tempfile::tempdir().unwrap();
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = QdrantConfig { url: format!("http://127.0.0.1:{closed_port}"), api_key: None, alias: "askmark".into() };
    let index = IndexDir::new(index_dir.path()).with_backend(VectorBackend::Qdrant(config.clone()));
    let corpus = Corpus::load_dir(corpus_dir.path()).unwrap();
    let error = index.build(&corpus, EMBEDDER.as_ref()).err().expect("no server, no index");
    let message = error.to_string();
    assert!(message.contains(&format!("Qdrant at {}", config.url)), "{message}");
    assert!(matches!(error, InternalError::VectorStoreUnavailable(_)), "a refused connection is worth a retry: {error:?}");
    assert!(index.current_manifest().is_none(), "nothing is swapped in");
}

#[test]
#[ignore = "needs a Qdrant server: set ASKMARK_QDRANT_URL and run with --include-ignored"]
fn the_server_and_the_embedded_store_find_the_same_neighbours() {
    let server = qdrant_server();
    let corpus_dir = fixture_corpus("09-concurrency.toml");
    let corpus = Corpus::load_dir(corpus_dir.path()).unwrap();
    let (embedded_dir, server_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let embedded = IndexDir::new(embedded_dir.path()).build(&corpus, EMBEDDER.as_ref()).unwrap();
    let on_server =
        IndexDir::new(server_dir.path()).with_backend(VectorBackend::Qdrant(server)).build(&corpus, EMBEDDER.as_ref()).unwrap();
    assert_eq!(on_server.vectors.count().unwrap(), corpus.questions().len());
    let filters = [
        SearchFilter::default(),
        SearchFilter { difficulty: Some(askmark::corpus::Difficulty::Senior), ..SearchFilter::default() },
        SearchFilter { tags: vec!["asyncio".into()], ..SearchFilter::default() },
    ];
    for query in ["how does asyncio differ from threads", "what is the GIL", "process pool for CPU-bound work"] {
        let vector = EMBEDDER.embed(&[query]).unwrap().remove(0);
        for filter in &filters {
            for name in [VectorName::Question, VectorName::Answer] {
                let expected = embedded.vectors.search(name, &vector, filter, 5).unwrap();
                let actual = on_server.vectors.search(name, &vector, filter, 5).unwrap();
                let ids = |hits: &[askmark::vectors::PointHit]| hits.iter().map(|h| h.point).collect::<Vec<_>>();
                assert_eq!(ids(&actual), ids(&expected), "{query} {filter:?} {name:?}");
                for (a, e) in actual.iter().zip(&expected) {
                    assert!((a.score - e.score).abs() < 1e-4, "{query}: {} vs {}", a.score, e.score);
                }
            }
        }
    }
}

#[test]
#[ignore = "needs a Qdrant server: set ASKMARK_QDRANT_URL and run with --include-ignored"]
fn reindexing_reuses_the_collection_and_a_new_corpus_moves_the_alias() {
    let server = qdrant_server();
    let server = QdrantConfig { alias: format!("{}-alias", server.alias), ..server };
    let corpus_dir = fixture_corpus("12-rest-grpc.toml");
    let corpus = Corpus::load_dir(corpus_dir.path()).unwrap();
    let index_dir = tempfile::tempdir().unwrap();
    let index = IndexDir::new(index_dir.path()).with_backend(VectorBackend::Qdrant(server.clone()));
    let first = index.build(&corpus, EMBEDDER.as_ref()).unwrap();
    let again = index.build(&corpus, EMBEDDER.as_ref()).unwrap();
    assert_eq!(collection_of(&first.manifest.vectors), collection_of(&again.manifest.vectors));
    assert_eq!(again.vectors.count().unwrap(), corpus.questions().len(), "upserts by stable ids do not duplicate");

    let dimension = EMBEDDER.model().dimension;
    let through_alias = QdrantStore::open(&server, &server.alias, dimension).unwrap();
    assert_eq!(through_alias.count().unwrap(), corpus.questions().len());

    let first_question = &corpus.questions()[0];
    let mut extra = first_question.entry.clone();
    extra.id = "extra-question".into();
    extra.key_points = extra.key_points.iter().map(|point| format!("Put another way: {point}")).collect();
    let bigger = corpus.with_upserted(&first_question.topic, extra).unwrap();
    let next = index.build(&bigger, EMBEDDER.as_ref()).unwrap();
    assert_ne!(collection_of(&next.manifest.vectors), collection_of(&first.manifest.vectors));
    assert_eq!(through_alias.count().unwrap(), corpus.questions().len() + 1, "the alias names the new collection");
    let engine = Engine::from_parts(bigger, next, MODELS.clone(), index).unwrap();
    let related = engine.related("extra-question", 3).unwrap();
    assert_eq!(related.len(), 3);
}

#[test]
#[ignore = "needs a Qdrant server: set ASKMARK_QDRANT_URL and run with --include-ignored"]
fn a_collection_for_another_model_is_refused() {
    let server = qdrant_server();
    let collection = format!("{}-dimension-check", server.alias);
    QdrantStore::create(&server, &collection, 8).unwrap();
    let error = QdrantStore::open(&server, &collection, EMBEDDER.model().dimension).err().expect("8-d is not the model's 384-d");
    let message = error.to_string();
    assert!(message.contains("does not match the model") && message.contains("384-d cosine"), "{message}");
    QdrantStore::delete_collection(&server, &collection).unwrap();
}
