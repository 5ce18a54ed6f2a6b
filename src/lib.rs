//! askmark: search, related follow-ups and answer review over a corpus of Python interview
//! questions. The core (corpus, lexical, vectors, embed, index, search, eval) knows nothing of
//! HTTP; `api` is a thin layer on top and `main.rs` a thin CLI.

pub mod api;
pub mod corpus;
pub mod embed;
pub mod error;
pub mod eval;
pub mod index;
pub mod lexical;
pub mod review;
pub mod search;
pub mod vectors;

use std::path::Path;
use std::sync::Arc;

use corpus::Corpus;
use embed::Embedder;
use error::{Error, InternalError, UserError};
use index::IndexDir;
use search::{Engine, FusionParams};

/// Loads the corpus and opens its index, building a new generation first when the current one
/// is missing or was built from another corpus or model.
pub fn open_engine(corpus_dir: &Path, index: &IndexDir, embedder: Arc<dyn Embedder>) -> Result<Engine, Error> {
    let corpus = Corpus::load_dir(corpus_dir).map_err(UserError::InvalidEntry)?;
    let generation = match index.staleness(&corpus, embedder.model()) {
        None => index.open_current()?,
        Some(reason) => {
            tracing::info!(reason = ?reason, "index missing or stale, building");
            index.build(&corpus, embedder.as_ref())?
        }
    };
    if generation.manifest.model.dimension != embedder.model().dimension {
        return Err(InternalError::Index("index dimension differs from the model's".into()).into());
    }
    Ok(Engine { corpus: Arc::new(corpus), generation: Arc::new(generation), embedder, fusion: FusionParams::default() })
}
