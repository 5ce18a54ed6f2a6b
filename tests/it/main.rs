//! Integration tests: one binary, so the model and the full-corpus index load once and every
//! module shares them. They drive the real model, the real indexes and the real router.

mod admin;
mod api;
mod common;
mod connections;
mod contract;
mod corpus;
mod crash;
mod embeddings;
mod eval;
mod fusion;
mod index;
mod pool;
mod review;
mod search;
mod server;
mod snapshots;
