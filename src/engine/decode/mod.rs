//! Guided decoding: the guide (base + ARMs), guided distributions, sampling, generation and scoring, batched rows, token records, incremental detokenization and the engine thread.

pub mod arm;
pub mod base;
pub mod batch;
pub mod detok;
pub mod generation;
pub mod guidance;
pub mod guide;
pub mod record;
pub mod sampler;
pub mod worker;
