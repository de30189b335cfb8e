//! The steering panel: one slider per ARM weight, then temperature, top-k, top-p and seed.
//! Every change reaches the engine at once (it steers the very next token). The weights are a
//! shared fact on `State`; this room keeps the sampling settings, what the reset key restores
//! and which slider is selected.

use crate::engine::SamplingParams;

#[cfg(test)]
mod tests;
pub mod update;

/// One knob in the steering panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slider {
    Weight(usize),
    Temperature,
    TopK,
    TopP,
    Seed,
}

/// Range and step of each knob. Weights go negative: that steers away from an objective.
pub const WEIGHT_RANGE: (f32, f32) = (-5.0, 5.0);
pub const WEIGHT_STEP: f32 = 0.25;
pub const TEMPERATURE_RANGE: (f32, f32) = (0.0, 2.0);
pub const TEMPERATURE_STEP: f32 = 0.1;
pub const TOP_K_MAX: usize = 100;
pub const TOP_P_RANGE: (f32, f32) = (0.05, 1.0);
pub const TOP_P_STEP: f32 = 0.05;

/// The steering panel's own state.
#[derive(Debug, Clone, PartialEq)]
pub struct Steering {
    pub sampling: SamplingParams,
    /// The settings given on the command line (or by the loaded profile), restored by the
    /// reset key.
    pub initial_weights: Vec<f32>,
    pub initial_sampling: SamplingParams,
    /// Selected row of the panel.
    pub slider: usize,
}

impl Steering {
    pub fn new(weights: Vec<f32>, sampling: SamplingParams) -> Self {
        Self {
            sampling,
            initial_weights: weights,
            initial_sampling: sampling,
            slider: 0,
        }
    }

    /// The knobs in panel order: one weight per ARM, then the sampling settings.
    pub fn sliders(arms: usize) -> Vec<Slider> {
        (0..arms)
            .map(Slider::Weight)
            .chain([
                Slider::Temperature,
                Slider::TopK,
                Slider::TopP,
                Slider::Seed,
            ])
            .collect()
    }
}
