//! The Rust embedder (fastembed over the exported ONNX graph) against an independent numpy
//! forward pass of the same safetensors weights, computed by scripts/setup-model.

use serde::Deserialize;

use crate::common::{repo, EMBEDDER};
use askmark::embed::cosine;

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

#[test]
fn embeddings_match_an_independent_implementation_on_varied_sentences() {
    let path = repo().join("models/reference/embeddings.json");
    let reference: Reference = serde_json::from_slice(&std::fs::read(&path).expect("reference embeddings from setup"))
        .expect("reference json");
    assert_eq!(reference.model, EMBEDDER.model().id);
    assert!(reference.items.len() >= 30, "at least 30 reference sentences, got {}", reference.items.len());
    let texts: Vec<&str> = reference.items.iter().map(|item| item.text.as_str()).collect();
    let ours = EMBEDDER.embed(&texts).expect("embed");
    for (item, vector) in reference.items.iter().zip(&ours) {
        assert_eq!(vector.len(), 384);
        let norm: f32 = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "not unit length ({norm}) for {:?}", item.text);
        let similarity = cosine(vector, &item.embedding);
        assert!(similarity >= 0.999, "cosine {similarity} < 0.999 for {:?}", item.text);
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

#[test]
fn batching_does_not_change_an_embedding() {
    let alone = EMBEDDER.embed(&["What is a decorator?"]).expect("embed");
    let batched = EMBEDDER.embed(&["What is a decorator?", "a much longer sentence that forces padding of the first one in the batch"]).expect("embed");
    assert!(cosine(&alone[0], &batched[0]) > 0.99999);
}
