//! The playground's flags, given on the top-level command (`genarm --base PATH --arm NAME=PATH`).

use std::path::PathBuf;

use clap::Args;

use crate::cli::ModelArgs;

#[derive(Args, Debug, Clone, Default)]
pub struct PlayArgs {
    /// Open the playground on this base model (a Hugging Face model folder; default: the demo).
    #[arg(long, value_name = "PATH")]
    pub base: Option<PathBuf>,
    /// An autoregressive reward model for the playground, NAME=PATH (repeatable).
    #[arg(long = "arm", value_name = "NAME=PATH")]
    pub arms: Vec<String>,
    /// Starting weight of an ARM, NAME=W (repeatable; default 1; negative steers away).
    #[arg(long = "weight", value_name = "NAME=W", allow_hyphen_values = true)]
    pub weights: Vec<String>,
    /// Compute precision for the playground: f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Most tokens one run generates in the playground.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Prompt to start with.
    #[arg(long)]
    pub prompt: Option<String>,
}

impl PlayArgs {
    /// The model flags in the shape the headless commands use (no --base: the embedded demo).
    pub fn models(&self) -> ModelArgs {
        ModelArgs {
            base: self.base.clone(),
            arms: self.arms.clone(),
            weights: self.weights.clone(),
            dtype: self.dtype.clone(),
            prompt_template: None,
        }
    }
}
