//! The prompt line's part of `update`: typing at the cursor, history, submitting, and the
//! example list.

use super::EXAMPLE_PROMPTS;
use crate::tui::action::{Action, Effect};
use crate::tui::features::{field, launch};
use crate::tui::mode::Mode;
use crate::tui::state::State;

pub fn apply(state: &mut State, action: Action) -> Vec<Effect> {
    let line = &mut state.prompt_line;
    match action {
        Action::EditPrompt => {
            state.mode = Mode::Editing;
            line.cursor = state.prompt.chars().count();
        }
        Action::InsertChar(c) => insert(state, &c.to_string()),
        Action::Paste(text) => insert(state, &text),
        Action::Backspace if line.cursor > 0 => {
            line.cursor -= 1;
            let at = byte_index(&state.prompt, line.cursor);
            state.prompt.remove(at);
        }
        Action::DeleteChar if line.cursor < state.prompt.chars().count() => {
            let at = byte_index(&state.prompt, line.cursor);
            state.prompt.remove(at);
        }
        Action::PromptLeft => line.cursor = line.cursor.saturating_sub(1),
        Action::PromptRight => line.cursor = (line.cursor + 1).min(state.prompt.chars().count()),
        Action::PromptHome => line.cursor = 0,
        Action::PromptEnd => line.cursor = state.prompt.chars().count(),
        Action::HistoryPrev => history_prev(state),
        Action::HistoryNext => history_next(state),
        Action::SubmitPrompt => {
            state.mode = Mode::Normal;
            return launch::run(state);
        }
        Action::OpenExamples => state.mode = Mode::Examples,
        Action::ExamplePrev => line.example_selected = line.example_selected.saturating_sub(1),
        Action::ExampleNext => {
            line.example_selected =
                (line.example_selected + 1).min(EXAMPLE_PROMPTS.len().saturating_sub(1));
        }
        Action::ExamplePick => {
            state.mode = Mode::Normal;
            if let Some((_, prompt)) = EXAMPLE_PROMPTS.get(line.example_selected) {
                set_prompt(state, (*prompt).to_string());
                return launch::run(state);
            }
        }
        _ => {}
    }
    vec![]
}

/// Type or paste `raw` at the cursor (one line, up to the field's size).
fn insert(state: &mut State, raw: &str) {
    let (text, cut) = field::pasted(raw, state.prompt.chars().count());
    if cut {
        state.message = Some(field::cut_notice());
    }
    let line = &mut state.prompt_line;
    let at = byte_index(&state.prompt, line.cursor);
    state.prompt.insert_str(at, &text);
    line.cursor += text.chars().count();
    line.history_pos = None;
}

fn history_prev(state: &mut State) {
    if !state.history.is_empty() {
        let pos = match state.prompt_line.history_pos {
            Some(p) => p.saturating_sub(1),
            None => state.history.len() - 1,
        };
        set_prompt(state, state.history[pos].clone());
        state.prompt_line.history_pos = Some(pos);
    }
}

fn history_next(state: &mut State) {
    if let Some(p) = state.prompt_line.history_pos {
        if p + 1 < state.history.len() {
            set_prompt(state, state.history[p + 1].clone());
            state.prompt_line.history_pos = Some(p + 1);
        } else {
            set_prompt(state, String::new());
            state.prompt_line.history_pos = None;
        }
    }
}

/// Replace the prompt, the cursor at its end.
pub fn set_prompt(state: &mut State, prompt: String) {
    state.prompt_line.cursor = prompt.chars().count();
    state.prompt = prompt;
}

fn byte_index(text: &str, chars: usize) -> usize {
    text.char_indices()
        .nth(chars)
        .map_or(text.len(), |(i, _)| i)
}
