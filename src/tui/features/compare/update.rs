//! The comparison's part of `update`: start one (base only against the current weights, or the
//! current weights against the highlighted preset), collect both sides' tokens, stop or leave.

use super::{CompareSide, Comparison};
use crate::engine::StopReason;
use crate::engine::decode::worker::{Command, Event};
use crate::tui::action::{Action, Effect};
use crate::tui::features::launch::{self, weights_label};
use crate::tui::mode::Mode;
use crate::tui::state::{RunState, State};

pub fn apply(state: &mut State, action: Action) -> Vec<Effect> {
    match action {
        Action::CompareBaseline => {
            let zero = vec![0.0; state.weights.len()];
            let current = state.weights.clone();
            let label = format!("current: {}", weights_label(state, &current));
            compare(
                state,
                CompareSide::new("base only".into(), zero),
                CompareSide::new(label, current),
            )
        }
        Action::ComparePreset => compare_preset(state),
        Action::Stop => stop(state),
        // Leaving stops a comparison still being generated: nobody would see the rest.
        Action::Back => {
            state.mode = Mode::Normal;
            stop(state)
        }
        _ => vec![],
    }
}

fn stop(state: &State) -> Vec<Effect> {
    match &state.comparison {
        Some(c) if c.running() => vec![Effect::Send(Command::Stop)],
        _ => vec![],
    }
}

/// The current weights against the highlighted preset's (ARMs it does not name keep theirs).
fn compare_preset(state: &mut State) -> Vec<Effect> {
    let presets = &state.presets;
    let Some((name, preset)) = presets.saved.iter().nth(presets.selected) else {
        state.message = Some("no presets to compare with: S saves one".into());
        return vec![];
    };
    let mut theirs = state.weights.clone();
    for (arm, &w) in preset {
        if let Some(i) = state.arm_names.iter().position(|n| n == arm) {
            theirs[i] = w;
        }
    }
    let current = state.weights.clone();
    let a = CompareSide::new(
        format!("current: {}", weights_label(state, &current)),
        current,
    );
    let b = CompareSide::new(
        format!("preset {name}: {}", weights_label(state, &theirs)),
        theirs,
    );
    compare(state, a, b)
}

/// Start a comparison of two settings on the current prompt (the engine drops any generation).
fn compare(state: &mut State, a: CompareSide, b: CompareSide) -> Vec<Effect> {
    launch::remember_prompt(state);
    state.mode = Mode::Compare;
    state.run = RunState::Idle;
    state.message = None;
    let settings = vec![a.weights.clone(), b.weights.clone()];
    state.comparison = Some(Comparison {
        prompt: state.prompt.clone(),
        sides: [a, b],
    });
    vec![Effect::Send(Command::Compare {
        prompt: state.prompt.clone(),
        max_new_tokens: state.max_new_tokens,
        top_alternatives: state.transcript.top_alternatives,
        settings,
    })]
}

/// A token or the end of one side.
pub fn on_event(state: &mut State, event: Event) {
    match event {
        Event::CompareToken { side, record } => {
            if let Some(s) = side_mut(state, side) {
                s.records.truncate(record.index);
                s.records.push(record);
            }
        }
        Event::CompareDone {
            side,
            reason,
            tokens_per_second,
        } => {
            if let Some(s) = side_mut(state, side) {
                s.done = Some(reason);
                s.tokens_per_second = Some(tokens_per_second);
            }
        }
        _ => {}
    }
}

fn side_mut(state: &mut State, side: usize) -> Option<&mut CompareSide> {
    state
        .comparison
        .as_mut()
        .and_then(|c| c.sides.get_mut(side))
}

/// An engine error ends a comparison too: the engine has stopped working on it.
pub fn engine_failed(state: &mut State) {
    if let Some(c) = state.comparison.as_mut() {
        for side in c.sides.iter_mut().filter(|s| s.done.is_none()) {
            side.done = Some(StopReason::Stop);
        }
    }
}
