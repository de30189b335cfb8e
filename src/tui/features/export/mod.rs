//! Export: the session (the prompt as run, the settings it began with, every token record) as
//! JSONL in the record contract, written to the data dir at the edge.

use crate::engine::SamplingParams;

#[cfg(test)]
mod tests;
pub mod update;

/// What the current tokens continue: the prompt as run (the prompt line may have changed since)
/// and the settings when the run began. Noted by every run for the export.
#[derive(Debug, Clone, PartialEq)]
pub struct RunStart {
    pub prompt: String,
    pub weights: Vec<f32>,
    pub sampling: SamplingParams,
}

impl RunStart {
    pub fn new(sampling: SamplingParams) -> Self {
        Self {
            prompt: String::new(),
            weights: Vec::new(),
            sampling,
        }
    }
}
