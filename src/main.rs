//! The askmark command line: thin over the library.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use askmark::api::{AppState, ConnectionLimits, ServerConfig};
use askmark::corpus::{Corpus, Difficulty, QuestionEntry};
use askmark::embed::{Embedder, FastEmbedder, ModelPaths};
use askmark::engine::{Change, Engine, Models};
use askmark::eval::{external as external_eval, related as related_eval, review as review_eval, search as search_eval};
use askmark::index::IndexDir;
use askmark::pool::Gate;
use askmark::review::{final_score, Band, Coverage, Flag, ScoreModel, ScoreModels, Target};
use askmark::search::{Mode, Neighbours, RelatedParams, RelevanceFloor, SearchRequest};
use askmark::filter::SearchFilter;
use askmark::vectors::VectorBackend;

/// Search, related follow-ups and answer review for Python interview questions.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    paths: Paths,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Paths {
    /// Folder of corpus TOML files.
    #[arg(long, env = "ASKMARK_CORPUS", default_value = "corpus", global = true)]
    corpus: PathBuf,
    /// Folder holding index generations.
    #[arg(long, env = "ASKMARK_INDEX", default_value = "index", global = true)]
    index: PathBuf,
    /// Folder that scripts/setup-model filled with the model and ONNX Runtime.
    #[arg(long, env = "ASKMARK_MODELS", default_value = "models", global = true)]
    models: PathBuf,
    /// Sentence model: its folder under `--models` ("search", the committed domain-tuned int8
    /// model, or "all-MiniLM-L6-v2", the base checkpoint setup exports). Index generations
    /// record the model; changing it rebuilds the index.
    #[arg(long, env = "ASKMARK_EMBEDDING_MODEL", default_value = askmark::embed::SEARCH_MODEL, global = true)]
    embedding_model: String,
    /// Threads ONNX Runtime may use for one model run.
    #[arg(long, env = "ASKMARK_MODEL_THREADS", default_value_t = 1, global = true)]
    model_threads: usize,
    /// Model sessions run in parallel, each `--model-threads` wide (default: one per core).
    #[arg(long, env = "ASKMARK_MODEL_SESSIONS", global = true)]
    model_sessions: Option<usize>,
    /// Keep vectors on this Qdrant server (gRPC, e.g. http://localhost:6334; https for TLS)
    /// instead of the embedded store.
    #[arg(long, env = "ASKMARK_QDRANT_URL", global = true)]
    qdrant_url: Option<String>,
    #[arg(long, env = "ASKMARK_QDRANT_API_KEY", global = true, hide_env_values = true)]
    qdrant_api_key: Option<String>,
    /// Alias naming the current collection on the server; collections are `<alias>-<hash>`.
    #[arg(long, env = "ASKMARK_QDRANT_COLLECTION", default_value = "askmark", global = true)]
    qdrant_collection: String,
}

impl Paths {
    fn index_dir(&self) -> IndexDir {
        let backend = VectorBackend::choose(self.qdrant_url.clone(), self.qdrant_api_key.clone(), &self.qdrant_collection);
        IndexDir::new(&self.index).with_backend(backend)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Build a new index generation (reusing unchanged embeddings) and make it current.
    Index {
        /// Build even when the current index matches the corpus and model.
        #[arg(long)]
        force: bool,
    },
    /// Search the questions.
    Search {
        query: String,
        #[arg(long, default_value = "hybrid", value_parser = parse_mode)]
        mode: Mode,
        #[arg(long)]
        topic: Option<String>,
        #[arg(long, value_parser = parse_difficulty)]
        difficulty: Option<Difficulty>,
        /// Comma-separated tags that must all be present.
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Questions an interviewer would ask after this one.
    Related {
        id: String,
        #[arg(long, default_value_t = 5)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Review a candidate's answer to a corpus question.
    Review {
        /// Corpus question id.
        #[arg(long)]
        question: String,
        /// File holding the answer (`-` for standard input).
        #[arg(long)]
        answer_file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Serve the HTTP API and the web page (building the index first when missing or stale).
    Serve {
        #[arg(long, env = "ASKMARK_ADDR", default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Embedding/search jobs running at once.
        #[arg(long, env = "ASKMARK_MAX_CPU_JOBS", default_value_t = 8)]
        max_cpu_jobs: usize,
        /// Milliseconds a request may wait for a job slot before it is answered 503 overloaded.
        #[arg(long, env = "ASKMARK_QUEUE_TIMEOUT_MS", default_value_t = 100)]
        queue_timeout_ms: u64,
        /// Comma-separated bearer keys allowed to write questions; none means writes are refused.
        #[arg(long, env = "ASKMARK_API_KEYS", value_delimiter = ',', hide_env_values = true)]
        api_keys: Vec<String>,
        /// Reviews one client (IP address) may request per minute.
        #[arg(long, env = "ASKMARK_REVIEWS_PER_MINUTE", default_value_t = NonZeroU32::new(60).expect("non-zero"))]
        reviews_per_minute: NonZeroU32,
        /// Comma-separated origins allowed to call the API from browsers (CORS); none means same-origin only.
        #[arg(long, env = "ASKMARK_CORS_ORIGINS", value_delimiter = ',')]
        cors_origins: Vec<String>,
        /// Seconds before a request is answered 408.
        #[arg(long, env = "ASKMARK_REQUEST_TIMEOUT", default_value_t = 30)]
        request_timeout: u64,
        /// Connections served at once; more wait in the listen backlog until one closes.
        #[arg(long, env = "ASKMARK_MAX_CONNECTIONS", default_value_t = 1024)]
        max_connections: usize,
        /// Seconds a client has to send a request's headers (idle keep-alive included) before
        /// it is disconnected.
        #[arg(long, env = "ASKMARK_HEADER_READ_TIMEOUT", default_value_t = 10)]
        header_read_timeout: u64,
    },
    /// Adds or replaces a question through the engine's single writer (like `POST /v1/questions`):
    /// validated, written back to the corpus files durably, indexed, swapped in
    Add {
        /// The topic id the question belongs to (moving it there if it is elsewhere)
        #[arg(long)]
        topic: String,
        /// A TOML file holding one entry in the corpus format (`id = ...`, `question = ...`, ...)
        file: PathBuf,
    },
    /// Removes a question no other question names as a follow-up (like `DELETE /v1/questions/{id}`)
    Remove { id: String },
    /// Embed each line of standard input; prints one JSON array of floats per line.
    Embed,
    /// Quality evaluations.
    #[command(subcommand)]
    Eval(EvalCommand),
}

#[derive(Subcommand)]
enum EvalCommand {
    /// hit@1, hit@3, MRR@10 and nDCG@10 per search mode on eval/queries.toml.
    Search {
        #[arg(long, default_value = "eval/queries.toml")]
        queries: PathBuf,
        /// Also grid-search the fusion parameters and print the best.
        #[arg(long)]
        tune: bool,
        /// Also write every query's "nothing matches" signals as JSON lines to this file.
        #[arg(long)]
        observations: Option<PathBuf>,
    },
    /// Precision@3 of the neighbour tail and nDCG@5 of related questions on eval/related.toml,
    /// for each way of finding neighbours and a sweep of the floor.
    Related {
        #[arg(long, default_value = "eval/related.toml")]
        judgements: PathBuf,
    },
    /// Score/grade agreement of answer review on eval/answers.toml, train and held-out splits,
    /// and with --external, verdicts on public graded answers beside the plain cosine.
    Review {
        #[arg(long, default_value = "eval/answers.toml")]
        answers: PathBuf,
        /// Refit the score model on the training splits (ours, and the public ones with
        /// --external) and write it to this file (the committed model is eval/review-model.json).
        #[arg(long)]
        fit: Option<PathBuf>,
        /// Also write every reviewed answer's signals and flags as JSON lines to this file (ours
        /// under both rubrics, then the public ones with their split).
        #[arg(long)]
        observations: Option<PathBuf>,
        /// The public graded answers (../shared/data/asag): report every test split.
        #[arg(long)]
        external: Option<PathBuf>,
        /// Public train answers reviewed per split for the fit and the cosine baseline's cut.
        #[arg(long, default_value_t = 1200)]
        external_train_sample: usize,
    },
}

fn parse_mode(text: &str) -> Result<Mode, String> {
    Mode::parse(text).ok_or_else(|| "expected hybrid, lexical or semantic".to_string())
}

fn parse_difficulty(text: &str) -> Result<Difficulty, String> {
    Difficulty::parse(text).ok_or_else(|| "expected junior, mid or senior".to_string())
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("ASKMARK_LOG").unwrap_or_else(|_| EnvFilter::new("info,qdrant_edge=error")))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let paths = cli.paths;
    let sessions = paths.model_sessions.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let load_embedder = || -> anyhow::Result<Arc<dyn Embedder>> {
        let gate = Arc::new(Gate::new(sessions));
        Ok(Arc::new(FastEmbedder::load(&ModelPaths::under(&paths.models, &paths.embedding_model), sessions, paths.model_threads, gate)?))
    };
    let open = || -> anyhow::Result<Engine> {
        let models = Models::load(&paths.models, &paths.embedding_model, sessions, paths.model_threads)?;
        Ok(Engine::open(&paths.corpus, paths.index_dir(), models)?)
    };
    match cli.command {
        Command::Index { force } => {
            let corpus = Corpus::load_dir(&paths.corpus)?;
            let embedder = load_embedder()?;
            let index = paths.index_dir();
            if !force && index.staleness(&corpus, embedder.model()).is_none() {
                println!("index is up to date ({} questions)", corpus.questions().len());
                return Ok(());
            }
            let generation = index.build(&corpus, embedder.as_ref())?;
            println!("{}", serde_json::to_string_pretty(&generation.manifest)?);
        }
        Command::Search { query, mode, topic, difficulty, tags, limit, json } => {
            let engine = open()?;
            let request = SearchRequest { query, mode, filter: SearchFilter { topic, difficulty, tags }, limit, offset: 0 };
            let results = engine.search(&request)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                if let Some(corrected) = &results.corrected_query {
                    println!("showing results for {corrected:?}");
                }
                if let Some(hint) = &results.hint {
                    println!("{hint}");
                }
                println!("{:>3}  {:<8} {:>4} {:>4}  {:<34} question", "#", "score", "lex", "sem", "id");
                for (position, hit) in results.results.iter().enumerate() {
                    let rank = |r: Option<usize>| r.map_or("-".to_string(), |r| r.to_string());
                    println!(
                        "{:>3}  {:<8.5} {:>4} {:>4}  {:<34} {}",
                        position + 1, hit.score, rank(hit.lexical_rank), rank(hit.semantic_rank), hit.id, hit.question
                    );
                }
                println!("{} candidates, {:.1} ms", results.total, results.took_ms);
            }
        }
        Command::Related { id, limit, json } => {
            let engine = open()?;
            let related = engine.related(&id, limit)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&related)?);
            } else {
                for hit in related {
                    println!("{:<10} {:.3}  {:<34} {}", format!("{:?}", hit.reason), hit.similarity, hit.id, hit.question);
                }
            }
        }
        Command::Serve {
            addr,
            max_cpu_jobs,
            queue_timeout_ms,
            api_keys,
            reviews_per_minute,
            cors_origins,
            request_timeout,
            max_connections,
            header_read_timeout,
        } => {
            let config = ServerConfig {
                max_cpu_jobs,
                queue_timeout: Duration::from_millis(queue_timeout_ms),
                api_keys: askmark::api::api_keys(&api_keys)?,
                reviews_per_minute,
                cors_origins,
                request_timeout: Duration::from_secs(request_timeout),
            };
            let limits = ConnectionLimits { max_connections, header_read_timeout: Duration::from_secs(header_read_timeout) };
            serve(open()?, addr, config, limits)?;
        }
        Command::Review { question, answer_file, json } => {
            let answer = if answer_file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&answer_file).with_context(|| format!("cannot read {}", answer_file.display()))?
            };
            let engine = open()?;
            let verdict = engine.review(&Target::Corpus(question), &answer)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&verdict)?);
            } else {
                println!("score {} ({}), flags {:?}", verdict.score, verdict.grade.as_str(), verdict.flags);
                for point in &verdict.key_points {
                    let mark = match point.covered {
                        Coverage::Covered => "covered",
                        Coverage::Partially => "partly ",
                        Coverage::Missed => "missed ",
                    };
                    println!("  [{mark}] {:.2} {}", point.similarity, point.point);
                }
                println!("{}", verdict.feedback);
            }
        }
        Command::Add { topic, file } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let entry: QuestionEntry = toml::from_str(&text).with_context(|| format!("{} is not a question entry", file.display()))?;
            let applied = open()?.apply(Change::Upsert { topic, entry })?;
            let question = applied.question.context("the writer returned no question")?;
            println!("{} {}", if applied.created { "created" } else { "replaced" }, question.id());
        }
        Command::Remove { id } => {
            open()?.apply(Change::Delete { id: id.clone() })?;
            println!("removed {id}");
        }
        Command::Embed => {
            let embedder = load_embedder()?;
            let lines: Vec<String> = std::io::stdin().lines().collect::<Result<_, _>>()?;
            for chunk in lines.chunks(64) {
                let texts: Vec<&str> = chunk.iter().map(String::as_str).collect();
                for vector in embedder.embed(&texts)? {
                    println!("{}", serde_json::to_string(&vector)?);
                }
            }
        }
        Command::Eval(EvalCommand::Search { queries, tune, observations }) => {
            let engine = open()?;
            let queries = search_eval::load_queries(&queries)?;
            for query in &queries {
                if let Some(missing) = query.relevant.iter().find(|id| engine.snapshot().corpus().get(id).is_none()) {
                    bail!("eval query {:?} names unknown question {missing:?}", query.query);
                }
            }
            print_search_eval(&engine, queries, tune, observations)?;
        }
        Command::Eval(EvalCommand::Related { judgements }) => {
            let engine = open()?;
            print_related_eval(&engine, &related_eval::load_judgements(&judgements)?)?;
        }
        Command::Eval(EvalCommand::Review { answers, fit, observations, external, external_train_sample }) => {
            let engine = open()?;
            let external = external.map(|dir| (dir, external_train_sample, sessions));
            print_review_eval(&engine, review_eval::load_answers(&answers)?, fit, observations, external)?;
        }
    }
    Ok(())
}

fn print_search_eval(engine: &Engine, queries: Vec<search_eval::EvalQuery>, tune: bool, observations: Option<PathBuf>) -> anyhow::Result<()> {
    let count = queries.len();
    let signals = search_eval::collect_signals(engine, queries)?;
    if let Some(path) = observations {
        let lines: Vec<String> = signals
            .iter()
            .map(|s| serde_json::to_string(&search_eval::NoMatchObservation::of(s, &engine.fusion())))
            .collect::<Result<_, _>>()?;
        std::fs::write(path, lines.join("\n") + "\n")?;
    }
    let all: Vec<&search_eval::QuerySignals> = signals.iter().collect();
    let mut kinds: Vec<&str> = signals.iter().filter(|s| !s.query.relevant.is_empty()).map(|s| s.query.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    println!(
        "search evaluation: {count} queries, {} questions, fusion {:?}; ranking metrics over the answerable queries\n",
        engine.snapshot().corpus().questions().len(),
        engine.fusion()
    );
    println!("| slice | mode | hit@1 | hit@3 | MRR@10 | nDCG@10 |");
    println!("|---|---|---|---|---|---|");
    let with_keyword: Vec<&search_eval::QuerySignals> =
        signals.iter().filter(|s| !s.query.relevant.is_empty() && s.query.has_python_keyword()).collect();
    let slices = std::iter::once(("all".to_string(), &all, None))
        .chain(kinds.into_iter().map(|kind| (kind.to_string(), &all, Some(kind))))
        .chain(std::iter::once((format!("with a Python keyword ({})", with_keyword.len()), &with_keyword, None)));
    for (name, queries, kind) in slices {
        for mode in Mode::ALL {
            let m = search_eval::evaluate(queries, mode, &engine.fusion(), kind);
            println!("| {name} | {} | {:.3} | {:.3} | {:.3} | {:.3} |", mode.as_str(), m.hit_at_1, m.hit_at_3, m.mrr_at_10, m.ndcg_at_10);
        }
    }
    let nothing = signals.iter().filter(|s| s.query.relevant.is_empty()).count();
    println!("\nnothing matches: {nothing} queries match nothing in the corpus, {} are answerable (hybrid)\n", count - nothing);
    println!("| floor: any | without a lexical match | with an unknown word | precision of \"no match\" | recall | answerable queries emptied |");
    println!("|---|---|---|---|---|---|");
    let default_floor = RelevanceFloor::default();
    for any in [0.25, 0.28, 0.3, 0.32, 0.35] {
        // An unknown-word floor at `any` adds nothing: the row without it.
        let mut unknown_word_floors = vec![0.35, 0.4, default_floor.with_unknown_word, 0.45, 0.5];
        unknown_word_floors.retain(|floor| *floor > any);
        unknown_word_floors.sort_by(f32::total_cmp);
        unknown_word_floors.dedup();
        for with_unknown_word in std::iter::once(any).chain(unknown_word_floors) {
            let floor = RelevanceFloor { any, without_lexical: default_floor.without_lexical, with_unknown_word };
            let m = search_eval::no_match(&all, Mode::Hybrid, &engine.fusion(), &floor);
            let default = if floor == default_floor { " (default)" } else { "" };
            println!(
                "| {any:.2}{default} | {:.2} | {with_unknown_word:.2} | {:.2} | {:.2} | {:.3} |",
                floor.without_lexical, m.precision, m.recall, m.answerable_emptied
            );
        }
    }
    let answerable: Vec<&search_eval::QuerySignals> = all.iter().copied().filter(|s| !s.query.relevant.is_empty()).collect();
    println!(
        "\nhybrid hit@3 of the answerable queries: {:.3} without a floor, {:.3} with the default floor (an emptied query misses)",
        search_eval::evaluate(&answerable, Mode::Hybrid, &engine.fusion(), None).hit_at_3,
        search_eval::hit_at_3_with_floor(&answerable, &engine.fusion(), &default_floor)
    );
    if tune {
        println!("\nbest fusion parameters (hybrid, by MRR@10 + nDCG@10):");
        let show = |params: &askmark::search::FusionParams, m: &search_eval::Metrics| {
            println!(
                "lexical_weight={:<4} answer_weight={:<5} key_point_weight={:<4} hit@1={:.3} hit@3={:.3} MRR@10={:.3} nDCG@10={:.3}",
                params.lexical_weight, params.answer_weight, params.key_point_weight, m.hit_at_1, m.hit_at_3, m.mrr_at_10, m.ndcg_at_10
            );
        };
        for (params, m) in search_eval::tune(&all).into_iter().take(8) {
            show(&params, &m);
        }
        println!("
cross-check: chosen on one half of the queries, scored on the other half:");
        for (params, m) in search_eval::cross_check(&signals) {
            show(&params, &m);
        }
        let default_params = askmark::search::FusionParams::default();
        println!("the defaults on all queries for comparison:");
        show(&default_params, &search_eval::evaluate(&all, Mode::Hybrid, &default_params, None));
    }
    Ok(())
}

fn print_related_eval(engine: &Engine, judgements: &[related_eval::Judgement]) -> anyhow::Result<()> {
    const LIMIT: usize = 6;
    println!("related evaluation: {} questions, lists of up to {LIMIT}\n", judgements.len());
    println!("| neighbours by | questions leading here | floor | precision@3 of the tail | shown in the tail (of 3) | nDCG@5 of the list |");
    println!("|---|---|---|---|---|---|");
    let params = |method, floor, leads_here| RelatedParams { method, floor, leads_here };
    let mut settings: Vec<RelatedParams> = Neighbours::ALL.iter().map(|method| params(*method, -1.0, false)).collect();
    settings.extend([0.45, 0.5, 0.55, 0.6, 0.65].map(|floor| params(Neighbours::Content, floor, false)));
    settings.extend([0.55, 0.6, 0.65, 0.7, 0.75, 0.8].map(|floor| params(Neighbours::ContentAndTags, floor, false)));
    settings.extend([-1.0, 0.6, 0.65, 0.7, 0.75, 0.8].map(|floor| params(Neighbours::ContentAndTags, floor, true)));
    for setting in settings {
        let lists = judgements
            .iter()
            .map(|j| Ok((j.id.clone(), engine.related_with(&j.id, LIMIT, &setting)?)))
            .collect::<anyhow::Result<std::collections::HashMap<_, _>>>()?;
        let m = related_eval::evaluate(&lists, judgements);
        let floor = if setting.floor < 0.0 { "none".to_string() } else { format!("{:.2}", setting.floor) };
        let default = if setting == RelatedParams::default() { " (default)" } else { "" };
        let leads_here = if setting.leads_here { "first" } else { "no" };
        println!(
            "| {}{default} | {leads_here} | {floor} | {:.3} | {:.2} | {:.3} |",
            setting.method.as_str(), m.precision_at_3, m.neighbours_shown, m.ndcg_at_5
        );
    }
    Ok(())
}

fn print_review_eval(
    engine: &Engine,
    answers: Vec<review_eval::LabelledAnswer>,
    fit: Option<PathBuf>,
    observations_path: Option<PathBuf>,
    external: Option<(PathBuf, usize, usize)>,
) -> anyhow::Result<()> {
    let corpus = review_eval::observe(engine, &answers, review_eval::Rubric::Corpus)?;
    let ad_hoc = review_eval::observe(engine, &answers, review_eval::Rubric::AdHoc)?;
    let (corpus_train, corpus_held_out): (Vec<&review_eval::Observation>, Vec<_>) = corpus.iter().partition(|o| !o.held_out);
    let (ad_hoc_train, ad_hoc_held_out): (Vec<&review_eval::Observation>, Vec<_>) = ad_hoc.iter().partition(|o| !o.held_out);
    let public_train = match &external {
        Some((dir, sample, threads)) => external_eval::TRAIN_SPLITS
            .iter()
            .map(|split| {
                let answers = external_eval::spread_sample(external_eval::load_split(dir, split)?, *sample);
                Ok((*split, external_eval::observe(engine, answers, *threads)?))
            })
            .collect::<anyhow::Result<Vec<_>>>()?,
        None => Vec::new(),
    };
    let models = match &fit {
        Some(path) => {
            let corpus_model =
                review_eval::fit(&review_eval::FitSource::ours(&corpus_train).rows, &corpus_train).context("the corpus fit is singular")?;
            let ours = review_eval::FitSource::ours(&ad_hoc_train);
            let public: Vec<review_eval::FitSource> = public_train.iter().map(|(_, observed)| review_eval::FitSource::public(observed)).collect();
            let (ad_hoc_model, shares, share) =
                review_eval::fit_ad_hoc(&ours, &public, &ad_hoc_train).context("the ad-hoc fit is singular")?;
            if !shares.is_empty() {
                println!("ad-hoc fit, 4-fold cross-validation on the training answers (folds by question):");
                println!("| share of ours | Pearson, ours | AUC, public | merit (mean) |\n|---|---|---|---|");
                for r in &shares {
                    let chosen = if r.share == share { " (chosen)" } else { "" };
                    println!("| {:.2}{chosen} | {:.3} | {:.3} | {:.3} |", r.share, r.our_pearson, r.public_auc, r.merit());
                }
                println!();
            }
            let models = ScoreModels { corpus: corpus_model, ad_hoc: ad_hoc_model };
            std::fs::write(path, serde_json::to_string_pretty(&models)? + "\n")?;
            let sources: Vec<String> = std::iter::once(format!("{} of ours", ad_hoc_train.len()))
                .chain(public_train.iter().map(|(split, observed)| format!("{} of {split}", observed.len())))
                .collect();
            println!("fitted the corpus model on {} of our answers", corpus_train.len());
            println!("fitted the ad-hoc model on {} (ours weigh {share:.2} of it)", sources.join(", "));
            println!("written to {}\n", path.display());
            models
        }
        None => ScoreModels::fitted(),
    };
    print_rubric_eval("corpus questions (curated key points and misconceptions)", &models.corpus, &corpus_train, &corpus_held_out);
    print_rubric_eval("ad hoc (the question's text and reference answers only)", &models.ad_hoc, &ad_hoc_train, &ad_hoc_held_out);
    let public_test = match &external {
        Some((dir, _, threads)) => print_external_eval(engine, &models.ad_hoc, dir, &public_train, *threads)?,
        None => Vec::new(),
    };
    if let Some(path) = observations_path {
        let mut lines: Vec<String> = corpus.iter().chain(&ad_hoc).map(serde_json::to_string).collect::<Result<_, _>>()?;
        for (split, observed) in public_train.iter().chain(&public_test) {
            for o in observed {
                lines.push(serde_json::to_string(&serde_json::json!({ "split": split, "observation": o }))?);
            }
        }
        std::fs::write(path, lines.join("\n") + "\n")?;
    }
    Ok(())
}

/// The score model's formula, then train and held-out agreement, band confusion and scores per
/// kind of answer, for the answers reviewed one way.
fn print_rubric_eval(title: &str, model: &ScoreModel, train: &[&review_eval::Observation], held_out: &[&review_eval::Observation]) {
    println!("## reviewed against {title}\n");
    let terms: Vec<String> =
        ScoreModel::FEATURES.iter().zip(model.weights()).map(|(name, weight)| format!("{weight:+.3}·{name}")).collect();
    println!("score = 100 × ({:+.3} {}), clamped to 0-100", model.bias, terms.join(" "));
    println!("then capped at 25 for too_short / restates_question / keyword_stuffing / off_topic");
    println!("bands: weak < {} <= partial < {} <= good < {} <= excellent\n", model.band_cut_offs[0], model.band_cut_offs[1], model.band_cut_offs[2]);
    println!("| split | answers | Pearson | Spearman | pairwise order | band agreement | must-score-low above 40 | highest must-score-low |");
    println!("|---|---|---|---|---|---|---|---|");
    let reports = [("train", review_eval::report(train, model)), ("held-out", review_eval::report(held_out, model))];
    for (name, r) in &reports {
        let worst = r.worst_must_score_low.as_ref().map_or("-".to_string(), |(s, kind, id)| format!("{s:.0} ({kind}, {id})"));
        println!(
            "| {name} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {worst} |",
            r.answers, r.pearson, r.spearman, r.pairwise, r.band_agreement, r.must_score_low_above_ceiling
        );
    }
    let bands = [Band::OffTopic, Band::Weak, Band::Partial, Band::Good, Band::Excellent];
    for (name, r) in &reports {
        println!("\nband confusion, {name} (rows: human, columns: askmark)");
        println!("| human \\ askmark | {} |", bands.map(Band::as_str).join(" | "));
        println!("|---|{}", "---|".repeat(bands.len()));
        for human in bands {
            let row: Vec<String> = bands.iter().map(|p| r.confusion.get(&(human, *p)).copied().unwrap_or(0).to_string()).collect();
            println!("| {} | {} |", human.as_str(), row.join(" | "));
        }
    }
    let mut by_kind: std::collections::BTreeMap<&str, (Vec<f32>, usize)> = std::collections::BTreeMap::new();
    for o in train.iter().chain(held_out) {
        let (scores, contradicted) = by_kind.entry(o.label.kind.as_str()).or_default();
        scores.push(final_score(model.raw_score(&o.signals), &o.flags).round());
        *contradicted += usize::from(o.flags.contains(&Flag::Contradiction));
    }
    println!("\n| kind | answers | mean score | min | max | flagged contradiction |\n|---|---|---|---|---|---|");
    for (kind, (scores, contradicted)) in by_kind {
        let mean = scores.iter().sum::<f32>() / scores.len() as f32;
        let (min, max) = scores.iter().fold((f32::MAX, f32::MIN), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
        println!("| {kind} | {} | {mean:.1} | {min:.0} | {max:.0} | {contradicted} |", scores.len());
    }
    println!();
}

/// Per public test split: the review's verdicts beside the plain cosine of the same model (its
/// correct/incorrect cut chosen on the matching train split).
fn print_external_eval(
    engine: &Engine,
    model: &ScoreModel,
    dir: &std::path::Path,
    public_train: &[(&'static str, Vec<external_eval::ExternalObservation>)],
    threads: usize,
) -> anyhow::Result<Vec<(&'static str, Vec<external_eval::ExternalObservation>)>> {
    let mut observations = Vec::new();
    println!("\npublic graded answers ({}), never trained on:", dir.display());
    println!("| split | answers | 3-way macro-F1 review / cosine | 2-way accuracy review / cosine | AUC review / cosine |");
    println!("|---|---|---|---|---|");
    for split in external_eval::TEST_SPLITS {
        let family = split.split("_test").next().unwrap_or(split);
        let threshold = public_train
            .iter()
            .find(|(train, _)| train.starts_with(family))
            .map_or(0.5, |(_, observed)| external_eval::best_cosine_threshold(observed));
        let observed = external_eval::observe(engine, external_eval::load_split(dir, split)?, threads)?;
        let gold: Vec<external_eval::Label> = observed.iter().map(|o| o.answer.label).collect();
        let review_labels: Vec<external_eval::Label> = observed.iter().map(|o| external_eval::verdict(model, o)).collect();
        let review_scores: Vec<f64> =
            observed.iter().map(|o| f64::from(final_score(model.raw_score(&o.signals), &o.flags))).collect();
        let cosine_labels: Vec<external_eval::Label> = observed
            .iter()
            .map(|o| if o.cosine >= threshold { external_eval::Label::Correct } else { external_eval::Label::Incorrect })
            .collect();
        let cosine_scores: Vec<f64> = observed.iter().map(|o| f64::from(o.cosine)).collect();
        let review = external_eval::metrics(&gold, &review_labels, &review_scores);
        let cosine = external_eval::metrics(&gold, &cosine_labels, &cosine_scores);
        println!(
            "| {split} | {} | {:.3} / {:.3} | {:.3} / {:.3} | {:.3} / {:.3} |",
            gold.len(), review.macro_f1, cosine.macro_f1, review.accuracy_2way, cosine.accuracy_2way, review.auc, cosine.auc
        );
        observations.push((split, observed));
    }
    Ok(observations)
}

fn serve(engine: Engine, addr: SocketAddr, config: ServerConfig, limits: ConnectionLimits) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let questions = engine.snapshot().corpus().questions().len();
        let writes = if config.api_keys.is_empty() { "disabled" } else { "enabled" };
        let state = AppState::new(engine.clone(), config);
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        tracing::info!(%addr, questions, writes, max_connections = limits.max_connections, "serving");
        askmark::api::serve(listener, askmark::api::router(state), limits, shutdown_signal()).await;
        engine.finish_writes().await;
        tracing::info!("shut down: in-flight requests and queued writes finished");
        Ok(())
    })
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
