//! The one place that changes [`State`]: pure, no I/O, no clock. Work for the engine comes back
//! as [`Effect`]s for the app loop to carry out. This file only routes: each action (and each
//! engine event) goes to the feature that owns it (see `features`).

use super::action::{Action, Effect};
use super::features::{
    compare, export, frontier, generation, presets, profiles, prompt, score, steering, transcript,
};
use super::mode::Mode;
use super::state::State;
use crate::engine::decode::worker::Event;

pub fn update(state: &mut State, action: Action) -> Vec<Effect> {
    if let Some(profile) = &state.loading
        && profiles::update::waits_for_loading(&action)
    {
        let label = profiles::ModelSet::label(profile.as_deref());
        state.message = Some(format!("wait: {label} is loading"));
        return vec![];
    }
    let mode = state.mode;
    match action {
        Action::Quit => state.quit = true,
        Action::Suspend => state.suspend = true,
        Action::ToggleHelp => toggle_help(state),
        Action::Back if mode == Mode::Frontier => return frontier::update::apply(state, action),
        Action::Back | Action::Stop if mode == Mode::Compare => {
            return compare::update::apply(state, action);
        }
        Action::Back => {
            state.mode = match mode {
                Mode::Help => state.mode_before_help,
                _ => Mode::Normal,
            };
        }
        // Outside the prompt line, typing goes to the mode's one-line field, if it has one.
        Action::InsertChar(_) | Action::Paste(_) | Action::Backspace
            if mode == Mode::PresetName =>
        {
            return presets::update::apply(state, action);
        }
        Action::InsertChar(_) | Action::Paste(_) | Action::Backspace if mode == Mode::Response => {
            return score::update::apply(state, action);
        }
        // A paste on the main screen opens the prompt line and types there (it is never read
        // as keys: pasted text could otherwise run commands).
        Action::Paste(_) if mode == Mode::Normal => {
            prompt::update::apply(state, Action::EditPrompt);
            return prompt::update::apply(state, action);
        }
        Action::InsertChar(_) | Action::Paste(_) | Action::Backspace if mode != Mode::Editing => {}
        Action::EditPrompt
        | Action::InsertChar(_)
        | Action::Paste(_)
        | Action::Backspace
        | Action::DeleteChar
        | Action::PromptLeft
        | Action::PromptRight
        | Action::PromptHome
        | Action::PromptEnd
        | Action::HistoryPrev
        | Action::HistoryNext
        | Action::SubmitPrompt
        | Action::OpenExamples
        | Action::ExamplePrev
        | Action::ExampleNext
        | Action::ExamplePick => return prompt::update::apply(state, action),
        Action::NamePreset
        | Action::SavePreset
        | Action::PresetSaved { .. }
        | Action::OpenPresets
        | Action::PresetPrev
        | Action::PresetNext
        | Action::PresetLoad => return presets::update::apply(state, action),
        Action::OpenProfiles
        | Action::ProfilesRead(_)
        | Action::ProfilePrev
        | Action::ProfileNext
        | Action::ProfileLoad
        | Action::ProfileLoaded { .. } => return profiles::update::apply(state, action),
        Action::EditResponse | Action::NextDemoResponse | Action::ScoreResponse => {
            return score::update::apply(state, action);
        }
        Action::CompareBaseline | Action::ComparePreset => {
            return compare::update::apply(state, action);
        }
        Action::OpenFrontier
        | Action::FrontierPrev
        | Action::FrontierNext
        | Action::FrontierLoad => return frontier::update::apply(state, action),
        Action::Run
        | Action::PauseResume
        | Action::Step
        | Action::Stop
        | Action::Measured { .. } => return generation::apply(state, action),
        Action::Branch
        | Action::Force
        | Action::CursorLeft
        | Action::CursorRight
        | Action::CursorHome
        | Action::CursorEnd
        | Action::SelectToken(_)
        | Action::AlternativeUp
        | Action::AlternativeDown
        | Action::CycleLens => return transcript::update::apply(state, action),
        Action::ToggleChat
        | Action::SliderUp
        | Action::SliderDown
        | Action::SliderIncrease
        | Action::SliderDecrease
        | Action::SliderReset => return steering::update::apply(state, action),
        Action::Export | Action::Exported(_) => return export::update::apply(state, action),
        Action::Engine(event) => engine_event(state, event),
        Action::Resize => {}
    }
    vec![]
}

fn toggle_help(state: &mut State) {
    if state.mode == Mode::Help {
        state.mode = state.mode_before_help;
    } else {
        state.mode_before_help = state.mode;
        state.mode = Mode::Help;
    }
}

/// An engine event goes to the feature whose work it reports.
fn engine_event(state: &mut State, event: Event) {
    match event {
        Event::Scored { .. } => score::update::on_event(state, event),
        Event::CompareToken { .. } | Event::CompareDone { .. } => {
            compare::update::on_event(state, event);
        }
        Event::Swept { .. } | Event::SweepStopped => frontier::update::on_event(state, event),
        Event::Error(_) => {
            // An error ends whatever the engine was doing: a sweep, a comparison, a run.
            frontier::update::engine_failed(state);
            compare::update::engine_failed(state);
            generation::on_event(state, event);
        }
        Event::Started { .. } | Event::Token(_) | Event::Done { .. } => {
            generation::on_event(state, event);
        }
    }
}

#[cfg(test)]
mod tests;
