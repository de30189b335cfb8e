//! Score mode's part of `update`: open the response line, type into it or take the demo's next
//! answer, score it (teacher-forced), and show what the engine scored.

use crate::engine::decode::worker::{Command, Event};
use crate::tui::action::{Action, Effect};
use crate::tui::features::transcript::TokenCell;
use crate::tui::features::transcript::update::reset_alternative;
use crate::tui::features::{field, launch};
use crate::tui::mode::Mode;
use crate::tui::state::{RunState, State};

pub fn apply(state: &mut State, action: Action) -> Vec<Effect> {
    match action {
        Action::EditResponse => {
            state.mode = Mode::Response;
            state.score.demo_responses = demo_responses(&state.prompt);
            state.score.demo_response = None;
        }
        Action::InsertChar(c) => push_text(state, &c.to_string()),
        Action::Paste(text) => push_text(state, &text),
        Action::Backspace => {
            state.score.response.pop();
        }
        Action::NextDemoResponse => next_demo_response(state),
        Action::ScoreResponse => return score(state),
        _ => {}
    }
    vec![]
}

fn next_demo_response(state: &mut State) {
    let score = &mut state.score;
    if score.demo_responses.is_empty() {
        state.message = Some("no demo answers for this prompt: pick one with p first".into());
        return;
    }
    let next = score
        .demo_response
        .map_or(0, |i| (i + 1) % score.demo_responses.len());
    score.demo_response = Some(next);
    score.response = score.demo_responses[next].1.clone();
}

fn score(state: &mut State) -> Vec<Effect> {
    if state.score.response.trim().is_empty() {
        state.message = Some("type a response to score (esc cancels)".into());
        return vec![];
    }
    state.mode = Mode::Normal;
    launch::remember_prompt(state);
    launch::begin_run(state);
    state.run = RunState::Starting;
    state.message = None;
    state.transcript.follow = true;
    vec![Effect::Send(Command::Score {
        prompt: state.prompt.clone(),
        response: state.score.response.clone(),
    })]
}

/// The scored response: its records replace the transcript, the sums go to the status line.
pub fn on_event(state: &mut State, event: Event) {
    let Event::Scored {
        prompt_ids,
        records,
        sums,
    } = event
    else {
        return;
    };
    state.prompt_ids = prompt_ids;
    state.tokens = records
        .into_iter()
        .map(|record| TokenCell { record, segment: 0 })
        .collect();
    state.run = RunState::Scored;
    state.transcript.tokens_per_second = None;
    let arms = state
        .arm_names
        .iter()
        .zip(&sums.arm_logprobs)
        .map(|(name, s)| format!(" · {name} {s:.2}"))
        .collect::<String>();
    state.message = Some(format!("Σ log π: base {:.2}{arms}", sums.base_logprob));
    reset_alternative(state);
}

/// The demo world's answers to `prompt` in each style, when it is one of its requests.
fn demo_responses(prompt: &str) -> Vec<(String, String)> {
    use crate::demo::world::World;
    let world = World::new(0);
    let Some(request) = world
        .all_requests()
        .into_iter()
        .find(|r| r.text == prompt.trim())
    else {
        return vec![];
    };
    World::styles_for(request.class)
        .iter()
        .map(|&style| {
            // The demo's responses follow "Assistant:" after a space, as in its training text.
            let text = format!(" {}", world.response(request.topic, style, 0));
            (style.name().to_string(), text)
        })
        .collect()
}

/// Type or paste at the end of the response (one line, up to the field's size).
fn push_text(state: &mut State, raw: &str) {
    let (text, cut) = field::pasted(raw, state.score.response.chars().count());
    if cut {
        state.message = Some(field::cut_notice());
    }
    state.score.response.push_str(&text);
}
