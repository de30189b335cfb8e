//! Models and guided decoding; no UI.

pub mod adapter;
pub mod batch;
pub mod chat;
pub mod config;
pub mod detok;
pub mod error;
pub mod fastmath;
pub mod gemv;
pub mod generation;
pub mod gguf;
pub mod gguf_tokenizer;
pub mod guidance;
pub mod guide;
pub mod hub;
pub mod hub_cache;
pub mod linear;
pub mod model;
pub mod qgemv;
pub mod record;
pub mod sampler;
pub mod tokenizer;
pub mod transformer;
pub mod weights;
pub mod worker;

pub use error::{EngineError, Result};
pub use generation::{Generation, ScoreSums, StopReason, score, validate_weights};
pub use guide::Guide;
pub use model::{CausalLm, ComputeDtype};
pub use record::TokenRecord;
pub use sampler::SamplingParams;
