//! askmark: search, related follow-ups and answer review over a corpus of Python interview
//! questions. `engine::Engine` is the door to every operation; behind it the core (corpus,
//! lexical, vectors, embed, index, search, review, eval) knows nothing of HTTP; `api` is a thin
//! layer on top and `main.rs` a thin CLI.

pub mod api;
pub mod corpus;
pub mod durable;
pub mod embed;
pub mod engine;
pub mod error;
pub mod eval;
pub mod filter;
pub mod index;
pub mod judge;
pub mod lexical;
pub mod pool;
pub mod review;
pub mod search;
pub mod text;
pub mod vectors;
