//! The steering panel's part of `update`: select a slider, nudge it along its step grid or reset
//! it; each change goes to the engine at once. Also the chat template switch.

use super::{
    Slider, TEMPERATURE_RANGE, TEMPERATURE_STEP, TOP_K_MAX, TOP_P_RANGE, TOP_P_STEP, WEIGHT_RANGE,
    WEIGHT_STEP,
};
use crate::engine::decode::worker::Command;
use crate::tui::action::{Action, Effect};
use crate::tui::state::State;

pub fn apply(state: &mut State, action: Action) -> Vec<Effect> {
    match action {
        Action::SliderUp => {
            state.steering.slider = state.steering.slider.saturating_sub(1);
            vec![]
        }
        Action::SliderDown => {
            state.steering.slider = (state.steering.slider + 1).min(state.sliders().len() - 1);
            vec![]
        }
        Action::SliderIncrease => nudge(state, 1),
        Action::SliderDecrease => nudge(state, -1),
        Action::SliderReset => reset(state),
        Action::ToggleChat => toggle_chat(state),
        _ => vec![],
    }
}

/// Move `value` by `direction` steps, snapped to the step grid so repeated presses do not drift.
fn stepped(value: f32, direction: i32, step: f32, (lo, hi): (f32, f32)) -> f32 {
    let snapped = (value / step).round() + direction as f32;
    (snapped * step).clamp(lo, hi)
}

fn nudge(state: &mut State, direction: i32) -> Vec<Effect> {
    let Some(slider) = state.selected_slider() else {
        return vec![];
    };
    let s = &mut state.steering.sampling;
    match slider {
        Slider::Weight(i) => {
            state.weights[i] = stepped(state.weights[i], direction, WEIGHT_STEP, WEIGHT_RANGE);
            return vec![Effect::SetWeights(state.weights.clone())];
        }
        Slider::Temperature => {
            s.temperature = stepped(
                s.temperature,
                direction,
                TEMPERATURE_STEP,
                TEMPERATURE_RANGE,
            );
        }
        Slider::TopK => {
            s.top_k = s
                .top_k
                .saturating_add_signed(direction as isize)
                .min(TOP_K_MAX);
        }
        Slider::TopP => s.top_p = stepped(s.top_p, direction, TOP_P_STEP, TOP_P_RANGE),
        Slider::Seed => s.seed = s.seed.saturating_add_signed(direction as i64),
    }
    vec![Effect::SetSampling(state.steering.sampling)]
}

/// Put the selected slider back to where the session (or the loaded profile) started it.
fn reset(state: &mut State) -> Vec<Effect> {
    match state.selected_slider() {
        Some(Slider::Weight(i)) => {
            state.weights[i] = state.steering.initial_weights[i];
            vec![Effect::SetWeights(state.weights.clone())]
        }
        Some(slider) => {
            let initial = state.steering.initial_sampling;
            let s = &mut state.steering.sampling;
            match slider {
                Slider::Temperature => s.temperature = initial.temperature,
                Slider::TopK => s.top_k = initial.top_k,
                Slider::TopP => s.top_p = initial.top_p,
                Slider::Seed => s.seed = initial.seed,
                Slider::Weight(_) => {}
            }
            vec![Effect::SetSampling(state.steering.sampling)]
        }
        None => vec![],
    }
}

fn toggle_chat(state: &mut State) -> Vec<Effect> {
    match state.chat {
        None => {
            state.message = Some(format!(
                "chat: {} has no chat template in its tokenizer_config.json",
                state.base_name
            ));
            vec![]
        }
        Some(on) => {
            state.chat = Some(!on);
            let now = if on { "off" } else { "on" };
            state.message = Some(format!("chat template {now} from the next run"));
            vec![Effect::Send(Command::SetChat(!on))]
        }
    }
}
