//! Weight presets: the current weights saved under a name (into the config file, at the edge),
//! and a list to put one back on the sliders.

use std::collections::BTreeMap;

#[cfg(test)]
mod tests;
pub mod update;

/// The presets' own state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Presets {
    /// Weight presets by name: ARM name → weight (from the config file, plus any saved now).
    pub saved: BTreeMap<String, BTreeMap<String, f32>>,
    /// Highlighted row of the list (also the preset a comparison with a preset uses).
    pub selected: usize,
    /// The name being typed for a new preset.
    pub name: String,
}
