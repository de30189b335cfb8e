//! What the playground starts with besides its models (the command line's `PlayArgs` give it).

#[derive(Debug, Clone)]
pub struct PlayOptions {
    /// Most tokens one run generates.
    pub max_new_tokens: usize,
    /// Prompt to start with.
    pub prompt: Option<String>,
}
