//! The generated text as the playground shows it: token cells, the selected token (or following
//! the newest), the lens that colours them, the inspector's highlighted alternative, and
//! branching or forcing from the selection. The tokens, the alternative row and the lens are
//! shared facts on `State`; this room keeps the cursor and the run's measured speed.

use crate::engine::TokenRecord;

#[cfg(test)]
mod tests;
pub mod update;

/// The transcript's own state.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// Selected token; ignored while `follow` is set.
    pub cursor: usize,
    /// Keep the cursor on the newest token as tokens arrive.
    pub follow: bool,
    /// Measured by the app loop (kept out of `update`, which has no clock).
    pub tokens_per_second: Option<f64>,
    /// Rows of the inspector's alternatives table the engine is asked for.
    pub top_alternatives: usize,
}

impl Default for Transcript {
    fn default() -> Self {
        Self {
            cursor: 0,
            follow: true,
            tokens_per_second: None,
            top_alternatives: 8,
        }
    }
}

/// How token cells are coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lens {
    GuidedProb,
    BaseProb,
    /// guided − base log-prob: where guidance pushed a token up (or down).
    Shift,
    /// One ARM's contribution w · log π (index into the ARMs).
    Arm(usize),
}

impl Lens {
    pub fn label(self, arm_names: &[String]) -> String {
        match self {
            Self::GuidedProb => "guided p".into(),
            Self::BaseProb => "base p".into(),
            Self::Shift => "shift (guided − base)".into(),
            Self::Arm(i) => match arm_names.get(i) {
                Some(name) => format!("{name} w·log π"),
                None => "ARM".into(),
            },
        }
    }

    /// The next lens in the cycle: guided, base, shift, then each ARM.
    pub fn next(self, arms: usize) -> Self {
        match self {
            Self::GuidedProb => Self::BaseProb,
            Self::BaseProb => Self::Shift,
            Self::Shift if arms > 0 => Self::Arm(0),
            Self::Arm(i) if i + 1 < arms => Self::Arm(i + 1),
            _ => Self::GuidedProb,
        }
    }
}

/// A generated token and where it sits among the weight settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenCell {
    pub record: TokenRecord,
    /// Which run of equal weights this token belongs to (0, 1, 2 … along the text), so tokens
    /// generated under each setting stay marked.
    pub segment: usize,
}

impl TokenCell {
    pub fn weights(&self) -> impl Iterator<Item = f32> + '_ {
        self.record.arms.iter().map(|a| a.weight)
    }
}
