use askmark::corpus::Difficulty;
use askmark::embed::cosine;
use askmark::error::{Error, UserError};
use askmark::search::{FusionParams, MatchedBy, Mode, RelatedHit, RelatedReason, RelevanceFloor, SearchRequest, NEIGHBOUR_FLOOR, NO_MATCH_HINT};
use askmark::filter::SearchFilter;

use crate::common::ENGINE;

fn ids(request: &SearchRequest) -> Vec<String> {
    ENGINE.search(request).unwrap().results.into_iter().map(|hit| hit.id).collect()
}

fn request(query: &str, mode: Mode) -> SearchRequest {
    SearchRequest { mode, ..SearchRequest::new(query) }
}

#[test]
fn asyncio_versus_threads_puts_the_asyncio_and_threading_questions_on_top() {
    let top = ids(&request("how does asyncio differ from threads", Mode::Hybrid));
    let top3 = &top[..3];
    assert!(top3.iter().any(|id| id == "async-programming" || id == "asyncio-usage"), "{top:?}");
    assert!(top[..5].contains(&"threading-vs-multiprocessing".to_string()), "{top:?}");
}

#[test]
fn every_hit_says_how_it_was_found() {
    for mode in Mode::ALL {
        let results = ENGINE.search(&request("generators and yield", mode)).unwrap();
        assert_eq!(results.mode, mode);
        assert!(!results.results.is_empty());
        for hit in &results.results {
            match mode {
                Mode::Lexical => assert!(hit.lexical_rank.is_some() && hit.semantic_rank.is_none()),
                Mode::Semantic => assert!(hit.semantic_rank.is_some() && hit.lexical_rank.is_none()),
                Mode::Hybrid => assert!(hit.lexical_rank.is_some() || hit.semantic_rank.is_some()),
            }
            let expected = match (hit.lexical_rank, hit.semantic_rank) {
                (Some(_), Some(_)) => MatchedBy::Both,
                (Some(_), None) => MatchedBy::Lexical,
                _ => MatchedBy::Semantic,
            };
            assert_eq!(hit.matched_by, expected);
        }
        let scores: Vec<f32> = results.results.iter().map(|h| h.score).collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "scores descend: {scores:?}");
    }
}

#[test]
fn snippets_highlight_the_query_words_inside_the_answer() {
    let results = ENGINE.search(&request("context manager with statement", Mode::Lexical)).unwrap();
    let hit = &results.results[0];
    assert!(!hit.snippet.highlights.is_empty(), "{hit:?}");
    for [start, end] in &hit.snippet.highlights {
        let word = hit.snippet.text[*start..*end].to_lowercase();
        assert!(["context", "manag", "statement", "with"].iter().any(|stem| word.starts_with(stem)), "highlighted {word:?}");
    }
}

#[test]
fn filters_restrict_every_mode() {
    for mode in Mode::ALL {
        let filtered = SearchRequest {
            filter: SearchFilter { topic: Some("concurrency".into()), ..SearchFilter::default() },
            ..request("how do I run things in parallel", mode)
        };
        let results = ENGINE.search(&filtered).unwrap();
        assert!(!results.results.is_empty());
        assert!(results.results.iter().all(|hit| hit.topic == "concurrency"), "{mode:?}");

        let senior = SearchRequest {
            filter: SearchFilter { difficulty: Some(Difficulty::Senior), ..SearchFilter::default() },
            ..request("memory", mode)
        };
        assert!(ENGINE.search(&senior).unwrap().results.iter().all(|hit| hit.difficulty == Difficulty::Senior));

        let tagged = SearchRequest { filter: SearchFilter { tags: vec!["gil".into()], ..SearchFilter::default() }, ..request("threads", mode) };
        let results = ENGINE.search(&tagged).unwrap();
        assert!(!results.results.is_empty());
        for hit in &results.results {
            assert!(ENGINE.snapshot().corpus().get(&hit.id).unwrap().entry.tags.contains(&"gil".to_string()));
        }
    }
}

#[test]
fn a_typo_still_finds_the_question_lexically() {
    let top = ids(&request("decoraters", Mode::Lexical));
    assert_eq!(top.first().map(String::as_str), Some("decorators"), "{top:?}");
}

#[test]
fn a_misspelt_word_scores_like_the_word_it_misspells() {
    let lexical = |query: &str| -> Vec<(String, f32)> {
        ENGINE.search(&request(query, Mode::Lexical)).unwrap().results.into_iter().map(|hit| (hit.id, hit.score)).collect()
    };
    // "refrence" stems to "refrenc", three edits from "refer" (the stem of "reference"): words
    // are corrected as written. Before, a typo only earned a small fuzzy bonus, and
    // `collections-counter` ("collections") led this query.
    let misspelt = lexical("garbge colection refrence counting");
    assert_eq!(misspelt, lexical("garbage collection reference counting"));
    assert_eq!(misspelt[0].0, "garbage-collection", "{misspelt:?}");
    let snippet = &ENGINE.search(&request("garbge colection", Mode::Lexical)).unwrap().results[0].snippet;
    let highlighted: Vec<String> = snippet.highlights.iter().map(|[start, end]| snippet.text[*start..*end].to_lowercase()).collect();
    assert!(highlighted.iter().any(|word| word.starts_with("garbage")), "{snippet:?}");
    // A word the corpus holds is never corrected, even one edit from more frequent ones ("lock").
    assert_eq!(lexical("mock")[0].0, "mocking-unittest-mock");
}

#[test]
fn the_model_reads_typos_corrected_and_a_guessed_correction_is_judged_as_typed() {
    let semantic = |query: &str| ids(&request(query, Mode::Semantic));
    assert_eq!(semantic("garbge colection refrence counting"), semantic("garbage collection reference counting"));
    let params = FusionParams::default();
    // One edit per word: typos, taken as the query ("garbge colection" as typed is below the
    // floor). Two edits: a guess, so relevance is judged as typed.
    let typos = ENGINE.ranking_signals("garbge colection").unwrap();
    assert!(typos.as_typed.is_none() && typos.relevance(&params) >= RelevanceFloor::default().any);
    let guessed = ENGINE.ranking_signals("bundle my script with pyinstaller").unwrap();
    let as_typed = guessed.as_typed.as_deref().expect("a two-edit correction keeps the query as typed");
    assert!(as_typed.best_semantic(&params) < guessed.best_semantic(&params));
    assert_eq!(guessed.relevance(&params), as_typed.best_semantic(&params));
    // Words the model knows are no typos, even where the corpus lacks them ("folder" is one
    // edit from "older").
    assert!(ENGINE.ranking_signals("delete a whole folder and everything inside it").unwrap().as_typed.is_none());
    assert!(ENGINE.ranking_signals("garbage collection reference counting").unwrap().as_typed.is_none());
    // The response says what was searched, in every mode.
    for mode in [Mode::Hybrid, Mode::Semantic, Mode::Lexical] {
        let results = ENGINE.search(&request("garbge colection refrence counting", mode)).unwrap();
        assert_eq!(results.corrected_query.as_deref(), Some("garbage collection reference counting"), "{mode:?}");
        assert_eq!(ENGINE.search(&request("delete a whole folder", mode)).unwrap().corrected_query, None, "{mode:?}");
    }
}

#[test]
fn a_paraphrase_without_shared_words_is_found_semantically() {
    let top = ids(&request("run several jobs at once on all CPU cores", Mode::Semantic));
    assert!(top[..5].iter().any(|id| id == "threading-vs-multiprocessing" || id == "concurrent-futures"), "{top:?}");
}

#[test]
fn a_query_stating_one_key_point_is_lifted_by_that_key_points_vector() {
    let snapshot = ENGINE.snapshot();
    let without = FusionParams { key_point_weight: 0.0, ..FusionParams::default() };
    let rank = |signals: &askmark::search::RankingSignals, params: &FusionParams, id: &str| {
        signals.rank(Mode::Semantic, params).iter().position(|hit| hit.id == id).map_or(usize::MAX, |p| p + 1)
    };
    let (mut lifted, mut lowered, mut too_deep) = (0, 0, Vec::new());
    for question in snapshot.corpus().questions().iter().step_by(8) {
        let Some(point) = question.entry.key_points.last() else { continue };
        let signals = ENGINE.ranking_signals(point).unwrap();
        // Key points are read for the first questions of each semantic ranking only: a point that
        // is about another question's subject can leave its own question deeper than that.
        let Some(own) = signals.key_point_hits.iter().find(|hit| hit.question_id == question.id()) else {
            too_deep.push(question.id());
            continue;
        };
        assert!(own.score > 0.99, "{}: its own key point scores {}", question.id(), own.score);
        let (with_points, alone) = (rank(&signals, &FusionParams::default(), question.id()), rank(&signals, &without, question.id()));
        lifted += usize::from(with_points < alone);
        lowered += usize::from(with_points > alone);
    }
    assert!(lifted > 0 && lowered == 0, "lifted {lifted}, lowered {lowered}");
    assert!(too_deep.len() <= 2, "too deep for their own key point: {too_deep:?}");
}

#[test]
fn a_filter_narrows_the_results_without_turning_a_known_subject_into_no_match() {
    let filtered = |query: &str| SearchRequest {
        filter: SearchFilter { topic: Some("concurrency".into()), ..SearchFilter::default() },
        ..request(query, Mode::Hybrid)
    };
    let memory = ENGINE.search(&filtered("memory")).unwrap();
    assert!(memory.hint.is_none() && !memory.results.is_empty(), "{memory:?}");
    assert!(memory.results.iter().all(|hit| hit.topic == "concurrency"));
    let gibberish = ENGINE.search(&filtered("qwertyuiop")).unwrap();
    assert!(gibberish.results.is_empty() && gibberish.hint.is_some());
}

#[test]
fn gibberish_and_questions_outside_the_corpus_match_nothing_and_say_so() {
    for query in ["qwertyuiop asdfgh", "how do I bake sourdough bread", "who won the football world cup"] {
        for mode in [Mode::Hybrid, Mode::Semantic] {
            let results = ENGINE.search(&request(query, mode)).unwrap();
            assert!(results.results.is_empty() && results.total == 0, "{query:?} {mode:?}: {:?}", ids(&request(query, mode)));
            assert_eq!(results.hint.as_deref(), Some(NO_MATCH_HINT));
        }
    }
    let answerable = ENGINE.search(&request("what does the yield keyword do", Mode::Hybrid)).unwrap();
    assert!(answerable.hint.is_none() && !answerable.results.is_empty());
}

#[test]
fn words_the_corpus_never_saw_are_counted_but_typos_of_its_words_are_not() {
    let snapshot = ENGINE.snapshot();
    let lexical = &snapshot.generation().lexical;
    assert_eq!(lexical.unknown_words("tkinter window").unwrap(), 1);
    assert_eq!(lexical.unknown_words("zoneinfo and pyinstaller").unwrap(), 2);
    // "pyhton" is one transposition from "python"; "the" is too short to count.
    assert_eq!(lexical.unknown_words("what does the pyhton syntax do").unwrap(), 0);
}

#[test]
fn a_query_naming_what_the_corpus_never_mentions_needs_a_closer_match_to_get_results() {
    let query = "tkinter window";
    let signals = ENGINE.ranking_signals(query).unwrap();
    let floor = RelevanceFloor::default();
    let best = signals.relevance(&FusionParams::default());
    assert!(signals.unknown_words == 1 && best >= floor.any && best < floor.with_unknown_word, "{best}");
    let without_the_unknown_word_rule = RelevanceFloor { with_unknown_word: floor.any, ..floor };
    assert!(!signals.matches_nothing(Mode::Hybrid, &FusionParams::default(), &without_the_unknown_word_rule));
    let results = ENGINE.search(&request(query, Mode::Hybrid)).unwrap();
    assert!(results.results.is_empty() && results.hint.as_deref() == Some(NO_MATCH_HINT), "{:?}", ids(&request(query, Mode::Hybrid)));
}

#[test]
fn pagination_continues_the_same_ranking() {
    let all = ids(&SearchRequest { limit: 10, ..request("exceptions", Mode::Hybrid) });
    let second_page = ids(&SearchRequest { limit: 5, offset: 5, ..request("exceptions", Mode::Hybrid) });
    assert_eq!(second_page, all[5..10]);
}

#[test]
fn bad_requests_are_user_errors() {
    let cases = [
        SearchRequest::new("   "),
        SearchRequest::new("x".repeat(501)),
        SearchRequest { limit: 0, ..SearchRequest::new("gil") },
        SearchRequest { limit: 51, ..SearchRequest::new("gil") },
    ];
    for case in cases {
        assert!(matches!(ENGINE.search(&case), Err(Error::User(UserError::InvalidQuery(_)))), "{case:?}");
    }
    let unknown_topic = SearchRequest { filter: SearchFilter { topic: Some("cooking".into()), ..SearchFilter::default() }, ..SearchRequest::new("gil") };
    assert!(matches!(ENGINE.search(&unknown_topic), Err(Error::User(UserError::InvalidFilter(_)))));
}

#[test]
fn related_questions_start_with_the_curated_follow_ups() {
    let snapshot = ENGINE.snapshot();
    let question = snapshot.corpus().get("gil").unwrap();
    let related = ENGINE.related("gil", 6).unwrap();
    let curated = question.entry.follow_ups.len().min(6);
    assert_eq!(related.len(), 6);
    for (hit, expected) in related.iter().zip(&question.entry.follow_ups) {
        assert_eq!((&hit.id, hit.reason), (expected, RelatedReason::FollowUp));
    }
    let reasons: Vec<RelatedReason> = related[curated..].iter().map(|hit| hit.reason).collect();
    assert!(reasons.iter().all(|r| *r != RelatedReason::FollowUp), "{reasons:?}");
    assert!(reasons.windows(2).all(|w| !(w[0] == RelatedReason::Similar && w[1] == RelatedReason::LeadsHere)), "{reasons:?}");
    assert!(related.iter().all(|hit| hit.id != "gil"));
    let mut seen: Vec<&str> = related.iter().map(|h| h.id.as_str()).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), related.len(), "no question twice");
}

#[test]
fn similar_related_questions_are_not_near_duplicates_of_each_other() {
    let snapshot = ENGINE.snapshot();
    for question in snapshot.corpus().questions().iter().take(40) {
        let related = ENGINE.related(question.id(), 8).unwrap();
        let vectors: Vec<&Vec<f32>> = related.iter().map(|hit| &snapshot.embeddings(&hit.id).unwrap().question).collect();
        for (i, hit) in related.iter().enumerate().filter(|(_, hit)| hit.reason != RelatedReason::FollowUp) {
            for other in &vectors[..i] {
                assert!(cosine(vectors[i], other) < 0.9, "{} has a near-duplicate before it", hit.id);
            }
        }
    }
}

#[test]
fn similar_neighbours_are_ranked_by_content_and_shared_tags_down_to_the_floor() {
    let snapshot = ENGINE.snapshot();
    let corpus = snapshot.corpus();
    let mut tag_lifted = 0;
    for question in corpus.questions() {
        let tags = &question.entry.tags;
        let relatedness = |hit: &RelatedHit| {
            let other = &corpus.get(&hit.id).unwrap().entry.tags;
            let shared = tags.iter().filter(|t| other.contains(t)).count();
            hit.similarity + shared as f32 / (tags.len() + other.len() - shared) as f32
        };
        let similar: Vec<RelatedHit> =
            ENGINE.related(question.id(), 50).unwrap().into_iter().filter(|h| h.reason == RelatedReason::Similar).collect();
        let scores: Vec<f32> = similar.iter().map(relatedness).collect();
        assert!(scores.iter().all(|r| *r >= NEIGHBOUR_FLOOR - 1e-6), "{}: {scores:?}", question.id());
        assert!(scores.windows(2).all(|w| w[0] >= w[1] - 1e-6), "{}: {scores:?}", question.id());
        tag_lifted += similar.iter().filter(|h| h.similarity < NEIGHBOUR_FLOOR).count();
    }
    assert!(tag_lifted > 0, "shared tags lift some neighbours whose content alone is below the floor");
}

#[test]
fn questions_leading_here_are_exactly_those_naming_it_as_a_follow_up() {
    let snapshot = ENGINE.snapshot();
    let corpus = snapshot.corpus();
    let mut shown = 0;
    for question in corpus.questions() {
        let id = question.id();
        let leads_here = |other: &str| corpus.get(other).unwrap().entry.follow_ups.iter().any(|f| f == id);
        let related = ENGINE.related(id, 50).unwrap();
        for hit in related.iter().filter(|hit| hit.reason == RelatedReason::LeadsHere) {
            assert!(leads_here(&hit.id), "{id}: {} does not name it as a follow-up", hit.id);
            assert_eq!(hit.why, "asks this question as a curated follow-up");
            shown += 1;
        }
        let expected = corpus.questions().iter().filter(|q| leads_here(q.id()) && !question.entry.follow_ups.contains(&q.entry.id)).count();
        let found = related.iter().filter(|hit| hit.reason == RelatedReason::LeadsHere).count();
        assert_eq!(found, expected, "{id}: every question naming it as a follow-up is listed");
    }
    assert!(shown > 0, "some question is named as a follow-up by a question it does not name itself");
}

#[test]
fn related_for_an_unknown_question_is_not_found() {
    assert!(matches!(ENGINE.related("no-such-question", 5), Err(Error::User(UserError::QuestionNotFound(_)))));
}
