//! Generation's part of `update`: run, pause or resume, step one token, stop; and the engine's
//! events about the one generation under way (started, a token, done, failed).

use super::launch;
use super::transcript::TokenCell;
use super::transcript::update::reset_alternative;
use crate::engine::decode::worker::{Command, Event};
use crate::tui::action::{Action, Effect};
use crate::tui::state::{RunState, State};

pub fn apply(state: &mut State, action: Action) -> Vec<Effect> {
    match action {
        Action::Run if can_retry(state) => retry(state),
        Action::Run => launch::run(state),
        Action::PauseResume => match state.run {
            RunState::Running | RunState::Starting => {
                state.run = RunState::Paused;
                vec![Effect::Send(Command::Pause)]
            }
            RunState::Paused => {
                state.run = RunState::Running;
                vec![Effect::Send(Command::Resume)]
            }
            _ => vec![],
        },
        Action::Step => step(state),
        Action::Stop => match state.run {
            RunState::Running | RunState::Paused | RunState::Starting => {
                vec![Effect::Send(Command::Stop)]
            }
            _ => vec![],
        },
        Action::Measured { tokens_per_second } => {
            state.transcript.tokens_per_second = Some(tokens_per_second);
            vec![]
        }
        _ => vec![],
    }
}

/// A run a served base broke off (the server dropped, timed out or answered nonsense) keeps its
/// tokens; `r` then continues from them rather than starting over.
fn can_retry(state: &State) -> bool {
    state.remote_top_k.is_some() && state.run == RunState::Failed && !state.tokens.is_empty()
}

fn retry(state: &mut State) -> Vec<Effect> {
    state.run = RunState::Starting;
    state.message = None;
    state.transcript.follow = true;
    vec![Effect::Send(Command::Branch {
        keep: state.tokens.len(),
    })]
}

/// One token, then pause. With no generation under way, start one paused first.
fn step(state: &mut State) -> Vec<Effect> {
    let mut effects = Vec::new();
    match state.run {
        RunState::Running | RunState::Paused | RunState::Starting => {}
        _ => {
            launch::remember_prompt(state);
            launch::begin_run(state);
            state.message = None;
            state.transcript.follow = true;
            effects.push(Effect::Send(launch::generate(state, true)));
        }
    }
    state.run = RunState::Paused;
    effects.push(Effect::Send(Command::Step));
    effects
}

/// An engine event about the generation: where it restarts, a token, its end, or an error.
pub fn on_event(state: &mut State, event: Event) {
    match event {
        Event::Started { kept, prompt_ids } => {
            state.tokens.truncate(kept);
            state.prompt_ids = prompt_ids;
            if state.run == RunState::Starting {
                state.run = RunState::Running;
            }
            state.transcript.tokens_per_second = None;
            reset_alternative(state);
        }
        Event::Token(record) => {
            // A record always continues the text at its index; anything after it is stale.
            state.tokens.truncate(record.index);
            let segment = match state.tokens.last() {
                Some(prev) if prev.weights().eq(record.arms.iter().map(|a| a.weight)) => {
                    prev.segment
                }
                Some(prev) => prev.segment + 1,
                None => 0,
            };
            state.tokens.push(TokenCell { record, segment });
            if state.transcript.follow {
                reset_alternative(state);
            }
        }
        Event::Done {
            reason,
            tokens_per_second,
            ..
        } => {
            state.run = RunState::Done(reason);
            if tokens_per_second > 0.0 {
                state.transcript.tokens_per_second = Some(tokens_per_second);
            }
        }
        Event::Error(message) => {
            state.run = RunState::Failed;
            // Engine messages quote text from model files: never let it drive the terminal.
            let mut message = crate::cli_errors::printable(&message);
            if can_retry(state) {
                message.push_str(" (r retries from the tokens made)");
            }
            state.message = Some(message);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
