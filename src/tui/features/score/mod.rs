//! Score mode: type a response (or tab through the demo world's answers to the prompt) and have
//! the base and every ARM score it token by token, teacher-forced.

#[cfg(test)]
mod tests;
pub mod update;

/// Score mode's own state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Score {
    /// The response to score.
    pub response: String,
    /// The demo's answers to the current prompt in each style, (style, text), which tab cycles
    /// through, and the one shown (None: typed).
    pub demo_responses: Vec<(String, String)>,
    pub demo_response: Option<usize>,
}
