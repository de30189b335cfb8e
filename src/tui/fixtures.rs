//! Deterministic states for unit and snapshot tests: no models, no clock.

use super::action::Effect;
use super::state::State;
use crate::engine::SamplingParams;
use crate::engine::decode::record::{Alternative, ArmTerm, TokenRecord};
use crate::engine::decode::worker::Event;

pub const TEXTS: &[&str] = &[
    "Sure", ",", " here", " is", " a", " safe", "\n", "answer", "\t", ":", " ", "bread", "",
];

/// A record whose numbers vary with `index` so every lens shows something different.
pub fn record(index: usize, weights: &[f32]) -> TokenRecord {
    let names = ["helpful", "harmless"];
    let base = -0.2 - (index % 5) as f32 * 0.9;
    let arm_lp = |arm: usize, token: usize| -0.3 - ((token * 3 + arm * 7) % 6) as f32 * 0.7;
    let arms: Vec<ArmTerm> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| ArmTerm {
            name: names[i % 2].to_string(),
            logprob: arm_lp(i, index),
            weight: w,
            contribution: w * arm_lp(i, index),
        })
        .collect();
    let token_id = 100 + index as u32;
    let guided = -0.1 - (index % 4) as f32 * 0.6;
    let top = (0..4)
        .map(|k| {
            let id = if k == 0 { token_id } else { 10 + k as u32 };
            Alternative {
                token_id: id,
                text: if k == 0 {
                    TEXTS[index % TEXTS.len()].to_string()
                } else {
                    format!(" alt{k}")
                },
                base_logprob: base - k as f32 * 0.5,
                guided_logprob: guided - k as f32 * 0.8,
                arms: weights
                    .iter()
                    .enumerate()
                    .map(|(i, _)| (names[i % 2].to_string(), arm_lp(i, index + k)))
                    .collect(),
            }
        })
        .collect();
    TokenRecord {
        index,
        token_id,
        text: TEXTS[index % TEXTS.len()].to_string(),
        base_logprob: base,
        arms,
        guided_logprob: guided,
        top,
        base_rank: index % 3,
        guided_rank: 0,
        candidates: None,
    }
}

pub fn empty_state() -> State {
    let mut state = State::new(
        "llama_base".into(),
        vec!["helpful".into(), "harmless".into()],
        vec![1.0, 0.5],
        SamplingParams::default(),
    );
    state.prompt = "How do I bake bread?".into();
    state.prompt_line.cursor = state.prompt.chars().count();
    state
}

/// A state after `n` tokens streamed in, the weights changing once at token `n / 2`.
pub fn state_with_tokens(n: usize) -> State {
    let mut state = empty_state();
    super::update::update(
        &mut state,
        super::action::Action::Engine(Event::Started {
            prompt_ids: vec![1, 2, 3],
            kept: 0,
        }),
    );
    for i in 0..n {
        let weights = if i < n / 2 { [1.0, 0.5] } else { [2.0, 0.5] };
        super::update::update(
            &mut state,
            super::action::Action::Engine(Event::Token(record(i, &weights))),
        );
    }
    state.run = super::state::RunState::Running;
    state
}

/// Effects as text, for asserting on what was sent.
pub fn commands(effects: &[Effect]) -> Vec<String> {
    effects.iter().map(|e| format!("{e:?}")).collect()
}
