//! What every run does first, whichever feature starts it (the prompt line, an example, the run
//! key, step, score, compare, the frontier): the prompt goes to the history, and the export
//! notes what the run starts from.

use crate::engine::decode::worker::Command;
use crate::tui::action::Effect;
use crate::tui::state::{RunState, State};

/// Add the prompt to the history (once, when it differs from the last entry).
pub fn remember_prompt(state: &mut State) {
    if state.history.last() != Some(&state.prompt) {
        state.history.push(state.prompt.clone());
    }
    state.prompt_line.history_pos = None;
}

/// Note what a new run starts from, for exports.
pub fn begin_run(state: &mut State) {
    state.run_start.prompt = state.prompt.clone();
    state.run_start.weights = state.weights.clone();
    state.run_start.sampling = state.steering.sampling;
}

/// Generate from the prompt line, following the new tokens.
pub fn run(state: &mut State) -> Vec<Effect> {
    remember_prompt(state);
    begin_run(state);
    state.run = RunState::Starting;
    state.message = None;
    state.transcript.follow = true;
    vec![Effect::Send(generate(state, false))]
}

/// The engine command that generates from the prompt line (`paused`: wait for a step).
pub fn generate(state: &State, paused: bool) -> Command {
    Command::Generate {
        prompt: state.prompt.clone(),
        max_new_tokens: state.max_new_tokens,
        top_alternatives: state.transcript.top_alternatives,
        paused,
    }
}

/// "helpful +1.00 harmless +0.50".
pub fn weights_label(state: &State, weights: &[f32]) -> String {
    state
        .arm_names
        .iter()
        .zip(weights)
        .map(|(n, w)| format!("{n} {w:+.2}"))
        .collect::<Vec<_>>()
        .join(" ")
}
