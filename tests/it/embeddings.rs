//! The Rust embedder (fastembed over an ONNX graph) against embeddings computed elsewhere: the
//! base export against an independent numpy forward pass of the same safetensors weights
//! (computed by scripts/setup-model), the served search model against ONNX Runtime's Python API
//! on the same graph (computed by scripts/ship_search_model.py when it was shipped).

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use crate::common::{repo, EMBEDDER};
use askmark::embed::{cosine, Embedder, FastEmbedder, ModelPaths, BASE_MODEL, SEARCH_MODEL};
use askmark::pool::Gate;

#[derive(Deserialize)]
struct Reference {
    model: String,
    items: Vec<ReferenceItem>,
}

#[derive(Deserialize)]
struct ReferenceItem {
    text: String,
    embedding: Vec<f32>,
}

fn reference(path: &Path) -> Reference {
    let reference: Reference = serde_json::from_slice(&std::fs::read(path).expect("reference embeddings from setup"))
        .expect("reference json");
    assert!(reference.items.len() >= 30, "at least 30 reference sentences, got {}", reference.items.len());
    reference
}

fn assert_unit_and_close(text: &str, ours: &[f32], theirs: &[f32], min_cosine: f32) {
    assert_eq!(ours.len(), 384);
    let norm: f32 = ours.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "not unit length ({norm}) for {text:?}");
    let similarity = cosine(ours, theirs);
    assert!(similarity >= min_cosine, "cosine {similarity} < {min_cosine} for {text:?}");
}

#[test]
fn the_base_export_matches_an_independent_implementation_on_varied_sentences() {
    let models = repo().join("models");
    let base = FastEmbedder::load(&ModelPaths::under(&models, BASE_MODEL), 1, 1, Arc::new(Gate::new(1))).expect("base model");
    let reference = reference(&models.join("reference/embeddings.json"));
    assert_eq!(reference.model, base.model().id);
    let texts: Vec<&str> = reference.items.iter().map(|item| item.text.as_str()).collect();
    let ours = base.embed(&texts).expect("embed");
    for (item, vector) in reference.items.iter().zip(&ours) {
        assert_unit_and_close(&item.text, vector, &item.embedding, 0.999);
    }
}

#[test]
fn the_served_search_model_matches_onnx_runtime_python_on_the_same_graph() {
    let reference = reference(&repo().join("models").join(SEARCH_MODEL).join("reference.json"));
    assert_eq!(reference.model, EMBEDDER.model().id);
    for item in &reference.items {
        let ours = EMBEDDER.embed(&[item.text.as_str()]).expect("embed");
        assert_unit_and_close(&item.text, &ours[0], &item.embedding, 0.999);
    }
}

#[test]
fn related_sentences_are_closer_than_unrelated_ones() {
    let vectors = EMBEDDER
        .embed(&["How does asyncio differ from threads?", "Explain asynchronous programming vs multithreading", "How do you read a CSV file?"])
        .expect("embed");
    let related = cosine(&vectors[0], &vectors[1]);
    let unrelated = cosine(&vectors[0], &vectors[2]);
    assert!(related > 0.5 && unrelated < 0.3, "related {related}, unrelated {unrelated}");
}

/// Each text is its own model run (int8 activations are quantised per run), and the runs of one
/// call, spread over the sessions, come back in order.
#[test]
fn an_embedding_does_not_depend_on_the_texts_embedded_with_it() {
    let texts = [
        "a much longer sentence, embedded in the same call, that a batch would pad the others to",
        "What is a decorator?",
        "GIL",
        "How do generators differ from lists?",
        "context managers and the with statement",
    ];
    let together = EMBEDDER.embed(&texts).expect("embed");
    for (text, vector) in texts.iter().zip(&together) {
        assert_eq!(&EMBEDDER.embed(&[*text]).expect("embed")[0], vector, "{text:?}");
    }
}
