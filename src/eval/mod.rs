//! Quality evaluations run by `askmark eval`: retrieval (`search`), related questions
//! (`related`), answer review on the project's graded answers (`review`) and on public graded
//! data (`external`).
//! Pure metric functions, so tests can check them against known values.

pub mod external;
pub mod related;
pub mod review;
pub mod search;
