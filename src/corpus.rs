//! The question corpus: `corpus/<nn>-<topic>.toml` files, loaded and validated as a whole.
//!
//! Loading never stops at the first problem: every problem is reported with its file and question
//! id, so an author fixes a file in one pass. This module knows nothing of indexes or HTTP.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bounds every entry must respect; the corpus files and the admin API share them.
pub mod limits {
    pub const ANSWER_WORDS: std::ops::RangeInclusive<usize> = 120..=300;
    pub const ALTERNATIVE_WORDS: std::ops::RangeInclusive<usize> = 60..=300;
    pub const KEY_POINTS: std::ops::RangeInclusive<usize> = 3..=9;
    pub const KEY_POINT_CHARS: std::ops::RangeInclusive<usize> = 20..=220;
    pub const MAX_MISCONCEPTIONS: usize = 4;
    pub const TAGS: std::ops::RangeInclusive<usize> = 1..=8;
    pub const MIN_FOLLOW_UPS: usize = 2;
    pub const QUESTION_CHARS: std::ops::RangeInclusive<usize> = 10..=300;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Difficulty {
    Junior,
    Mid,
    Senior,
}

impl Difficulty {
    pub fn as_str(self) -> &'static str {
        match self {
            Difficulty::Junior => "junior",
            Difficulty::Mid => "mid",
            Difficulty::Senior => "senior",
        }
    }

    pub fn parse(text: &str) -> Option<Difficulty> {
        match text {
            "junior" => Some(Difficulty::Junior),
            "mid" => Some(Difficulty::Mid),
            "senior" => Some(Difficulty::Senior),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// From the user's own seed list; the question text is kept verbatim.
    Seed,
    /// Written for askmark, usually as a natural follow-up the seed lacks.
    Added,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topic {
    pub id: String,
    pub title: String,
}

/// One entry as written in a corpus file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuestionEntry {
    pub id: String,
    pub question: String,
    pub source: Source,
    pub difficulty: Difficulty,
    pub tags: Vec<String>,
    pub answer: String,
    pub key_points: Vec<String>,
    /// Wrong claims candidates typically make for this question; an answer that says one is
    /// flagged as a contradiction.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub misconceptions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<String>,
    pub follow_ups: Vec<String>,
}

/// A validated question with the topic it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Question {
    #[serde(flatten)]
    pub entry: QuestionEntry,
    pub topic: String,
}

impl Question {
    pub fn id(&self) -> &str {
        &self.entry.id
    }

    /// Hash of everything that is embedded or indexed for this question, so a rebuild can tell
    /// which questions changed.
    pub fn content_hash(&self) -> String {
        let entry = &self.entry;
        let mut hasher = Sha256::new();
        for part in [&entry.question, &entry.answer]
            .into_iter()
            .chain(&entry.key_points)
            .chain(&entry.misconceptions)
            .chain(&entry.alternatives)
        {
            hasher.update(part.as_bytes());
            hasher.update([0u8]);
        }
        hex(&hasher.finalize())
    }

    /// Reference answers in order: the main answer, then the alternatives.
    pub fn references(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.entry.answer.as_str()).chain(self.entry.alternatives.iter().map(String::as_str))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CorpusFile {
    topic: Topic,
    #[serde(default)]
    questions: Vec<QuestionEntry>,
}

/// Where a problem is and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.question {
            Some(question) => write!(formatter, "{}: {}: {}", self.file, question, self.message),
            None => write!(formatter, "{}: {}", self.file, self.message),
        }
    }
}

/// Every problem found while loading, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{} corpus problem(s):\n{}", .0.len(), .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
pub struct CorpusProblems(pub Vec<Problem>);

#[derive(Debug, Clone)]
pub struct Corpus {
    topics: Vec<Topic>,
    questions: Vec<Question>,
    position_by_id: HashMap<String, usize>,
    /// The file each topic came from, so writes go back to the right place.
    topic_files: HashMap<String, PathBuf>,
}

impl Corpus {
    /// Loads every `*.toml` file of `dir` in name order and validates the whole.
    pub fn load_dir(dir: &Path) -> Result<Corpus, CorpusProblems> {
        let mut problems = Vec::new();
        let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
                .collect(),
            Err(error) => {
                return Err(CorpusProblems(vec![Problem {
                    file: dir.display().to_string(),
                    question: None,
                    message: format!("cannot read corpus directory: {error}"),
                }]))
            }
        };
        paths.sort();
        let mut files = Vec::new();
        for path in paths {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let parsed = std::fs::read_to_string(&path)
                .map_err(|error| format!("cannot read file: {error}"))
                .and_then(|text| toml::from_str::<CorpusFile>(&text).map_err(|error| format!("invalid toml: {error}")));
            match parsed {
                Ok(file) => files.push((name, path, file)),
                Err(message) => problems.push(Problem { file: name, question: None, message }),
            }
        }
        let mut topics = Vec::new();
        let mut questions = Vec::new();
        let mut topic_files = HashMap::new();
        for (name, path, file) in files {
            topic_files.insert(file.topic.id.clone(), path);
            for entry in file.questions {
                questions.push((name.clone(), Question { entry, topic: file.topic.id.clone() }));
            }
            topics.push((name, file.topic));
        }
        problems.extend(validate(&topics, &questions));
        if !problems.is_empty() {
            return Err(CorpusProblems(problems));
        }
        Ok(Corpus::from_parts(
            topics.into_iter().map(|(_, topic)| topic).collect(),
            questions.into_iter().map(|(_, question)| question).collect(),
            topic_files,
        ))
    }

    fn from_parts(topics: Vec<Topic>, questions: Vec<Question>, topic_files: HashMap<String, PathBuf>) -> Corpus {
        let position_by_id = questions.iter().enumerate().map(|(i, q)| (q.entry.id.clone(), i)).collect();
        Corpus { topics, questions, position_by_id, topic_files }
    }

    pub fn topics(&self) -> &[Topic] {
        &self.topics
    }

    pub fn questions(&self) -> &[Question] {
        &self.questions
    }

    pub fn get(&self, id: &str) -> Option<&Question> {
        self.position_by_id.get(id).map(|&position| &self.questions[position])
    }

    pub fn topic_file(&self, topic: &str) -> Option<&Path> {
        self.topic_files.get(topic).map(PathBuf::as_path)
    }

    /// Number of questions per topic id, in topic order.
    pub fn topic_counts(&self) -> Vec<(&Topic, usize)> {
        self.topics
            .iter()
            .map(|topic| (topic, self.questions.iter().filter(|q| q.topic == topic.id).count()))
            .collect()
    }

    /// Hash over every question's content hash and metadata: equal hashes mean an identical corpus.
    pub fn hash(&self) -> String {
        let mut hasher = Sha256::new();
        for question in &self.questions {
            hasher.update(question.entry.id.as_bytes());
            hasher.update(question.topic.as_bytes());
            hasher.update(question.content_hash().as_bytes());
            hasher.update(serde_json::to_vec(&question.entry).unwrap_or_default());
        }
        hex(&hasher.finalize())
    }

    /// A copy with `entry` added to `topic` (or replacing the entry of the same id), validated
    /// exactly like a corpus file.
    pub fn with_upserted(&self, topic: &str, entry: QuestionEntry) -> Result<Corpus, CorpusProblems> {
        let mut questions: Vec<(String, Question)> = Vec::with_capacity(self.questions.len() + 1);
        let new_question = Question { entry, topic: topic.to_string() };
        let mut replaced = false;
        for question in &self.questions {
            if question.entry.id == new_question.entry.id {
                replaced = true;
                questions.push((self.file_label(topic), new_question.clone()));
            } else {
                questions.push((self.file_label(&question.topic), question.clone()));
            }
        }
        if !replaced {
            questions.push((self.file_label(topic), new_question));
        }
        let topics: Vec<(String, Topic)> = self.topics.iter().map(|t| (self.file_label(&t.id), t.clone())).collect();
        let mut problems = validate(&topics, &questions);
        if !self.topics.iter().any(|t| t.id == topic) {
            problems.insert(0, Problem { file: "request".into(), question: None, message: format!("unknown topic {topic:?}") });
        }
        if !problems.is_empty() {
            return Err(CorpusProblems(problems));
        }
        Ok(Corpus::from_parts(self.topics.clone(), questions.into_iter().map(|(_, q)| q).collect(), self.topic_files.clone()))
    }

    /// A copy without the question `id`; refuses when another question names it as a follow-up.
    pub fn without(&self, id: &str) -> Result<Corpus, CorpusProblems> {
        let referrers: Vec<Problem> = self
            .questions
            .iter()
            .filter(|q| q.entry.follow_ups.iter().any(|f| f == id))
            .map(|q| Problem {
                file: self.file_label(&q.topic),
                question: Some(q.entry.id.clone()),
                message: format!("names {id:?} as a follow-up"),
            })
            .collect();
        if !referrers.is_empty() {
            return Err(CorpusProblems(referrers));
        }
        let questions = self.questions.iter().filter(|q| q.entry.id != id).cloned().collect();
        Ok(Corpus::from_parts(self.topics.clone(), questions, self.topic_files.clone()))
    }

    fn file_label(&self, topic: &str) -> String {
        self.topic_files
            .get(topic)
            .and_then(|path| path.file_name())
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("{topic}.toml"))
    }

    /// The text of one topic's file as it would be written.
    fn render_topic_file(&self, topic_id: &str) -> std::io::Result<(PathBuf, String)> {
        let Some(path) = self.topic_files.get(topic_id) else {
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, format!("no file for topic {topic_id}")));
        };
        let Some(topic) = self.topics.iter().find(|t| t.id == topic_id) else {
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, format!("unknown topic {topic_id}")));
        };
        let file = SerializedFile {
            topic,
            questions: self.questions.iter().filter(|q| q.topic == topic_id).map(|q| &q.entry).collect(),
        };
        Ok((path.clone(), toml::to_string(&file).map_err(std::io::Error::other)?))
    }

    /// Writes the files of `topic_ids` back in one crash-safe step: their new texts go into a
    /// journal first (durably), then each file is replaced, then the journal is removed. A crash
    /// in between leaves the journal, and `recover` finishes the step before the next load, so a
    /// question moved between two topics is never in both files or in neither.
    pub fn write_topic_files(&self, topic_ids: &[&str]) -> std::io::Result<()> {
        let mut files = Vec::new();
        for topic_id in topic_ids {
            files.push(self.render_topic_file(topic_id)?);
        }
        let Some(folder) = files.first().and_then(|(path, _)| path.parent()).map(Path::to_path_buf) else {
            return Ok(());
        };
        let journal = Journal {
            files: files
                .iter()
                .map(|(path, text)| JournalFile { name: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), text: text.clone() })
                .collect(),
        };
        let journal_path = folder.join(JOURNAL);
        crate::durable::replace_file(&journal_path, &serde_json::to_vec(&journal).map_err(std::io::Error::other)?)?;
        journal.replay(&folder)?;
        crate::durable::remove_file(&journal_path)
    }

    /// Finishes a write a crash interrupted (see `write_topic_files`) and removes left-over temp
    /// files; returns whether there was a journal to replay. Run before `load_dir`.
    pub fn recover(dir: &Path) -> std::io::Result<bool> {
        crate::durable::remove_temporaries(dir)?;
        let journal_path = dir.join(JOURNAL);
        let bytes = match std::fs::read(&journal_path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(error) => return Err(error),
        };
        // The journal is renamed into place only once complete, so it always parses.
        let journal: Journal = serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
        journal.replay(dir)?;
        crate::durable::remove_file(&journal_path)?;
        Ok(true)
    }
}

/// The corpus files' journal, in the corpus folder (not a `.toml`, so the loader skips it).
const JOURNAL: &str = ".askmark-journal.json";

#[derive(Serialize, Deserialize)]
struct Journal {
    files: Vec<JournalFile>,
}

#[derive(Serialize, Deserialize)]
struct JournalFile {
    name: String,
    text: String,
}

impl Journal {
    fn replay(&self, folder: &Path) -> std::io::Result<()> {
        for file in &self.files {
            crate::durable::replace_file(&folder.join(&file.name), file.text.as_bytes())?;
        }
        Ok(())
    }
}

#[derive(Serialize)]
struct SerializedFile<'a> {
    topic: &'a Topic,
    questions: Vec<&'a QuestionEntry>,
}

fn is_slug(text: &str) -> bool {
    !text.is_empty()
        && text.split('-').all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}


fn normalized(text: &str) -> String {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks one entry on its own (no cross-references); shared with the admin API.
pub fn entry_problems(entry: &QuestionEntry) -> Vec<String> {
    let mut messages = Vec::new();
    if !is_slug(&entry.id) {
        messages.push("id must be a lowercase slug (a-z, 0-9, single hyphens)".to_string());
    }
    let question_chars = entry.question.trim().chars().count();
    if !limits::QUESTION_CHARS.contains(&question_chars) {
        messages.push(format!("question has {question_chars} characters, needs {:?}", limits::QUESTION_CHARS));
    }
    if !limits::TAGS.contains(&entry.tags.len()) {
        messages.push(format!("{} tags, needs {:?}", entry.tags.len(), limits::TAGS));
    }
    for tag in entry.tags.iter().filter(|tag| !is_slug(tag)) {
        messages.push(format!("tag {tag:?} is not a lowercase slug"));
    }
    let answer_words = crate::text::word_count(&entry.answer);
    if !limits::ANSWER_WORDS.contains(&answer_words) {
        messages.push(format!("answer has {answer_words} words, needs {:?}", limits::ANSWER_WORDS));
    }
    for (position, alternative) in entry.alternatives.iter().enumerate() {
        let words = crate::text::word_count(alternative);
        if !limits::ALTERNATIVE_WORDS.contains(&words) {
            messages.push(format!("alternative {position} has {words} words, needs {:?}", limits::ALTERNATIVE_WORDS));
        }
    }
    if !limits::KEY_POINTS.contains(&entry.key_points.len()) {
        messages.push(format!("{} key points, needs {:?}", entry.key_points.len(), limits::KEY_POINTS));
    }
    for point in &entry.key_points {
        let chars = point.chars().count();
        if !limits::KEY_POINT_CHARS.contains(&chars) {
            messages.push(format!("key point has {chars} characters, needs {:?}: {point:?}", limits::KEY_POINT_CHARS));
        }
    }
    if entry.misconceptions.len() > limits::MAX_MISCONCEPTIONS {
        messages.push(format!("{} misconceptions, at most {}", entry.misconceptions.len(), limits::MAX_MISCONCEPTIONS));
    }
    for misconception in &entry.misconceptions {
        let chars = misconception.chars().count();
        if !limits::KEY_POINT_CHARS.contains(&chars) {
            messages.push(format!("misconception has {chars} characters, needs {:?}: {misconception:?}", limits::KEY_POINT_CHARS));
        }
    }
    if entry.follow_ups.len() < limits::MIN_FOLLOW_UPS {
        messages.push(format!("{} follow-ups, needs at least {}", entry.follow_ups.len(), limits::MIN_FOLLOW_UPS));
    }
    let mut seen = HashSet::new();
    for follow_up in &entry.follow_ups {
        if follow_up == &entry.id {
            messages.push("names itself as a follow-up".to_string());
        } else if !seen.insert(follow_up) {
            messages.push(format!("follow-up {follow_up:?} is listed twice"));
        }
    }
    messages
}

/// Validates files' topics and questions together: per-entry rules plus unique ids, resolvable
/// follow-ups and key points not repeated across questions.
fn validate(topics: &[(String, Topic)], questions: &[(String, Question)]) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut topic_ids = HashSet::new();
    for (file, topic) in topics {
        if !is_slug(&topic.id) {
            problems.push(Problem { file: file.clone(), question: None, message: format!("topic id {:?} is not a slug", topic.id) });
        }
        if topic.title.trim().is_empty() {
            problems.push(Problem { file: file.clone(), question: None, message: "topic title is empty".into() });
        }
        if !topic_ids.insert(topic.id.as_str()) {
            problems.push(Problem { file: file.clone(), question: None, message: format!("topic id {:?} is used twice", topic.id) });
        }
    }
    let mut first_file_of_id: HashMap<&str, &str> = HashMap::new();
    for (file, question) in questions {
        if let Some(previous) = first_file_of_id.insert(&question.entry.id, file) {
            problems.push(Problem {
                file: file.clone(),
                question: Some(question.entry.id.clone()),
                message: format!("duplicate id (also in {previous})"),
            });
        }
    }
    let mut key_point_owner: BTreeMap<String, &str> = BTreeMap::new();
    for (file, question) in questions {
        let entry = &question.entry;
        let mut messages = entry_problems(entry);
        for follow_up in &entry.follow_ups {
            if follow_up != &entry.id && !first_file_of_id.contains_key(follow_up.as_str()) {
                messages.push(format!("follow-up {follow_up:?} resolves to no question"));
            }
        }
        for point in &entry.key_points {
            if let Some(owner) = key_point_owner.insert(normalized(point), &entry.id) {
                if owner != entry.id {
                    messages.push(format!("key point also used by {owner}: {point:?}"));
                }
            }
        }
        problems.extend(messages.into_iter().map(|message| Problem {
            file: file.clone(),
            question: Some(entry.id.clone()),
            message,
        }));
    }
    problems
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}
