//! Models and guided decoding; no UI.
//!
//! - `model/`: what a model is once loaded (configuration, weights, layers, decoding step).
//! - `formats/`: the files models come in (GGUF, tokenizers, chat templates, Hub cache, adapters).
//! - `kernels/`: hand-written CPU kernels (crate-private).
//! - `decode/`: guided decoding (guide, guidance, sampling, generation, batches, records, worker).
//! - `panic`: panics in background work turned into errors.
//! - `remote/`: a base served by another engine (llama.cpp, vLLM, SGLang), ARMs local.

pub mod decode;
pub mod error;
pub mod formats;
pub(crate) mod kernels;
pub mod model;
pub mod panic;
pub mod remote;

pub use decode::base::Base;
pub use decode::generation::{Generation, ScoreSums, StopReason, score, validate_weights};
pub use decode::guide::Guide;
pub use decode::record::TokenRecord;
pub use decode::sampler::SamplingParams;
pub use error::{EngineError, Input, Part, Result};
pub use model::causal_lm::{CausalLm, ComputeDtype};
