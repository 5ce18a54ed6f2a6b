//! Crash tests of the admin write path, black box: the release binary serves a copy of the corpus,
//! clients write through HTTP, the process is killed with SIGKILL at seeded random moments and
//! restarted on the same folders. Only HTTP answers and the files a user can see (the corpus TOML
//! files, the index folder's names) are inspected, so the test holds any implementation of the
//! write path to the same promise: an acknowledged write is never lost, nothing unacknowledged is
//! half there, the corpus always loads with each id once, and the generation served is complete.
//!
//! `ASKMARK_CRASH_SEED=<n>` replays a run (the seed is printed on failure), `ASKMARK_CRASH_ROUNDS`
//! changes the number of kills (default 20) and `ASKMARK_CRASH_BIN` tests another build of the
//! binary. The vectors stay in the embedded store: the folders are the state under test.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{header, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::common::repo;

const API_KEY: &str = "crash-test-key";
/// Clients writing at once in a crash round; each owns its ids, so the writes to one id are
/// ordered by the client that sends them.
const CLIENTS: usize = 3;
/// Questions the test creates, per client.
const NEW_IDS_PER_CLIENT: usize = 4;
/// Questions of the real corpus each client moves between topics.
const CORPUS_IDS_PER_CLIENT: usize = 1;
/// How long a patient client waits for an answer (longer than the server's request timeout).
const PATIENT: Duration = Duration::from_secs(60);
/// How long a start may take (it may rebuild the generation a kill interrupted).
const START_WITHIN: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// The server process and its folders

/// A corpus copy and an index folder that outlive every server started on them.
struct Folders {
    _root: tempfile::TempDir,
    corpus: PathBuf,
    index: PathBuf,
    log: PathBuf,
}

/// The real corpus indexed by `askmark index` (one to two minutes on 2 cores), kept in cargo's
/// target tmp folder per binary and corpus so later runs skip it; each test starts from a copy,
/// so only the writes' own builds are timed.
static PREBUILT: LazyLock<PathBuf> = LazyLock::new(|| {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(cache).expect("target tmp folder");
    let prebuilt = cache.join(format!("crash-index-{}", prebuilt_key()));
    if prebuilt.join("index").join("current").exists() {
        return prebuilt;
    }
    let staging = tempfile::tempdir_in(cache).expect("temp dir");
    let corpus = staging.path().join("corpus");
    copy_tree(&repo().join("corpus"), &corpus);
    let output = Command::new(binary())
        .arg("index")
        .arg("--corpus")
        .arg(&corpus)
        .arg("--index")
        .arg(staging.path().join("index"))
        .arg("--models")
        .arg(repo().join("models"))
        .arg("--model-threads")
        .arg("2")
        .env_remove("ASKMARK_QDRANT_URL")
        .output()
        .expect("run askmark index");
    assert!(output.status.success(), "askmark index failed: {}", String::from_utf8_lossy(&output.stderr));
    for stale in std::fs::read_dir(cache).expect("target tmp folder").flatten() {
        if stale.file_name().to_string_lossy().starts_with("crash-index-") {
            let _ = std::fs::remove_dir_all(stale.path());
        }
    }
    // Another test binary may have won the race; its copy is as good.
    let _ = std::fs::rename(staging.keep(), &prebuilt);
    prebuilt
});

/// Names a prebuilt index by the binary that built it and the corpus it holds.
fn prebuilt_key() -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let binary = std::fs::metadata(binary()).expect("the askmark binary");
    hasher.update(format!("{} {:?}", binary.len(), binary.modified().ok()));
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("corpus")).expect("corpus").flatten().map(|entry| entry.path()).collect();
    files.sort();
    for file in files.iter().filter(|path| path.extension().is_some_and(|extension| extension == "toml")) {
        hasher.update(file.file_name().expect("file name").as_encoded_bytes());
        hasher.update(std::fs::read(file).expect("corpus file"));
    }
    hasher.finalize().iter().take(8).map(|byte| format!("{byte:02x}")).collect()
}

/// Copies a folder tree, symlinks as symlinks (the index's `current` link is relative).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create folder");
    for entry in std::fs::read_dir(from).expect("read folder").flatten() {
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().expect("file type");
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&source).expect("read link"), &target).expect("copy link");
        } else if kind.is_dir() {
            copy_tree(&source, &target);
        } else {
            std::fs::copy(&source, &target).expect("copy file");
        }
    }
}

impl Folders {
    /// A copy of the real corpus and of its prebuilt index.
    fn with_corpus_copy() -> Folders {
        let root = tempfile::tempdir().expect("temp dir");
        let (corpus, index) = (root.path().join("corpus"), root.path().join("index"));
        copy_tree(&PREBUILT.join("corpus"), &corpus);
        copy_tree(&PREBUILT.join("index"), &index);
        let log = root.path().join("server.log");
        Folders { corpus, index, log, _root: root }
    }

    /// The end of the server log, for failure messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Every `.building-*` entry anywhere under the index folder.
    fn building_leftovers(&self) -> Vec<String> {
        let mut found = Vec::new();
        let mut pending = vec![self.index.clone()];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(".building-") {
                    found.push(entry.path().display().to_string());
                }
                if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                    pending.push(entry.path());
                }
            }
        }
        found
    }
}

fn binary() -> PathBuf {
    std::env::var_os("ASKMARK_CRASH_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_askmark")))
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    /// Starts `askmark serve` on the folders and waits until `/readyz` answers 200.
    async fn start(folders: &Folders, within: Duration) -> Result<Server, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("free port").port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&folders.log).expect("server log");
        let child = Command::new(binary())
            .arg("serve")
            .arg("--addr")
            .arg(addr.to_string())
            .arg("--corpus")
            .arg(&folders.corpus)
            .arg("--index")
            .arg(&folders.index)
            .arg("--models")
            .arg(repo().join("models"))
            .env("ASKMARK_API_KEYS", API_KEY)
            .env("ASKMARK_LOG", "info")
            .env_remove("ASKMARK_QDRANT_URL")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("server log"))
            .stderr(log)
            .spawn()
            .map_err(|error| format!("cannot start {}: {error}", binary().display()))?;
        let mut server = Server { child, addr };
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("the server exited during start-up ({status}):\n{}", folders.log_tail()));
            }
            if let Reply::Answered(200, _) = call(addr, Method::GET, "/readyz", None, Duration::from_secs(5)).await {
                return Ok(server);
            }
            if Instant::now() > deadline {
                server.kill();
                return Err(format!("the server was not ready within {within:?}:\n{}", folders.log_tail()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL (what `Child::kill` sends on Unix), then reaps the process.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP, one connection per request, so a client that gives up closes its socket

#[derive(Debug, Clone)]
enum Reply {
    Answered(u16, Value),
    /// No answer: refused, reset, or the client hung up after its patience ran out.
    Unanswered(String),
}

async fn call(addr: SocketAddr, method: Method, path: &str, body: Option<&Value>, patience: Duration) -> Reply {
    match tokio::time::timeout(patience, exchange(addr, method, path, body)).await {
        Ok(Ok((status, bytes))) => Reply::Answered(status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)),
        Ok(Err(error)) => Reply::Unanswered(error),
        Err(_) => Reply::Unanswered(format!("the client hung up after {} ms", patience.as_millis())),
    }
}

async fn exchange(addr: SocketAddr, method: Method, path: &str, body: Option<&Value>) -> Result<(u16, Bytes), String> {
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|error| format!("connect: {error}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|error| format!("handshake: {error}"))?;
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, addr.to_string())
        .header(header::CONNECTION, "close")
        .header(header::AUTHORIZATION, format!("Bearer {API_KEY}"));
    let payload = match body {
        Some(json) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Bytes::from(json.to_string())
        }
        None => Bytes::new(),
    };
    let request = request.body(Full::new(payload)).map_err(|error| format!("request: {error}"))?;
    let response = async move {
        let response = sender.send_request(request).await.map_err(|error| format!("send: {error}"))?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.map_err(|error| format!("read: {error}"))?.to_bytes();
        Ok((status, bytes))
    };
    let (result, _closed) = tokio::join!(response, connection);
    result
}

fn path_of(id: &str) -> String {
    format!("/v1/questions/{id}")
}

// ---------------------------------------------------------------------------------------------
// What a question holds, as sent, as served and as written in a corpus file

#[derive(Debug, Clone, PartialEq, Eq)]
struct Content {
    topic: String,
    question: String,
    source: String,
    difficulty: String,
    tags: Vec<String>,
    answer: String,
    key_points: Vec<String>,
    misconceptions: Vec<String>,
    alternatives: Vec<String>,
    follow_ups: Vec<String>,
}

impl Content {
    /// From a corpus-file entry, an upsert entry or a `GET /v1/questions/{id}` answer (whose
    /// follow-ups are objects with an `id`).
    fn from_entry(topic: &str, entry: &Value) -> Content {
        let text = |field: &str| entry[field].as_str().unwrap_or_default().to_string();
        let list = |field: &str| -> Vec<String> {
            entry[field]
                .as_array()
                .map(|items| items.iter().filter_map(|item| item.as_str().or_else(|| item["id"].as_str()).map(String::from)).collect())
                .unwrap_or_default()
        };
        Content {
            topic: topic.to_string(),
            question: text("question"),
            source: text("source"),
            difficulty: text("difficulty"),
            tags: list("tags"),
            answer: text("answer"),
            key_points: list("key_points"),
            misconceptions: list("misconceptions"),
            alternatives: list("alternatives"),
            follow_ups: list("follow_ups"),
        }
    }

    fn upsert_body(&self, id: &str) -> Value {
        json!({
            "topic": self.topic,
            "question": {
                "id": id,
                "question": self.question,
                "source": self.source,
                "difficulty": self.difficulty,
                "tags": self.tags,
                "answer": self.answer,
                "key_points": self.key_points,
                "misconceptions": self.misconceptions,
                "alternatives": self.alternatives,
                "follow_ups": self.follow_ups,
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Absent,
    Present(Content),
}

impl State {
    fn label(&self) -> String {
        match self {
            State::Absent => "absent".into(),
            State::Present(content) => format!("in {} as {:?}", content.topic, content.question.chars().take(70).collect::<String>()),
        }
    }
}

const WORDS: &[&str] = &[
    "the", "writer", "journal", "records", "each", "change", "before", "it", "renames", "a", "temporary", "file", "over", "corpus",
    "so", "reader", "sees", "old", "or", "new", "version", "never", "half", "of", "one", "after", "crash", "restart", "replays",
    "pending", "entries", "and", "index", "generation", "swaps", "atomically", "while", "clients", "wait", "for", "durable",
    "acknowledgement", "fsync", "directory", "queue", "order", "topic", "moves", "update", "both", "files", "together",
];

/// A valid new entry whose every text carries `marker`, a word found nowhere else, so a lexical
/// search for it finds exactly this version.
fn new_content(marker: &str, topic: &str, follow_ups: &[String], alternatives: usize, rng: &mut StdRng) -> Content {
    let answer_words = rng.random_range(130..=180);
    let mut prose = |words: usize| -> String {
        let mut text = vec![marker.to_string()];
        text.extend((1..words).map(|_| WORDS.choose(rng).expect("words").to_string()));
        text.join(" ") + "."
    };
    let answer = prose(answer_words);
    let alternatives = (0..alternatives).map(|_| prose(290)).collect();
    Content {
        topic: topic.to_string(),
        question: format!("How does the {marker} service keep an acknowledged write through a crash?"),
        source: "added".into(),
        difficulty: ["junior", "mid", "senior"].choose(rng).expect("difficulties").to_string(),
        tags: vec!["crash-test".into()],
        answer,
        key_points: vec![
            format!("{marker}: a write is acknowledged only once it is durable."),
            format!("{marker}: a restart finds the old or the new version, never half of one."),
            format!("{marker}: a move between topics updates both files in one step."),
        ],
        misconceptions: Vec::new(),
        alternatives,
        follow_ups: follow_ups.to_vec(),
    }
}

// ---------------------------------------------------------------------------------------------
// The corpus on disk

struct DiskCorpus {
    topics: Vec<String>,
    /// id -> every (file, content) holding it; more than one is a broken corpus.
    questions: BTreeMap<String, Vec<(String, Content)>>,
    problems: Vec<String>,
}

/// Reads every `*.toml` file of the corpus folder the way a restart would see it.
fn read_disk_corpus(dir: &Path) -> DiskCorpus {
    let mut corpus = DiskCorpus { topics: Vec::new(), questions: BTreeMap::new(), problems: Vec::new() };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("corpus folder")
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "toml"))
        .collect();
    paths.sort();
    for path in paths {
        let file = path.file_name().expect("file name").to_string_lossy().into_owned();
        let parsed = std::fs::read_to_string(&path).map_err(|error| error.to_string()).and_then(|text| {
            let table: toml::Table = toml::from_str(&text).map_err(|error| error.to_string())?;
            serde_json::to_value(table).map_err(|error| error.to_string())
        });
        let value = match parsed {
            Ok(value) => value,
            Err(error) => {
                corpus.problems.push(format!("corpus file {file} does not parse: {error}"));
                continue;
            }
        };
        let Some(topic) = value["topic"]["id"].as_str() else {
            corpus.problems.push(format!("corpus file {file} has no topic id"));
            continue;
        };
        corpus.topics.push(topic.to_string());
        for entry in value["questions"].as_array().into_iter().flatten() {
            let id = entry["id"].as_str().unwrap_or_default().to_string();
            corpus.questions.entry(id).or_default().push((file.clone(), Content::from_entry(topic, entry)));
        }
    }
    corpus
}

// ---------------------------------------------------------------------------------------------
// The model: every write sent to a tracked id and what came of it

#[derive(Debug, Clone)]
enum Outcome {
    /// 2xx, or 404 to a delete (the id was absent then, which is the delete's outcome too).
    Acknowledged(u16),
    /// A 4xx that changed nothing.
    Refused(u16),
    /// No answer, a timeout or a 5xx: the write may or may not have happened.
    Unknown(String),
}

impl Outcome {
    fn label(&self) -> String {
        match self {
            Outcome::Acknowledged(status) => format!("acknowledged ({status})"),
            Outcome::Refused(status) => format!("refused ({status})"),
            Outcome::Unknown(why) => format!("unknown ({why})"),
        }
    }
}

#[derive(Debug, Clone)]
struct Write {
    what: String,
    after: State,
    outcome: Outcome,
}

#[derive(Default)]
struct Model {
    /// The state each tracked id had when the last restart was checked.
    baseline: BTreeMap<String, State>,
    /// Writes since then, in the order their (single) client sent them.
    writes: BTreeMap<String, Vec<Write>>,
    violations: Vec<String>,
    next_marker: u64,
}

impl Model {
    /// The states a restarted server may serve for `id`: the last acknowledged write's (or the
    /// baseline's) and those of every later write that was not refused.
    fn allowed(&self, id: &str) -> Vec<State> {
        let writes = self.writes.get(id).map(Vec::as_slice).unwrap_or_default();
        let last_acknowledged = writes.iter().rposition(|write| matches!(write.outcome, Outcome::Acknowledged(_)));
        let (first, later) = match last_acknowledged {
            Some(position) => (writes[position].after.clone(), &writes[position + 1..]),
            None => (self.baseline[id].clone(), writes),
        };
        std::iter::once(first)
            .chain(later.iter().filter(|write| !matches!(write.outcome, Outcome::Refused(_))).map(|write| write.after.clone()))
            .collect()
    }

    /// What the client believes the id holds: the last write that was not refused.
    fn intended(&self, id: &str) -> State {
        let writes = self.writes.get(id).map(Vec::as_slice).unwrap_or_default();
        writes
            .iter()
            .rev()
            .find(|write| !matches!(write.outcome, Outcome::Refused(_)))
            .map(|write| write.after.clone())
            .unwrap_or_else(|| self.baseline[id].clone())
    }

    fn history(&self, id: &str) -> String {
        let writes = self.writes.get(id).map(Vec::as_slice).unwrap_or_default();
        writes.iter().map(|write| format!("\n      {} -> {}", write.what, write.outcome.label())).collect()
    }

    /// A violation when `observed` is not a state the writes to `id` allow: a lost or undone
    /// acknowledged write, or content no single write sent (half of one).
    fn judge(&self, id: &str, observed: &State, when: &str) -> Option<String> {
        let allowed = self.allowed(id);
        if allowed.contains(observed) {
            return None;
        }
        let writes = self.writes.get(id).map(Vec::as_slice).unwrap_or_default();
        let ever_sent = std::iter::once(&self.baseline[id]).chain(writes.iter().map(|write| &write.after)).any(|state| state == observed);
        let kind = if ever_sent { "an acknowledged write was lost or undone" } else { "content no single write sent" };
        Some(format!(
            "{id} is {} {when} ({kind}); its writes allow only {:?}; history:{}",
            observed.label(),
            allowed.iter().map(State::label).collect::<Vec<_>>(),
            self.history(id)
        ))
    }

    fn marker(&mut self) -> String {
        self.next_marker += 1;
        format!("crashmark{}", self.next_marker)
    }

    /// Records a write and checks what its answer says about the state before it: a 201 means
    /// the id was absent, a 200 or 204 that it was present, a 404 to a delete that it was absent.
    fn record(&mut self, id: &str, what: String, after: State, reply: Reply) {
        let is_delete = after == State::Absent;
        let outcome = match &reply {
            Reply::Answered(status @ 200..=299, _) => Outcome::Acknowledged(*status),
            Reply::Answered(404, _) if is_delete => Outcome::Acknowledged(404),
            Reply::Answered(status @ (408 | 503), _) => Outcome::Unknown(format!("answered {status}")),
            Reply::Answered(status @ 500..=599, body) => {
                self.violations.push(format!("{id}: {what} answered {status}: {body}"));
                Outcome::Unknown(format!("answered {status}"))
            }
            Reply::Answered(status, body) => {
                self.violations.push(format!("{id}: the valid write {what} was refused with {status}: {body}"));
                Outcome::Refused(*status)
            }
            Reply::Unanswered(why) => Outcome::Unknown(why.clone()),
        };
        if let Outcome::Acknowledged(status) = outcome {
            let before_was_present = match status {
                201 => Some(false),
                200 | 204 => Some(true),
                404 => Some(false),
                _ => None,
            };
            if let Some(present) = before_was_present {
                let allowed = self.allowed(id);
                if !allowed.iter().any(|state| (*state != State::Absent) == present) {
                    self.violations.push(format!(
                        "{id}: {what} answered {status}, so the id was {} before it, but the writes so far allow only {:?}; history:{}",
                        if present { "present" } else { "absent" },
                        allowed.iter().map(State::label).collect::<Vec<_>>(),
                        self.history(id)
                    ));
                }
            }
        }
        self.writes.entry(id.to_string()).or_default().push(Write { what, after, outcome });
    }
}

/// The questions the writers may touch and how.
struct Plan {
    topics: Vec<String>,
    /// Corpus questions nobody deletes: the follow-ups of every new question.
    follow_ups: Vec<String>,
    /// Real corpus questions that are only ever moved between topics (with their content).
    movable: Vec<String>,
}

/// One write a client chooses from what it believes the id holds.
fn choose_write(model: &mut Model, plan: &Plan, id: &str, rng: &mut StdRng) -> (Method, String, Option<Value>, State, String) {
    let intended = model.intended(id);
    let other_topic = |current: &str, rng: &mut StdRng| -> String {
        let others: Vec<&String> = plan.topics.iter().filter(|topic| *topic != current).collect();
        others.choose(rng).expect("several topics").to_string()
    };
    let upsert = |content: Content, what: String| {
        let body = content.upsert_body(id);
        (Method::POST, "/v1/questions".to_string(), Some(body), State::Present(content), what)
    };
    match intended {
        State::Absent => {
            let marker = model.marker();
            let topic = plan.topics.choose(rng).expect("topics").clone();
            let content = new_content(&marker, &topic, &plan.follow_ups, 0, rng);
            upsert(content, format!("create {marker} in {topic}"))
        }
        State::Present(current) if plan.movable.iter().any(|movable| movable == id) => {
            let topic = other_topic(&current.topic, rng);
            let what = format!("move from {} to {topic}", current.topic);
            upsert(Content { topic, ..current }, what)
        }
        State::Present(current) => match rng.random_range(0..100) {
            0..35 => {
                let marker = model.marker();
                let content = new_content(&marker, &current.topic, &plan.follow_ups, 0, rng);
                upsert(content, format!("replace with {marker} in {}", current.topic))
            }
            35..50 => {
                let topic = other_topic(&current.topic, rng);
                let what = format!("move from {} to {topic}", current.topic);
                upsert(Content { topic, ..current }, what)
            }
            50..60 => {
                let marker = model.marker();
                let topic = other_topic(&current.topic, rng);
                let content = new_content(&marker, &topic, &plan.follow_ups, 0, rng);
                upsert(content, format!("move from {} to {topic} as {marker}", current.topic))
            }
            _ => (Method::DELETE, path_of(id), None, State::Absent, "delete".to_string()),
        },
    }
}

/// Writes to its own ids until stopped (or `budget` writes are done); one in four requests
/// hangs up early.
async fn writer(
    addr: SocketAddr,
    ids: Vec<String>,
    plan: Arc<Plan>,
    model: Arc<Mutex<Model>>,
    stop: Arc<AtomicBool>,
    budget: Option<usize>,
    mut rng: StdRng,
) {
    let mut sent = 0;
    while !stop.load(Ordering::SeqCst) && budget.is_none_or(|budget| sent < budget) {
        let id = ids.choose(&mut rng).expect("ids").clone();
        let (method, path, body, after, what) = choose_write(&mut model.lock().unwrap(), &plan, &id, &mut rng);
        let patience = if rng.random_bool(0.25) { Duration::from_millis(rng.random_range(20..600)) } else { PATIENT };
        let reply = call(addr, method, &path, body.as_ref(), patience).await;
        model.lock().unwrap().record(&id, what, after, reply);
        sent += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// Checks after a (re)start

/// Served question ids with their topics, in list order.
async fn served_ids(addr: SocketAddr) -> Result<Vec<(String, String)>, String> {
    match call(addr, Method::GET, "/v1/questions?limit=500", None, PATIENT).await {
        Reply::Answered(200, body) => Ok(body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|item| (item["id"].as_str().unwrap_or_default().to_string(), item["topic"].as_str().unwrap_or_default().to_string()))
            .collect()),
        other => Err(format!("GET /v1/questions?limit=500: {other:?}")),
    }
}

async fn served_state(addr: SocketAddr, id: &str) -> Result<State, String> {
    match call(addr, Method::GET, &path_of(id), None, PATIENT).await {
        Reply::Answered(200, body) => Ok(State::Present(Content::from_entry(body["topic"].as_str().unwrap_or_default(), &body))),
        Reply::Answered(404, _) => Ok(State::Absent),
        other => Err(format!("GET {}: {other:?}", path_of(id))),
    }
}

/// The corpus files and the served questions agree: each id in exactly one file, every file's
/// question served with the file's content and every served question in a file.
async fn check_files_match_served(addr: SocketAddr, folders: &Folders, violations: &mut Vec<String>) -> DiskCorpus {
    let disk = read_disk_corpus(&folders.corpus);
    violations.extend(disk.problems.iter().cloned());
    for (id, copies) in &disk.questions {
        if copies.len() > 1 {
            let files: Vec<&str> = copies.iter().map(|(file, _)| file.as_str()).collect();
            violations.push(format!("{id} is in {} corpus files: {files:?}", copies.len()));
        }
    }
    let served = match served_ids(addr).await {
        Ok(served) => served,
        Err(error) => {
            violations.push(error);
            return disk;
        }
    };
    let served_set: BTreeSet<&str> = served.iter().map(|(id, _)| id.as_str()).collect();
    if served_set.len() != served.len() {
        violations.push(format!("the question list names an id twice ({} items, {} ids)", served.len(), served_set.len()));
    }
    let on_disk: BTreeSet<&str> = disk.questions.keys().map(String::as_str).collect();
    for id in served_set.difference(&on_disk) {
        violations.push(format!("{id} is served but in no corpus file"));
    }
    for id in on_disk.difference(&served_set) {
        violations.push(format!("{id} is in a corpus file but not served"));
    }
    disk
}

/// Everything a restart must show: the corpus loaded whole, every tracked id in a state its
/// writes allow (same on disk as served), a complete `current` generation, no build leftovers.
async fn check_restart(addr: SocketAddr, folders: &Folders, model: &mut Model, untouched: &BTreeSet<String>) -> Vec<String> {
    let mut violations = std::mem::take(&mut model.violations);
    match call(addr, Method::GET, "/readyz", None, PATIENT).await {
        Reply::Answered(200, ready) => {
            let counts = (ready["questions"].as_u64(), ready["lexical_documents"].as_u64(), ready["vectors"].as_u64());
            if counts.0 != counts.1 || counts.0 != counts.2 {
                violations.push(format!("the current generation is incomplete: /readyz says {ready}"));
            }
        }
        other => violations.push(format!("/readyz after start: {other:?}")),
    }
    let disk = check_files_match_served(addr, folders, &mut violations).await;
    let served: BTreeSet<String> = served_ids(addr).await.unwrap_or_default().into_iter().map(|(id, _)| id).collect();
    for id in untouched.difference(&served) {
        violations.push(format!("{id}, a corpus question no write touched, is not served"));
    }
    let leftovers = folders.building_leftovers();
    if !leftovers.is_empty() {
        violations.push(format!("build leftovers remain after the restart: {leftovers:?}"));
    }

    let ids: Vec<String> = model.baseline.keys().cloned().collect();
    let mut observed_states = BTreeMap::new();
    for id in &ids {
        let observed = match served_state(addr, id).await {
            Ok(state) => state,
            Err(error) => {
                violations.push(error);
                continue;
            }
        };
        violations.extend(model.judge(id, &observed, "after the restart"));
        if let State::Present(content) = &observed {
            if let Some(copies) = disk.questions.get(id) {
                if copies.iter().any(|(_, on_disk)| on_disk != content) {
                    violations.push(format!("{id} is served {} but its corpus file holds another version", observed.label()));
                }
            }
        }
        observed_states.insert(id.clone(), observed);
    }

    // The newest acknowledged new version must be findable: its marker is in the lexical index
    // and its vectors are in the store.
    let newest_acknowledged = model
        .writes
        .iter()
        .flat_map(|(id, writes)| writes.iter().map(move |write| (id, write)))
        .filter(|(id, write)| matches!(write.outcome, Outcome::Acknowledged(200 | 201)) && observed_states.get(*id) == Some(&write.after))
        .filter_map(|(id, write)| write.what.split_whitespace().find(|word| word.starts_with("crashmark")).map(|marker| (id.clone(), marker.to_string())))
        .max_by_key(|(_, marker)| marker["crashmark".len()..].parse::<u64>().unwrap_or(0));
    if let Some((id, marker)) = newest_acknowledged {
        for mode in ["lexical", "hybrid"] {
            let path = format!("/v1/search?q={marker}&mode={mode}&limit=3");
            match call(addr, Method::GET, &path, None, PATIENT).await {
                Reply::Answered(200, body) if body["results"][0]["id"] == id.as_str() => {}
                other => violations.push(format!("{path} does not find {id}, acknowledged as {marker}: {other:?}")),
            }
        }
        match call(addr, Method::GET, &format!("/v1/questions/{id}/related?limit=3"), None, PATIENT).await {
            Reply::Answered(200, _) => {}
            other => violations.push(format!("related of {id}, acknowledged as {marker}: {other:?}")),
        }
    }

    // What was observed is the new baseline: nothing from before the kill can still land.
    for (id, observed) in observed_states {
        model.baseline.insert(id, observed);
    }
    model.writes.clear();
    violations
}

/// Before an idle kill: every tracked id is served in a state its writes allow, so a write that
/// lands after a later acknowledged one (issue 12 §1) is caught even when the files are right.
async fn check_while_running(addr: SocketAddr, model: &mut Model) {
    let ids: Vec<String> = model.baseline.keys().cloned().collect();
    for id in ids {
        match served_state(addr, &id).await {
            Ok(observed) => {
                let verdict = model.judge(&id, &observed, "while the server runs");
                model.violations.extend(verdict);
            }
            Err(error) => model.violations.push(error),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The tests

fn seed() -> u64 {
    std::env::var("ASKMARK_CRASH_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64)
}

fn fail(seed: u64, test: &str, when: &str, problems: &[String]) -> ! {
    panic!(
        "{when}: {} problem(s):\n  - {}\nreplay with ASKMARK_CRASH_SEED={seed} cargo test --release --test it {test}",
        problems.len(),
        problems.join("\n  - ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill_at_random_moments() {
    const TEST: &str = "crash::acknowledged_writes_survive_sigkill_at_random_moments";
    let seed = seed();
    let rounds: usize = std::env::var("ASKMARK_CRASH_ROUNDS").ok().and_then(|text| text.parse().ok()).unwrap_or(20);
    eprintln!("crash test seed {seed}, {rounds} rounds");
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();

    let folders = Folders::with_corpus_copy();
    let disk = read_disk_corpus(&folders.corpus);
    assert!(disk.problems.is_empty(), "{:?}", disk.problems);
    let corpus_ids: Vec<String> = disk.questions.keys().cloned().collect();
    let mut picked = corpus_ids.choose_multiple(&mut rng, 2 + CLIENTS * CORPUS_IDS_PER_CLIENT).cloned();
    let follow_ups: Vec<String> = picked.by_ref().take(2).collect();
    let movable: Vec<String> = picked.collect();
    let plan = Arc::new(Plan { topics: disk.topics.clone(), follow_ups, movable: movable.clone() });

    let mut model = Model::default();
    let mut ids_of_client: Vec<Vec<String>> = vec![Vec::new(); CLIENTS];
    for (client, ids) in ids_of_client.iter_mut().enumerate() {
        for number in 0..NEW_IDS_PER_CLIENT {
            let id = format!("crash-c{client}-q{number}");
            model.baseline.insert(id.clone(), State::Absent);
            ids.push(id);
        }
        for id in movable.iter().skip(client * CORPUS_IDS_PER_CLIENT).take(CORPUS_IDS_PER_CLIENT) {
            let (_, content) = disk.questions[id][0].clone();
            model.baseline.insert(id.clone(), State::Present(content));
            ids.push(id.clone());
        }
    }
    let untouched: BTreeSet<String> = corpus_ids.iter().filter(|id| !model.baseline.contains_key(*id)).cloned().collect();
    let model = Arc::new(Mutex::new(model));

    let mut mid_write_kills = 0;
    for round in 0..=rounds {
        let starting = Instant::now();
        let mut server = match Server::start(&folders, START_WITHIN).await {
            Ok(server) => server,
            Err(error) => fail(seed, TEST, &format!("round {round}: the server does not start"), &[error]),
        };
        let start_ms = starting.elapsed().as_millis();
        let mut checked = std::mem::take(&mut *model.lock().unwrap());
        let writes: Vec<&Write> = checked.writes.values().flatten().collect();
        let acknowledged = writes.iter().filter(|write| matches!(write.outcome, Outcome::Acknowledged(_))).count();
        eprintln!("round {round}: restarted in {start_ms} ms after {} writes ({acknowledged} acknowledged)", writes.len());
        let violations = check_restart(server.addr, &folders, &mut checked, &untouched).await;
        *model.lock().unwrap() = checked;
        if !violations.is_empty() {
            fail(seed, TEST, &format!("round {round}, after {round} SIGKILLs"), &violations);
        }
        if round == rounds {
            break;
        }

        let stop = Arc::new(AtomicBool::new(false));
        let idle = rng.random_bool(0.3);
        let budget = idle.then(|| rng.random_range(1..=2));
        let writers: Vec<_> = ids_of_client
            .iter()
            .map(|ids| {
                let rng = StdRng::seed_from_u64(rng.random());
                tokio::spawn(writer(server.addr, ids.clone(), plan.clone(), model.clone(), stop.clone(), budget, rng))
            })
            .collect();
        if idle {
            for writer in writers {
                writer.await.expect("writer");
            }
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
            let mut checked = std::mem::take(&mut *model.lock().unwrap());
            check_while_running(server.addr, &mut checked).await;
            *model.lock().unwrap() = checked;
            server.kill();
        } else {
            tokio::time::sleep(Duration::from_millis(rng.random_range(200..2500))).await;
            stop.store(true, Ordering::SeqCst);
            server.kill();
            mid_write_kills += 1;
            for writer in writers {
                writer.await.expect("writer");
            }
        }
    }
    eprintln!("{rounds} SIGKILLs ({mid_write_kills} while writing) in {:.0?}", started.elapsed());
}

/// Issue 12 §1: a write whose client leaves early is finished in order or not at all, never
/// replayed over later acknowledged writes; concurrent writers keep files and index in step.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_hanging_up_or_twenty_racing_writers_lose_no_acknowledged_write() {
    const TEST: &str = "crash::a_client_hanging_up_or_twenty_racing_writers_lose_no_acknowledged_write";
    let seed = seed();
    eprintln!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let folders = Folders::with_corpus_copy();
    let disk = read_disk_corpus(&folders.corpus);
    let follow_ups: Vec<String> = disk.questions.keys().take(2).cloned().collect();
    let topic = disk.topics[0].clone();
    let mut server = Server::start(&folders, START_WITHIN).await.unwrap_or_else(|error| fail(seed, TEST, "start", &[error]));
    let addr = server.addr;
    let mut violations = Vec::new();

    // A question to delete, then a large upsert to the same topic whose client hangs up at 50 ms,
    // then the delete.
    let doomed = new_content("crashdoomed", &topic, &follow_ups, 0, &mut rng);
    match call(addr, Method::POST, "/v1/questions", Some(&doomed.upsert_body("crash-doomed")), PATIENT).await {
        Reply::Answered(201, _) => {}
        other => fail(seed, TEST, "creating the question to delete", &[format!("{other:?}")]),
    }
    let large = new_content("crashlarge", &topic, &follow_ups, 20, &mut rng);
    let hung_up = call(addr, Method::POST, "/v1/questions", Some(&large.upsert_body("crash-large")), Duration::from_millis(50)).await;
    if let Reply::Answered(status, _) = hung_up {
        violations.push(format!("the large upsert was answered ({status}) within 50 ms: too small to test a hang-up"));
    }
    match call(addr, Method::DELETE, &path_of("crash-doomed"), None, PATIENT).await {
        Reply::Answered(204, _) => {}
        other => violations.push(format!("DELETE crash-doomed: {other:?}")),
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while served_state(addr, "crash-large").await != Ok(State::Present(large.clone())) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    settle(addr, &folders).await;
    match served_state(addr, "crash-doomed").await {
        Ok(State::Absent) => {}
        other => violations.push(format!("crash-doomed was deleted (204) but is served again: {:?}", other.map(|state| state.label()))),
    }
    if read_disk_corpus(&folders.corpus).questions.contains_key("crash-doomed") {
        violations.push("crash-doomed was deleted (204) but is back in a corpus file".into());
    }
    check_files_match_served(addr, &folders, &mut violations).await;

    // Twenty writers at once, each creating its own question in one topic, with 2 s timeouts.
    let racing: Vec<_> = (0..20)
        .map(|number| {
            let content = new_content(&format!("crashrace{number}"), &topic, &follow_ups, 0, &mut rng);
            let id = format!("crash-race-{number}");
            tokio::spawn(async move {
                let reply = call(addr, Method::POST, "/v1/questions", Some(&content.upsert_body(&id)), Duration::from_secs(2)).await;
                (id, content, reply)
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for race in racing {
        let (id, content, reply) = race.await.expect("writer");
        match reply {
            Reply::Answered(200..=299, _) => acknowledged.push((id, content)),
            Reply::Answered(status @ 500..=599, body) if status != 503 => violations.push(format!("{id}: {status} {body}")),
            _ => {}
        }
    }
    settle(addr, &folders).await;
    check_files_match_served(addr, &folders, &mut violations).await;
    for (id, content) in &acknowledged {
        match served_state(addr, id).await {
            Ok(State::Present(served)) if &served == content => {}
            other => violations.push(format!("{id} was acknowledged but is {:?}", other.map(|state| state.label()))),
        }
    }

    // The corpus the writes left must load.
    server.kill();
    match Server::start(&folders, START_WITHIN).await {
        Ok(restarted) => check_files_match_served(restarted.addr, &folders, &mut violations).await,
        Err(error) => {
            violations.push(format!("after the writes: {error}"));
            read_disk_corpus(&folders.corpus)
        }
    };
    if !violations.is_empty() {
        fail(seed, TEST, &format!("{} of 20 racing writes acknowledged", acknowledged.len()), &violations);
    }
}

/// Waits until writes still running on the server (for clients long gone) have finished: no
/// `.building-*` folder and the same questions served and on disk for 3 s (at most 90 s).
async fn settle(addr: SocketAddr, folders: &Folders) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut previous = None;
    let mut steady_since = Instant::now();
    while Instant::now() < deadline {
        let snapshot = (
            served_ids(addr).await.ok(),
            read_disk_corpus(&folders.corpus).questions.keys().cloned().collect::<Vec<_>>(),
            folders.building_leftovers(),
        );
        if previous.as_ref() != Some(&snapshot) || !snapshot.2.is_empty() {
            steady_since = Instant::now();
        } else if steady_since.elapsed() > Duration::from_secs(3) {
            return;
        }
        previous = Some(snapshot);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
