//! Latency, throughput and memory of the real thing: the real model, the full corpus, the eval
//! queries. Run with `cargo bench --bench askmark`; prints a markdown table. Not a test: nothing
//! here asserts a time.

use std::path::PathBuf;
use std::time::Instant;

use askmark::corpus::Corpus;
use askmark::eval::review::load_answers;
use askmark::eval::search::load_queries;
use askmark::engine::{Engine, Models};
use askmark::index::IndexDir;
use askmark::review::Target;
use askmark::search::{Mode, SearchRequest};
use askmark::vectors::VectorBackend;

fn percentile(sorted_ms: &[f64], p: f64) -> f64 {
    let index = ((sorted_ms.len() as f64 - 1.0) * p).round() as usize;
    sorted_ms[index]
}

fn measure(label: &str, runs: usize, mut work: impl FnMut(usize)) {
    let mut times: Vec<f64> = (0..runs)
        .map(|run| {
            let started = Instant::now();
            work(run);
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    println!("| {label} | {runs} | {:.2} | {:.2} | {:.2} |", percentile(&times, 0.5), percentile(&times, 0.99), mean);
}

/// Peak resident memory of this process so far, from /proc.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn main() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // The model pool `askmark serve` runs by default: one single-threaded session per core (a
    // review spreads its model runs over them), unless the environment says otherwise.
    let setting = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let sessions = setting("ASKMARK_MODEL_SESSIONS", std::thread::available_parallelism().map_or(1, |n| n.get()));
    let threads = setting("ASKMARK_MODEL_THREADS", 1);
    let models = Models::load(&repo.join("models"), askmark::embed::SEARCH_MODEL, sessions, threads).expect("run scripts/setup-model first");
    let embedder = models.embedder.clone();
    let corpus = Corpus::load_dir(&repo.join("corpus")).expect("corpus loads");
    let index_dir = tempfile::tempdir().expect("temp dir");
    let backend = VectorBackend::from_env("askmark-bench");
    let index = IndexDir::new(index_dir.path()).with_backend(backend.clone());

    println!("model sessions: {sessions} of {threads} thread(s); corpus: {} questions; vectors: {backend:?}\n", corpus.questions().len());
    println!("| index build | questions | texts embedded | seconds | questions/s |");
    println!("|---|---|---|---|---|");
    let texts: usize = corpus
        .questions()
        .iter()
        .map(|q| 1 + 1 + q.entry.alternatives.len() + q.entry.key_points.len() + q.entry.misconceptions.len())
        .sum();
    let started = Instant::now();
    let generation = index.build(&corpus, embedder.as_ref()).expect("build");
    let cold = started.elapsed().as_secs_f64();
    println!("| cold (embed everything) | {} | {texts} | {cold:.1} | {:.1} |", corpus.questions().len(), corpus.questions().len() as f64 / cold);
    drop(generation);
    let started = Instant::now();
    let generation = index.build(&corpus, embedder.as_ref()).expect("rebuild");
    let warm = started.elapsed().as_secs_f64();
    println!("| warm (all embeddings reused) | {} | 0 | {warm:.2} | {:.0} |", corpus.questions().len(), corpus.questions().len() as f64 / warm);

    let engine = Engine::from_parts(corpus, generation, models, index).expect("engine");
    let snapshot = engine.snapshot();
    let queries = load_queries(&repo.join("eval/queries.toml")).expect("queries");
    let runs = queries.len() * 5;
    println!("\n| operation | runs | p50 ms | p99 ms | mean ms |");
    println!("|---|---|---|---|---|");
    measure("query embedding", runs, |run| {
        embedder.embed(&[queries[run % queries.len()].query.as_str()]).expect("embed");
    });
    // Each query once per mode, hybrid first: its runs embed the query, the other modes' find
    // the embedding cached; none finds its page cached. Then hybrid again: every page cached.
    let search = |mode: Mode, run: usize| {
        let request = SearchRequest { mode, ..SearchRequest::new(queries[run % queries.len()].query.clone()) };
        engine.search(&request).expect("search");
    };
    measure("search, hybrid, new query (embedding included)", queries.len(), |run| search(Mode::Hybrid, run));
    for mode in [Mode::Lexical, Mode::Semantic] {
        measure(&format!("search, {}, new page (embedding cached)", mode.as_str()), queries.len(), |run| search(mode, run));
    }
    measure("search, hybrid, repeated (page cached)", runs, |run| search(Mode::Hybrid, run));
    measure("related (limit 5)", runs, |run| {
        let question = &snapshot.corpus().questions()[run % snapshot.corpus().questions().len()];
        engine.related(question.id(), 5).expect("related");
    });
    let answers: Vec<_> = load_answers(&repo.join("eval/answers.toml")).expect("answers").into_iter().filter(|a| a.kind == "excellent").collect();
    let mean_words = answers.iter().map(|a| a.answer.split_whitespace().count()).sum::<usize>() / answers.len().max(1);
    measure(&format!("review, excellent eval answers (mean {mean_words} words)"), answers.len() * 3, |run| {
        let answer = &answers[run % answers.len()];
        engine.review(&Target::Corpus(answer.question_id.clone()), &answer.answer).expect("review");
    });
    let long_answers: Vec<(String, String)> = snapshot
        .corpus()
        .questions()
        .iter()
        .filter(|q| (180..=260).contains(&q.entry.answer.split_whitespace().count()))
        .map(|q| (q.id().to_string(), q.entry.answer.clone()))
        .collect();
    let mean_words = long_answers.iter().map(|(_, a)| a.split_whitespace().count()).sum::<usize>() / long_answers.len().max(1);
    measure(&format!("review, 180-260-word answers (mean {mean_words} words)"), long_answers.len().min(120), |run| {
        let (id, answer) = &long_answers[run % long_answers.len()];
        engine.review(&Target::Corpus(id.clone()), answer).expect("review");
    });
    println!("\npeak resident memory: {:.0} MiB", peak_rss_mib());
}
