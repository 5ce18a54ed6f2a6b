//! Quality evaluations run by `askmark eval`: retrieval (`search`) and answer review (`review`).
//! Pure metric functions, so tests can check them against known values.

pub mod review;
pub mod search;
