//! Training autoregressive reward models with the GenARM loss (full fine-tuning or LoRA).

pub mod corpus;
pub mod data;
pub mod lm;
pub mod loss;
pub mod model;
pub mod optim;
pub mod tokenizer;
pub mod trainer;

pub use trainer::{TrainReport, TrainSettings, train_arm};
