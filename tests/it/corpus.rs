use askmark::corpus::{Corpus, Source};

use crate::common::{corpus_copy, repo, write};

/// The seed list's questions, in order: the bullet lines at the first nesting level.
fn seed_questions() -> Vec<String> {
    let seed = std::fs::read_to_string(repo().join("corpus/SEED.md")).expect("corpus/SEED.md");
    seed.lines()
        .filter_map(|line| line.strip_prefix("    - "))
        .map(|text| text.trim().to_string())
        .collect()
}

#[test]
fn the_full_corpus_holds_every_seed_question_verbatim_and_in_order() {
    let corpus = Corpus::load_dir(&repo().join("corpus")).unwrap_or_else(|problems| panic!("{problems}"));
    let seed = seed_questions();
    assert_eq!(seed.len(), 114);
    let seeded: Vec<&str> = corpus
        .questions()
        .iter()
        .filter(|q| q.entry.source == Source::Seed)
        .map(|q| q.entry.question.as_str())
        .collect();
    assert_eq!(seeded, seed.iter().map(String::as_str).collect::<Vec<_>>());
    let added = corpus.questions().iter().filter(|q| q.entry.source == Source::Added).count();
    assert!(added >= 40, "{added} added questions, the corpus issue asks for at least 40");
    assert_eq!(corpus.topics().len(), 14);
    for question in corpus.questions() {
        assert!((2..=4).contains(&question.entry.misconceptions.len()), "{} needs 2-4 misconceptions", question.id());
    }
}

const VALID_ENTRY: &str = r#"
[[questions]]
id = "ok-question"
question = "What does the ok question ask about?"
source = "added"
difficulty = "junior"
tags = ["ok"]
answer = """ANSWER"""
key_points = ["The first point is stated clearly here.", "The second point is stated clearly here.", "The third point is stated clearly here."]
follow_ups = ["other-question", "broken-question"]
"#;

#[test]
fn loading_reports_every_problem_with_file_and_question() {
    let dir = tempfile::tempdir().unwrap();
    let words = "word ".repeat(150);
    write(&dir.path().join("01-good.toml"), &format!("[topic]\nid = \"good\"\ntitle = \"Good\"\n{}", VALID_ENTRY.replace("ANSWER", &words)));
    write(&dir.path().join("02-syntax.toml"), "[topic\nid = ");
    let broken = VALID_ENTRY
        .replace("ok-question", "broken-question")
        .replace("ANSWER", "too short")
        .replace("\"other-question\", \"broken-question\"", "\"missing-question\"");
    write(&dir.path().join("03-broken.toml"), &format!("[topic]\nid = \"broken\"\ntitle = \"Broken\"\n{broken}"));
    let problems = Corpus::load_dir(dir.path()).expect_err("invalid corpus").0;
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    let has = |file: &str, question: Option<&str>, needle: &str| {
        problems.iter().any(|p| p.file == file && p.question.as_deref() == question && p.message.contains(needle))
    };
    assert!(has("02-syntax.toml", None, "invalid toml"), "{text:#?}");
    assert!(has("03-broken.toml", Some("broken-question"), "answer has 2 words"), "{text:#?}");
    assert!(has("03-broken.toml", Some("broken-question"), "1 follow-ups"), "{text:#?}");
    assert!(has("03-broken.toml", Some("broken-question"), "\"missing-question\" resolves to no question"), "{text:#?}");
    assert!(has("03-broken.toml", Some("broken-question"), "key point also used by ok-question"), "{text:#?}");
    assert!(has("01-good.toml", Some("ok-question"), "\"other-question\" resolves to no question"), "{text:#?}");
}

#[test]
fn duplicate_ids_across_files_are_reported() {
    let dir = corpus_copy(&["01-basics.toml"]);
    let text = std::fs::read_to_string(dir.path().join("01-basics.toml")).unwrap().replace("id = \"basics\"", "id = \"basics-again\"");
    write(&dir.path().join("02-copy.toml"), &text);
    let problems = Corpus::load_dir(dir.path()).expect_err("duplicates").0;
    assert!(problems.iter().any(|p| p.file == "02-copy.toml" && p.message.contains("duplicate id (also in 01-basics.toml)")));
}

#[test]
fn a_topic_file_written_back_loads_to_the_same_corpus() {
    let full = Corpus::load_dir(&repo().join("corpus")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(repo().join("corpus")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let copy = Corpus::load_dir(dir.path()).unwrap();
    copy.write_topic_files(&["concurrency"]).unwrap();
    let reloaded = Corpus::load_dir(dir.path()).unwrap();
    assert_eq!(reloaded.hash(), full.hash());
}

#[test]
fn a_move_interrupted_after_its_journal_is_finished_by_recover() {
    let names: Vec<String> = std::fs::read_dir(repo().join("corpus"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".toml"))
        .collect();
    let dir = corpus_copy(&names.iter().map(String::as_str).collect::<Vec<_>>());
    let corpus = Corpus::load_dir(dir.path()).unwrap();
    let gil = corpus.get("gil").unwrap().entry.clone();
    assert_eq!(corpus.get("gil").unwrap().topic, "advanced");
    let moved = corpus.with_upserted("concurrency", gil).unwrap();
    moved.write_topic_files(&["concurrency", "advanced"]).unwrap();
    let expected = std::fs::read_dir(dir.path()).unwrap().count();

    // A crash right after the journal was made durable: the journal is there, the files are old.
    let journal = dir.path().join(".askmark-journal.json");
    let renders: Vec<serde_json::Value> = ["08-advanced.toml", "09-concurrency.toml"]
        .iter()
        .map(|name| serde_json::json!({"name": name, "text": std::fs::read_to_string(dir.path().join(name)).unwrap()}))
        .collect();
    std::fs::write(&journal, serde_json::json!({"files": renders}).to_string()).unwrap();
    for name in ["08-advanced.toml", "09-concurrency.toml"] {
        std::fs::copy(repo().join("corpus").join(name), dir.path().join(name)).unwrap();
    }
    std::fs::write(dir.path().join(".09-concurrency.toml.1-0.tmp"), "half a file").unwrap();
    assert_eq!(Corpus::load_dir(dir.path()).unwrap().get("gil").unwrap().topic, "advanced", "the files are the old ones");

    assert!(Corpus::recover(dir.path()).unwrap(), "a journal was replayed");
    let recovered = Corpus::load_dir(dir.path()).unwrap();
    assert_eq!(recovered.get("gil").unwrap().topic, "concurrency");
    assert_eq!(recovered.questions().len(), moved.questions().len());
    for question in moved.questions() {
        let again = recovered.get(question.id()).unwrap();
        assert_eq!((again.topic.as_str(), again.content_hash()), (question.topic.as_str(), question.content_hash()), "{}", question.id());
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), expected, "no journal or temp file is left");
    assert!(!Corpus::recover(dir.path()).unwrap(), "nothing left to replay");
}
