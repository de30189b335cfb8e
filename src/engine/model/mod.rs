//! The model itself: configuration, weights by name, linear layers of every format, the transformer and its decoding step, and the loaded causal LM.

pub mod causal_lm;
pub mod config;
pub mod dense_rows;
pub mod inspect;
pub mod linear;
pub mod mapped;
pub mod preflight;
pub mod transformer;
pub mod weights;
