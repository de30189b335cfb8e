//! The profile picker: the model set the session started with and the config file's
//! `[profiles.NAME]`; choosing one loads it in the background (at the edge) and swaps the
//! models. Which set is in use, the highlighted row and a load under way are read by the
//! session too, so they stay on `State`; this room keeps the sets it lists.

use std::collections::BTreeMap;

#[cfg(test)]
mod tests;
pub mod update;

/// The picker's own state.
#[derive(Debug, Clone, PartialEq)]
pub struct Profiles {
    /// The models the session started with (first in the picker).
    pub startup: ModelSet,
    /// The profile those came from (`--profile NAME`), flags given beside it applied.
    pub startup_profile: Option<String>,
    /// The config file's profiles, as last read.
    pub sets: Vec<ModelSet>,
}

/// A model set the profile picker offers: the one the session started with, or a
/// `[profiles.NAME]` of the config file.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSet {
    /// The profile's name; None for the models the session started with.
    pub profile: Option<String>,
    /// The base as the profile names it (the startup set: the loaded base's name).
    pub base: String,
    /// ARM names and weights, in the order they are loaded.
    pub arms: Vec<(String, f32)>,
    /// Prompts go through the base model's chat template.
    pub chat: bool,
}

impl ModelSet {
    /// A config file profile as the picker lists it (an ARM without a weight gets 1, as in
    /// `--profile`).
    pub fn from_profile(name: &str, profile: &crate::config::Profile) -> Self {
        Self {
            profile: Some(name.to_string()),
            base: profile.base.display().to_string(),
            arms: profile
                .arms
                .keys()
                .map(|arm| {
                    (
                        arm.clone(),
                        profile.weights.get(arm).copied().unwrap_or(1.0),
                    )
                })
                .collect(),
            chat: profile.chat,
        }
    }

    /// The config file's profiles, by name.
    pub fn from_profiles(profiles: &BTreeMap<String, crate::config::Profile>) -> Vec<ModelSet> {
        profiles
            .iter()
            .map(|(name, p)| Self::from_profile(name, p))
            .collect()
    }

    /// "profile NAME", or "the startup models".
    pub fn label(profile: Option<&str>) -> String {
        match profile {
            Some(name) => format!("profile {name}"),
            None => "the startup models".into(),
        }
    }
}

/// What a finished profile load tells the state (the models themselves go to the new worker).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedModels {
    pub base_name: String,
    /// As `State::remote_top_k`.
    pub remote_top_k: Option<usize>,
    pub arm_names: Vec<String>,
    pub weights: Vec<f32>,
    /// As `State::chat`: None when the base has no chat template.
    pub chat: Option<bool>,
    /// Notices from loading (e.g. chat asked of a base without a template).
    pub notices: Vec<String>,
}
