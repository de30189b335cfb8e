//! The playground's flags, given on the top-level command (`genarm --base PATH --arm NAME=PATH`).

use clap::Args;

use crate::cli::ModelArgs;

#[derive(Args, Debug, Clone)]
pub struct PlayArgs {
    /// The models, as the headless commands take them (no --base: the embedded demo).
    #[command(flatten)]
    pub models: ModelArgs,
    /// Most tokens one run generates in the playground.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Prompt to start with.
    #[arg(long)]
    pub prompt: Option<String>,
}
