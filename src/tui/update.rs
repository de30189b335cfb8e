//! The one place that changes [`State`]: pure, no I/O, no clock. Work for the engine comes back
//! as [`Effect`]s for the app loop to carry out.

use super::action::{Action, Effect};
use super::state::{
    CompareSide, Comparison, EXAMPLE_PROMPTS, FRONTIER_GRID, FRONTIER_MAX_TOKENS, FRONTIER_SAMPLES,
    Frontier, FrontierPoint, Mode, ModelSet, RunState, Slider, State, TEMPERATURE_RANGE,
    TEMPERATURE_STEP, TOP_K_MAX, TOP_P_RANGE, TOP_P_STEP, TokenCell, WEIGHT_RANGE, WEIGHT_STEP,
};
use crate::engine::StopReason;
use crate::engine::decode::worker::{Command, Event};

// Over 120 lines: split by the playground-by-feature work.
#[allow(clippy::too_many_lines)]
pub fn update(state: &mut State, action: Action) -> Vec<Effect> {
    if let Some(profile) = &state.loading
        && profiles::waits_for_loading(&action)
    {
        let label = ModelSet::label(profile.as_deref());
        state.message = Some(format!("wait: {label} is loading"));
        return vec![];
    }
    match action {
        Action::Quit => {
            state.quit = true;
            vec![]
        }
        Action::ToggleHelp => {
            if state.mode == Mode::Help {
                state.mode = state.mode_before_help;
            } else {
                state.mode_before_help = state.mode;
                state.mode = Mode::Help;
            }
            vec![]
        }
        // Leaving a frontier that is still being swept cancels the sweep: its result would
        // come too late to be seen, and the engine could do nothing else until then.
        Action::Back if state.mode == Mode::Frontier && frontier_running(state) => {
            state.mode = Mode::Normal;
            state.frontier = None;
            state.message = Some("frontier sweep stopped".into());
            vec![Effect::Send(Command::Stop)]
        }
        Action::Back if state.mode == Mode::Compare => {
            state.mode = Mode::Normal;
            match &state.comparison {
                Some(c) if c.running() => vec![Effect::Send(Command::Stop)],
                _ => vec![],
            }
        }
        Action::Back => {
            state.mode = match state.mode {
                Mode::Help => state.mode_before_help,
                _ => Mode::Normal,
            };
            vec![]
        }
        Action::EditPrompt => {
            state.mode = Mode::Editing;
            state.prompt_cursor = state.prompt.chars().count();
            vec![]
        }
        Action::InsertChar(c) if state.mode != Mode::Editing => {
            if let Some(field) = short_field(state) {
                field.push(c);
            }
            vec![]
        }
        Action::Backspace if state.mode != Mode::Editing => {
            if let Some(field) = short_field(state) {
                field.pop();
            }
            vec![]
        }
        Action::InsertChar(c) => {
            let at = byte_index(&state.prompt, state.prompt_cursor);
            state.prompt.insert(at, c);
            state.prompt_cursor += 1;
            state.history_pos = None;
            vec![]
        }
        Action::Backspace => {
            if state.prompt_cursor > 0 {
                state.prompt_cursor -= 1;
                let at = byte_index(&state.prompt, state.prompt_cursor);
                state.prompt.remove(at);
            }
            vec![]
        }
        Action::DeleteChar => {
            if state.prompt_cursor < state.prompt.chars().count() {
                let at = byte_index(&state.prompt, state.prompt_cursor);
                state.prompt.remove(at);
            }
            vec![]
        }
        Action::PromptLeft => {
            state.prompt_cursor = state.prompt_cursor.saturating_sub(1);
            vec![]
        }
        Action::PromptRight => {
            state.prompt_cursor = (state.prompt_cursor + 1).min(state.prompt.chars().count());
            vec![]
        }
        Action::PromptHome => {
            state.prompt_cursor = 0;
            vec![]
        }
        Action::PromptEnd => {
            state.prompt_cursor = state.prompt.chars().count();
            vec![]
        }
        Action::HistoryPrev => {
            if !state.history.is_empty() {
                let pos = match state.history_pos {
                    Some(p) => p.saturating_sub(1),
                    None => state.history.len() - 1,
                };
                set_prompt(state, state.history[pos].clone());
                state.history_pos = Some(pos);
            }
            vec![]
        }
        Action::HistoryNext => {
            if let Some(p) = state.history_pos {
                if p + 1 < state.history.len() {
                    set_prompt(state, state.history[p + 1].clone());
                    state.history_pos = Some(p + 1);
                } else {
                    set_prompt(state, String::new());
                    state.history_pos = None;
                }
            }
            vec![]
        }
        Action::SubmitPrompt => {
            state.mode = Mode::Normal;
            run(state)
        }
        Action::OpenExamples => {
            state.mode = Mode::Examples;
            vec![]
        }
        Action::ExamplePrev => {
            state.example_selected = state.example_selected.saturating_sub(1);
            vec![]
        }
        Action::ExampleNext => {
            state.example_selected =
                (state.example_selected + 1).min(EXAMPLE_PROMPTS.len().saturating_sub(1));
            vec![]
        }
        Action::ExamplePick => {
            state.mode = Mode::Normal;
            match EXAMPLE_PROMPTS.get(state.example_selected) {
                Some((_, prompt)) => {
                    set_prompt(state, (*prompt).to_string());
                    run(state)
                }
                None => vec![],
            }
        }
        Action::NamePreset => {
            state.mode = Mode::PresetName;
            state.preset_name.clear();
            vec![]
        }
        Action::SavePreset => {
            let name = state.preset_name.trim().to_string();
            if name.is_empty() {
                state.message = Some("a preset needs a name (esc cancels)".into());
                return vec![];
            }
            state.mode = Mode::Normal;
            let weights = state
                .arm_names
                .iter()
                .cloned()
                .zip(state.weights.iter().copied())
                .collect();
            vec![Effect::SavePreset { name, weights }]
        }
        Action::PresetSaved {
            name,
            weights,
            result,
        } => {
            state.message = Some(match result {
                Ok(path) => {
                    let message = format!("preset '{name}' saved to {path}");
                    state.presets.insert(name, weights);
                    message
                }
                Err(e) => format!("preset '{name}' not saved: {e}"),
            });
            vec![]
        }
        Action::OpenPresets => {
            if state.presets.is_empty() {
                state.message = Some("no presets yet: S saves the current weights as one".into());
            } else {
                state.mode = Mode::Presets;
                state.preset_selected = state.preset_selected.min(state.presets.len() - 1);
            }
            vec![]
        }
        Action::PresetPrev => {
            state.preset_selected = state.preset_selected.saturating_sub(1);
            vec![]
        }
        Action::PresetNext => {
            state.preset_selected =
                (state.preset_selected + 1).min(state.presets.len().saturating_sub(1));
            vec![]
        }
        Action::PresetLoad => {
            state.mode = Mode::Normal;
            load_preset(state)
        }
        Action::OpenProfiles => profiles::open(state),
        Action::ProfilesRead(result) => {
            profiles::read(state, result);
            vec![]
        }
        Action::ProfilePrev => {
            profiles::select(state, -1);
            vec![]
        }
        Action::ProfileNext => {
            profiles::select(state, 1);
            vec![]
        }
        Action::ProfileLoad => profiles::load(state),
        Action::ProfileLoaded { profile, result } => {
            profiles::loaded(state, profile, result);
            vec![]
        }
        Action::EditResponse => {
            state.mode = Mode::Response;
            state.demo_responses = demo_responses(&state.prompt);
            state.demo_response = None;
            vec![]
        }
        Action::NextDemoResponse => {
            if state.demo_responses.is_empty() {
                state.message =
                    Some("no demo answers for this prompt: pick one with p first".into());
                return vec![];
            }
            let next = state
                .demo_response
                .map_or(0, |i| (i + 1) % state.demo_responses.len());
            state.demo_response = Some(next);
            state.response = state.demo_responses[next].1.clone();
            vec![]
        }
        Action::ScoreResponse => {
            if state.response.trim().is_empty() {
                state.message = Some("type a response to score (esc cancels)".into());
                return vec![];
            }
            state.mode = Mode::Normal;
            remember_prompt(state);
            begin_run(state);
            state.run = RunState::Starting;
            state.message = None;
            state.follow = true;
            vec![Effect::Send(Command::Score {
                prompt: state.prompt.clone(),
                response: state.response.clone(),
            })]
        }
        Action::CompareBaseline => {
            let zero = vec![0.0; state.weights.len()];
            let current = state.weights.clone();
            let label = format!("current: {}", weights_label(state, &current));
            compare(
                state,
                CompareSide::new("base only".into(), zero),
                CompareSide::new(label, current),
            )
        }
        Action::ComparePreset => {
            let Some((name, preset)) = state.presets.iter().nth(state.preset_selected) else {
                state.message = Some("no presets to compare with: S saves one".into());
                return vec![];
            };
            let mut theirs = state.weights.clone();
            for (arm, &w) in preset {
                if let Some(i) = state.arm_names.iter().position(|n| n == arm) {
                    theirs[i] = w;
                }
            }
            let current = state.weights.clone();
            let a = CompareSide::new(
                format!("current: {}", weights_label(state, &current)),
                current,
            );
            let b = CompareSide::new(
                format!("preset {name}: {}", weights_label(state, &theirs)),
                theirs,
            );
            compare(state, a, b)
        }
        Action::OpenFrontier => open_frontier(state),
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
        Action::FrontierLoad => {
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
        Action::Run => run(state),
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
        Action::Stop if state.mode == Mode::Compare => match &state.comparison {
            Some(c) if c.running() => vec![Effect::Send(Command::Stop)],
            _ => vec![],
        },
        Action::Stop => match state.run {
            RunState::Running | RunState::Paused | RunState::Starting => {
                vec![Effect::Send(Command::Stop)]
            }
            _ => vec![],
        },
        Action::Branch => {
            let Some(keep) = state.selected().filter(|_| state.run.has_generation()) else {
                state.message = Some("nothing to branch: run a prompt first".into());
                return vec![];
            };
            continue_from(state);
            vec![Effect::Send(Command::Branch { keep })]
        }
        Action::Force => {
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
        Action::CursorLeft => {
            if let Some(sel) = state.selected() {
                select(state, sel.saturating_sub(1));
            }
            vec![]
        }
        Action::CursorRight => {
            if let Some(sel) = state.selected() {
                select(state, sel + 1);
            }
            vec![]
        }
        Action::CursorHome => {
            select(state, 0);
            vec![]
        }
        Action::CursorEnd => {
            state.follow = true;
            reset_alternative(state);
            vec![]
        }
        Action::SelectToken(i) => {
            select(state, i);
            vec![]
        }
        Action::AlternativeUp => {
            state.alternative = state.alternative.saturating_sub(1);
            vec![]
        }
        Action::AlternativeDown => {
            let rows = state.selected_token().map_or(0, |c| c.record.top.len());
            state.alternative = (state.alternative + 1).min(rows.saturating_sub(1));
            vec![]
        }
        Action::CycleLens => {
            state.lens = state.lens.next(state.arm_names.len());
            vec![]
        }
        Action::ToggleChat => match state.chat {
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
        },
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
        Action::SliderUp => {
            state.slider = state.slider.saturating_sub(1);
            vec![]
        }
        Action::SliderDown => {
            state.slider = (state.slider + 1).min(state.sliders().len() - 1);
            vec![]
        }
        Action::SliderIncrease => nudge(state, 1),
        Action::SliderDecrease => nudge(state, -1),
        Action::SliderReset => match state.selected_slider() {
            Some(Slider::Weight(i)) => {
                state.weights[i] = state.initial_weights[i];
                vec![Effect::SetWeights(state.weights.clone())]
            }
            Some(slider) => {
                let initial = state.initial_sampling;
                let s = &mut state.sampling;
                match slider {
                    Slider::Temperature => s.temperature = initial.temperature,
                    Slider::TopK => s.top_k = initial.top_k,
                    Slider::TopP => s.top_p = initial.top_p,
                    Slider::Seed => s.seed = initial.seed,
                    Slider::Weight(_) => {}
                }
                vec![Effect::SetSampling(state.sampling)]
            }
            None => vec![],
        },
        Action::Engine(event) => {
            engine_event(state, event);
            vec![]
        }
        Action::Measured { tokens_per_second } => {
            state.tokens_per_second = Some(tokens_per_second);
            vec![]
        }
        Action::Resize => vec![],
    }
}

/// Add the prompt to the history (once, when it differs from the last entry).
fn remember_prompt(state: &mut State) {
    if state.history.last() != Some(&state.prompt) {
        state.history.push(state.prompt.clone());
    }
    state.history_pos = None;
}

fn run(state: &mut State) -> Vec<Effect> {
    remember_prompt(state);
    begin_run(state);
    state.run = RunState::Starting;
    state.message = None;
    state.follow = true;
    vec![Effect::Send(generate(state, false))]
}

fn generate(state: &State, paused: bool) -> Command {
    Command::Generate {
        prompt: state.prompt.clone(),
        max_new_tokens: state.max_new_tokens,
        top_alternatives: state.top_alternatives,
        paused,
    }
}

/// One token, then pause. With no generation under way, start one paused first.
fn step(state: &mut State) -> Vec<Effect> {
    let mut effects = Vec::new();
    match state.run {
        RunState::Running | RunState::Paused | RunState::Starting => {}
        _ => {
            remember_prompt(state);
            begin_run(state);
            state.message = None;
            state.follow = true;
            effects.push(Effect::Send(generate(state, true)));
        }
    }
    state.run = RunState::Paused;
    effects.push(Effect::Send(Command::Step));
    effects
}

fn frontier_running(state: &State) -> bool {
    state.frontier.as_ref().is_some_and(|f| f.running)
}

/// Start the frontier sweep: the first two ARMs over the grid, other ARMs at their weights.
fn open_frontier(state: &mut State) -> Vec<Effect> {
    if state.arm_names.len() < 2 {
        state.message = Some("the frontier needs two ARMs (it plots one against the other)".into());
        return vec![];
    }
    if frontier_running(state) {
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
    remember_prompt(state);
    state.mode = Mode::Frontier;
    state.run = RunState::Idle;
    state.frontier = Some(Frontier {
        prompt: state.prompt.clone(),
        points: Vec::new(),
        selected: 0,
        running: true,
    });
    let samples = if state.sampling.temperature == 0.0 {
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

/// "helpful +1.00 harmless +0.50".
fn weights_label(state: &State, weights: &[f32]) -> String {
    state
        .arm_names
        .iter()
        .zip(weights)
        .map(|(n, w)| format!("{n} {w:+.2}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Start a comparison of two settings on the current prompt (the engine drops any generation).
fn compare(state: &mut State, a: CompareSide, b: CompareSide) -> Vec<Effect> {
    remember_prompt(state);
    state.mode = Mode::Compare;
    state.run = RunState::Idle;
    state.message = None;
    let settings = vec![a.weights.clone(), b.weights.clone()];
    state.comparison = Some(Comparison {
        prompt: state.prompt.clone(),
        sides: [a, b],
    });
    vec![Effect::Send(Command::Compare {
        prompt: state.prompt.clone(),
        max_new_tokens: state.max_new_tokens,
        top_alternatives: state.top_alternatives,
        settings,
    })]
}

/// The one-line text field of the current mode (preset name, response), if it has one.
fn short_field(state: &mut State) -> Option<&mut String> {
    match state.mode {
        Mode::PresetName => Some(&mut state.preset_name),
        Mode::Response => Some(&mut state.response),
        _ => None,
    }
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

/// Set the sliders of the ARMs the highlighted preset names; other ARMs keep their weights.
fn load_preset(state: &mut State) -> Vec<Effect> {
    let Some((name, weights)) = state.presets.iter().nth(state.preset_selected) else {
        return vec![];
    };
    let mut unknown = Vec::new();
    for (arm, &w) in weights {
        match state.arm_names.iter().position(|n| n == arm) {
            Some(i) => state.weights[i] = w.clamp(WEIGHT_RANGE.0, WEIGHT_RANGE.1),
            None => unknown.push(arm.as_str()),
        }
    }
    state.message = Some(if unknown.is_empty() {
        format!("preset '{name}' loaded")
    } else {
        format!(
            "preset '{name}' loaded; no ARM named {} here",
            unknown.join(", ")
        )
    });
    vec![Effect::SetWeights(state.weights.clone())]
}

/// Note what a new run starts from, for exports.
fn begin_run(state: &mut State) {
    state.run_prompt = state.prompt.clone();
    state.run_weights = state.weights.clone();
    state.run_sampling = state.sampling;
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
        prompt: &state.run_prompt,
        prompt_token_ids: &state.prompt_ids,
        base: &state.base_name,
        arms: &state.arm_names,
        weights: &state.run_weights,
        sampling: state.run_sampling,
        records: &records,
        reason,
        tokens_per_second: state.tokens_per_second.unwrap_or(0.0),
    };
    Some(transcript.to_jsonl())
}

/// After branch/force the cursor follows the regrown tokens.
fn continue_from(state: &mut State) {
    state.run = RunState::Starting;
    state.message = None;
    state.follow = true;
}

fn select(state: &mut State, index: usize) {
    let Some(last) = state.tokens.len().checked_sub(1) else {
        return;
    };
    if index >= last {
        state.follow = true;
    } else {
        state.follow = false;
        state.cursor = index;
    }
    reset_alternative(state);
}

/// Point the alternatives table at the token that was actually chosen.
fn reset_alternative(state: &mut State) {
    state.alternative = state.chosen_alternative().unwrap_or(0);
}

fn set_prompt(state: &mut State, prompt: String) {
    state.prompt_cursor = prompt.chars().count();
    state.prompt = prompt;
}

fn byte_index(text: &str, chars: usize) -> usize {
    text.char_indices()
        .nth(chars)
        .map_or(text.len(), |(i, _)| i)
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
    let s = &mut state.sampling;
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
    vec![Effect::SetSampling(state.sampling)]
}

fn engine_event(state: &mut State, event: Event) {
    match event {
        Event::Started { kept, prompt_ids } => {
            state.tokens.truncate(kept);
            state.prompt_ids = prompt_ids;
            if state.run == RunState::Starting {
                state.run = RunState::Running;
            }
            state.tokens_per_second = None;
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
            if state.follow {
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
                state.tokens_per_second = Some(tokens_per_second);
            }
        }
        Event::Scored {
            prompt_ids,
            records,
            sums,
        } => {
            state.prompt_ids = prompt_ids;
            state.tokens = records
                .into_iter()
                .map(|record| TokenCell { record, segment: 0 })
                .collect();
            state.run = RunState::Scored;
            state.tokens_per_second = None;
            let arms = state
                .arm_names
                .iter()
                .zip(&sums.arm_logprobs)
                .map(|(name, s)| format!(" · {name} {s:.2}"))
                .collect::<String>();
            state.message = Some(format!("Σ log π: base {:.2}{arms}", sums.base_logprob));
            reset_alternative(state);
        }
        Event::CompareToken { side, record } => {
            if let Some(s) = state
                .comparison
                .as_mut()
                .and_then(|c| c.sides.get_mut(side))
            {
                s.records.truncate(record.index);
                s.records.push(record);
            }
        }
        Event::CompareDone {
            side,
            reason,
            tokens_per_second,
        } => {
            if let Some(s) = state
                .comparison
                .as_mut()
                .and_then(|c| c.sides.get_mut(side))
            {
                s.done = Some(reason);
                s.tokens_per_second = Some(tokens_per_second);
            }
        }
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
        Event::Error(message) => {
            if let Some(f) = state.frontier.as_mut() {
                f.running = false;
            }
            // An error ends a comparison too: the engine has stopped working on it.
            if let Some(c) = state.comparison.as_mut() {
                for side in c.sides.iter_mut().filter(|s| s.done.is_none()) {
                    side.done = Some(StopReason::Stop);
                }
            }
            state.run = RunState::Failed;
            state.message = Some(message);
        }
    }
}

mod profiles;

#[cfg(test)]
mod tests;
