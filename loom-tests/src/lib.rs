//! loom models of toro-sync live in `tests/`; run them with
//! `RUSTFLAGS="--cfg loom" cargo test -p loom-tests --release`.
//!
//! This library holds what the models share: the model runner with its preemption bound,
//! a poll-once helper for "poll once, then drop" cancellation, a cell that loom checks for
//! mutual exclusion, and a model-driven timer for `toro_sync::__loom::race`. Without
//! `--cfg loom` it is empty.

#[cfg(loom)]
mod models;

#[cfg(loom)]
pub use models::*;
