//! Score fusion against a naive oracle.

use std::collections::BTreeMap;

use askmark::search::fuse;
use proptest::prelude::*;

/// Each id's fused score, written the plain way: its first semantic score (else the lowest
/// semantic score, 0 at most) plus the weight times its first BM25 score over the best.
fn oracle(lexical: &[(String, f32)], semantic: &[(String, f32)], lexical_weight: f32) -> BTreeMap<String, f32> {
    let first = |ranking: &[(String, f32)], id: &str| ranking.iter().find(|(other, _)| other == id).map(|(_, score)| *score);
    let lowest = semantic.iter().map(|(_, score)| *score).fold(0.0, f32::min);
    let best = lexical.first().map_or(1.0, |(_, score)| *score);
    lexical
        .iter()
        .chain(semantic)
        .map(|(id, _)| {
            let bm25 = first(lexical, id).map_or(0.0, |score| score / best);
            (id.clone(), first(semantic, id).unwrap_or(lowest) + lexical_weight * bm25)
        })
        .collect()
}

/// A ranking as a search side returns it: ids (some repeated) with scores best first.
fn ranking(low: f32, high: f32) -> impl Strategy<Value = Vec<(String, f32)>> {
    prop::collection::vec(((0u8..30).prop_map(|n| format!("q{n}")), low..high), 0..25).prop_map(|mut items| {
        items.sort_by(|a, b| b.1.total_cmp(&a.1));
        items
    })
}

proptest! {
    #[test]
    fn fusion_matches_the_oracle(
        lexical in ranking(0.1, 30.0),
        semantic in ranking(-0.2, 1.3),
        lexical_weight in 0.0f32..2.0,
    ) {
        let fused = fuse(&lexical, &semantic, lexical_weight);
        let expected = oracle(&lexical, &semantic, lexical_weight);
        prop_assert_eq!(fused.len(), expected.len());
        for item in &fused {
            prop_assert!((item.score - expected[&item.id]).abs() < 1e-5, "{} {} {}", item.id, item.score, expected[&item.id]);
            prop_assert_eq!(item.lexical_rank, lexical.iter().position(|(id, _)| id == &item.id).map(|p| p + 1));
            prop_assert_eq!(item.semantic_rank, semantic.iter().position(|(id, _)| id == &item.id).map(|p| p + 1));
        }
        prop_assert!(fused.windows(2).all(|w| w[0].score >= w[1].score));
    }
}

fn scored(items: &[(&str, f32)]) -> Vec<(String, f32)> {
    items.iter().map(|(id, score)| (id.to_string(), *score)).collect()
}

#[test]
fn a_clear_bm25_leader_wins_a_close_semantic_race_but_not_a_clear_one() {
    // Keyword query: BM25 puts "lambda" far ahead, the semantic side barely prefers "def".
    let lexical = scored(&[("lambda", 12.0), ("def", 3.0)]);
    let close = scored(&[("def", 0.62), ("lambda", 0.60)]);
    assert_eq!(fuse(&lexical, &close, 0.12)[0].id, "lambda");
    // A paraphrase the semantic side is sure about keeps its leader.
    let clear = scored(&[("def", 0.80), ("lambda", 0.50)]);
    assert_eq!(fuse(&lexical, &clear, 0.12)[0].id, "def");
    // Each side alone ranks as it found.
    assert_eq!(fuse(&lexical, &[], 1.0).iter().map(|f| f.id.as_str()).collect::<Vec<_>>(), ["lambda", "def"]);
    assert_eq!(fuse(&[], &clear, 0.0).iter().map(|f| f.id.as_str()).collect::<Vec<_>>(), ["def", "lambda"]);
}
