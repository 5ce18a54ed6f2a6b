//! The lexical side: a tantivy index over question, answer, key points and tags with English
//! stemming and field boosts (the analyzer lives in `text`, shared with the reviewer).
//! BM25 finds exact vocabulary; `corrected` turns a word no document holds into the closest
//! word of the corpus, so a typo scores like the word it misspells (the searcher corrects a
//! query once, for BM25, the model and the snippets).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use tantivy_fst::{IntoStreamer, Streamer};

use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, FuzzyTermQuery, Occur, Query, QueryParser, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, STORED, STRING,
};
use tantivy::index::SegmentId;
use tantivy::{doc, DocId, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term};

use crate::corpus::Question;
use crate::error::InternalError;
use crate::filter::SearchFilter;

const ANALYZER: &str = "askmark_en";

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    topic: Field,
    difficulty: Field,
    tag: Field,
    question: Field,
    answer: Field,
    key_points: Field,
    tags_text: Field,
}

impl Fields {
    /// The text fields, in the order of `FIELD_BOOSTS`.
    fn text(&self) -> [Field; 4] {
        [self.question, self.key_points, self.tags_text, self.answer]
    }
}

/// Relative weight of a match in each field: the question text says most about what it is.
pub const FIELD_BOOSTS: [(&str, f32); 4] = [("question", 3.0), ("key_points", 1.5), ("tags_text", 1.5), ("answer", 1.0)];
/// How many edits (a transposition counts one) away from a word of the corpus a query word may
/// be and still count as seen (a typo) for `unknown_words`.
const UNKNOWN_WORD_DISTANCE: u8 = 1;
/// How many edits away a query word no field holds may be corrected to a corpus word, by the
/// query word's length (a transposition counts one): none under 4 letters, 1 under 6, else 2.
fn correction_distance(word: &str) -> u8 {
    match word.chars().count() {
        0..=3 => 0,
        4 | 5 => 1,
        _ => 2,
    }
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let text = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default().set_tokenizer(ANALYZER).set_index_option(IndexRecordOption::WithFreqsAndPositions),
        )
        .set_stored();
    let fields = Fields {
        id: builder.add_text_field("id", STRING | STORED),
        topic: builder.add_text_field("topic", STRING),
        difficulty: builder.add_text_field("difficulty", STRING),
        tag: builder.add_text_field("tag", STRING),
        question: builder.add_text_field("question", text.clone()),
        answer: builder.add_text_field("answer", text.clone()),
        key_points: builder.add_text_field("key_points", text.clone()),
        tags_text: builder.add_text_field("tags_text", text),
    };
    (builder.build(), fields)
}

pub struct LexicalIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    /// Answers as the answer field's analyser tokenises them, by answer text: a snippet then
    /// costs a pass over stored tokens, not stemming the whole answer again.
    answer_tokens: quick_cache::sync::Cache<String, Arc<Vec<AnswerToken>>>,
    /// The question id of each document found, by segment and document: reading a stored
    /// document back costs more than the search (a segment's documents never change; a write
    /// makes new segments, whose ids are new keys).
    question_ids: quick_cache::sync::Cache<(SegmentId, DocId), String>,
    /// The words of the indexed documents, renewed with every commit.
    vocabulary: RwLock<Arc<Vocabulary>>,
}

/// The words of the corpus as written (lower-cased, not stemmed), each with how often it occurs:
/// what a typo is corrected to. Looked up as written, not stemmed: "refrence" is one edit from
/// "reference", but its stem "refrenc" is three from "refer".
struct Vocabulary(tantivy_fst::Map<Vec<u8>>);

impl Vocabulary {
    fn of(searcher: &Searcher, fields: &[Field]) -> Result<Vocabulary, InternalError> {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for segment in searcher.segment_readers() {
            let store = segment.get_store_reader(0).map_err(InternalError::io("open the lexical index's document store"))?;
            for document in segment.doc_ids_alive() {
                let document: TantivyDocument = store.get(document)?;
                for value in fields.iter().flat_map(|field| document.get_all(*field)) {
                    for word in crate::text::unstemmed_words(value.as_str().unwrap_or_default()) {
                        *counts.entry(word).or_default() += 1;
                    }
                }
            }
        }
        let map = tantivy_fst::Map::from_iter(counts).map_err(|error| InternalError::Index(format!("vocabulary: {error}")))?;
        Ok(Vocabulary(map))
    }

    /// The corpus word closest to `word` within `max_distance` edits, the most frequent of
    /// the closest, with its distance (none when nothing is that close).
    fn closest(&self, word: &str, max_distance: u8) -> Result<Option<(String, u8)>, InternalError> {
        for distance in 1..=max_distance {
            // The automaton matches bytes; the field only names the term.
            let automaton = FuzzyTermQuery::new(Term::from_field_text(Field::from_field_id(0), word), distance, true).automaton()?;
            let mut stream = self.0.search(automaton).into_stream();
            let mut best: Option<(Vec<u8>, u64)> = None;
            while let Some((candidate, count)) = stream.next() {
                if best.as_ref().is_none_or(|(_, most)| count > *most) {
                    best = Some((candidate.to_vec(), count));
                }
            }
            if let Some((candidate, _)) = best {
                return Ok(String::from_utf8(candidate).ok().map(|candidate| (candidate, distance)));
            }
        }
        Ok(None)
    }
}

/// A query as the typo corrector left it.
pub struct Correction {
    /// The query with its typos replaced (the query itself when nothing was).
    pub text: String,
    /// The most edits a replaced word needed (0 when none was replaced).
    pub edits: u8,
}

/// One token of an answer: its byte range and its analysed (stemmed, lower-cased) text.
struct AnswerToken {
    from: usize,
    to: usize,
    text: String,
}

/// Answers whose tokens are kept; more than the corpus holds.
const ANSWER_TOKEN_ENTRIES: usize = 2048;
const QUESTION_ID_ENTRIES: usize = 8192;

/// A scored lexical match with its highlighted snippet.
#[derive(Debug, Clone, PartialEq)]
pub struct LexicalHit {
    pub question_id: String,
    pub score: f32,
}

/// A fragment of text with the byte ranges that matched the query.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Snippet {
    pub text: String,
    /// Byte ranges `[start, end)` of `text` that matched the query.
    #[schema(value_type = Vec<Vec<u64>>)]
    pub highlights: Vec<[usize; 2]>,
}

impl LexicalIndex {
    /// Builds a fresh index of `questions` in the empty directory `dir`.
    pub fn build(dir: &Path, questions: &[Question]) -> Result<LexicalIndex, InternalError> {
        std::fs::create_dir_all(dir).map_err(InternalError::io(format!("create {}", dir.display())))?;
        let (schema, fields) = schema();
        let index = Index::create_in_dir(dir, schema)?;
        index.tokenizers().register(ANALYZER, crate::text::analyzer());
        let mut writer: IndexWriter = index.writer_with_num_threads(1, 50_000_000)?;
        for question in questions {
            writer.add_document(document(&fields, question))?;
        }
        writer.commit()?;
        Self::with_index(index, fields)
    }

    pub fn open(dir: &Path) -> Result<LexicalIndex, InternalError> {
        let index = Index::open_in_dir(dir)?;
        index.tokenizers().register(ANALYZER, crate::text::analyzer());
        let (_, fields) = schema();
        Self::with_index(index, fields)
    }

    fn with_index(index: Index, fields: Fields) -> Result<LexicalIndex, InternalError> {
        let reader: IndexReader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let vocabulary = Vocabulary::of(&reader.searcher(), &fields.text())?;
        Ok(LexicalIndex {
            index,
            reader,
            fields,
            answer_tokens: quick_cache::sync::Cache::new(ANSWER_TOKEN_ENTRIES),
            question_ids: quick_cache::sync::Cache::new(QUESTION_ID_ENTRIES),
            vocabulary: RwLock::new(Arc::new(vocabulary)),
        })
    }

    /// Replaces (or adds) questions and removes the ids in `deleted`, in one commit.
    pub fn apply(&self, upserted: &[Question], deleted: &[String]) -> Result<(), InternalError> {
        let mut writer: IndexWriter = self.index.writer_with_num_threads(1, 15_000_000)?;
        for question in upserted {
            writer.delete_term(Term::from_field_text(self.fields.id, question.id()));
            writer.add_document(document(&self.fields, question))?;
        }
        for id in deleted {
            writer.delete_term(Term::from_field_text(self.fields.id, id));
        }
        writer.commit()?;
        self.reader.reload()?;
        let vocabulary = Vocabulary::of(&self.reader.searcher(), &self.fields.text())?;
        *self.vocabulary.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(vocabulary);
        Ok(())
    }

    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// `query` parsed leniently over `fields` (syntax errors ignored), each with its boost.
    fn exact_query(&self, query: &str, fields: &[(Field, f32)]) -> Box<dyn Query> {
        let mut parser = QueryParser::for_index(&self.index, fields.iter().map(|(field, _)| *field).collect());
        for (field, boost) in fields {
            parser.set_field_boost(*field, *boost);
        }
        parser.parse_query_lenient(query).0
    }

    /// BM25 over the text fields, each with its boost.
    fn text_query(&self, query: &str) -> Box<dyn Query> {
        let boosted: Vec<(Field, f32)> = self.fields.text().into_iter().zip(FIELD_BOOSTS).map(|(field, (_, boost))| (field, boost)).collect();
        self.exact_query(query, &boosted)
    }

    /// `query` with each word that no text field holds (as its stem) replaced by the closest
    /// word of the corpus within `correction_distance` edits, so a typo scores like the word it
    /// misspells, except the words `keep` says are spelt right; unchanged (query syntax and
    /// all) when there is nothing to correct.
    pub fn corrected(&self, query: &str, keep: &dyn Fn(&str) -> bool) -> Result<Correction, InternalError> {
        let vocabulary = self.vocabulary.read().unwrap_or_else(PoisonError::into_inner).clone();
        let searcher = self.reader.searcher();
        let words = crate::text::unstemmed_words(query);
        let mut corrected = Vec::with_capacity(words.len());
        let mut edits = 0;
        for word in words {
            let distance = correction_distance(&word);
            // A stop word has no term and is never a typo.
            let terms = crate::text::terms(&word);
            let mut unseen = distance > 0 && !terms.is_empty() && !keep(&word);
            for term in &terms {
                unseen = unseen && !self.held(&searcher, term)?;
            }
            match if unseen { vocabulary.closest(&word, distance)? } else { None } {
                Some((closest, distance)) => {
                    corrected.push(closest);
                    edits = edits.max(distance);
                }
                None => corrected.push(word),
            }
        }
        Ok(Correction { text: if edits > 0 { corrected.join(" ") } else { query.to_string() }, edits })
    }

    /// Whether some text field holds `term` (an analysed term).
    fn held(&self, searcher: &Searcher, term: &str) -> Result<bool, InternalError> {
        for field in self.fields.text() {
            if searcher.doc_freq(&Term::from_field_text(field, term))? > 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// How many of the query's words of four letters or more the corpus has never seen: in no
    /// text field, not even (in the question and key points) within `UNKNOWN_WORD_DISTANCE` edits
    /// of a word there. A query naming a library or feature the corpus never mentions has some;
    /// a typo of a word the corpus holds has none.
    pub fn unknown_words(&self, query: &str) -> Result<usize, InternalError> {
        let f = self.fields;
        let searcher = self.reader.searcher();
        let mut unknown = 0;
        for word in crate::text::terms(query).into_iter().filter(|word| word.chars().count() >= 4) {
            let mut seen = self.held(&searcher, &word)?;
            if !seen {
                for field in [f.question, f.key_points] {
                    let near = FuzzyTermQuery::new(Term::from_field_text(field, &word), UNKNOWN_WORD_DISTANCE, true);
                    if searcher.search(&near, &tantivy::collector::Count)? > 0 {
                        seen = true;
                        break;
                    }
                }
            }
            unknown += usize::from(!seen);
        }
        Ok(unknown)
    }

    fn filtered(&self, text_query: Box<dyn Query>, filter: &SearchFilter) -> Box<dyn Query> {
        if filter.is_empty() {
            return text_query;
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, text_query)];
        let exact = |field: Field, value: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(Term::from_field_text(field, value), IndexRecordOption::Basic))
        };
        if let Some(topic) = &filter.topic {
            clauses.push((Occur::Must, exact(self.fields.topic, topic)));
        }
        if let Some(difficulty) = filter.difficulty {
            clauses.push((Occur::Must, exact(self.fields.difficulty, difficulty.as_str())));
        }
        for tag in &filter.tags {
            clauses.push((Occur::Must, exact(self.fields.tag, tag)));
        }
        Box::new(BooleanQuery::new(clauses))
    }

    /// BM25 matches of `query` (as given: `corrected` first) that pass `filter`, best first.
    pub fn search(&self, query: &str, filter: &SearchFilter, limit: usize) -> Result<Vec<LexicalHit>, InternalError> {
        let searcher = self.reader.searcher();
        let query = self.filtered(self.text_query(query), filter);
        let top = searcher.search(&query, &TopDocs::with_limit(limit.max(1)).order_by_score())?;
        top.into_iter()
            .map(|(score, address)| {
                let key = (searcher.segment_reader(address.segment_ord).segment_id(), address.doc_id);
                let question_id = self.question_ids.get_or_insert_with(&key, || -> Result<String, InternalError> {
                    let document: TantivyDocument = searcher.doc(address)?;
                    Ok(document.get_first(self.fields.id).and_then(|v| v.as_str()).unwrap_or_default().to_string())
                })?;
                Ok(LexicalHit { question_id, score })
            })
            .collect()
    }

    /// For each answer text, its best fragment for `query` (as given) with the matched words' byte ranges
    /// (the start of the text when nothing matches): tantivy's `SnippetGenerator` (the query's
    /// terms in the answer field, each weighted 1 / (1 + document frequency); fragments of at
    /// most `max_chars` bytes; the highest-scoring, the earliest on a tie) over stored tokens.
    pub fn snippets(&self, query: &str, texts: &[&str], max_chars: usize) -> Result<Vec<Snippet>, InternalError> {
        let searcher = self.reader.searcher();
        // The query's terms in the answer field: what the full query would hold there, without
        // building its other fields' clauses.
        let mut terms = BTreeSet::new();
        self.exact_query(query, &[(self.fields.answer, 1.0)]).query_terms(&mut |term, _| {
            if term.field() == self.fields.answer {
                terms.insert(term.clone());
            }
        });
        let mut weights: HashMap<String, f32> = HashMap::new();
        for term in terms {
            let Some(text) = term.value().as_str().map(str::to_string) else { continue };
            let doc_freq = searcher.doc_freq(&term)?;
            if doc_freq > 0 {
                weights.insert(text, 1.0 / (1.0 + doc_freq as f32));
            }
        }
        texts
            .iter()
            .map(|text| {
                let tokens = self.answer_tokens(text)?;
                Ok(best_fragment(text, &tokens, &weights, max_chars).unwrap_or_else(|| {
                    let end = text.char_indices().nth(max_chars).map_or(text.len(), |(i, _)| i);
                    Snippet { text: text[..end].to_string(), highlights: Vec::new() }
                }))
            })
            .collect()
    }

    fn answer_tokens(&self, text: &str) -> Result<Arc<Vec<AnswerToken>>, InternalError> {
        if let Some(tokens) = self.answer_tokens.get(text) {
            return Ok(tokens);
        }
        let mut analyzer = self.index.tokenizer_for_field(self.fields.answer)?;
        let mut stream = analyzer.token_stream(text);
        let mut tokens = Vec::new();
        while let Some(token) = stream.next() {
            tokens.push(AnswerToken { from: token.offset_from, to: token.offset_to, text: token.text.to_lowercase() });
        }
        let tokens = Arc::new(tokens);
        self.answer_tokens.insert(text.to_string(), tokens.clone());
        Ok(tokens)
    }
}

/// A run of tokens that fits in a snippet, scored by the weights of the query terms in it.
struct Fragment {
    start: usize,
    stop: usize,
    score: f32,
    highlights: Vec<[usize; 2]>,
}

/// The best fragment of `text`, cut the way tantivy's snippet generator cuts it; `None` when no
/// token of the text is a query term.
fn best_fragment(text: &str, tokens: &[AnswerToken], weights: &HashMap<String, f32>, max_chars: usize) -> Option<Snippet> {
    let empty = |start| Fragment { start, stop: start, score: 0.0, highlights: Vec::new() };
    let mut fragments = Vec::new();
    let mut fragment = empty(0);
    for token in tokens {
        if token.to - fragment.start > max_chars {
            let full = std::mem::replace(&mut fragment, empty(token.from));
            if full.score > 0.0 {
                fragments.push(full);
            }
        }
        fragment.stop = token.to;
        if let Some(weight) = weights.get(&token.text) {
            fragment.score += weight;
            fragment.highlights.push([token.from, token.to]);
        }
    }
    if fragment.score > 0.0 {
        fragments.push(fragment);
    }
    let best = fragments.iter().max_by(|left, right| match left.score.partial_cmp(&right.score).unwrap_or(Ordering::Equal) {
        Ordering::Equal => (right.start, right.stop).cmp(&(left.start, left.stop)),
        order => order,
    })?;
    Some(Snippet {
        text: text[best.start..best.stop].to_string(),
        highlights: best.highlights.iter().map(|[from, to]| [from - best.start, to - best.start]).collect(),
    })
}

fn document(fields: &Fields, question: &Question) -> TantivyDocument {
    let entry = &question.entry;
    let mut document = doc!(
        fields.id => entry.id.as_str(),
        fields.topic => question.topic.as_str(),
        fields.difficulty => entry.difficulty.as_str(),
        fields.question => entry.question.as_str(),
        fields.answer => entry.answer.as_str(),
    );
    for point in &entry.key_points {
        document.add_text(fields.key_points, point);
    }
    for tag in &entry.tags {
        document.add_text(fields.tag, tag);
        document.add_text(fields.tags_text, tag.replace('-', " "));
    }
    document
}
