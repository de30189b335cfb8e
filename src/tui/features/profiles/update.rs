//! The profile picker's part of `update`: open the list of model sets (the startup models and
//! the config file's profiles), move through it, choose one, and apply what loading it gave.
//! Loading itself happens at the edge (the session loads on a thread and swaps the worker).

use super::{LoadedModels, ModelSet};
use crate::engine::decode::worker::Command;
use crate::tui::action::{Action, Effect};
use crate::tui::features::transcript::Lens;
use crate::tui::mode::Mode;
use crate::tui::state::{RunState, State};

pub fn apply(state: &mut State, action: Action) -> Vec<Effect> {
    match action {
        Action::OpenProfiles => return open(state),
        Action::ProfilesRead(result) => read(state, result),
        Action::ProfilePrev => select(state, -1),
        Action::ProfileNext => select(state, 1),
        Action::ProfileLoad => return load(state),
        Action::ProfileLoaded { profile, result } => loaded(state, profile, result),
        _ => {}
    }
    vec![]
}

/// Actions that would give the engine work, refused while a model set loads: the worker they
/// would reach is about to be replaced.
pub fn waits_for_loading(action: &Action) -> bool {
    matches!(
        action,
        Action::Run
            | Action::Step
            | Action::PauseResume
            | Action::Branch
            | Action::Force
            | Action::SubmitPrompt
            | Action::ExamplePick
            | Action::ScoreResponse
            | Action::CompareBaseline
            | Action::ComparePreset
            | Action::OpenFrontier
            | Action::ToggleChat
            | Action::OpenProfiles
            | Action::ProfileLoad
    )
}

/// The picker's row of the model set in use.
fn current_row(state: &State) -> usize {
    state
        .model_sets()
        .position(|set| set.profile == state.profile)
        .unwrap_or(0)
}

/// Open the picker on the set in use; the edge reads the config file's profiles again.
fn open(state: &mut State) -> Vec<Effect> {
    state.mode = Mode::Profiles;
    state.profile_selected = current_row(state);
    vec![Effect::ReadProfiles]
}

fn read(state: &mut State, result: Result<Vec<ModelSet>, String>) {
    match result {
        Ok(sets) => state.profiles.sets = sets,
        Err(e) => {
            // A file that does not parse offers no profiles (loading one would fail the same way).
            state.profiles.sets.clear();
            state.message = Some(format!("no profiles: {e}"));
        }
    }
    state.profile_selected = current_row(state);
}

fn select(state: &mut State, delta: isize) {
    let last = state.profiles.sets.len();
    state.profile_selected = state
        .profile_selected
        .saturating_add_signed(delta)
        .min(last);
}

/// Choose the highlighted set: stop what the engine is generating, and ask the edge to load it.
fn load(state: &mut State) -> Vec<Effect> {
    state.mode = Mode::Normal;
    let Some(profile) = state
        .model_sets()
        .nth(state.profile_selected)
        .map(|set| set.profile.clone())
    else {
        return vec![];
    };
    let mut effects = Vec::new();
    let generating = matches!(
        state.run,
        RunState::Running | RunState::Paused | RunState::Starting
    ) || state.comparison.as_ref().is_some_and(|c| c.running());
    if generating {
        effects.push(Effect::Send(Command::Stop));
    }
    state.loading = Some(profile.clone());
    state.message = None;
    effects.push(Effect::LoadModels(profile));
    effects
}

/// A load ended. On success the worker already runs the new models: rebuild the sliders for
/// its ARMs and weights, take its chat state, and clear the transcript (its records belong to
/// the old models). On failure only the message changes.
fn loaded(state: &mut State, profile: Option<String>, result: Result<LoadedModels, String>) {
    state.loading = None;
    let label = ModelSet::label(profile.as_deref());
    let models = match result {
        Ok(models) => models,
        Err(e) => {
            state.message = Some(format!("{label} not loaded: {e}"));
            return;
        }
    };
    state.base_name = models.base_name;
    state.remote_top_k = models.remote_top_k;
    state.arm_names = models.arm_names;
    state.steering.initial_weights = models.weights.clone();
    state.weights = models.weights;
    state.chat = models.chat;
    state.profile = profile;
    state.steering.slider = 0;
    if matches!(state.lens, Lens::Arm(_)) {
        state.lens = Lens::GuidedProb;
    }
    state.tokens.clear();
    state.prompt_ids.clear();
    state.run_start.prompt.clear();
    state.run_start.weights.clear();
    state.transcript.cursor = 0;
    state.transcript.follow = true;
    state.alternative = 0;
    state.run = RunState::Idle;
    state.transcript.tokens_per_second = None;
    state.comparison = None;
    state.frontier = None;
    for mode in [&mut state.mode, &mut state.mode_before_help] {
        if matches!(*mode, Mode::Compare | Mode::Frontier) {
            *mode = Mode::Normal;
        }
    }
    state.message = Some(match models.notices.is_empty() {
        true => format!("{label} loaded"),
        false => format!("{label} loaded; {}", models.notices.join("; ")),
    });
}
