//! Reciprocal rank fusion against a naive oracle.

use std::collections::BTreeMap;

use askmark::search::{fuse, FusionParams};
use proptest::prelude::*;

fn oracle(lexical: &[String], semantic: &[String], params: &FusionParams) -> BTreeMap<String, f32> {
    let mut scores = BTreeMap::new();
    for (ranking, weight) in [(lexical, params.lexical_weight), (semantic, params.semantic_weight)] {
        let mut seen = Vec::new();
        for (position, id) in ranking.iter().enumerate() {
            if seen.contains(id) {
                continue;
            }
            seen.push(id.clone());
            *scores.entry(id.clone()).or_insert(0.0) += weight / (params.k + (position + 1) as f32);
        }
    }
    scores
}

fn ranking() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec((0u8..30).prop_map(|n| format!("q{n}")), 0..25)
}

proptest! {
    #[test]
    fn fusion_matches_the_oracle(
        lexical in ranking(),
        semantic in ranking(),
        k in 1.0f32..100.0,
        lexical_weight in 0.0f32..2.0,
        semantic_weight in 0.0f32..2.0,
    ) {
        let params = FusionParams { k, lexical_weight, semantic_weight, answer_weight: 0.5, key_point_weight: 0.3 };
        let fused = fuse(&lexical, &semantic, &params);
        let expected = oracle(&lexical, &semantic, &params);
        prop_assert_eq!(fused.len(), expected.len());
        for item in &fused {
            prop_assert!((item.score - expected[&item.id]).abs() < 1e-6);
            prop_assert_eq!(item.lexical_rank, lexical.iter().position(|id| id == &item.id).map(|p| p + 1));
            prop_assert_eq!(item.semantic_rank, semantic.iter().position(|id| id == &item.id).map(|p| p + 1));
        }
        prop_assert!(fused.windows(2).all(|w| w[0].score >= w[1].score));
    }
}

#[test]
fn a_document_found_by_both_beats_one_found_by_either_at_the_same_rank() {
    let params = FusionParams::default();
    let lexical = vec!["a".to_string(), "both".to_string()];
    let semantic = vec!["b".to_string(), "both".to_string()];
    let fused = fuse(&lexical, &semantic, &params);
    assert_eq!(fused[0].id, "both");
}
