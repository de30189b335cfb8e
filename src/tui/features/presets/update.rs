//! The presets' part of `update`: name and save the current weights (the edge writes the config
//! file), open the list, and put a preset's weights on the sliders.

use crate::tui::action::{Action, Effect};
use crate::tui::features::field;
use crate::tui::features::steering::WEIGHT_RANGE;
use crate::tui::mode::Mode;
use crate::tui::state::State;

pub fn apply(state: &mut State, action: Action) -> Vec<Effect> {
    let presets = &mut state.presets;
    match action {
        Action::NamePreset => {
            state.mode = Mode::PresetName;
            presets.name.clear();
        }
        Action::InsertChar(c) => push_name(&mut presets.name, &c.to_string()),
        Action::Paste(text) => push_name(&mut presets.name, &text),
        Action::Backspace => {
            presets.name.pop();
        }
        Action::SavePreset => return save(state),
        Action::PresetSaved {
            name,
            weights,
            result,
        } => {
            state.message = Some(match result {
                Ok(path) => {
                    let message = format!("preset '{name}' saved to {path}");
                    presets.saved.insert(name, weights);
                    message
                }
                Err(e) => format!("preset '{name}' not saved: {e}"),
            });
        }
        Action::OpenPresets => {
            if presets.saved.is_empty() {
                state.message = Some("no presets yet: S saves the current weights as one".into());
            } else {
                state.mode = Mode::Presets;
                presets.selected = presets.selected.min(presets.saved.len() - 1);
            }
        }
        Action::PresetPrev => presets.selected = presets.selected.saturating_sub(1),
        Action::PresetNext => {
            presets.selected = (presets.selected + 1).min(presets.saved.len().saturating_sub(1));
        }
        Action::PresetLoad => {
            state.mode = Mode::Normal;
            return load(state);
        }
        _ => {}
    }
    vec![]
}

/// Ask the edge to save the current weights under the typed name.
fn save(state: &mut State) -> Vec<Effect> {
    let name = state.presets.name.trim().to_string();
    if name.is_empty() {
        state.message = Some("a preset needs a name (esc cancels)".into());
        return vec![];
    }
    state.mode = Mode::Normal;
    let weights = state
        .arm_names
        .iter()
        .cloned()
        .zip(state.weights.iter().copied())
        .collect();
    vec![Effect::SavePreset { name, weights }]
}

/// Set the sliders of the ARMs the highlighted preset names; other ARMs keep their weights.
fn load(state: &mut State) -> Vec<Effect> {
    let presets = &state.presets;
    let Some((name, weights)) = presets.saved.iter().nth(presets.selected) else {
        return vec![];
    };
    let mut unknown = Vec::new();
    for (arm, &w) in weights {
        match state.arm_names.iter().position(|n| n == arm) {
            Some(i) => state.weights[i] = w.clamp(WEIGHT_RANGE.0, WEIGHT_RANGE.1),
            None => unknown.push(arm.as_str()),
        }
    }
    state.message = Some(if unknown.is_empty() {
        format!("preset '{name}' loaded")
    } else {
        format!(
            "preset '{name}' loaded; no ARM named {} here",
            unknown.join(", ")
        )
    });
    vec![Effect::SetWeights(state.weights.clone())]
}

/// Type or paste at the end of a preset's name (one line, up to a field's size).
fn push_name(name: &mut String, raw: &str) {
    name.push_str(&field::pasted(raw, name.chars().count()).0);
}
