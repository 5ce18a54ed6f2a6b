use askmark::eval::search::{mean, score_ranking, EvalQuery, Metrics};

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn queries_holding_a_python_keyword_are_told_apart_by_whole_words() {
    let query = |text: &str| EvalQuery { query: text.to_string(), kind: "keyword".into(), relevant: Vec::new() };
    for text in ["yield vs return", "is Python pass-by-reference?", "Class attributes", "try/except"] {
        assert!(query(text).has_python_keyword(), "{text}");
    }
    for text in ["passing arguments", "classes and objects", "is it in the list", "returned values"] {
        assert!(!query(text).has_python_keyword(), "{text}");
    }
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

use askmark::eval::review::{
    average_ranks, cross_validate_shares, fit, fit_ad_hoc, least_squares, pairwise_accuracy, pearson, spearman, FitRow, FitSource, OUR_SHARES,
};
use askmark::review::Signals;
use proptest::prelude::*;

#[test]
fn least_squares_recovers_an_exact_linear_relation() {
    let rows: Vec<([f64; 3], f64)> = (0..20)
        .map(|i| {
            let (a, b) = (f64::from(i) * 0.37 % 1.0, f64::from(i * i) * 0.11 % 1.0);
            ([1.0, a, b], 0.5 + 2.0 * a - 1.5 * b)
        })
        .collect();
    let solution = least_squares(&rows, 0.0).unwrap();
    for (got, want) in solution.iter().zip([0.5, 2.0, -1.5]) {
        assert!((got - want).abs() < 1e-9, "{solution:?}");
    }
}

/// `n` answers to 20 questions with features spread over 0–1 (a fixed sequence) and the target `target` gives them.
fn source(n: usize, seed: u64, target: impl Fn(&Signals) -> f64) -> FitSource {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let rows: Vec<FitRow> = (0..n)
        .map(|_| {
            let signals = Signals {
                key_point_entailment: next(),
                key_points_covered: next(),
                reference_similarity: next(),
                term_coverage: next(),
                contradiction: next(),
                ..Signals::default()
            };
            FitRow { target: target(&signals), signals, flags: Vec::new(), weight: 1.0 }
        })
        .collect();
    FitSource { questions: (0..n).map(|i| format!("question {}", i % 20)).collect(), rows }
}

#[test]
fn the_share_of_our_answers_decides_whose_relation_the_ad_hoc_fit_learns() {
    // Ours are graded by entailment, the public answers are correct when they are close to the reference.
    let ours = source(200, 1, |s| 0.2 * f64::from(s.key_point_entailment) + 0.1);
    let public = [source(400, 2, |s| if s.reference_similarity > 0.5 { 1.0 } else { 0.3 })];
    let reports = cross_validate_shares(&ours, &public);
    assert_eq!(reports.iter().map(|r| r.share).collect::<Vec<_>>(), OUR_SHARES.to_vec());
    let (least, most) = (&reports[0], &reports[reports.len() - 1]);
    assert!(most.our_pearson > 0.99, "only ours: their exact relation ({})", most.our_pearson);
    assert!(least.public_auc > 0.95 && least.public_auc > most.public_auc + 0.2, "{} vs {}", least.public_auc, most.public_auc);
    let (_, _, chosen) = fit_ad_hoc(&ours, &public, &[]).unwrap();
    let best = reports.iter().map(|r| r.merit()).fold(f64::MIN, f64::max);
    assert_eq!(reports.iter().find(|r| r.share == chosen).unwrap().merit(), best);
    let (alone, _, share) = fit_ad_hoc(&ours, &[], &[]).unwrap();
    assert_eq!(share, 1.0, "without public answers only ours count");
    assert!((alone.key_point_entailment - 0.2).abs() < 0.01 && (alone.bias - 0.1).abs() < 0.01, "{alone:?}");
}

#[test]
fn a_fitted_weight_never_has_the_wrong_sign() {
    // Closeness to the reference lowers these grades and contradictions raise them: neither may
    // be learned, and the sign-free part of the relation still is.
    let rows = source(200, 3, |s| 0.1 + 0.5 * f64::from(s.term_coverage) - 0.3 * f64::from(s.reference_similarity) + 0.2 * f64::from(s.contradiction)).rows;
    let model = fit(&rows, &[]).unwrap();
    assert_eq!((model.reference_similarity, model.contradiction), (0.0, 0.0), "{model:?}");
    assert!(model.term_coverage > 0.4, "{model:?}");
    let free = source(200, 4, |s| 0.1 + 0.5 * f64::from(s.term_coverage) - 0.3 * f64::from(s.contradiction)).rows;
    let model = fit(&free, &[]).unwrap();
    assert!((model.contradiction + 0.3).abs() < 0.01 && (model.term_coverage - 0.5).abs() < 0.01, "{model:?}");
}

#[test]
fn ties_share_their_average_rank_and_orderings_count_per_question() {
    assert_eq!(average_ranks(&[10.0, 20.0, 10.0, 30.0]), vec![1.5, 3.0, 1.5, 4.0]);
    let items = [("q1", 90.0, 5), ("q1", 20.0, 1), ("q1", 50.0, 0), ("q2", 10.0, 5), ("q2", 10.0, 3)];
    // q1: (90,5)>(20,1) ok, (90,5)>(50,0) ok, (20,1) vs (50,0) wrong; q2: a tie counts half.
    assert!((pairwise_accuracy(&items) - 2.5 / 4.0).abs() < 1e-12);
}

proptest! {
    #[test]
    fn correlations_match_their_definitions(pairs in prop::collection::vec((0.0f64..100.0, 0u8..6), 3..40)) {
        let xs: Vec<f64> = pairs.iter().map(|p| p.0).collect();
        let ys: Vec<f64> = pairs.iter().map(|p| f64::from(p.1)).collect();
        let r = pearson(&xs, &ys);
        prop_assert!((-1.0 - 1e-9..=1.0 + 1e-9).contains(&r));
        prop_assert!((pearson(&xs, &xs) - 1.0).abs() < 1e-9 || xs.iter().all(|x| *x == xs[0]));
        let shifted: Vec<f64> = xs.iter().map(|x| 3.0 * x + 7.0).collect();
        prop_assert!((spearman(&shifted, &ys) - spearman(&xs, &ys)).abs() < 1e-9);
        prop_assert!((spearman(&xs, &ys) - pearson(&average_ranks(&xs), &average_ranks(&ys))).abs() < 1e-12);
    }
}
