//! The reward frontier: the first two ARMs' weights swept over a grid on the current prompt,
//! each setting's mean reward per ARM plotted; a point's weights can be put on the sliders.

#[cfg(test)]
mod tests;
pub mod update;

/// Weights tried for each of the first two ARMs in the frontier sweep (4 × 4 settings).
pub const FRONTIER_GRID: &[f32] = &[0.0, 1.0, 2.0, 3.0];
/// Samples per setting when sampling (greedy decoding needs one), and their length.
pub const FRONTIER_SAMPLES: usize = 4;
pub const FRONTIER_MAX_TOKENS: usize = 32;

/// One weight setting of the sweep and each ARM's mean Σ log π under it.
#[derive(Debug, Clone, PartialEq)]
pub struct FrontierPoint {
    pub weights: Vec<f32>,
    pub mean_rewards: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Frontier {
    pub prompt: String,
    pub points: Vec<FrontierPoint>,
    pub selected: usize,
    /// The sweep is still running on the engine thread.
    pub running: bool,
}
