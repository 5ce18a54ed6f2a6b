//! Answer review with the real model over the real corpus. The answers here are written for
//! these tests (the labelled evaluation set is in eval/answers.toml and is never used by tests).

use askmark::error::{Error, UserError};
use askmark::review::{final_score, Band, Coverage, Flag, ScoreModels, Target};
use askmark::text::sentences;

use crate::common::{ENGINE, MODELS};

const GIL_GOOD: &str = "The GIL is a lock inside CPython that allows only one thread to run Python bytecode at a time \
in a given interpreter. That is why threads give no speed-up for CPU-bound pure Python loops, but they still help for \
I/O-bound work, because a thread waiting on a socket or a file releases the GIL. Libraries written in C, like NumPy, \
can drop the GIL while they crunch numbers, so threads calling them can really run in parallel. The GIL does not make \
your code thread-safe: counter += 1 is several bytecodes, so you still need a lock. For CPU-bound parallelism you use \
multiprocessing or a ProcessPoolExecutor. Python 3.13 added an experimental free-threaded build without the GIL \
(PEP 703), and since 3.14 it is officially supported but optional.";

fn review(question: &str, answer: &str) -> askmark::review::Review {
    ENGINE.review(&Target::Corpus(question.to_string()), answer).unwrap()
}

#[test]
fn a_complete_correct_answer_scores_high_with_evidence_for_each_point() {
    let verdict = review("gil", GIL_GOOD);
    assert!(verdict.score >= 70, "{verdict:#?}");
    assert!(matches!(verdict.grade, Band::Good | Band::Excellent), "{verdict:#?}");
    assert!(verdict.flags.is_empty(), "{:?}", verdict.flags);
    let covered: Vec<_> = verdict.key_points.iter().filter(|p| p.covered == Coverage::Covered).collect();
    assert!(covered.len() >= 4, "{verdict:#?}");
    for point in covered {
        let evidence = point.evidence.as_deref().expect("covered points cite the answer");
        assert!(GIL_GOOD.contains(evidence.split(' ').next().unwrap()), "evidence comes from the answer: {evidence}");
    }
    assert_eq!(verdict.reference_similarity.reference, 0);
    assert!(verdict.feedback.starts_with("Good:"), "{}", verdict.feedback);
}

#[test]
fn a_partial_answer_scores_between_a_complete_one_and_a_vague_one() {
    let partial = review("gil", "The GIL is a lock in CPython so only one thread executes Python bytecode at once, which means \
        threads do not make CPU-heavy Python code faster.");
    let vague = review("gil", "The GIL is something in Python that has to do with performance and threads, and it can be a \
        problem sometimes, so people work around it in different ways.");
    let complete = review("gil", GIL_GOOD);
    assert!(complete.score > partial.score && partial.score > vague.score, "{} {} {}", complete.score, partial.score, vague.score);
    assert!(partial.key_points.iter().any(|p| p.covered == Coverage::Missed));
    assert!(partial.feedback.contains("missing"), "{}", partial.feedback);
}

#[test]
fn a_keyword_salad_is_flagged_and_scores_low() {
    let verdict = review("gil", "GIL, CPython, mutex, bytecode, threads, CPU-bound, I/O-bound, NumPy, multiprocessing, \
        ProcessPoolExecutor, free-threaded, PEP 703, locks, thread-safe");
    assert!(verdict.flags.contains(&Flag::KeywordStuffing), "{verdict:#?}");
    assert!(verdict.score <= 25, "{}", verdict.score);
}

#[test]
fn restating_the_question_is_flagged() {
    let verdict = review("gil", "The Global Interpreter Lock (GIL) in Python and its implications: I would explain the GIL \
        in Python and what its implications are.");
    assert!(verdict.flags.contains(&Flag::RestatesQuestion), "{verdict:#?}");
    assert!(verdict.score <= 25);
}

#[test]
fn an_answer_to_another_question_is_off_topic() {
    let verdict = review("gil", "A decorator is a function that takes another function and returns a wrapper, and the @ \
        syntax is shorthand for reassigning the name. You should use functools.wraps so the wrapper keeps the original \
        name and docstring, and a decorator with arguments is a factory that returns the real decorator.");
    assert!(verdict.flags.contains(&Flag::OffTopic), "{verdict:#?}");
    assert_eq!(verdict.grade, Band::OffTopic);
    assert!(verdict.feedback.contains("different question"));
}

#[test]
fn stating_a_known_misconception_is_flagged_with_the_sentence_that_states_it() {
    let wrong = "The GIL used to serialize threads in CPython. But Python 3.13 removed the GIL completely, so every \
        standard CPython build now runs threads in parallel on all cores. Threads are therefore the right tool for CPU-bound work.";
    let verdict = review("gil", wrong);
    assert!(verdict.flags.contains(&Flag::Contradiction), "{verdict:#?}");
    let contradiction = &verdict.contradictions[0];
    assert!(contradiction.evidence.starts_with("But Python 3.13 removed the GIL"), "{contradiction:?}");
    assert!(ENGINE.snapshot().corpus().get("gil").unwrap().entry.misconceptions.contains(&contradiction.misconception));
    assert!(verdict.feedback.contains("common mistake"), "{}", verdict.feedback);
    assert!(verdict.score < review("gil", GIL_GOOD).score / 2);
}

#[test]
fn a_one_liner_is_too_short() {
    let verdict = review("gil", "It is a lock in CPython.");
    assert!(verdict.flags.contains(&Flag::TooShort));
    assert!(verdict.score <= 25);
}

#[test]
fn an_ad_hoc_question_is_reviewed_against_its_own_references() {
    let target = Target::AdHoc {
        question: "Why is a Rust Vec faster to index than a linked list?".into(),
        references: vec!["A Vec stores its elements contiguously in one heap allocation, so indexing is a pointer offset \
            computed in constant time and the CPU cache prefetches neighbours. A linked list must follow one pointer per \
            node, which is linear time and misses the cache on every hop.".into()],
        key_points: vec!["Vec elements are contiguous in memory.".into(), "Indexing a Vec is constant time.".into(),
            "A linked list needs a pointer chase per element, which is linear and cache-unfriendly.".into()],
    };
    let good = ENGINE.review(&target, "Because a Vec keeps everything contiguous, getting element i is just base plus offset, \
        constant time, and it is cache friendly; a linked list has to walk node by node, so it is O(n) and each hop is a \
        likely cache miss.").unwrap();
    let bad = ENGINE.review(&target, "Linked lists are faster because they do not need to reallocate when they grow, so \
        they are always the better choice for indexing.").unwrap();
    assert_eq!(good.question_id, None);
    assert_eq!(good.key_points.len(), 3);
    assert!(good.score > bad.score + 20, "{} vs {}", good.score, bad.score);
}

#[test]
fn a_corpus_question_and_an_ad_hoc_one_are_scored_by_their_own_models() {
    let models = ScoreModels::fitted();
    assert_ne!(models.corpus, models.ad_hoc);
    let snapshot = ENGINE.snapshot();
    let gil = &snapshot.corpus().get("gil").unwrap().entry;
    let ad_hoc = Target::AdHoc { question: gil.question.clone(), references: vec![gil.answer.clone()], key_points: Vec::new() };
    for (target, model, other) in
        [(Target::Corpus("gil".into()), &models.corpus, &models.ad_hoc), (ad_hoc, &models.ad_hoc, &models.corpus)]
    {
        let verdict = ENGINE.review(&target, GIL_GOOD).unwrap();
        let score = |m: &askmark::review::ScoreModel| final_score(m.raw_score(&verdict.signals), &verdict.flags).round() as u8;
        assert_eq!(verdict.score, score(model), "{target:?}");
        assert_ne!(verdict.score, score(other), "{target:?}: both models agree here, so this test would not tell them apart");
    }
}

#[test]
fn a_pathological_answer_is_read_as_a_bounded_number_of_passages() {
    let one_word_sentences = "Word. ".repeat(1600);
    let passages = askmark::review::passages(&one_word_sentences, 48);
    assert!(passages.len() <= 48, "{} passages", passages.len());
    assert_eq!(passages.iter().map(|p| p.split_whitespace().count()).sum::<usize>(), 1600, "no word is dropped");
    let verdict = review("gil", &one_word_sentences);
    assert!(verdict.score <= 25, "{}", verdict.score);
}

#[test]
fn bad_review_requests_are_user_errors() {
    assert!(matches!(ENGINE.review(&Target::Corpus("gil".into()), "  "), Err(Error::User(UserError::InvalidAnswer(_)))));
    assert!(matches!(
        ENGINE.review(&Target::Corpus("gil".into()), &"word ".repeat(3000)),
        Err(Error::User(UserError::InvalidAnswer(_)))
    ));
    assert!(matches!(ENGINE.review(&Target::Corpus("nope".into()), "an answer"), Err(Error::User(UserError::QuestionNotFound(_)))));
    let no_references = Target::AdHoc { question: "Why?".into(), references: vec![], key_points: vec![] };
    assert!(matches!(ENGINE.review(&no_references, "because"), Err(Error::User(UserError::InvalidReview(_)))));
}

#[test]
fn coverage_serializes_as_true_false_or_partially() {
    let json = serde_json::to_value([Coverage::Covered, Coverage::Missed, Coverage::Partially]).unwrap();
    assert_eq!(json, serde_json::json!([true, false, "partially"]));
}

#[test]
fn sentences_keep_every_word_of_the_text() {
    let text = "First sentence. Second one?  Third!\nA code line: x = f(1)\n\nLast";
    let split = sentences(text);
    assert_eq!(split, vec!["First sentence.", "Second one?", "Third!", "A code line: x = f(1)", "Last"]);
}

#[test]
fn the_judge_entails_a_point_by_itself_and_not_by_a_vague_answer_with_its_words() {
    // A question held out of the judge's training: its key point against itself, a vague answer
    // with its words and a misstatement of it.
    let point = "Default argument values are evaluated once, when the def statement executes, not on each call.";
    let verdicts = MODELS
        .judge
        .judge(&[
            (point, point),
            ("Default arguments are something Python handles in its own way, and they can matter for how functions behave \
              in some situations.", point),
            ("Default argument values are evaluated again on each call, when the function is invoked.", point),
        ])
        .expect("judge");
    assert!(verdicts[0].entailment > 0.5, "the point itself: {:?}", verdicts[0]);
    assert!(verdicts[1].entailment < 0.5, "a vague answer: {:?}", verdicts[1]);
    assert!(verdicts[2].contradiction > 0.5, "a misstatement: {:?}", verdicts[2]);
}

#[test]
fn a_judge_verdict_does_not_depend_on_the_pairs_judged_with_it() {
    let judge = &MODELS.judge;
    let pair = ("The GIL lets only one thread execute Python bytecode at a time.", "Only one thread runs Python bytecode at once.");
    let alone = judge.judge(&[pair]).expect("judge");
    let long = "A much longer candidate passage about something else entirely, which a batch would pad the first pair to, \
        covering list comprehensions, generators, context managers and the details of the import system.";
    let together = judge.judge(&[(long, "Generators are lazy."), pair]).expect("judge");
    assert_eq!(alone[0], together[1]);
}
