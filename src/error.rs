//! Core errors, split so the split decides the HTTP status: a `UserError` is the caller's to fix
//! (4xx), an `InternalError` is ours (5xx, details logged, never sent).

use crate::corpus::CorpusProblems;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    Internal(#[from] InternalError),
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("no question with id {0:?}")]
    QuestionNotFound(String),
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    #[error("invalid filter: {0}")]
    InvalidFilter(String),
    #[error("invalid answer: {0}")]
    InvalidAnswer(String),
    #[error("invalid review request: {0}")]
    InvalidReview(String),
    #[error(transparent)]
    InvalidEntry(#[from] CorpusProblems),
    #[error("the question is still named as a follow-up: {0}")]
    QuestionInUse(CorpusProblems),
}

#[derive(Debug, thiserror::Error)]
pub enum InternalError {
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("lexical index: {0}")]
    Lexical(#[from] tantivy::TantivyError),
    #[error("vector store: {0}")]
    VectorStore(String),
    /// The vector store did not answer (a Qdrant server down or unreachable); worth a retry.
    #[error("vector store unavailable: {0}")]
    VectorStoreUnavailable(String),
    #[error("model: {0}")]
    Model(String),
    #[error("index: {0}")]
    Index(String),
}

impl InternalError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> InternalError {
        let context = context.into();
        move |source| InternalError::Io { context, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
