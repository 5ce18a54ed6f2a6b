use askmark::eval::{mean, score_ranking, Metrics};

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn metrics_of_known_rankings() {
    let relevant = ids(&["x", "y"]);
    let perfect = score_ranking(&ids(&["x", "y", "a"]), &relevant);
    assert_eq!(perfect, Metrics { hit_at_1: 1.0, hit_at_3: 1.0, mrr_at_10: 1.0, ndcg_at_10: 1.0 });
    let second = score_ranking(&ids(&["a", "x", "b"]), &relevant);
    assert_eq!((second.hit_at_1, second.hit_at_3, second.mrr_at_10), (0.0, 1.0, 0.5));
    let expected_ndcg = (1.0 / 3f64.log2()) / (1.0 + 1.0 / 3f64.log2());
    assert!((second.ndcg_at_10 - expected_ndcg).abs() < 1e-12);
    let missed = score_ranking(&ids(&["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "x"]), &relevant);
    assert_eq!(missed, Metrics::default(), "a hit after rank 10 does not count");
    let averaged = mean(&[perfect, missed]);
    assert_eq!(averaged.mrr_at_10, 0.5);
}
