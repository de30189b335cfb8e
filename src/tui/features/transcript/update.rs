//! The transcript's part of `update`: move the selection (or follow the newest token), move
//! through the inspector's alternatives, cycle the lens, and branch or force from the selection.

use crate::engine::decode::worker::Command;
use crate::tui::action::{Action, Effect};
use crate::tui::state::{RunState, State};

pub fn apply(state: &mut State, action: Action) -> Vec<Effect> {
    match action {
        Action::Branch => return branch(state),
        Action::Force => return force(state),
        Action::CursorLeft => {
            if let Some(sel) = state.selected() {
                select(state, sel.saturating_sub(1));
            }
        }
        Action::CursorRight => {
            if let Some(sel) = state.selected() {
                select(state, sel + 1);
            }
        }
        Action::CursorHome => select(state, 0),
        Action::CursorEnd => {
            state.transcript.follow = true;
            reset_alternative(state);
        }
        Action::SelectToken(i) => select(state, i),
        Action::AlternativeUp => state.alternative = state.alternative.saturating_sub(1),
        Action::AlternativeDown => {
            let rows = state.selected_token().map_or(0, |c| c.record.top.len());
            state.alternative = (state.alternative + 1).min(rows.saturating_sub(1));
        }
        Action::CycleLens => state.lens = state.lens.next(state.arm_names.len()),
        _ => {}
    }
    vec![]
}

/// Regenerate from the selected token (it and everything after it).
fn branch(state: &mut State) -> Vec<Effect> {
    let Some(keep) = state.selected().filter(|_| state.run.has_generation()) else {
        state.message = Some("nothing to branch: run a prompt first".into());
        return vec![];
    };
    continue_from(state);
    vec![Effect::Send(Command::Branch { keep })]
}

/// Take the highlighted alternative at the selected position and continue.
fn force(state: &mut State) -> Vec<Effect> {
    let choice = state
        .selected()
        .zip(state.selected_token())
        .and_then(|(at, cell)| {
            let alt = cell.record.top.get(state.alternative)?;
            Some((at, alt.token_id))
        });
    let Some((at, token)) = choice.filter(|_| state.run.has_generation()) else {
        state.message = Some("nothing to force: select a token and an alternative".into());
        return vec![];
    };
    continue_from(state);
    vec![Effect::Send(Command::Force { at, token })]
}

/// After branch/force the cursor follows the regrown tokens.
fn continue_from(state: &mut State) {
    state.run = RunState::Starting;
    state.message = None;
    state.transcript.follow = true;
}

fn select(state: &mut State, index: usize) {
    let Some(last) = state.tokens.len().checked_sub(1) else {
        return;
    };
    if index >= last {
        state.transcript.follow = true;
    } else {
        state.transcript.follow = false;
        state.transcript.cursor = index;
    }
    reset_alternative(state);
}

/// Point the alternatives table at the token that was actually chosen.
pub fn reset_alternative(state: &mut State) {
    state.alternative = state.chosen_alternative().unwrap_or(0);
}
