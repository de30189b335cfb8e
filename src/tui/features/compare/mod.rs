//! Two weight settings side by side on the same prompt and seed (base only against the current
//! weights, or the current weights against a preset), with where their texts part.

use crate::engine::{StopReason, TokenRecord};

#[cfg(test)]
mod tests;
pub mod update;

/// One setting of a comparison and what it generated.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareSide {
    pub label: String,
    pub weights: Vec<f32>,
    pub records: Vec<TokenRecord>,
    pub done: Option<StopReason>,
    pub tokens_per_second: Option<f64>,
}

impl CompareSide {
    pub fn new(label: String, weights: Vec<f32>) -> Self {
        Self {
            label,
            weights,
            records: Vec::new(),
            done: None,
            tokens_per_second: None,
        }
    }
}

/// The same prompt and seed under two weight settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub prompt: String,
    pub sides: [CompareSide; 2],
}

impl Comparison {
    /// Whether token `index` of `side` differs from the other side's token there (or the other
    /// side has none).
    pub fn differs(&self, side: usize, index: usize) -> bool {
        let other = &self.sides[1 - side].records;
        match (self.sides[side].records.get(index), other.get(index)) {
            (Some(a), Some(b)) => a.token_id != b.token_id,
            (Some(_), None) => self.sides[1 - side].done.is_some(),
            _ => false,
        }
    }

    /// The first position where the two texts part, once it is known.
    pub fn first_difference(&self) -> Option<usize> {
        let [a, b] = &self.sides;
        let common = a.records.len().min(b.records.len());
        if let Some(i) = (0..common).find(|&i| a.records[i].token_id != b.records[i].token_id) {
            return Some(i);
        }
        // Equal so far: they part where one ended and the other went on.
        let ended = a.done.is_some() && b.done.is_some();
        (ended && a.records.len() != b.records.len()).then_some(common)
    }

    pub fn running(&self) -> bool {
        self.sides.iter().any(|s| s.done.is_none())
    }
}
