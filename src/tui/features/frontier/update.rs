//! The frontier's part of `update`: start the sweep, move between its points, put one's weights
//! on the sliders, and take the sweep's result.

use super::{FRONTIER_GRID, FRONTIER_MAX_TOKENS, FRONTIER_SAMPLES, Frontier, FrontierPoint};
use crate::engine::decode::worker::{Command, Event};
use crate::tui::action::{Action, Effect};
use crate::tui::features::launch::{self, weights_label};
use crate::tui::mode::Mode;
use crate::tui::state::{RunState, State};

pub fn apply(state: &mut State, action: Action) -> Vec<Effect> {
    match action {
        Action::OpenFrontier => open(state),
        Action::FrontierPrev => {
            if let Some(f) = state.frontier.as_mut() {
                f.selected = f.selected.saturating_sub(1);
            }
            vec![]
        }
        Action::FrontierNext => {
            if let Some(f) = state.frontier.as_mut() {
                f.selected = (f.selected + 1).min(f.points.len().saturating_sub(1));
            }
            vec![]
        }
        Action::FrontierLoad => load(state),
        Action::Back => back(state),
        _ => vec![],
    }
}

fn running(state: &State) -> bool {
    state.frontier.as_ref().is_some_and(|f| f.running)
}

/// Leaving a frontier that is still being swept cancels the sweep: its result would come too
/// late to be seen, and the engine could do nothing else until then.
fn back(state: &mut State) -> Vec<Effect> {
    state.mode = Mode::Normal;
    if !running(state) {
        return vec![];
    }
    state.frontier = None;
    state.message = Some("frontier sweep stopped".into());
    vec![Effect::Send(Command::Stop)]
}

/// Start the frontier sweep: the first two ARMs over the grid, other ARMs at their weights.
fn open(state: &mut State) -> Vec<Effect> {
    if state.arm_names.len() < 2 {
        state.message = Some("the frontier needs two ARMs (it plots one against the other)".into());
        return vec![];
    }
    if running(state) {
        state.mode = Mode::Frontier;
        return vec![];
    }
    let mut settings = Vec::new();
    for &a in FRONTIER_GRID {
        for &b in FRONTIER_GRID {
            let mut w = state.weights.clone();
            w[0] = a;
            w[1] = b;
            settings.push(w);
        }
    }
    launch::remember_prompt(state);
    state.mode = Mode::Frontier;
    state.run = RunState::Idle;
    state.frontier = Some(Frontier {
        prompt: state.prompt.clone(),
        points: Vec::new(),
        selected: 0,
        running: true,
    });
    let samples = if state.steering.sampling.temperature == 0.0 {
        1
    } else {
        FRONTIER_SAMPLES
    };
    vec![Effect::Send(Command::Sweep {
        prompt: state.prompt.clone(),
        settings,
        samples,
        max_new_tokens: FRONTIER_MAX_TOKENS.min(state.max_new_tokens),
    })]
}

/// Put the selected point's weights on the sliders.
fn load(state: &mut State) -> Vec<Effect> {
    let Some(point) = state
        .frontier
        .as_ref()
        .and_then(|f| f.points.get(f.selected))
    else {
        return vec![];
    };
    state.weights = point.weights.clone();
    state.mode = Mode::Normal;
    state.message = Some(format!(
        "weights from the frontier: {}",
        weights_label(state, &state.weights)
    ));
    vec![Effect::SetWeights(state.weights.clone())]
}

/// The sweep's result, or its end after a stop.
pub fn on_event(state: &mut State, event: Event) {
    match event {
        Event::Swept {
            settings,
            mean_rewards,
        } => {
            if let Some(f) = state.frontier.as_mut() {
                f.points = settings
                    .into_iter()
                    .zip(mean_rewards)
                    .map(|(weights, mean_rewards)| FrontierPoint {
                        weights,
                        mean_rewards,
                    })
                    .collect();
                f.running = false;
                f.selected = 0;
            }
        }
        Event::SweepStopped => {
            // Only a frontier left while sweeping sends the stop, and leaving clears it.
            if let Some(f) = state.frontier.as_mut() {
                f.running = false;
            }
        }
        _ => {}
    }
}

/// An engine error ends the sweep.
pub fn engine_failed(state: &mut State) {
    if let Some(f) = state.frontier.as_mut() {
        f.running = false;
    }
}
