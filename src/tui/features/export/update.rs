//! Export's part of `update`: turn the session into JSONL for the edge to write, and report
//! where it went.

use crate::tui::action::{Action, Effect};
use crate::tui::state::{RunState, State};

pub fn apply(state: &mut State, action: Action) -> Vec<Effect> {
    match action {
        Action::Export => match transcript(state) {
            Some(jsonl) => vec![Effect::Export(jsonl)],
            None => {
                state.message = Some("nothing to export: run a prompt first".into());
                vec![]
            }
        },
        Action::Exported(result) => {
            state.message = Some(match result {
                Ok(path) => format!("exported to {path}"),
                Err(e) => format!("export failed: {e}"),
            });
            vec![]
        }
        _ => vec![],
    }
}

/// The session as JSONL in the record contract; None before any run.
fn transcript(state: &State) -> Option<String> {
    if state.tokens.is_empty() && !state.run.has_generation() {
        return None;
    }
    let records: Vec<_> = state.tokens.iter().map(|t| t.record.clone()).collect();
    let reason = match &state.run {
        RunState::Done(reason) => reason.as_str(),
        RunState::Failed => "error",
        RunState::Scored => "scored",
        // Exported mid-run: the file ends where the user stopped looking.
        _ => "stop",
    };
    let transcript = crate::export::Transcript {
        prompt: &state.run_start.prompt,
        prompt_token_ids: &state.prompt_ids,
        base: &state.base_name,
        arms: &state.arm_names,
        weights: &state.run_start.weights,
        sampling: state.run_start.sampling,
        records: &records,
        reason,
        tokens_per_second: state.transcript.tokens_per_second.unwrap_or(0.0),
    };
    Some(transcript.to_jsonl())
}
