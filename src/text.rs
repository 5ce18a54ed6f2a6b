//! Text analysis in one place: the analyzer behind lexical search and key-term coverage, word
//! counts, sentences, and the word lists both use. Built once; nothing here knows about indexes.

use std::cell::RefCell;

use tantivy::tokenizer::{LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer, TokenStream};
use unicode_segmentation::UnicodeSegmentation;

/// Words that carry no topic in an interview question ("how do you ... in python").
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "of", "on",
    "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was", "will", "with",
    "how", "what", "why", "when", "which", "who", "do", "does", "did", "you", "your", "i", "me", "my", "we",
    "can", "could", "would", "should", "python", "s",
];

/// Words that glue statements together; a list of terms has almost none.
const FUNCTION_WORDS: &[&str] = &[
    "a", "an", "the", "is", "are", "was", "were", "be", "been", "it", "its", "this", "that", "these", "those", "to",
    "of", "in", "on", "for", "with", "by", "as", "at", "from", "and", "or", "but", "so", "if", "when", "then",
    "because", "which", "who", "what", "can", "will", "would", "should", "do", "does", "you", "we", "they", "i",
    "not", "no", "has", "have", "each", "one", "only", "than", "into", "there", "while", "where", "also", "all",
];

/// Lower-cases, drops stop words and stems with Snowball English.
pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(StopWordFilter::remove(STOP_WORDS.iter().map(|w| w.to_string())))
        .filter(Stemmer::new(tantivy::tokenizer::Language::English))
        .build()
}

thread_local! {
    /// One analyzer per thread: building one compiles the stemmer, and a review asks for terms
    /// once per key point.
    static ANALYZER: RefCell<TextAnalyzer> = RefCell::new(analyzer());
}

/// The words of `text` as the analyzer splits them, lower-cased but neither stemmed nor
/// filtered: what a query word is compared with to correct a typo.
pub fn unstemmed_words(text: &str) -> Vec<String> {
    let mut tokenizer = TextAnalyzer::builder(SimpleTokenizer::default()).filter(RemoveLongFilter::limit(40)).filter(LowerCaser).build();
    let mut stream = tokenizer.token_stream(text);
    let mut words = Vec::new();
    while let Some(token) = stream.next() {
        words.push(token.text.clone());
    }
    words
}

/// The analyzed terms of `text`, in order, with repeats.
pub fn terms(text: &str) -> Vec<String> {
    ANALYZER.with(|analyzer| {
        let mut analyzer = analyzer.borrow_mut();
        let mut stream = analyzer.token_stream(text);
        let mut terms = Vec::new();
        while let Some(token) = stream.next() {
            terms.push(token.text.clone());
        }
        terms
    })
}

/// Whitespace-separated words: the unit of every length limit and of answer length.
pub fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

/// Lower-cased Unicode words, punctuation dropped.
pub fn words(text: &str) -> Vec<String> {
    text.unicode_words().map(str::to_lowercase).collect()
}

/// Share of `text`'s words that are function words: statements have many, term lists almost none.
pub fn function_word_ratio(text: &str) -> f32 {
    let all = words(text);
    if all.is_empty() {
        return 0.0;
    }
    all.iter().filter(|w| FUNCTION_WORDS.contains(&w.as_str())).count() as f32 / all.len() as f32
}

/// Sentences of `text` (Unicode sentence boundaries, and line breaks), trimmed, without empty ones.
pub fn sentences(text: &str) -> Vec<String> {
    text.unicode_sentences()
        .flat_map(|sentence| sentence.split('\n'))
        .map(|s| s.trim().to_string())
        .filter(|s| s.chars().any(char::is_alphanumeric))
        .collect()
}
