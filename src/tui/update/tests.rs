use super::*;
use crate::engine::StopReason;
use crate::tui::fixtures::{empty_state, record, state_with_tokens};
use crate::tui::state::{FRONTIER_GRID, FRONTIER_MAX_TOKENS, FRONTIER_SAMPLES, Lens};

fn commands(effects: &[Effect]) -> Vec<String> {
    effects.iter().map(|e| format!("{e:?}")).collect()
}

#[test]
fn quit_sets_the_flag() {
    let mut s = empty_state();
    assert!(update(&mut s, Action::Quit).is_empty());
    assert!(s.quit);
}

#[test]
fn help_toggles_and_returns_to_the_previous_mode() {
    let mut s = empty_state();
    update(&mut s, Action::EditPrompt);
    update(&mut s, Action::ToggleHelp);
    assert_eq!(s.mode, Mode::Help);
    update(&mut s, Action::ToggleHelp);
    assert_eq!(s.mode, Mode::Editing);
    update(&mut s, Action::ToggleHelp);
    update(&mut s, Action::Back);
    assert_eq!(s.mode, Mode::Editing);
    update(&mut s, Action::Back);
    assert_eq!(s.mode, Mode::Normal);
}

#[test]
fn prompt_editing_inserts_and_deletes_at_the_cursor() {
    let mut s = empty_state();
    s.prompt.clear();
    update(&mut s, Action::EditPrompt);
    for c in "héllo".chars() {
        update(&mut s, Action::InsertChar(c));
    }
    update(&mut s, Action::PromptLeft);
    update(&mut s, Action::PromptLeft);
    update(&mut s, Action::Backspace);
    assert_eq!(s.prompt, "hélo");
    update(&mut s, Action::PromptHome);
    update(&mut s, Action::DeleteChar);
    assert_eq!(s.prompt, "élo");
    update(&mut s, Action::InsertChar('H'));
    update(&mut s, Action::PromptEnd);
    update(&mut s, Action::InsertChar('!'));
    assert_eq!(s.prompt, "Hélo!");
    update(&mut s, Action::PromptRight);
    assert_eq!(s.prompt_cursor, 5);
    update(&mut s, Action::PromptHome);
    update(&mut s, Action::Backspace);
    assert_eq!(s.prompt, "Hélo!");
}

#[test]
fn submit_runs_the_prompt_and_remembers_it() {
    let mut s = empty_state();
    update(&mut s, Action::EditPrompt);
    let effects = update(&mut s, Action::SubmitPrompt);
    assert_eq!(s.mode, Mode::Normal);
    assert_eq!(s.run, RunState::Starting);
    assert_eq!(s.history, vec!["How do I bake bread?".to_string()]);
    match &effects[..] {
        [
            Effect::Send(Command::Generate {
                prompt,
                paused: false,
                ..
            }),
        ] => assert_eq!(prompt, "How do I bake bread?"),
        other => panic!("{other:?}"),
    }
    // The same prompt again is not a second history entry.
    update(&mut s, Action::Run);
    assert_eq!(s.history.len(), 1);
}

#[test]
fn history_walks_back_and_forth() {
    let mut s = empty_state();
    s.history = vec!["one".into(), "two".into()];
    update(&mut s, Action::HistoryNext);
    assert_eq!(s.prompt, "How do I bake bread?");
    update(&mut s, Action::HistoryPrev);
    assert_eq!(s.prompt, "two");
    update(&mut s, Action::HistoryPrev);
    update(&mut s, Action::HistoryPrev);
    assert_eq!(s.prompt, "one");
    assert_eq!(s.prompt_cursor, 3);
    update(&mut s, Action::HistoryNext);
    assert_eq!(s.prompt, "two");
    update(&mut s, Action::HistoryNext);
    assert_eq!(s.prompt, "");
    assert_eq!(s.history_pos, None);
}

#[test]
fn examples_pick_sets_the_prompt_and_runs() {
    let mut s = empty_state();
    update(&mut s, Action::OpenExamples);
    assert_eq!(s.mode, Mode::Examples);
    update(&mut s, Action::ExamplePrev);
    assert_eq!(s.example_selected, 0);
    for _ in 0..50 {
        update(&mut s, Action::ExampleNext);
    }
    assert_eq!(s.example_selected, EXAMPLE_PROMPTS.len() - 1);
    update(&mut s, Action::ExamplePrev);
    let effects = update(&mut s, Action::ExamplePick);
    assert_eq!(s.mode, Mode::Normal);
    assert_eq!(s.prompt, EXAMPLE_PROMPTS[EXAMPLE_PROMPTS.len() - 2].1);
    assert!(matches!(
        effects[..],
        [Effect::Send(Command::Generate { .. })]
    ));
}

#[test]
fn pause_resume_toggles_only_a_live_generation() {
    let mut s = empty_state();
    assert!(update(&mut s, Action::PauseResume).is_empty());
    s.run = RunState::Running;
    let e = update(&mut s, Action::PauseResume);
    assert_eq!(commands(&e), vec!["Send(Pause)"]);
    assert_eq!(s.run, RunState::Paused);
    let e = update(&mut s, Action::PauseResume);
    assert_eq!(commands(&e), vec!["Send(Resume)"]);
    assert_eq!(s.run, RunState::Running);
    s.run = RunState::Done(StopReason::Eos);
    assert!(update(&mut s, Action::PauseResume).is_empty());
}

#[test]
fn step_starts_a_paused_generation_when_none_is_live() {
    let mut s = empty_state();
    let e = update(&mut s, Action::Step);
    assert!(matches!(
        e[..],
        [
            Effect::Send(Command::Generate { paused: true, .. }),
            Effect::Send(Command::Step)
        ]
    ));
    assert_eq!(s.run, RunState::Paused);
    assert_eq!(s.history.len(), 1, "a stepped prompt is remembered too");
    // Started keeps the paused state: the engine waits for the next step.
    update(
        &mut s,
        Action::Engine(Event::Started {
            prompt_ids: vec![1],
            kept: 0,
        }),
    );
    assert_eq!(s.run, RunState::Paused);
    let e = update(&mut s, Action::Step);
    assert_eq!(commands(&e), vec!["Send(Step)"]);
}

#[test]
fn stop_is_sent_only_while_generating() {
    let mut s = empty_state();
    assert!(update(&mut s, Action::Stop).is_empty());
    s.run = RunState::Paused;
    assert_eq!(commands(&update(&mut s, Action::Stop)), vec!["Send(Stop)"]);
}

#[test]
fn branch_keeps_the_tokens_before_the_selected_one() {
    let mut s = state_with_tokens(6);
    update(&mut s, Action::SelectToken(2));
    let e = update(&mut s, Action::Branch);
    assert_eq!(commands(&e), vec!["Send(Branch { keep: 2 })"]);
    assert_eq!(s.run, RunState::Starting);
    assert!(s.follow);
    update(
        &mut s,
        Action::Engine(Event::Started {
            prompt_ids: vec![1],
            kept: 2,
        }),
    );
    assert_eq!(s.tokens.len(), 2);
    assert_eq!(s.run, RunState::Running);
}

#[test]
fn branch_without_tokens_explains_itself() {
    let mut s = empty_state();
    assert!(update(&mut s, Action::Branch).is_empty());
    assert!(s.message.as_deref().unwrap_or("").contains("branch"));
}

#[test]
fn force_takes_the_highlighted_alternative() {
    let mut s = state_with_tokens(6);
    update(&mut s, Action::SelectToken(3));
    assert_eq!(s.alternative, 0, "starts on the chosen token's row");
    update(&mut s, Action::AlternativeDown);
    update(&mut s, Action::AlternativeDown);
    let want = s.tokens[3].record.top[2].token_id;
    let e = update(&mut s, Action::Force);
    assert_eq!(
        commands(&e),
        vec![format!("Send(Force {{ at: 3, token: {want} }})")]
    );
    let mut idle = empty_state();
    assert!(update(&mut idle, Action::Force).is_empty());
    assert!(idle.message.is_some());
}

#[test]
fn the_cursor_moves_and_follows_new_tokens_at_the_end() {
    let mut s = state_with_tokens(4);
    assert_eq!(s.selected(), Some(3));
    update(&mut s, Action::CursorLeft);
    assert_eq!(s.selected(), Some(2));
    update(&mut s, Action::Engine(Event::Token(record(4, &[2.0, 0.5]))));
    assert_eq!(s.selected(), Some(2), "a parked cursor stays put");
    update(&mut s, Action::CursorHome);
    update(&mut s, Action::CursorLeft);
    assert_eq!(s.selected(), Some(0));
    update(&mut s, Action::CursorRight);
    assert_eq!(s.selected(), Some(1));
    update(&mut s, Action::CursorEnd);
    update(&mut s, Action::Engine(Event::Token(record(5, &[2.0, 0.5]))));
    assert_eq!(s.selected(), Some(5), "at the end the cursor follows");
    update(&mut s, Action::SelectToken(99));
    assert!(s.follow);
}

#[test]
fn alternatives_stay_inside_the_table() {
    let mut s = state_with_tokens(2);
    for _ in 0..10 {
        update(&mut s, Action::AlternativeDown);
    }
    assert_eq!(s.alternative, 3);
    for _ in 0..10 {
        update(&mut s, Action::AlternativeUp);
    }
    assert_eq!(s.alternative, 0);
}

#[test]
fn lenses_cycle_through_every_arm() {
    let mut s = empty_state();
    let mut seen = vec![s.lens];
    for _ in 0..5 {
        update(&mut s, Action::CycleLens);
        seen.push(s.lens);
    }
    assert_eq!(
        seen,
        vec![
            Lens::GuidedProb,
            Lens::BaseProb,
            Lens::Shift,
            Lens::Arm(0),
            Lens::Arm(1),
            Lens::GuidedProb
        ]
    );
}

#[test]
fn weight_sliders_steer_at_once() {
    let mut s = empty_state();
    let e = update(&mut s, Action::SliderIncrease);
    assert_eq!(s.weights, vec![1.25, 0.5]);
    assert!(matches!(&e[..], [Effect::SetWeights(w)] if *w == vec![1.25, 0.5]));
    update(&mut s, Action::SliderDown);
    for _ in 0..40 {
        update(&mut s, Action::SliderDecrease);
    }
    assert_eq!(
        s.weights[1], WEIGHT_RANGE.0,
        "weights go negative, down to the floor"
    );
    update(&mut s, Action::SliderReset);
    assert_eq!(s.weights[1], 0.5);
}

#[test]
fn sampling_sliders_clamp_and_reset() {
    let mut s = empty_state();
    for _ in 0..10 {
        update(&mut s, Action::SliderDown);
    }
    assert_eq!(s.selected_slider(), Some(Slider::Seed));
    update(&mut s, Action::SliderIncrease);
    assert_eq!(s.sampling.seed, 1);
    update(&mut s, Action::SliderUp);
    let e = update(&mut s, Action::SliderDecrease);
    assert!((s.sampling.top_p - 0.95).abs() < 1e-6);
    assert!(matches!(e[..], [Effect::SetSampling(_)]));
    update(&mut s, Action::SliderUp);
    update(&mut s, Action::SliderDecrease);
    assert_eq!(s.sampling.top_k, 0, "top-k does not go below off");
    update(&mut s, Action::SliderIncrease);
    assert_eq!(s.sampling.top_k, 1);
    update(&mut s, Action::SliderUp);
    for _ in 0..3 {
        update(&mut s, Action::SliderIncrease);
    }
    assert!((s.sampling.temperature - 0.3).abs() < 1e-6);
    update(&mut s, Action::SliderReset);
    assert_eq!(s.sampling.temperature, 0.0);
    for _ in 0..10 {
        update(&mut s, Action::SliderUp);
    }
    assert_eq!(s.slider, 0);
}

#[test]
fn tokens_under_new_weights_start_a_new_segment() {
    let s = state_with_tokens(6);
    let segments: Vec<usize> = s.tokens.iter().map(|t| t.segment).collect();
    assert_eq!(segments, vec![0, 0, 0, 1, 1, 1]);
}

#[test]
fn a_token_replaces_anything_stale_after_its_index() {
    let mut s = state_with_tokens(5);
    update(&mut s, Action::Engine(Event::Token(record(2, &[1.0, 0.5]))));
    assert_eq!(s.tokens.len(), 3);
}

#[test]
fn done_and_errors_update_the_run_state() {
    let mut s = state_with_tokens(3);
    update(
        &mut s,
        Action::Engine(Event::Done {
            reason: StopReason::MaxTokens,
            tokens: 3,
            tokens_per_second: 42.0,
        }),
    );
    assert_eq!(s.run, RunState::Done(StopReason::MaxTokens));
    assert_eq!(s.tokens_per_second, Some(42.0));
    update(
        &mut s,
        Action::Engine(Event::Error("prompt too long".into())),
    );
    assert_eq!(s.run, RunState::Failed);
    assert_eq!(s.message.as_deref(), Some("prompt too long"));
    assert!(update(&mut s, Action::Resize).is_empty());
}

#[test]
fn measured_speed_is_shown() {
    let mut s = empty_state();
    update(
        &mut s,
        Action::Measured {
            tokens_per_second: 12.5,
        },
    );
    assert_eq!(s.tokens_per_second, Some(12.5));
}

#[test]
fn export_writes_the_run_as_it_began_and_every_record() {
    let mut s = empty_state();
    assert!(update(&mut s, Action::Export).is_empty());
    assert!(
        s.message
            .as_deref()
            .unwrap_or("")
            .contains("nothing to export")
    );

    update(&mut s, Action::Run);
    // Edits after the run do not change what the tokens continue.
    update(&mut s, Action::SliderIncrease);
    s.prompt = "something else".into();
    update(
        &mut s,
        Action::Engine(Event::Started {
            prompt_ids: vec![1, 5, 9],
            kept: 0,
        }),
    );
    for i in 0..3 {
        update(&mut s, Action::Engine(Event::Token(record(i, &[1.0, 0.5]))));
    }
    update(
        &mut s,
        Action::Engine(Event::Done {
            reason: StopReason::Eos,
            tokens: 3,
            tokens_per_second: 9.0,
        }),
    );
    let effects = update(&mut s, Action::Export);
    let [Effect::Export(jsonl)] = &effects[..] else {
        panic!("{effects:?}");
    };
    let lines: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0]["prompt"], "How do I bake bread?");
    assert_eq!(lines[0]["prompt_token_ids"], serde_json::json!([1, 5, 9]));
    assert_eq!(
        lines[0]["weights"]["helpful"], 1.0,
        "weights when the run began"
    );
    assert_eq!(lines[3]["index"], 2);
    assert_eq!(lines[4]["reason"], "eos");
    assert_eq!(lines[4]["text"], "Sure, here");
    assert_eq!(lines[4]["tokens_per_second"], 9.0);

    update(&mut s, Action::Exported(Ok("/data/session-1.jsonl".into())));
    assert_eq!(
        s.message.as_deref(),
        Some("exported to /data/session-1.jsonl")
    );
    update(&mut s, Action::Exported(Err("disk full".into())));
    assert_eq!(s.message.as_deref(), Some("export failed: disk full"));
}

#[test]
fn export_after_an_error_keeps_the_tokens_and_says_error() {
    let mut s = state_with_tokens(2);
    update(&mut s, Action::Engine(Event::Error("boom".into())));
    let effects = update(&mut s, Action::Export);
    let [Effect::Export(jsonl)] = &effects[..] else {
        panic!("{effects:?}");
    };
    let end: serde_json::Value = serde_json::from_str(jsonl.lines().last().unwrap()).unwrap();
    assert_eq!(end["reason"], "error");
    assert_eq!(end["generated_tokens"], 2);
}

#[test]
fn naming_a_preset_types_into_its_own_field_and_saves_the_weights() {
    let mut s = empty_state();
    update(&mut s, Action::NamePreset);
    assert_eq!(s.mode, Mode::PresetName);
    assert!(update(&mut s, Action::SavePreset).is_empty(), "no name yet");
    assert!(s.message.as_deref().unwrap_or("").contains("name"));
    for c in "calmx".chars() {
        update(&mut s, Action::InsertChar(c));
    }
    update(&mut s, Action::Backspace);
    assert_eq!(s.preset_name, "calm");
    assert_eq!(s.prompt, "How do I bake bread?", "the prompt is untouched");
    let effects = update(&mut s, Action::SavePreset);
    assert_eq!(s.mode, Mode::Normal);
    let [Effect::SavePreset { name, weights }] = &effects[..] else {
        panic!("{effects:?}");
    };
    assert_eq!(name, "calm");
    assert_eq!(weights["helpful"], 1.0);
    assert_eq!(weights["harmless"], 0.5);

    let (name, weights) = (name.clone(), weights.clone());
    update(
        &mut s,
        Action::PresetSaved {
            name: name.clone(),
            weights: weights.clone(),
            result: Err("read-only".into()),
        },
    );
    assert!(s.presets.is_empty());
    assert_eq!(
        s.message.as_deref(),
        Some("preset 'calm' not saved: read-only")
    );
    update(
        &mut s,
        Action::PresetSaved {
            name,
            weights,
            result: Ok("/c/config.toml".into()),
        },
    );
    assert_eq!(s.presets["calm"]["harmless"], 0.5);
    assert!(s.message.as_deref().unwrap().contains("/c/config.toml"));
    // Esc leaves without saving.
    update(&mut s, Action::NamePreset);
    update(&mut s, Action::Back);
    assert_eq!(s.mode, Mode::Normal);
}

#[test]
fn loading_a_preset_sets_the_named_sliders_and_steers() {
    let mut s = empty_state();
    update(&mut s, Action::OpenPresets);
    assert_eq!(s.mode, Mode::Normal, "nothing to pick from");
    assert!(s.message.as_deref().unwrap().contains("no presets"));
    s.presets.insert(
        "a-bold".into(),
        [("helpful".to_string(), 3.0)].into_iter().collect(),
    );
    s.presets.insert(
        "b-other".into(),
        [("harmless".to_string(), -2.0), ("honest".to_string(), 1.0)]
            .into_iter()
            .collect(),
    );
    update(&mut s, Action::OpenPresets);
    assert_eq!(s.mode, Mode::Presets);
    update(&mut s, Action::PresetNext);
    update(&mut s, Action::PresetNext);
    assert_eq!(s.preset_selected, 1);
    let effects = update(&mut s, Action::PresetLoad);
    assert_eq!(s.mode, Mode::Normal);
    assert_eq!(s.weights, vec![1.0, -2.0], "unnamed ARMs keep their weight");
    assert!(matches!(&effects[..], [Effect::SetWeights(w)] if *w == vec![1.0, -2.0]));
    assert!(s.message.as_deref().unwrap().contains("honest"));
    update(&mut s, Action::OpenPresets);
    update(&mut s, Action::PresetPrev);
    update(&mut s, Action::PresetPrev);
    update(&mut s, Action::PresetLoad);
    assert_eq!(s.weights, vec![3.0, -2.0]);
    assert_eq!(s.message.as_deref(), Some("preset 'a-bold' loaded"));
}

#[test]
fn score_mode_types_a_response_or_cycles_demo_answers_and_shows_the_records() {
    let mut s = empty_state();
    update(&mut s, Action::EditResponse);
    assert_eq!(s.mode, Mode::Response);
    assert!(
        update(&mut s, Action::ScoreResponse).is_empty(),
        "nothing typed"
    );
    // "How do I bake bread?" is a demo request: tab walks its answers, one per style.
    assert_eq!(s.demo_responses.len(), 5);
    update(&mut s, Action::NextDemoResponse);
    assert_eq!(s.demo_responses[0].0, "detailed");
    assert!(
        s.response.starts_with(" Sure! To bake bread"),
        "{}",
        s.response
    );
    for _ in 0..5 {
        update(&mut s, Action::NextDemoResponse);
    }
    assert_eq!(s.demo_response, Some(0), "wraps around");
    s.response.clear();
    for c in "Knead.".chars() {
        update(&mut s, Action::InsertChar(c));
    }
    update(&mut s, Action::Backspace);
    assert_eq!(s.response, "Knead");
    assert_eq!(s.prompt, "How do I bake bread?");
    let e = update(&mut s, Action::ScoreResponse);
    assert_eq!(
        commands(&e),
        vec![r#"Send(Score { prompt: "How do I bake bread?", response: "Knead" })"#]
    );
    assert_eq!(s.mode, Mode::Normal);
    assert_eq!(s.run, RunState::Starting);

    update(
        &mut s,
        Action::Engine(Event::Scored {
            prompt_ids: vec![4, 2],
            records: vec![record(0, &[1.0, 0.5]), record(1, &[1.0, 0.5])],
            sums: crate::engine::ScoreSums {
                base_logprob: -1.3,
                arm_logprobs: vec![-0.6, -2.25],
                guided_logprob: -0.8,
            },
        }),
    );
    assert_eq!(s.run, RunState::Scored);
    assert_eq!(s.tokens.len(), 2);
    assert_eq!(s.prompt_ids, vec![4, 2]);
    assert_eq!(
        s.message.as_deref(),
        Some("Σ log π: base -1.30 · helpful -0.60 · harmless -2.25")
    );
    // Scored tokens cannot be continued, but they can be exported.
    assert!(update(&mut s, Action::Branch).is_empty());
    let effects = update(&mut s, Action::Export);
    let [Effect::Export(jsonl)] = &effects[..] else {
        panic!("{effects:?}");
    };
    assert!(
        jsonl
            .lines()
            .last()
            .unwrap()
            .contains(r#""reason":"scored""#)
    );
}

#[test]
fn a_prompt_outside_the_demo_has_no_demo_answers() {
    let mut s = empty_state();
    s.prompt = "Tell me a story".into();
    update(&mut s, Action::EditResponse);
    assert!(s.demo_responses.is_empty());
    update(&mut s, Action::NextDemoResponse);
    assert!(s.response.is_empty());
    assert!(s.message.as_deref().unwrap().contains("no demo answers"));
}

fn compare_token(side: usize, index: usize, id: u32) -> Action {
    let mut r = record(index, &[1.0, 0.5]);
    r.token_id = id;
    Action::Engine(Event::CompareToken { side, record: r })
}

fn compare_done(side: usize) -> Action {
    Action::Engine(Event::CompareDone {
        side,
        reason: StopReason::Eos,
        tokens_per_second: 20.0 + side as f64,
    })
}

#[test]
fn compare_runs_base_only_against_the_current_weights_and_finds_the_divergence() {
    let mut s = empty_state();
    let e = update(&mut s, Action::CompareBaseline);
    assert_eq!(s.mode, Mode::Compare);
    assert_eq!(
        commands(&e),
        vec![
            r#"Send(Compare { prompt: "How do I bake bread?", max_new_tokens: 256, top_alternatives: 8, settings: [[0.0, 0.0], [1.0, 0.5]] })"#
        ]
    );
    let c = s.comparison.clone().unwrap();
    assert_eq!(c.sides[0].label, "base only");
    assert_eq!(c.sides[1].label, "current: helpful +1.00 harmless +0.50");
    assert!(c.running());

    for (i, id) in [5, 6, 7].into_iter().enumerate() {
        update(&mut s, compare_token(0, i, id));
    }
    update(&mut s, compare_done(0));
    for (i, id) in [5, 9, 7, 8].into_iter().enumerate() {
        update(&mut s, compare_token(1, i, id));
    }
    let c = s.comparison.clone().unwrap();
    assert_eq!(c.first_difference(), Some(1));
    assert!(!c.differs(0, 0) && c.differs(0, 1) && !c.differs(0, 2));
    assert!(
        c.differs(1, 3),
        "a token the finished side never made differs"
    );
    assert!(!c.differs(0, 3));
    // The status badge says what the engine is busy with, not the idle generation state.
    assert_eq!(s.activity(), ("comparing".to_string(), true));
    // Stop while running goes to the engine; closing stops too.
    assert_eq!(commands(&update(&mut s, Action::Stop)), vec!["Send(Stop)"]);
    update(&mut s, compare_done(1));
    let c = s.comparison.clone().unwrap();
    assert!(!c.running());
    assert_eq!(s.activity(), ("idle".to_string(), false));
    assert_eq!(c.sides[1].tokens_per_second, Some(21.0));
    assert!(
        update(&mut s, Action::Stop).is_empty(),
        "nothing left to stop"
    );
    assert!(update(&mut s, Action::Back).is_empty());
    assert_eq!(s.mode, Mode::Normal);
}

#[test]
fn equal_texts_part_only_where_one_ends() {
    let mut s = empty_state();
    update(&mut s, Action::CompareBaseline);
    update(&mut s, compare_token(0, 0, 5));
    update(&mut s, compare_token(1, 0, 5));
    update(&mut s, compare_token(1, 1, 6));
    assert_eq!(s.comparison.as_ref().unwrap().first_difference(), None);
    update(&mut s, compare_done(0));
    update(&mut s, compare_done(1));
    assert_eq!(s.comparison.as_ref().unwrap().first_difference(), Some(1));
    // Closing a running comparison stops it; an engine error ends one.
    update(&mut s, Action::CompareBaseline);
    assert_eq!(commands(&update(&mut s, Action::Back)), vec!["Send(Stop)"]);
    update(&mut s, Action::CompareBaseline);
    update(&mut s, Action::Engine(Event::Error("boom".into())));
    assert!(!s.comparison.as_ref().unwrap().running());
}

#[test]
fn compare_with_a_preset_uses_its_weights_for_the_second_side() {
    let mut s = empty_state();
    assert!(update(&mut s, Action::ComparePreset).is_empty());
    assert!(s.message.as_deref().unwrap().contains("no presets"));
    s.presets.insert(
        "bold".into(),
        [("helpful".to_string(), 3.0)].into_iter().collect(),
    );
    let e = update(&mut s, Action::ComparePreset);
    assert!(commands(&e)[0].contains("settings: [[1.0, 0.5], [3.0, 0.5]]"));
    let c = s.comparison.as_ref().unwrap();
    assert_eq!(
        c.sides[1].label,
        "preset bold: helpful +3.00 harmless +0.50"
    );
}

fn swept(s: &mut State) {
    let settings: Vec<Vec<f32>> = FRONTIER_GRID
        .iter()
        .flat_map(|&a| FRONTIER_GRID.iter().map(move |&b| vec![a, b]))
        .collect();
    let mean_rewards = settings
        .iter()
        .map(|w| vec![-10.0 + f64::from(w[0]), -8.0 + f64::from(w[1])])
        .collect();
    update(
        s,
        Action::Engine(Event::Swept {
            settings,
            mean_rewards,
        }),
    );
}

#[test]
fn the_frontier_sweeps_a_grid_of_the_first_two_arms_and_loads_a_point() {
    let mut s = empty_state();
    s.sampling.temperature = 0.7;
    let e = update(&mut s, Action::OpenFrontier);
    assert_eq!(s.mode, Mode::Frontier);
    let [
        Effect::Send(Command::Sweep {
            settings,
            samples,
            max_new_tokens,
            prompt,
        }),
    ] = &e[..]
    else {
        panic!("{e:?}");
    };
    assert_eq!(settings.len(), 16);
    assert_eq!(settings[0], vec![0.0, 0.0]);
    assert_eq!(settings[15], vec![3.0, 3.0]);
    assert_eq!(*samples, FRONTIER_SAMPLES);
    assert_eq!(*max_new_tokens, FRONTIER_MAX_TOKENS);
    assert_eq!(prompt, "How do I bake bread?");
    assert!(s.frontier.as_ref().unwrap().running);
    // Opening again while it runs does not start a second sweep.
    assert!(update(&mut s, Action::OpenFrontier).is_empty());

    swept(&mut s);
    let f = s.frontier.as_ref().unwrap();
    assert!(!f.running);
    assert_eq!(f.points.len(), 16);
    assert_eq!(f.points[5].mean_rewards, vec![-9.0, -7.0]);
    update(&mut s, Action::FrontierPrev);
    for _ in 0..5 {
        update(&mut s, Action::FrontierNext);
    }
    let e = update(&mut s, Action::FrontierLoad);
    assert_eq!(s.weights, vec![1.0, 1.0]);
    assert!(matches!(&e[..], [Effect::SetWeights(w)] if *w == vec![1.0, 1.0]));
    assert_eq!(s.mode, Mode::Normal);
    for _ in 0..40 {
        update(&mut s, Action::FrontierNext);
    }
    assert_eq!(s.frontier.as_ref().unwrap().selected, 15);
}

#[test]
fn leaving_a_running_frontier_stops_its_sweep() {
    let mut s = empty_state();
    update(&mut s, Action::OpenFrontier);
    assert_eq!(s.activity(), ("sweeping".to_string(), true));
    let e = update(&mut s, Action::Back);
    assert!(matches!(&e[..], [Effect::Send(Command::Stop)]), "{e:?}");
    assert_eq!(s.activity(), ("idle".to_string(), false));
    assert_eq!(s.mode, Mode::Normal);
    assert!(s.frontier.is_none());
    assert!(s.message.as_deref().unwrap().contains("stopped"));
    // The engine's answer changes nothing more; a new frontier starts a new sweep.
    update(&mut s, Action::Engine(Event::SweepStopped));
    assert!(s.frontier.is_none());
    let e = update(&mut s, Action::OpenFrontier);
    assert!(matches!(&e[..], [Effect::Send(Command::Sweep { .. })]));
    // Leaving a finished frontier sends nothing.
    swept(&mut s);
    assert!(update(&mut s, Action::Back).is_empty());
    assert!(s.frontier.is_some());
}

#[test]
fn the_frontier_needs_two_arms_and_greedy_needs_one_sample() {
    let mut s = empty_state();
    let e = update(&mut s, Action::OpenFrontier);
    assert!(matches!(
        &e[..],
        [Effect::Send(Command::Sweep { samples: 1, .. })]
    ));
    update(&mut s, Action::Engine(Event::Error("boom".into())));
    assert!(!s.frontier.as_ref().unwrap().running);

    let mut one = empty_state();
    one.arm_names.truncate(1);
    one.weights.truncate(1);
    assert!(update(&mut one, Action::OpenFrontier).is_empty());
    assert!(one.message.as_deref().unwrap().contains("two ARMs"));
    assert_eq!(one.mode, Mode::Normal);
}

#[test]
fn chat_toggles_only_where_the_base_has_a_template() {
    let mut s = empty_state();
    // No template: a message naming the base, nothing sent.
    assert!(update(&mut s, Action::ToggleChat).is_empty());
    assert_eq!(s.chat, None);
    assert!(s.message.as_deref().unwrap().contains("no chat template"));

    s.chat = Some(false);
    let effects = update(&mut s, Action::ToggleChat);
    assert_eq!(commands(&effects), ["Send(SetChat(true))"]);
    assert_eq!(s.chat, Some(true));
    let effects = update(&mut s, Action::ToggleChat);
    assert_eq!(commands(&effects), ["Send(SetChat(false))"]);
    assert_eq!(s.chat, Some(false));
}

/// Two profiles as the config file would give them.
fn profile_sets() -> Vec<crate::tui::state::ModelSet> {
    use crate::tui::state::ModelSet;
    vec![
        ModelSet {
            profile: Some("qwen".into()),
            base: "/models/qwen2.5-0.5b".into(),
            arms: vec![("harmless".into(), 2.0)],
            chat: true,
        },
        ModelSet {
            profile: Some("tulu".into()),
            base: "/models/tulu-2-7b".into(),
            arms: vec![("helpful".into(), 1.0), ("safe".into(), -0.5)],
            chat: false,
        },
    ]
}

fn tulu_models() -> crate::tui::state::LoadedModels {
    crate::tui::state::LoadedModels {
        base_name: "tulu-2-7b".into(),
        arm_names: vec!["helpful".into(), "safe".into(), "brief".into()],
        weights: vec![1.0, -0.5, 1.0],
        chat: Some(true),
        notices: vec![],
    }
}

#[test]
fn the_profile_picker_opens_on_the_set_in_use_and_reads_the_profiles_again() {
    let mut s = empty_state();
    let effects = update(&mut s, Action::OpenProfiles);
    assert_eq!(s.mode, Mode::Profiles);
    assert_eq!(commands(&effects), ["ReadProfiles"]);
    assert_eq!(s.profile_selected, 0, "the startup set is in use");
    update(&mut s, Action::ProfilesRead(Ok(profile_sets())));
    assert_eq!(s.model_sets().count(), 3);
    assert_eq!(s.model_sets().next().unwrap().profile, None);

    // Moving stays inside the list: startup, qwen, tulu.
    update(&mut s, Action::ProfilePrev);
    assert_eq!(s.profile_selected, 0);
    for _ in 0..5 {
        update(&mut s, Action::ProfileNext);
    }
    assert_eq!(s.profile_selected, 2);
    update(&mut s, Action::ProfilePrev);
    assert_eq!(s.profile_selected, 1);

    // Esc closes without loading anything.
    assert!(update(&mut s, Action::Back).is_empty());
    assert_eq!(s.mode, Mode::Normal);
    assert_eq!(s.loading, None);

    // With tulu in use, the picker opens on its row.
    s.profile = Some("tulu".into());
    update(&mut s, Action::OpenProfiles);
    update(&mut s, Action::ProfilesRead(Ok(profile_sets())));
    assert_eq!(s.profile_selected, 2);

    // A config file that no longer parses offers only the startup set, and says why.
    update(
        &mut s,
        Action::ProfilesRead(Err("/c/config.toml:3: expected `=`".into())),
    );
    assert!(s.profiles.is_empty());
    assert_eq!(s.profile_selected, 0);
    assert!(
        s.message.as_deref().unwrap().contains("config.toml:3"),
        "{:?}",
        s.message
    );
}

#[test]
fn the_startup_row_names_the_profile_the_session_started_from() {
    let mut s = empty_state();
    s.profiles = profile_sets();
    let names = |s: &State| s.model_sets().map(|m| s.set_name(m)).collect::<Vec<_>>();
    assert_eq!(names(&s), ["startup", "qwen", "tulu"]);
    // `genarm --profile qwen`: the startup row says so (flags beside it may differ from the
    // file's qwen row, so that row is not the one marked in use).
    s.startup_profile = Some("qwen".into());
    assert_eq!(names(&s), ["startup (qwen)", "qwen", "tulu"]);
}

#[test]
fn choosing_a_profile_stops_the_run_and_loads_it_in_the_background() {
    let mut s = state_with_tokens(6);
    assert_eq!(s.run, RunState::Running);
    update(&mut s, Action::OpenProfiles);
    update(&mut s, Action::ProfilesRead(Ok(profile_sets())));
    update(&mut s, Action::ProfileNext);
    update(&mut s, Action::ProfileNext);
    let effects = update(&mut s, Action::ProfileLoad);
    assert_eq!(
        commands(&effects),
        ["Send(Stop)", "LoadModels(Some(\"tulu\"))"]
    );
    assert_eq!(s.mode, Mode::Normal);
    assert_eq!(s.loading, Some(Some("tulu".into())));
    // The old transcript stays on screen until the new models are there.
    assert_eq!(s.tokens.len(), 6);

    // While loading, what would reach the engine waits; looking and steering do not.
    for action in [
        Action::Run,
        Action::Step,
        Action::Branch,
        Action::CompareBaseline,
        Action::OpenFrontier,
        Action::OpenProfiles,
        Action::ToggleChat,
    ] {
        assert!(update(&mut s, action.clone()).is_empty(), "{action:?}");
        assert_eq!(s.mode, Mode::Normal, "{action:?}");
    }
    assert_eq!(s.message.as_deref(), Some("wait: profile tulu is loading"));
    assert_eq!(update(&mut s, Action::CursorHome).len(), 0);
    assert_eq!(s.selected(), Some(0));

    // Nothing running: no Stop, just the load; the startup row loads the startup models.
    let mut idle = empty_state();
    update(&mut idle, Action::OpenProfiles);
    update(&mut idle, Action::ProfilesRead(Ok(profile_sets())));
    let effects = update(&mut idle, Action::ProfileLoad);
    assert_eq!(commands(&effects), ["LoadModels(None)"]);
    assert_eq!(idle.loading, Some(None));
}

#[test]
fn a_loaded_profile_rebuilds_the_sliders_takes_its_chat_and_clears_the_transcript() {
    let mut s = state_with_tokens(6);
    s.prompt = "Keep me".into();
    s.history = vec!["Keep me".into()];
    s.lens = Lens::Arm(1);
    s.slider = 5;
    s.sampling.temperature = 0.7;
    update(&mut s, Action::CompareBaseline);
    update(&mut s, Action::Back);
    update(&mut s, Action::OpenProfiles);
    update(&mut s, Action::ProfilesRead(Ok(profile_sets())));
    update(&mut s, Action::ProfileNext);
    update(&mut s, Action::ProfileNext);
    update(&mut s, Action::ProfileLoad);
    let effects = update(
        &mut s,
        Action::ProfileLoaded {
            profile: Some("tulu".into()),
            result: Ok(tulu_models()),
        },
    );
    assert!(
        effects.is_empty(),
        "the session already gave the worker its weights"
    );
    assert_eq!(s.loading, None);
    assert_eq!(s.profile, Some("tulu".into()));
    assert_eq!(s.base_name, "tulu-2-7b");
    assert_eq!(s.arm_names, ["helpful", "safe", "brief"]);
    assert_eq!(s.weights, [1.0, -0.5, 1.0]);
    assert_eq!(
        s.initial_weights, s.weights,
        "0 resets to the profile's weights"
    );
    assert_eq!(s.sliders().len(), 3 + 4);
    assert_eq!(s.slider, 0);
    assert_eq!(s.lens, Lens::GuidedProb);
    assert_eq!(s.chat, Some(true));
    assert!(s.tokens.is_empty() && s.prompt_ids.is_empty());
    assert_eq!(s.run, RunState::Idle);
    assert!(s.comparison.is_none() && s.frontier.is_none());
    assert_eq!(s.message.as_deref(), Some("profile tulu loaded"));
    // The prompt, its history and the sampling settings are the user's, not the models'.
    assert_eq!(s.prompt, "Keep me");
    assert_eq!(s.history, ["Keep me"]);
    assert_eq!(s.sampling.temperature, 0.7);
    // The new ARMs steer: a slider move sends all three weights.
    let effects = update(&mut s, Action::SliderIncrease);
    assert_eq!(commands(&effects), ["SetWeights([1.25, -0.5, 1.0])"]);
    // The picker now opens on tulu and marks it.
    update(&mut s, Action::OpenProfiles);
    update(&mut s, Action::ProfilesRead(Ok(profile_sets())));
    assert_eq!(s.profile_selected, 2);

    // A notice from loading (chat asked of a base without a template) is shown.
    let mut quiet = empty_state();
    update(&mut quiet, Action::OpenProfiles);
    update(&mut quiet, Action::ProfileLoad);
    let mut models = tulu_models();
    models.chat = None;
    models.notices = vec!["--chat: tulu-2-7b has no chat template".into()];
    update(
        &mut quiet,
        Action::ProfileLoaded {
            profile: None,
            result: Ok(models),
        },
    );
    assert_eq!(quiet.chat, None);
    assert_eq!(
        quiet.message.as_deref(),
        Some("the startup models loaded; --chat: tulu-2-7b has no chat template")
    );
}

#[test]
fn a_failed_load_keeps_the_models_and_says_why_in_one_line() {
    let mut s = state_with_tokens(4);
    update(
        &mut s,
        Action::Engine(Event::Done {
            reason: StopReason::MaxTokens,
            tokens: 4,
            tokens_per_second: 10.0,
        }),
    );
    let before = s.clone();
    update(&mut s, Action::OpenProfiles);
    update(&mut s, Action::ProfilesRead(Ok(profile_sets())));
    update(&mut s, Action::ProfileNext);
    let effects = update(&mut s, Action::ProfileLoad);
    assert_eq!(commands(&effects), ["LoadModels(Some(\"qwen\"))"]);
    update(
        &mut s,
        Action::ProfileLoaded {
            profile: Some("qwen".into()),
            result: Err("--base /models/qwen2.5-0.5b: no such model folder".into()),
        },
    );
    assert_eq!(s.loading, None);
    assert_eq!(
        s.message.as_deref(),
        Some("profile qwen not loaded: --base /models/qwen2.5-0.5b: no such model folder")
    );
    assert_eq!(s.profile, None);
    assert_eq!(s.base_name, before.base_name);
    assert_eq!(s.arm_names, before.arm_names);
    assert_eq!(s.weights, before.weights);
    assert_eq!(s.tokens, before.tokens);
    assert_eq!(s.run, before.run);
    // The old models are usable again at once.
    let effects = update(&mut s, Action::Run);
    assert!(matches!(
        &effects[..],
        [Effect::Send(Command::Generate { .. })]
    ));
}
